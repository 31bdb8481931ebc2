package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/understudy/understudy/internal/drift"
	"github.com/understudy/understudy/internal/topology"
	"github.com/understudy/understudy/internal/up"
)

func init() {
	register(&Command{
		Name:  "drift",
		Short: "compare the live regions with the topology and give each a verdict READY, NOT_READY or UNKNOWN",
		Usage: `-f topology.yaml [--json] [--watch 5m] [--checks a,b] [--fail-on-unknown]

Checks every region's gateway (admin API) against the file: deployments and
backends exist, backends report the pinned model and version, SKU and
capacity, a backend serves, quota headroom covers the other regions' load,
agents match the files by hash, the gateway configuration matches by hash,
replication is connected within targets.rpo. See docs/DRIFT.md.

Exit status: 0 when no region is NOT_READY; 1 when any region is NOT_READY
(or on failure); 2 on misuse. A region that is UNKNOWN (nothing failed, but
a check could not decide: region unreachable, a backend that does not report
its version, no quota headers yet) exits 0 unless --fail-on-unknown, which
makes it exit 1. With --watch the checks repeat every interval until Ctrl-C
and the exit status is the last completed round's.`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("f", "topology.yaml", "topology file")
			fs.Bool("json", false, "print the report as JSON (one line per round with --watch)")
			fs.Duration("watch", 0, "repeat the checks every interval until Ctrl-C (0: run once)")
			fs.Duration("timeout", drift.DefaultTimeout, "bound on each region's admin calls")
			fs.String("checks", "", "comma-separated checks to run (default all: "+strings.Join(drift.Checks(), ",")+")")
			fs.Bool("fail-on-unknown", false, "exit 1 when a region is UNKNOWN too (default: only NOT_READY exits 1)")
			fs.String("metrics", "", "with --watch, serve the verdicts as Prometheus metrics on this address (/metrics)")
		},
		Run: runDrift,
	})
}

// errNotReady makes drift exit 1.
var errNotReady = errors.New("not ready")

func runDrift(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
	if len(args) > 0 {
		return usageErr("unexpected arguments %q", args)
	}
	get := func(name string) any { return fs.Lookup(name).Value.(flag.Getter).Get() }
	asJSON, watch, failUnknown := get("json").(bool), get("watch").(time.Duration), get("fail-on-unknown").(bool)
	metricsAddr := get("metrics").(string)
	if watch < 0 {
		return usageErr("--watch: must not be negative")
	}
	if metricsAddr != "" && watch == 0 {
		return usageErr("--metrics needs --watch")
	}
	opts := drift.Options{Timeout: get("timeout").(time.Duration)}
	if s := get("checks").(string); s != "" {
		for _, c := range strings.Split(s, ",") {
			c = strings.TrimSpace(c)
			if !slices.Contains(drift.Checks(), c) {
				return usageErr("--checks: unknown check %q (checks: %s)", c, strings.Join(drift.Checks(), ", "))
			}
			opts.Checks = append(opts.Checks, c)
		}
	}
	t, err := loadTopology(env, fs)
	if err != nil {
		return err
	}
	if err := fillUpAddresses(env, t); err != nil {
		return err
	}

	c := drift.NewChecker(t, watch, opts, nil)
	if metricsAddr != "" {
		stop, err := serveDriftMetrics(metricsAddr, c, env)
		if err != nil {
			return err
		}
		defer stop()
	}
	var last *drift.Report
	for {
		r, err := c.Step(ctx)
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			break // interrupted during the round: keep the last complete one
		}
		if err := printDrift(env, r, asJSON, watch > 0, last != nil); err != nil {
			return err
		}
		last = &r
		if watch == 0 {
			break
		}
		timer := time.NewTimer(watch)
		select {
		case <-ctx.Done():
			timer.Stop()
		case <-timer.C:
		}
		if ctx.Err() != nil {
			break
		}
	}
	if last == nil {
		return fmt.Errorf("interrupted before the first round finished: %w", ctx.Err())
	}
	switch last.Worst() {
	case drift.NotReady:
		return fmt.Errorf("%w: %s", errNotReady, verdictList(last, drift.NotReady))
	case drift.Unknown:
		if failUnknown {
			return fmt.Errorf("%w: %s (--fail-on-unknown)", errNotReady, verdictList(last, drift.Unknown))
		}
	}
	return nil
}

func verdictList(r *drift.Report, v drift.Verdict) string {
	var out []string
	for _, rr := range r.Regions {
		if rr.Verdict == v {
			out = append(out, rr.Region+" is "+string(v))
		}
	}
	return strings.Join(out, ", ")
}

func printDrift(env *Env, r drift.Report, asJSON, watching, again bool) error {
	if asJSON {
		var b []byte
		var err error
		if watching {
			b, err = json.Marshal(r)
		} else {
			b, err = json.MarshalIndent(r, "", "  ")
		}
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(env.Stdout, "%s\n", b)
		return err
	}
	if again {
		fmt.Fprintln(env.Stdout, "\n"+strings.Repeat("-", 72))
	}
	return drift.WriteText(env.Stdout, r)
}

// fillUpAddresses takes the ports `understudy up` picked for addresses
// the file gives with port 0, from the resolved topology its up.json
// names; nothing else of that file is used.
func fillUpAddresses(env *Env, t *topology.Topology) error {
	zero := drift.PortZero(t)
	if len(zero) == 0 {
		return nil
	}
	statePath := filepath.Join(t.Path(t.DataDir), "up.json")
	data, err := os.ReadFile(statePath)
	if err != nil {
		return fmt.Errorf("%s use port 0 and %s cannot be read (%v): start the regions with `understudy up -f` this file, or give fixed addresses",
			strings.Join(zero, ", "), statePath, err)
	}
	var st up.State
	if err := json.Unmarshal(data, &st); err != nil || st.Topology == "" {
		return fmt.Errorf("%s: not the state of `understudy up`", statePath)
	}
	resolved, err := topology.Load(st.Topology, env.Getenv)
	if err != nil {
		return fmt.Errorf("resolved topology of `understudy up`: %w", err)
	}
	n := drift.UseAddresses(t, resolved)
	fmt.Fprintf(env.Stderr, "drift: %d port-0 addresses taken from %s (written by `understudy up`)\n", n, st.Topology)
	return nil
}

// serveDriftMetrics serves the checker's last report on addr/metrics.
func serveDriftMetrics(addr string, c *drift.Checker, env *Env) (stop func(), err error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second}
	go srv.Serve(ln)
	fmt.Fprintf(env.Stderr, "drift: metrics on http://%s/metrics\n", ln.Addr())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
