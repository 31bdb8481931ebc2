package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/understudy/understudy/internal/pgbin"
)

// RewindOptions say which stopped server becomes a standby of which primary.
type RewindOptions struct {
	// Data is the data directory of the stopped former primary. Required.
	Data string
	// Source is a connection string of the current primary, used by
	// pg_rewind or pg_basebackup and written as the standby's
	// primary_conninfo. Its user needs the REPLICATION attribute and the
	// rights pg_rewind lists (a superuser has them). Required.
	Source string
	// BinDir holds pg_rewind and pg_basebackup. Default: found with
	// BinDir.
	BinDir string
	// Slot names a physical replication slot on the source for the new
	// standby to stream through: created before the rewind (reserving WAL
	// from then on) unless it exists and is inactive, refused when another
	// standby streams through it. The source then keeps every WAL segment
	// the standby has not received, also while the standby is down: drop
	// the slot when the standby is gone for good, or cap what it keeps with
	// max_slot_wal_keep_size. Default: no slot (the source keeps
	// wal_keep_size).
	Slot string
}

// RewindReport says how the server was made a standby.
type RewindReport struct {
	// Method is "rewind" (pg_rewind copied what diverged), "none" (the
	// server had not diverged; only the standby settings were written) or
	// "basebackup" (rewind was impossible; a fresh copy was taken).
	Method string `json:"method"`
	// Kept is where the former data directory was moved when a base
	// backup replaced it.
	Kept string `json:"kept,omitempty"`
	// Slot is the replication slot the standby streams through, when
	// RewindOptions.Slot named one; SlotCreated says Rewind created it.
	Slot        string `json:"slot,omitempty"`
	SlotCreated bool   `json:"slot_created,omitempty"`
	// RewindError is why pg_rewind failed, when Method is basebackup.
	RewindError string `json:"rewind_error,omitempty"`
	Took        string `json:"took"`
}

// Rewind makes the stopped server of opts.Data a streaming standby of
// opts.Source, for failback with replication.transport engine: a CHECKPOINT
// on the source (so pg_rewind sees its new timeline), then pg_rewind; if
// rewinding is impossible (no data checksums or wal_log_hints, WAL gone),
// the directory is moved aside and replaced by pg_basebackup. Both write
// standby.signal and primary_conninfo (-R); primary_slot_name is opts.Slot
// (see there), or cleared when the copied configuration names the slot the
// source itself streamed through as a standby. Whatever the former primary
// wrote after the fork is discarded. Run as root, the tools run as the
// owner of the data directory. Start the server afterwards: it streams
// from the source.
func Rewind(ctx context.Context, opts RewindOptions) (rep RewindReport, err error) {
	start := time.Now()
	if opts.Data == "" || opts.Source == "" {
		return rep, errors.New("rewind: the data directory and the source are required")
	}
	if pid := runningPid(opts.Data); pid != 0 {
		return rep, fmt.Errorf("rewind: the server of %s is running (pid %d): stop it first (pg_ctl stop -D %s -m fast)", opts.Data, pid, opts.Data)
	}
	fi, err := os.Stat(opts.Data)
	if err != nil {
		return rep, fmt.Errorf("rewind: %w", err)
	}
	owner := fi.Sys().(*syscall.Stat_t)
	bin := opts.BinDir
	if bin == "" {
		if bin, err = BinDir(); err != nil {
			return rep, fmt.Errorf("rewind: %w", err)
		}
	}
	if opts.Slot != "" {
		if !validSlot(opts.Slot) {
			return rep, fmt.Errorf("rewind: slot %q: want 1 to 63 lower-case letters, digits and underscores", opts.Slot)
		}
		var created bool
		if created, err = ensureSlot(ctx, opts.Source, opts.Slot); err != nil {
			return rep, fmt.Errorf("rewind: replication slot %s on the source: %w", opts.Slot, err)
		}
		rep.Slot, rep.SlotCreated = opts.Slot, created
		if created {
			defer func() {
				if err != nil {
					// Nobody will stream through it: it would keep WAL forever.
					dropSlot(context.WithoutCancel(ctx), opts.Source, opts.Slot)
				}
			}()
		}
	}
	if err := checkpoint(ctx, opts.Source); err != nil {
		return rep, fmt.Errorf("rewind: CHECKPOINT on the source: %w", err)
	}
	out, err := runAsOwner(ctx, owner, filepath.Join(bin, "pg_rewind"), "--target-pgdata", opts.Data, "--source-server", opts.Source, "--write-recovery-conf")
	switch {
	case err == nil && bytes.Contains(out, []byte("no rewind required")):
		rep.Method = "none"
	case err == nil:
		rep.Method = "rewind"
	default:
		rep.Method, rep.RewindError = "basebackup", strings.TrimSpace(string(out))
		rep.Kept = fmt.Sprintf("%s.understudy-%s", strings.TrimRight(opts.Data, "/"), time.Now().UTC().Format("20060102T150405"))
		if err := os.Rename(opts.Data, rep.Kept); err != nil {
			return rep, fmt.Errorf("rewind failed (%s); moving the data directory aside for a base backup: %w", rep.RewindError, err)
		}
		if err := os.Mkdir(opts.Data, 0o700); err != nil {
			return rep, fmt.Errorf("base backup: %w", err)
		}
		if err := os.Chown(opts.Data, int(owner.Uid), int(owner.Gid)); err != nil {
			return rep, fmt.Errorf("base backup: %w", err)
		}
		args := []string{"-D", opts.Data, "-d", opts.Source, "--write-recovery-conf", "-X", "stream", "--checkpoint=fast"}
		if opts.Slot != "" {
			args = append(args, "--slot", opts.Slot)
		}
		out, err := runAsOwner(ctx, owner, filepath.Join(bin, "pg_basebackup"), args...)
		if err != nil {
			return rep, fmt.Errorf("rewind failed (%s), and so did the base backup: %w: %s; the former data directory is %s",
				rep.RewindError, err, bytes.TrimSpace(out), rep.Kept)
		}
	}
	// The configuration may have come from the source (pg_rewind copies
	// it), naming the slot the source itself streamed through as a standby:
	// the last setting wins.
	f, err := os.OpenFile(filepath.Join(opts.Data, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = fmt.Fprintf(f, "primary_slot_name = '%s'\n", opts.Slot)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return rep, fmt.Errorf("rewind: standby settings: %w", err)
	}
	rep.Took = time.Since(start).Round(time.Millisecond).String()
	return rep, nil
}

// runningPid is the pid in data/postmaster.pid when that process lives.
func runningPid(data string) int {
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return 0
	}
	return pid
}

// validSlot reports whether name is a valid replication slot name (and so
// safe to quote in a configuration file).
func validSlot(name string) bool {
	if len(name) == 0 || len(name) > 63 {
		return false
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// ensureSlot creates the physical slot name on the source, reserving WAL
// at once, unless it exists and no standby streams through it.
func ensureSlot(ctx context.Context, dsn, name string) (created bool, err error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var kind string
	var active bool
	err = conn.QueryRow(ctx, "SELECT slot_type, active FROM pg_replication_slots WHERE slot_name = $1", name).Scan(&kind, &active)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		_, err = conn.Exec(ctx, "SELECT pg_create_physical_replication_slot($1, true)", name)
		return err == nil, err
	case err != nil:
		return false, err
	case kind != "physical":
		return false, fmt.Errorf("it exists and is a %s slot", kind)
	case active:
		return false, errors.New("it exists and a standby streams through it")
	}
	return false, nil
}

// dropSlot drops the slot name on the source, best effort.
func dropSlot(ctx context.Context, dsn, name string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, dsn); err == nil {
		conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", name)
		conn.Close(ctx)
	}
}

func checkpoint(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "CHECKPOINT")
	return err
}

// runAsOwner runs a PostgreSQL tool as the owner of the data directory
// when this process is root (the tools refuse to run as root).
func runAsOwner(ctx context.Context, owner *syscall.Stat_t, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if os.Geteuid() == 0 && owner.Uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: owner.Uid, Gid: owner.Gid}}
		cmd.Dir = "/"
	}
	return cmd.CombinedOutput()
}

// BinDir finds the tools Rewind runs (pg_rewind, pg_basebackup).
func BinDir() (string, error) { return pgbin.Find("pg_rewind", "pg_basebackup") }
