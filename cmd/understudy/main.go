// Command understudy is the cross-region failover layer for LLM and agent
// workloads. Every part of a topology is one of its subcommands; see
// `understudy help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/understudy/understudy/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal starts a graceful stop, a second one kills
		// the process: restore the default signal behaviour.
		<-ctx.Done()
		stop()
	}()
	os.Exit(cli.Main(ctx, cli.Std(), os.Args[1:]))
}
