package region

import (
	"errors"
	"log/slog"
	"os"
	"testing"
)

func errorsAs[T error](err error, target *T) bool { return errors.As(err, target) }

func testLogger(t *testing.T, name string) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("r", name)
}
