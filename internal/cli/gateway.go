package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"

	"github.com/understudy/understudy/internal/region"
)

func init() {
	register(&Command{
		Name:  "gateway",
		Short: "serve one region's AI gateway (OpenAI and Azure OpenAI surfaces, backend pools)",
		Usage: "-f topology.yaml --region NAME [--listen ADDR]",
		Flags: func(fs *flag.FlagSet) {
			fs.String("f", "topology.yaml", "topology file")
			fs.String("region", "", "region to serve (required)")
			fs.String("listen", "", "address to listen on instead of the region's listen (a replica behind the region's load balancer; port 0 picks one)")
			fs.String("log-level", "info", "debug, info, warn or error (the access log is info)")
		},
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected arguments %q", args)
			}
			name := fs.Lookup("region").Value.String()
			if name == "" {
				return usageErr("--region is required")
			}
			t, err := loadTopology(env, fs)
			if err != nil {
				return err
			}
			r := t.Region(name)
			if r == nil {
				return usageErr("region %q is not in the topology (have %v)", name, t.RegionNames())
			}
			rt, err := applyRuntime(t.Gateway.Procs, t.Gateway.CPUs)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewJSONHandler(env.Stderr, nil)).With("component", "gateway", "region", name)
			srv, err := region.New(t, name, region.Options{Logger: log})
			if err != nil {
				return err
			}
			addr := r.Listen
			if v := fs.Lookup("listen").Value.String(); v != "" {
				addr = v
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen %s: %w", addr, err)
			}
			fmt.Fprintf(env.Stdout, "ready component=gateway region=%s url=http://%s %s\n", name, ln.Addr(), rt)
			return srv.Run(ctx, ln)
		},
	})
}
