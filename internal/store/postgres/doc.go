// Package postgres is the production store driver: a region's state in a
// PostgreSQL database, through pgx/v5's database/sql adapter so that the
// driver-independent store.Engine runs every operation unchanged.
//
// Several gateway processes of one region may share the database. Every
// write transaction starts by locking the one meta row (SELECT … FOR
// UPDATE) under READ COMMITTED, which serialises the region's writers
// across processes exactly as sqlite's single writer connection does
// inside one: the journal seq and each conversation's item seq are read
// and advanced under that lock, so both stay gap-free and in commit order.
// The price is that a region commits one write at a time.
//
// Open applies versioned migrations (schema_migrations) under a
// pg_advisory_lock, so gateways starting at once migrate once. Writes and
// reads use separate pools (MaxConns split between them); reads run in
// read-only REPEATABLE READ transactions, so a multi-statement read sees
// one snapshot. On a hot standby (engine replication) Open migrates
// nothing, reads work, and writes fail with store.ErrNotPrimary (SQLSTATE
// 25006 mapped by the dialect).
package postgres
