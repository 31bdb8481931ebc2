package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"

	"github.com/understudy/understudy/internal/edge"
)

func init() {
	register(&Command{
		Name:  "edge",
		Short: "run the global edge router in front of the regional gateways",
		Usage: "-f topology.yaml [--explain]",
		Flags: func(fs *flag.FlagSet) {
			fs.String("f", "topology.yaml", "topology file")
			fs.Bool("explain", false, "print the routing mode, origins and the detection and recovery windows, then exit")
			fs.String("log-level", "info", "debug, info, warn or error")
		},
		Run: runEdge,
	})
}

func runEdge(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
	if len(args) > 0 {
		return usageErr("unexpected arguments %q", args)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(fs.Lookup("log-level").Value.String())); err != nil {
		return usageErr("--log-level: %v", err)
	}
	t, err := loadTopology(env, fs)
	if err != nil {
		return err
	}
	if fs.Lookup("explain").Value.String() == "true" {
		edge.Explain(env.Stdout, t)
		return nil
	}
	rt, err := applyRuntime(t.Edge.Procs, t.Edge.CPUs)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
	e, err := edge.New(t, edge.Options{Logger: log})
	if err != nil {
		return err
	}
	if err := e.Start(ctx); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "ready component=edge url=%s admin=%s %s\n", e.URL(), e.AdminURL(), rt)
	<-ctx.Done()
	// First signal: lame duck, then drain within a fresh bounded context;
	// a second signal kills the process (see cmd/understudy).
	log.Info("stopping: lame duck, then drain", "lame_duck", t.Gateway.LameDuck, "drain_timeout", t.Gateway.DrainTimeout)
	dctx, cancel := context.WithTimeout(context.Background(), t.Gateway.LameDuck.D()+t.Gateway.DrainTimeout.D())
	defer cancel()
	if err := e.Close(dctx); err != nil {
		return fmt.Errorf("stop edge: %w", err)
	}
	return nil
}
