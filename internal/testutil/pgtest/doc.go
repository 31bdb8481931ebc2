// Package pgtest starts real PostgreSQL servers for tests: initdb (with
// data checksums, so pg_rewind works later) into a temporary folder, the
// server on a free loopback port, and streaming standbys made with
// pg_basebackup -R and a replication slot.
//
// The binaries come from UNDERSTUDY_PG_BIN, else the directory of the
// initdb on PATH, else the newest /usr/lib/postgresql/*/bin (Debian's
// layout). PostgreSQL refuses to run as root, so when the test runs as
// root every server command runs as the user UNDERSTUDY_PG_USER (default
// nobody), set directly on the child process (SysProcAttr.Credential, the
// same as runuser -u), in a temporary folder that user owns.
//
// The server is the test process's own child (not daemonised by pg_ctl),
// in its own process group, with a parent-death signal: if the test binary
// crashes or is killed, the kernel kills the server too, so no run leaves
// servers behind. Readiness is read from the server's log ("database
// system is ready to accept connections"), not polled. Stop sends SIGINT
// (fast shutdown) to the pid and falls back to SIGKILL; Kill crashes the
// server on purpose; Restart starts it again on the same data directory.
//
// Missing binaries skip the test with the install command, except under
// CI=true, where they fail it. Main and Shared give a test binary one
// server that its tests share, each in its own database (NewDatabase).
package pgtest
