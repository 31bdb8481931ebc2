package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// migrations are applied in order, each once, each in its own transaction
// together with its row in schema_migrations: running them again (every
// Open does) changes nothing. Never edit a released migration; append one.
//
// The tables are sqlite's (the engine's SQL is shared), with postgres
// types: BIGINT for seqs, epochs and µs timestamps, BYTEA for JSON kept
// byte for byte, TEXT COLLATE "C" for keys so ORDER BY sorts bytes as
// sqlite does (the digest's canonical order must not depend on the
// database's locale).
var migrations = []string{
	// 1: the store contract's tables.
	`
CREATE TABLE meta (
	id            INTEGER PRIMARY KEY CHECK (id = 1),
	role          TEXT    COLLATE "C" NOT NULL,
	epoch         BIGINT  NOT NULL,
	last_seq      BIGINT  NOT NULL,
	last_epoch    BIGINT  NOT NULL,
	known_epoch   BIGINT  NOT NULL,
	known_primary TEXT    COLLATE "C" NOT NULL
);
INSERT INTO meta (id, role, epoch, last_seq, last_epoch, known_epoch, known_primary)
	VALUES (1, 'standby', 0, 0, 0, 0, '');
CREATE TABLE epochs (
	epoch     BIGINT PRIMARY KEY,
	first_seq BIGINT NOT NULL
);
CREATE TABLE journal (
	seq     BIGINT PRIMARY KEY,
	epoch   BIGINT NOT NULL,
	kind    TEXT   COLLATE "C" NOT NULL,
	at      BIGINT NOT NULL,
	payload BYTEA  NOT NULL
);
CREATE TABLE quarantine (
	id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	seq            BIGINT NOT NULL,
	epoch          BIGINT NOT NULL,
	kind           TEXT   COLLATE "C" NOT NULL,
	at             BIGINT NOT NULL,
	payload        BYTEA  NOT NULL,
	quarantined_at BIGINT NOT NULL,
	new_epoch      BIGINT NOT NULL
);
CREATE TABLE conversations (
	id         TEXT     COLLATE "C" PRIMARY KEY,
	created_at BIGINT   NOT NULL,
	metadata   TEXT     NOT NULL,
	deleted    SMALLINT NOT NULL
);
CREATE TABLE items (
	conversation_id TEXT     COLLATE "C" NOT NULL,
	seq             BIGINT   NOT NULL,
	id              TEXT     COLLATE "C" NOT NULL,
	type            TEXT     COLLATE "C" NOT NULL,
	role            TEXT     COLLATE "C" NOT NULL,
	data            BYTEA    NOT NULL,
	created_at      BIGINT   NOT NULL,
	deleted         SMALLINT NOT NULL,
	PRIMARY KEY (conversation_id, seq),
	UNIQUE (conversation_id, id)
);
CREATE TABLE responses (
	id                   TEXT     COLLATE "C" PRIMARY KEY,
	status               TEXT     COLLATE "C" NOT NULL,
	model                TEXT     COLLATE "C" NOT NULL,
	conversation_id      TEXT     COLLATE "C" NOT NULL,
	previous_response_id TEXT     COLLATE "C" NOT NULL,
	data                 BYTEA    NOT NULL,
	key_scope            TEXT     COLLATE "C" NOT NULL,
	idempotency_key      TEXT     COLLATE "C" NOT NULL,
	request_hash         TEXT     COLLATE "C" NOT NULL,
	created_at           BIGINT   NOT NULL,
	updated_at           BIGINT   NOT NULL,
	deleted              SMALLINT NOT NULL
);
CREATE UNIQUE INDEX responses_idempotency ON responses (key_scope, idempotency_key) WHERE idempotency_key <> '';
CREATE TABLE agent_versions (
	name       TEXT   COLLATE "C" NOT NULL,
	version    TEXT   COLLATE "C" NOT NULL,
	hash       TEXT   COLLATE "C" NOT NULL,
	definition BYTEA  NOT NULL,
	applied_at BIGINT NOT NULL,
	seq        BIGINT NOT NULL,
	PRIMARY KEY (name, version)
);
CREATE INDEX agent_versions_seq ON agent_versions (name, seq);
`,
}

// migrateLockKey is the pg_advisory_lock key that serialises migrations
// of gateways starting at once on one database ("undrstdy" in ASCII).
const migrateLockKey int64 = 0x756e6472_73746479

// migrate brings the schema to the latest version. It runs on a
// connection of its own holding the session advisory lock for the whole
// run: a second gateway starting at the same moment waits, then finds
// every version recorded and applies nothing. Closing the connection
// releases the lock even when the run fails half-way.
func migrate(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var standby bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if standby {
		return checkStandbySchema(ctx, conn)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
		return fmt.Errorf("migrate: take the migration lock: %w", err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at BIGINT  NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for i, m := range migrations {
		if err := migrateOne(ctx, conn, i+1, m); err != nil {
			return fmt.Errorf("migrate to version %d: %w", i+1, err)
		}
	}
	return nil
}

func migrateOne(ctx context.Context, conn *pgx.Conn, version int, ddl string) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM schema_migrations WHERE version = $1", version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	// Simple protocol: the migration is several statements.
	if _, err := tx.Exec(ctx, ddl, pgx.QueryExecModeSimpleProtocol); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)", version, time.Now().UnixMicro()); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// checkStandbySchema checks that a hot standby (engine replication: it
// cannot be written, the primary's schema streams to it) already holds
// the schema this binary needs.
func checkStandbySchema(ctx context.Context, conn *pgx.Conn) error {
	var v int
	err := conn.QueryRow(ctx, "SELECT COALESCE(max(version), 0) FROM schema_migrations").Scan(&v)
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "42P01" {
		return fmt.Errorf("migrate: the database is a hot standby without the store schema; open the store on its primary first")
	}
	if err != nil {
		return fmt.Errorf("migrate: read the standby's schema version: %w", err)
	}
	if v < len(migrations) {
		return fmt.Errorf("migrate: the database is a hot standby at schema version %d, this binary needs %d; open the store on its primary first", v, len(migrations))
	}
	return nil
}

// SchemaVersion is the schema version Open migrates to.
func SchemaVersion() int { return len(migrations) }
