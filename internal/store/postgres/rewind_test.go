package postgres

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/testutil/pgtest"
)

// A server that cannot be rewound (a different cluster altogether) is
// replaced by a base backup of the source, its old directory kept aside,
// and starts as a streaming standby of the source, through the replication
// slot Rewind created for it.
func TestRewindFallsBackToBaseBackup(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	if _, err := Rewind(ctx, RewindOptions{Data: dst.Data, Source: src.DSN("postgres")}); err == nil || !strings.Contains(err.Error(), "is running") {
		t.Fatalf("rewind of a running server: %v; want a refusal naming it", err)
	}
	if err := dst.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := Rewind(ctx, RewindOptions{Data: dst.Data, Source: src.DSN("postgres"), Slot: "understudy_dst"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Slot != "understudy_dst" || !rep.SlotCreated {
		t.Errorf("report %+v: want slot understudy_dst, created", rep)
	}
	if rep.Method != "basebackup" || !strings.Contains(rep.RewindError, "different systems") || rep.Kept == "" {
		t.Fatalf("report %+v: want a base backup after pg_rewind refused two different systems", rep)
	}
	t.Cleanup(func() { os.RemoveAll(rep.Kept) })
	if _, err := os.Stat(rep.Kept + "/PG_VERSION"); err != nil {
		t.Fatalf("former data directory not kept: %v", err)
	}
	if err := dst.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	db, err := dst.Open("postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var standby bool
	if err := db.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&standby); err != nil || !standby {
		t.Fatalf("after the base backup: in recovery %v, %v; want a standby", standby, err)
	}
	if err := src.CatchUp(ctx, dst); err != nil {
		t.Fatal(err)
	}
	srcDB, err := src.Open("postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer srcDB.Close()
	// The standby may connect its walreceiver after it replayed what the
	// base backup brought: wait for it to stream through the slot.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for active := false; !active; {
		if err := srcDB.QueryRowContext(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = 'understudy_dst'").Scan(&active); err != nil {
			t.Fatalf("slot on the source: %v", err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("the standby never streamed through its slot")
		}
	}
	if _, err := ensureSlot(ctx, src.DSN("postgres"), "understudy_dst"); err == nil || !strings.Contains(err.Error(), "streams through it") {
		t.Fatalf("a slot a standby streams through was accepted for another: %v", err)
	}
}

// A rewind that fails after creating its slot drops it (it would keep WAL
// for nobody), and a slot name that is not one is refused before anything.
func TestRewindSlotCleanup(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	db, err := src.Open("postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	slots := func() int {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_replication_slots").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	if _, err := Rewind(ctx, RewindOptions{Data: t.TempDir(), Source: src.DSN("postgres"), Slot: "Bad-Name'"}); err == nil || !strings.Contains(err.Error(), "lower-case") {
		t.Fatalf("bad slot name: %v", err)
	}
	// No tools in BinDir: pg_rewind and the base backup both fail.
	_, err = Rewind(ctx, RewindOptions{Data: t.TempDir(), Source: src.DSN("postgres"), BinDir: t.TempDir(), Slot: "understudy_gone"})
	if err == nil {
		t.Fatal("a rewind without its tools succeeded")
	}
	if n := slots(); n != 0 {
		t.Fatalf("%d slots left on the source after a failed rewind; want 0", n)
	}
}
