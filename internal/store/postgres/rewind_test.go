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
// and starts as a streaming standby of the source.
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
	rep, err := Rewind(ctx, RewindOptions{Data: dst.Data, Source: src.DSN("postgres")})
	if err != nil {
		t.Fatal(err)
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
}
