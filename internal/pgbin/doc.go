// Package pgbin finds PostgreSQL's server tools (initdb, postgres,
// pg_rewind, pg_basebackup), which Debian and Ubuntu keep off PATH in
// /usr/lib/postgresql/<major>/bin. The store's pg-rewind and the test
// harness pgtest share it.
package pgbin
