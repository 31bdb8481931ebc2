package region

import (
	"errors"
	"log/slog"
	"os"
	"testing"

	"github.com/understudy/understudy/internal/testutil/pgtest"
)

func errorsAs[T error](err error, target *T) bool { return errors.As(err, target) }

func testLogger(t *testing.T, name string) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("r", name)
}

// TestMain stops the shared PostgreSQL server the postgres subtests start.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
