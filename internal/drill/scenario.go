package drill

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/understudy/understudy/internal/up"
)

// Scenario is one fault a drill injects and restores.
type Scenario struct {
	Name        string
	Description string
	// Failover is true when the controller is expected to fail over: the
	// drill waits for it, restores the fault and fails back.
	Failover bool
	// Note is said in every report of the scenario (a limit of the method).
	Note string
	// inject starts the fault against the regions; restore ends it.
	inject func(ctx context.Context, f *fault) (restore func(context.Context) error, err error)
}

// fault is what a scenario acts on.
type fault struct {
	sys     *System
	opts    *Options
	primary string
	standby string
	detail  []string // what was done, for the report
	method  string   // how the fault was made, when a scenario has several ways (partition: netns or linkproxy)
	note    string   // a limit of that method, said in the report
}

func (f *fault) notef(format string, a ...any) {
	f.detail = append(f.detail, fmt.Sprintf(format, a...))
}

// Scenarios are the drills, by name.
var Scenarios = map[string]*Scenario{
	"region-outage": {
		Name:        "region-outage",
		Description: "SIGKILL every process of the primary region (its gateway and model servers).",
		Failover:    true,
		inject: func(ctx context.Context, f *fault) (func(context.Context) error, error) {
			names := componentNames(f.sys.Components(f.primary, ""))
			if err := f.sys.control(ctx, "/v1/regions/"+f.primary+"/down"); err != nil {
				return nil, err
			}
			f.notef("SIGKILL %s", strings.Join(names, ", "))
			return func(ctx context.Context) error {
				f.notef("started %s again", f.primary)
				return f.sys.control(ctx, "/v1/regions/"+f.primary+"/up")
			}, nil
		},
	},
	"region-freeze": {
		Name:        "region-freeze",
		Description: "SIGSTOP every process of the primary region; SIGCONT once the standby serves.",
		Failover:    true,
		inject: func(ctx context.Context, f *fault) (func(context.Context) error, error) {
			names := componentNames(f.sys.Components(f.primary, ""))
			if len(names) == 0 {
				return nil, fmt.Errorf("no processes of region %s in up.json", f.primary)
			}
			var stopped []string
			cont := func(ctx context.Context) error {
				var errs []error
				for _, n := range stopped {
					errs = append(errs, f.sys.control(ctx, "/v1/components/"+n+"/cont"))
				}
				f.notef("SIGCONT %s", strings.Join(stopped, ", "))
				return errors.Join(errs...)
			}
			for _, n := range names {
				if err := f.sys.control(ctx, "/v1/components/"+n+"/stop"); err != nil {
					return nil, errors.Join(err, cont(context.WithoutCancel(ctx)))
				}
				stopped = append(stopped, n)
			}
			f.notef("SIGSTOP %s", strings.Join(names, ", "))
			return cont, nil
		},
	},
	"partition": {
		Name: "partition",
		Description: "Cut the primary region off from the edge, the controller and the other regions: " +
			"`up` takes the region's veth pair down when it runs the region in a network namespace, else cuts its link proxies (both directions).",
		Failover: true,
		inject: func(ctx context.Context, f *fault) (func(context.Context) error, error) {
			if len(f.sys.State.Links) == 0 {
				return nil, fmt.Errorf("up runs without links: set links.enabled: true in the topology so that `up` can partition a region")
			}
			res, err := f.sys.partition(ctx, f.primary, true)
			if err != nil {
				return nil, err
			}
			f.method = res.Method
			f.notef("partition %s (%s): %s", f.primary, res.Method, res.Detail)
			if res.Method == up.MethodLinkProxy {
				f.note = "the partition was made by cutting link proxies in user space (connections are reset at once), " +
					"not with network namespaces (root and links.isolation auto or netns); see docs/DRILLS.md"
			}
			return func(ctx context.Context) error {
				res, err := f.sys.partition(ctx, f.primary, false)
				if err == nil {
					f.notef("heal %s (%s): %s", f.primary, res.Method, res.Detail)
				}
				return err
			}, nil
		},
	},
	"slow-link": {
		Name:        "slow-link",
		Description: "Add one-way latency to the links between the regions (replication and lease traffic).",
		inject: func(ctx context.Context, f *fault) (func(context.Context) error, error) {
			var names []string
			for _, r := range f.sys.Topology.RegionNames() {
				for _, s := range f.sys.Topology.RegionNames() {
					if r != s {
						names = append(names, r+"-to-"+s)
					}
				}
			}
			old := map[string]time.Duration{}
			restore := func(ctx context.Context) error {
				var errs []error
				for n, d := range old {
					errs = append(errs, f.sys.setLinkLatency(ctx, n, d))
				}
				f.notef("latency restored on %d links", len(old))
				return errors.Join(errs...)
			}
			for _, n := range names {
				d, err := f.sys.linkLatency(ctx, n, f.opts.SlowLinkLatency)
				if err != nil {
					return nil, errors.Join(err, restore(context.WithoutCancel(ctx)))
				}
				old[n] = d
			}
			f.notef("one-way latency %s on %s", f.opts.SlowLinkLatency, strings.Join(names, ", "))
			return restore, nil
		},
	},
	"backend-429-storm": {
		Name:        "backend-429-storm",
		Description: "The primary region's model servers answer every request 429 with Retry-After.",
		inject: func(ctx context.Context, f *fault) (func(context.Context) error, error) {
			return setFaults(ctx, f, f.primary, map[string]any{"rate_limit_rate": 1, "retry_after": f.opts.StormRetryAfter.String()})
		},
	},
	"slow-backend": {
		Name:        "slow-backend",
		Description: "The primary region's model servers add latency before every answer.",
		inject: func(ctx context.Context, f *fault) (func(context.Context) error, error) {
			return setFaults(ctx, f, f.primary, map[string]any{"latency": f.opts.SlowBackendLatency.String()})
		},
	},
	"version-drift": {
		Name:        "version-drift",
		Description: "The standby region's model servers report another model version; drift must report the standby NOT_READY.",
		inject: func(ctx context.Context, f *fault) (func(context.Context) error, error) {
			return setFaults(ctx, f, f.standby, map[string]any{"version": f.opts.DriftVersion})
		},
	},
}

// ScenarioNames lists the scenarios in a stable order.
func ScenarioNames() []string {
	return []string{"region-outage", "region-freeze", "partition", "slow-link", "backend-429-storm", "slow-backend", "version-drift"}
}

func componentNames(cs []up.ComponentState) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// setFaults sets faults on every model server of a region.
func setFaults(ctx context.Context, f *fault, region string, faults map[string]any) (func(context.Context) error, error) {
	sims := f.sys.Components(region, "modelsim")
	if len(sims) == 0 {
		return nil, fmt.Errorf("no model servers of region %s in up.json (only sim backends take faults)", region)
	}
	var done []string
	restore := func(ctx context.Context) error {
		var errs []error
		for _, u := range done {
			errs = append(errs, f.sys.setFaults(ctx, u, nil))
		}
		f.notef("faults cleared on %d model servers of %s", len(done), region)
		return errors.Join(errs...)
	}
	for _, c := range sims {
		if err := f.sys.setFaults(ctx, c.URL, faults); err != nil {
			return nil, errors.Join(err, restore(context.WithoutCancel(ctx)))
		}
		done = append(done, c.URL)
	}
	keys := make([]string, 0, len(faults))
	for k, v := range faults {
		keys = append(keys, fmt.Sprintf("%s=%v", k, v))
	}
	slices.Sort(keys)
	f.notef("faults %s on %s", strings.Join(keys, " "), strings.Join(componentNames(sims), ", "))
	return restore, nil
}
