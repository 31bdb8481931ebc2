package pgtest

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestPrimaryAndStandby(t *testing.T) {
	p := Start(t, Options{})
	ctx := t.Context()
	pdb, err := p.Open("postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer pdb.Close()

	var checksums string
	if err := pdb.QueryRowContext(ctx, "SHOW data_checksums").Scan(&checksums); err != nil || checksums != "on" {
		t.Fatalf("data_checksums = %q, %v; want on (initdb -k, needed by pg_rewind)", checksums, err)
	}
	if os.Geteuid() == 0 {
		fi, err := os.Stat(p.Data)
		if err != nil {
			t.Fatal(err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; uid == 0 {
			t.Fatalf("data directory owned by root: the server must run as another user")
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
		if err != nil {
			t.Fatal(err)
		}
		var uid int
		for _, line := range splitLines(string(status)) {
			if _, err := fmt.Sscanf(line, "Uid:\t%d", &uid); err == nil {
				break
			}
		}
		if uid == 0 {
			t.Fatalf("postmaster runs as root")
		}
	}

	if _, err := pdb.ExecContext(ctx, "CREATE TABLE t (v text); INSERT INTO t VALUES ('before backup')"); err != nil {
		t.Fatal(err)
	}
	sb := StartStandby(t, p, "standby_b", Options{})
	if _, err := pdb.ExecContext(ctx, "INSERT INTO t VALUES ('streamed')"); err != nil {
		t.Fatal(err)
	}
	if err := p.CatchUp(ctx, sb); err != nil {
		t.Fatal(err)
	}
	sdb, err := sb.Open("postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	var n int
	if err := sdb.QueryRowContext(ctx, "SELECT count(*) FROM t WHERE v IN ('before backup', 'streamed')").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows on standby = %d, %v; want 2", n, err)
	}
	var inRecovery bool
	if err := sdb.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || !inRecovery {
		t.Fatalf("standby pg_is_in_recovery = %v, %v", inRecovery, err)
	}
	_, err = sdb.ExecContext(ctx, "INSERT INTO t VALUES ('on standby')")
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); !ok || pgErr.Code != "25006" {
		t.Fatalf("write on standby: %v; want SQLSTATE 25006 (read-only transaction)", err)
	}
	var app, state string
	var slotActive bool
	if err := pdb.QueryRowContext(ctx, "SELECT application_name, state FROM pg_stat_replication").Scan(&app, &state); err != nil || app != "standby_b" || state != "streaming" {
		t.Fatalf("pg_stat_replication = %q %q, %v; want standby_b streaming", app, state, err)
	}
	if err := pdb.QueryRowContext(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = 'standby_b'").Scan(&slotActive); err != nil || !slotActive {
		t.Fatalf("replication slot standby_b active = %v, %v", slotActive, err)
	}
	// Closing the standby drops its slot, which would otherwise keep the
	// primary's WAL forever.
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	var slots int
	if err := pdb.QueryRowContext(ctx, "SELECT count(*) FROM pg_replication_slots").Scan(&slots); err != nil || slots != 0 {
		t.Fatalf("replication slots after the standby closed = %d, %v; want 0", slots, err)
	}
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}

func TestKillRestartStop(t *testing.T) {
	s := Start(t, Options{Settings: []string{"synchronous_commit=on"}})
	ctx := t.Context()
	db, err := s.Open("postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (v int); INSERT INTO t VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	pid := s.Pid()
	s.Kill()
	if s.Pid() != 0 {
		t.Fatalf("Pid after Kill = %d", s.Pid())
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("postmaster %d still exists after Kill: %v", pid, err)
	}
	if err := db.PingContext(ctx); err == nil {
		t.Fatal("ping after Kill succeeded")
	}
	port := s.Port
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Port != port {
		t.Errorf("port changed on restart: %d → %d", port, s.Port)
	}
	var v int
	// database/sql retries a broken connection with a new one.
	if err := db.QueryRowContext(ctx, "SELECT v FROM t").Scan(&v); err != nil || v != 7 {
		t.Fatalf("committed row after crash and restart = %d, %v; want 7", v, err)
	}
	pid = s.Pid()
	dir := s.Dir
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("postmaster %d still exists after Close: %v", pid, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("folder %s left behind: %v", dir, err)
	}
}

// recorder is a testing.TB that records Skip and Fatal and ends the
// goroutine, as the real ones do.
type recorder struct {
	testing.TB
	skipped, failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Skip(...any)           { r.skipped = true; runtime.Goexit() }
func (r *recorder) Fatal(...any)          { r.failed = true; runtime.Goexit() }
func (r *recorder) Errorf(string, ...any) { r.failed = true }

func TestSkipOrFail(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		ci       string
		wantSkip bool
	}{
		{"missing binaries skip", ErrNoBinaries, "", true},
		{"missing binaries wrapped skip", fmt.Errorf("x: %w", ErrNoBinaries), "false", true},
		{"missing binaries fail in CI", ErrNoBinaries, "true", false},
		{"other errors fail", errors.New("initdb: boom"), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			r := &recorder{}
			done := make(chan struct{})
			go func() {
				defer close(done)
				SkipOrFail(r, tc.err)
			}()
			<-done
			if r.skipped != tc.wantSkip || r.failed == tc.wantSkip {
				t.Fatalf("skipped %v failed %v; want skip %v", r.skipped, r.failed, tc.wantSkip)
			}
		})
	}
}

func TestBinDirOverride(t *testing.T) {
	t.Setenv("UNDERSTUDY_PG_BIN", t.TempDir())
	if _, err := BinDir(); !errors.Is(err, ErrNoBinaries) {
		t.Fatalf("BinDir with an empty UNDERSTUDY_PG_BIN = %v; want ErrNoBinaries", err)
	}
}

func TestDatabaseNames(t *testing.T) {
	s := &Server{}
	for _, name := range []string{"", "A", "1x", "a-b", "a;drop"} {
		if _, err := s.CreateDatabase(t.Context(), name); err == nil {
			t.Errorf("CreateDatabase(%q) accepted", name)
		}
	}
}
