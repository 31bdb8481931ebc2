// Package sqlite is the embedded store driver: one sqlite database file per
// region, through modernc.org/sqlite (pure Go, no cgo).
//
// The file runs in WAL mode with synchronous=FULL (a commit returned is on
// disk) and a busy timeout. SQLite allows one writer, so writes go through
// a pool of exactly one connection, which serialises write transactions
// inside the process; reads use a separate pool of query-only connections
// that WAL lets run beside the writer. The schema is a list of versioned
// migrations recorded in schema_migrations, applied idempotently by Open.
// All behaviour lives in the embedded store.Engine.
package sqlite
