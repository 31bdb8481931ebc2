package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations are applied in order, each once, each in its own transaction
// together with its row in schema_migrations: running them again (every
// Open does) changes nothing. Never edit a released migration; append one.
var migrations = []string{
	// 1: the store contract's tables.
	`
CREATE TABLE meta (
	id            INTEGER PRIMARY KEY CHECK (id = 1),
	role          TEXT    NOT NULL,
	epoch         INTEGER NOT NULL,
	last_seq      INTEGER NOT NULL,
	last_epoch    INTEGER NOT NULL,
	known_epoch   INTEGER NOT NULL,
	known_primary TEXT    NOT NULL
);
INSERT INTO meta (id, role, epoch, last_seq, last_epoch, known_epoch, known_primary)
	VALUES (1, 'standby', 0, 0, 0, 0, '');
CREATE TABLE epochs (
	epoch     INTEGER PRIMARY KEY,
	first_seq INTEGER NOT NULL
);
CREATE TABLE journal (
	seq     INTEGER PRIMARY KEY,
	epoch   INTEGER NOT NULL,
	kind    TEXT    NOT NULL,
	at      INTEGER NOT NULL,
	payload BLOB    NOT NULL
);
CREATE TABLE quarantine (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,
	seq            INTEGER NOT NULL,
	epoch          INTEGER NOT NULL,
	kind           TEXT    NOT NULL,
	at             INTEGER NOT NULL,
	payload        BLOB    NOT NULL,
	quarantined_at INTEGER NOT NULL,
	new_epoch      INTEGER NOT NULL
);
CREATE TABLE conversations (
	id         TEXT    PRIMARY KEY,
	created_at INTEGER NOT NULL,
	metadata   TEXT    NOT NULL,
	deleted    INTEGER NOT NULL
);
CREATE TABLE items (
	conversation_id TEXT    NOT NULL,
	seq             INTEGER NOT NULL,
	id              TEXT    NOT NULL,
	type            TEXT    NOT NULL,
	role            TEXT    NOT NULL,
	data            BLOB    NOT NULL,
	created_at      INTEGER NOT NULL,
	deleted         INTEGER NOT NULL,
	PRIMARY KEY (conversation_id, seq),
	UNIQUE (conversation_id, id)
);
CREATE TABLE responses (
	id                   TEXT    PRIMARY KEY,
	status               TEXT    NOT NULL,
	model                TEXT    NOT NULL,
	conversation_id      TEXT    NOT NULL,
	previous_response_id TEXT    NOT NULL,
	data                 BLOB    NOT NULL,
	key_scope            TEXT    NOT NULL,
	idempotency_key      TEXT    NOT NULL,
	request_hash         TEXT    NOT NULL,
	created_at           INTEGER NOT NULL,
	updated_at           INTEGER NOT NULL,
	deleted              INTEGER NOT NULL
);
CREATE UNIQUE INDEX responses_idempotency ON responses (key_scope, idempotency_key) WHERE idempotency_key <> '';
CREATE TABLE agent_versions (
	name       TEXT    NOT NULL,
	version    TEXT    NOT NULL,
	hash       TEXT    NOT NULL,
	definition BLOB    NOT NULL,
	applied_at INTEGER NOT NULL,
	seq        INTEGER NOT NULL,
	PRIMARY KEY (name, version)
);
CREATE INDEX agent_versions_seq ON agent_versions (name, seq);
`,
}

// migrate brings the schema to the latest version.
func migrate(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for i, m := range migrations {
		if err := migrateOne(ctx, db, i+1, m); err != nil {
			return fmt.Errorf("migrate to version %d: %w", i+1, err)
		}
	}
	return nil
}

func migrateOne(ctx context.Context, db *sql.DB, version int, ddl string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations WHERE version = ?", version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, ddl); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", version, time.Now().UnixMicro()); err != nil {
		return err
	}
	return tx.Commit()
}

// SchemaVersion is the schema version Open migrates to.
func SchemaVersion() int { return len(migrations) }
