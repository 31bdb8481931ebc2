package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/understudy/understudy/internal/store"
)

// Options tune a postgres store. The zero value is usable.
type Options struct {
	// MaxConns bounds this process's connections to the database: half
	// (at least one) serve write transactions, the rest (at least one)
	// reads, so at least 2 are used. Default 10 (the topology's
	// regions[].store.max_conns).
	MaxConns int
	// Now is the clock for created_at and event times. Default time.Now.
	Now func() time.Time
	// Guard is called before every write commit. Default none; SetGuard
	// replaces it later.
	Guard store.Guard
	// Log receives rejoin and quarantine reports. Default discards.
	Log *slog.Logger
	// Streaming says the database is one server of PostgreSQL streaming
	// replication (replication.transport engine): the role comes from
	// pg_is_in_recovery(), Promote ends recovery with pg_promote(), and
	// Fence on a standby is a no-op. Default false.
	Streaming bool
}

// Pool settings that are not options: connections are recycled so that a
// DNS failover (a managed server's new primary) is followed within the
// lifetime, and a write transaction left idle by a hung process gives the
// meta row lock back after idleTxTimeout.
const (
	connMaxLifetime = 30 * time.Minute
	connMaxIdleTime = 5 * time.Minute
	idleTxTimeout   = "10s"
)

// Store is a region's state in a PostgreSQL database. It embeds the
// driver-independent store.Engine: every operation of the store contract
// is a method of Store. Several processes may open the same database.
type Store struct {
	*store.Engine
	write     *sql.DB
	read      *sql.DB
	streaming bool
	promoting atomic.Bool // Promote is under way (streaming)
	log       *slog.Logger
}

// dialect is postgres's: $n parameters, the meta row locked FOR UPDATE at
// the start of every write transaction, read-only errors as ErrNotPrimary.
var dialect = store.Dialect{
	Name:             "postgres",
	NumberedParams:   true,
	LockMeta:         "FOR UPDATE",
	MapError:         mapError,
	CachesStatements: true,
}

// Open connects to the database at dsn (a postgres:// URL or key=value
// connection string, as pgx parses it), migrates its schema and returns
// the store. A new store is a standby of epoch 0; Promote(ctx, 1) makes
// the first primary. On a hot standby (engine replication) nothing is
// migrated: the schema must already have streamed from the primary, and
// writes fail with store.ErrNotPrimary.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 10
	}
	nw := max(1, opts.MaxConns/2)
	nr := max(1, opts.MaxConns-nw)
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "understudy"
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)

	// Writers serialise on the meta row lock; under READ COMMITTED each
	// statement after the lock sees every transaction committed before
	// it, so the seq read from meta is the latest. A stricter default
	// isolation would make the waiting writers fail instead.
	wcfg := cfg.Copy()
	wcfg.RuntimeParams["default_transaction_isolation"] = "read committed"
	if _, ok := wcfg.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
		wcfg.RuntimeParams["idle_in_transaction_session_timeout"] = idleTxTimeout
	}
	// Reads that take several statements (Meta, ListItems, Digest) see
	// one snapshot; read-only REPEATABLE READ never fails to serialise,
	// and is allowed on a hot standby.
	rcfg := cfg.Copy()
	rcfg.RuntimeParams["default_transaction_isolation"] = "repeatable read"
	rcfg.RuntimeParams["default_transaction_read_only"] = "on"

	if err := migrate(ctx, wcfg); err != nil {
		return nil, fmt.Errorf("open postgres store %s: %w", where, err)
	}
	write := stdlib.OpenDB(*wcfg)
	read := stdlib.OpenDB(*rcfg)
	for _, p := range []struct {
		db *sql.DB
		n  int
	}{{write, nw}, {read, nr}} {
		p.db.SetMaxOpenConns(p.n)
		p.db.SetMaxIdleConns(p.n)
		p.db.SetConnMaxLifetime(connMaxLifetime)
		p.db.SetConnMaxIdleTime(connMaxIdleTime)
		if err := p.db.PingContext(ctx); err != nil {
			write.Close()
			read.Close()
			return nil, fmt.Errorf("open postgres store %s: %w", where, err)
		}
	}
	eng := store.NewEngine(store.Config{
		Write: write, Read: read, Dialect: dialect,
		Now: opts.Now, Guard: opts.Guard, Log: opts.Log,
	})
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{Engine: eng, write: write, read: read, streaming: opts.Streaming, log: log}, nil
}

// Close closes the connection pools. Operations after Close fail.
func (s *Store) Close() error {
	return errors.Join(s.read.Close(), s.write.Close())
}

// mapError translates the postgres errors of a write transaction that
// mean something to the store's callers.
func mapError(err error) error {
	pgErr, ok := errors.AsType[*pgconn.PgError](err)
	if !ok {
		return err
	}
	switch pgErr.Code {
	case "25006": // read_only_sql_transaction: a hot standby
		return &readOnlyError{err: err}
	case "22021", "22P05": // a NUL character in text
		return &textError{err: err}
	}
	return err
}

// readOnlyError is a write refused because the database is read-only: a
// hot standby of engine replication (or a server set to
// default_transaction_read_only). It is store.ErrNotPrimary, which the
// agents API answers with 503 not_primary.
type readOnlyError struct{ err error }

func (e *readOnlyError) Error() string {
	return "store is not primary: the database is read-only (a hot standby): " + e.err.Error()
}
func (e *readOnlyError) Is(target error) bool { return target == store.ErrNotPrimary }
func (e *readOnlyError) Unwrap() error        { return e.err }

// textError is a value PostgreSQL text cannot hold (a NUL character):
// store.ErrInvalid, whose message reaches the client without the server
// error.
type textError struct{ err error }

func (e *textError) Error() string {
	return store.ErrInvalid.Error() + ": text with a NUL character cannot be stored"
}
func (e *textError) Is(target error) bool { return target == store.ErrInvalid }
func (e *textError) Unwrap() error        { return e.err }
