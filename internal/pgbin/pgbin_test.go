package pgbin

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestFindHonoursUNDERSTUDY_PG_BIN(t *testing.T) {
	dir := t.TempDir()
	for _, tool := range []string{"pg_rewind", "pg_basebackup"} {
		if err := os.WriteFile(filepath.Join(dir, tool), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("UNDERSTUDY_PG_BIN", dir)
	if got, err := Find("pg_rewind", "pg_basebackup"); err != nil || got != dir {
		t.Fatalf("Find = %q, %v; want %q", got, err, dir)
	}
	if _, err := Find("pg_rewind", "initdb"); !errors.Is(err, ErrNoTools) {
		t.Fatalf("Find with a tool missing: %v; want ErrNoTools", err)
	}
}
