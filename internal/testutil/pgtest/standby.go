package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// NewStandby makes a streaming hot standby of s: a base backup taken with
// pg_basebackup -R (standby.signal and primary_conninfo written for us)
// through a new physical replication slot called name, into a new
// temporary folder, started on its own free port. name (lower-case
// letters, digits, underscores) is also the standby's application_name,
// which synchronous_standby_names on s can list. The slot keeps on s the
// WAL the standby has not received yet.
func (s *Server) NewStandby(ctx context.Context, name string, opts Options) (*Server, error) {
	if !identRE.MatchString(name) {
		return nil, fmt.Errorf("standby name %q: want [a-z_][a-z0-9_]{0,62}", name)
	}
	opts.Settings = append([]string{"hot_standby=on"}, opts.Settings...)
	sb, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	out, err := sb.run(ctx, "pg_basebackup", "-h", "127.0.0.1", "-p", fmt.Sprint(s.Port), "-U", Superuser,
		"-D", sb.Data, "-R", "-X", "stream", "-C", "-S", name, "--checkpoint=fast", "--no-sync")
	if err != nil {
		sb.removeDir()
		return nil, fmt.Errorf("pg_basebackup of port %d: %w\n%s", s.Port, err, out)
	}
	// -R wrote primary_conninfo with the default application_name
	// (walreceiver); a later line of the same file wins.
	conf := fmt.Sprintf("primary_conninfo = 'host=127.0.0.1 port=%d user=%s application_name=%s'\nprimary_slot_name = '%s'\n",
		s.Port, Superuser, name, name)
	f, err := os.OpenFile(filepath.Join(sb.Data, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(conf)
		err = joinClose(err, f)
	}
	if err != nil {
		sb.removeDir()
		return nil, fmt.Errorf("standby %s: %w", name, err)
	}
	sb.primary, sb.slot = s, name
	if err := sb.Restart(ctx); err != nil {
		sb.removeDir()
		return nil, fmt.Errorf("standby %s: %w", name, err)
	}
	return sb, nil
}

// dropSlot drops replication slot name once no walsender uses it (the
// one of a standby that just stopped exits a moment later). A slot that
// does not exist is not an error.
func (s *Server) dropSlot(ctx context.Context, name string) error {
	db, err := s.Open("postgres")
	if err != nil {
		return err
	}
	defer db.Close()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		var left int
		_, err := db.ExecContext(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", name)
		if err == nil {
			err = db.QueryRowContext(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", name).Scan(&left)
		}
		if err != nil {
			return fmt.Errorf("drop replication slot %s: %w", name, err)
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drop replication slot %s: still active: %w", name, ctx.Err())
		case <-tick.C:
		}
	}
}

func joinClose(err error, f *os.File) error {
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// StartStandby is NewStandby for t: the standby stops when t ends.
func StartStandby(t testing.TB, primary *Server, name string, opts Options) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	sb, err := primary.NewStandby(ctx, name, opts)
	if err != nil {
		SkipOrFail(t, err)
	}
	t.Cleanup(func() {
		if err := sb.Close(); err != nil {
			t.Errorf("stop standby %s: %v", name, err)
		}
	})
	return sb
}

// CatchUp waits until standby has replayed everything s had written when
// CatchUp was called: pg_last_wal_replay_lsn() on standby reaches
// pg_current_wal_lsn() of s. It checks every 2 ms until ctx ends.
func (s *Server) CatchUp(ctx context.Context, standby *Server) error {
	pdb, err := s.Open("postgres")
	if err != nil {
		return err
	}
	defer pdb.Close()
	var lsn string
	if err := pdb.QueryRowContext(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		return fmt.Errorf("primary position: %w", err)
	}
	sdb, err := standby.Open("postgres")
	if err != nil {
		return err
	}
	defer sdb.Close()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		var done bool
		err := sdb.QueryRowContext(ctx, "SELECT COALESCE(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)", lsn).Scan(&done)
		if err != nil {
			return fmt.Errorf("standby replay position: %w", err)
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("standby on port %d did not replay up to %s: %w", standby.Port, lsn, ctx.Err())
		case <-tick.C:
		}
	}
}
