package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/understudy/understudy/internal/store"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Options tune a sqlite store. The zero value is usable.
type Options struct {
	// Now is the clock for created_at and event times. Default time.Now.
	Now func() time.Time
	// Guard is called before every write commit. Default none; SetGuard
	// replaces it later.
	Guard store.Guard
	// Log receives rejoin and quarantine reports. Default discards.
	Log *slog.Logger
	// BusyTimeout is how long a statement waits for a lock. Default 5s.
	BusyTimeout time.Duration
	// Readers bounds the read connections. Default 4.
	Readers int
}

// Store is a region's state in one sqlite database file (WAL mode). It
// embeds the driver-independent store.Engine: every operation of the
// store contract is a method of Store.
type Store struct {
	*store.Engine
	path  string
	write *sql.DB
	read  *sql.DB
}

// Open opens (creating if needed) the database file at path, migrates its
// schema and returns the store. A new store is a standby of epoch 0;
// Promote(ctx, 1) makes the first primary.
func Open(path string, opts Options) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open sqlite store %q: path must be a file name without ? or #", path)
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	if opts.Readers <= 0 {
		opts.Readers = 4
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", opts.BusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	// FULL: a commit is on disk when it returns, which is what "durably
	// applied" means for sync replication.
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	write, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	// SQLite allows one writer: one connection serialises every write
	// transaction of this process (database/sql queues the others).
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := migrate(ctx, write); err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}

	rq := url.Values{}
	rq.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", opts.BusyTimeout.Milliseconds()))
	rq.Add("_pragma", "query_only(1)")
	read, err := sql.Open("sqlite", path+"?"+rq.Encode())
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	read.SetMaxOpenConns(opts.Readers)
	read.SetMaxIdleConns(opts.Readers)
	if err := read.PingContext(ctx); err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	eng := store.NewEngine(store.Config{
		Write: write, Read: read,
		Dialect: store.Dialect{Name: "sqlite"},
		Now:     opts.Now, Guard: opts.Guard, Log: opts.Log,
	})
	return &Store{Engine: eng, path: path, write: write, read: read}, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close closes the database. Operations after Close fail.
func (s *Store) Close() error {
	return errors.Join(s.read.Close(), s.write.Close())
}
