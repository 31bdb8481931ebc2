package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/understudy/understudy/internal/topology"
)

func init() {
	register(&Command{
		Name:  "validate",
		Short: "check a topology file and print what it implies",
		Usage: "-f topology.yaml",
		Flags: func(fs *flag.FlagSet) { fs.String("f", "topology.yaml", "topology file") },
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected arguments %q", args)
			}
			t, err := loadTopology(env, fs)
			if err != nil {
				return err
			}
			summarize(env.Stdout, t)
			return nil
		},
	})
}

// loadTopology loads the file named by the command's -f flag.
func loadTopology(env *Env, fs *flag.FlagSet) (*topology.Topology, error) {
	return topology.Load(fs.Lookup("f").Value.String(), env.Getenv)
}

func summarize(w io.Writer, t *topology.Topology) {
	fmt.Fprintf(w, "topology %s: valid\n", t.Name)
	fmt.Fprintf(w, "  pattern %s, %d regions, %d deployments, %d client keys\n", t.Pattern, len(t.Regions), len(t.Deployments), len(t.Keys))
	primary := t.Primary().Name
	for _, name := range t.RegionNames() {
		r := t.Region(name)
		role := "standby"
		if name == primary {
			role = "primary"
		}
		var bs []string
		for _, d := range t.Deployments {
			kinds := map[string]int{}
			for _, b := range r.Backends[d.Name] {
				kinds[b.Kind]++
			}
			var ks []string
			for k, n := range kinds {
				ks = append(ks, fmt.Sprintf("%d %s", n, k))
			}
			bs = append(bs, fmt.Sprintf("%s: %s", d.Name, strings.Join(ks, ", ")))
		}
		store := r.Store.Driver + " " + r.Store.Path
		if r.Store.Driver == "postgres" {
			store = "postgres"
		}
		fmt.Fprintf(w, "  region %s: priority %d, starts as %s, gateway %s%s, store %s; backends %s\n",
			name, r.Priority, role, r.URL, runtimeNote(t.Gateway.Procs, t.Gateway.CPUs), store, strings.Join(bs, "; "))
	}
	for _, d := range t.Deployments {
		fmt.Fprintf(w, "  deployment %s: model %s version %s, sku %s, capacity %d, up to %d attempts, total timeout %s\n",
			d.Name, d.Model, d.Version, d.SKU, d.Capacity, d.MaxAttempts, d.Timeouts.Total)
	}
	rp := t.Replication
	switch rp.Mode {
	case "sync":
		fmt.Fprintf(w, "  replication: sync over %s: RPO 0, every write waits for the standby (one cross-region round trip, at most %s)\n", rp.Transport, rp.SyncTimeout)
	default:
		fmt.Fprintf(w, "  replication: async over %s: writes are acknowledged locally; what is lost on failover is the lag at the time\n", rp.Transport)
	}
	p := t.Probes
	fmt.Fprintf(w, "  edge: %s%s, routing %s; probes %s %s every %s, healthy at %d of %d: worst-case detection %s, recovery after %s\n",
		t.Edge.URL, runtimeNote(t.Edge.Procs, t.Edge.CPUs), t.Edge.Routing, p.Method, p.Path, p.Interval, p.SuccessfulSamplesRequired, p.SampleSize,
		p.DetectionWindow(), p.RecoveryWindow())
	c := t.Controller
	verdict := "within"
	if est := t.EstimatedRTO(); est > t.Targets.RTO.D() {
		verdict = "MISSES"
	}
	fmt.Fprintf(w, "  controller: %s; region down after %d failed probes every %s (detection within %s); lease %s; estimated RTO %s, %s target %s\n",
		c.URL, c.Failures, c.ProbeInterval, c.DetectionWindow(p.Timeout.D()), c.LeaseTTL, t.EstimatedRTO(), verdict, t.Targets.RTO)
	if c.Approval {
		fmt.Fprintln(w, "  failover waits for `understudy approve`")
	}
}
