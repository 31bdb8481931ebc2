package drift

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/understudy/understudy/internal/agents"
	"github.com/understudy/understudy/internal/topology"
)

// Names of the checks, in the order they run and are reported.
const (
	CheckDeployment  = "deployment"   // deployments and backends exist
	CheckModel       = "model"        // backends report the pinned model and version
	CheckCapacity    = "sku_capacity" // SKU and capacity match
	CheckServing     = "serving"      // a backend serves; not draining
	CheckQuota       = "quota"        // headroom covers the other regions' load
	CheckAgents      = "agents"       // applied agents match the files by hash
	CheckConfig      = "config"       // the gateway's configuration matches by hash
	CheckReplication = "replication"  // connected, lag within the RPO target
)

// need is what a check reads of its own region.
type need uint8

const (
	needInventory need = iota
	needAgents
	needReachable // only that the region answers (reads others' data)
)

// A checkFunc decides one check for one region; e holds every region's
// observations. The region is reachable and what the check needs was read.
type checkFunc func(e *eval, o *observation) outcome

// checkDef is a check in the registry.
type checkDef struct {
	name  string
	needs need
	fn    checkFunc
}

var checks = []checkDef{
	{CheckDeployment, needInventory, checkDeployment},
	{CheckModel, needInventory, checkModel},
	{CheckCapacity, needInventory, checkCapacity},
	{CheckServing, needInventory, checkServing},
	{CheckQuota, needInventory, checkQuota},
	{CheckAgents, needAgents, checkAgents},
	{CheckConfig, needInventory, checkConfig},
	{CheckReplication, needReachable, checkReplication},
}

// Checks returns the names of every check, in run order.
func Checks() []string {
	out := make([]string, len(checks))
	for i, c := range checks {
		out[i] = c.name
	}
	return out
}

// outcome is what a check function found.
type outcome struct {
	findings []Finding
	unknown  []string
	notes    []string
}

func (o *outcome) add(f Finding) { o.findings = append(o.findings, f) }
func (o *outcome) unknownf(format string, a ...any) {
	o.unknown = append(o.unknown, fmt.Sprintf(format, a...))
}
func (o *outcome) note(s string) { o.notes = append(o.notes, s) }

// Options tune a run of the checks. The zero value is usable.
type Options struct {
	// HTTPClient calls the regions' admin APIs. Default: a client that
	// follows no redirects.
	HTTPClient *http.Client
	// Timeout bounds each region's admin calls (the inventory asks every
	// backend for its model list, up to 3s). Default 10s.
	Timeout time.Duration
	// Checks limits a run to these checks (see Checks). Default: all.
	Checks []string
	// Agents are the definitions the agents check compares with; nil loads
	// the topology's agents.dir (a missing directory means no agents).
	Agents []*agents.Definition
	// Now stamps the report. Default time.Now.
	Now func() time.Time
}

// DefaultTimeout is Options.Timeout's default.
const DefaultTimeout = 10 * time.Second

// eval is one run: the file, and what every region said.
type eval struct {
	t       *topology.Topology
	obs     map[string]*observation
	defs    []*agents.Definition
	defsErr error
	// primary is the region that reports the primary role with the highest
	// epoch ("" when none does).
	primary string
}

// Check compares every region of t (a loaded topology) with the file once
// and returns the report. Regions that cannot be reached or read are
// UNKNOWN, not errors; the error is for invalid options only.
func Check(ctx context.Context, t *topology.Topology, opts Options) (Report, error) {
	run := checks
	if len(opts.Checks) > 0 {
		run = nil
		for _, c := range checks {
			if slices.Contains(opts.Checks, c.name) {
				run = append(run, c)
			}
		}
		for _, name := range opts.Checks {
			if !slices.Contains(Checks(), name) {
				return Report{}, fmt.Errorf("unknown check %q (checks: %s)", name, strings.Join(Checks(), ", "))
			}
		}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	start := opts.Now()

	e := &eval{t: t, obs: map[string]*observation{}, defs: opts.Agents}
	if e.defs == nil && slices.ContainsFunc(run, func(c checkDef) bool { return c.name == CheckAgents }) {
		e.defs, e.defsErr = loadAgents(t)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, r := range t.Regions {
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, opts.Timeout)
			defer cancel()
			o := observe(rctx, client, t.Admin.Token.Value(), r.Name, r.URL)
			mu.Lock()
			e.obs[r.Name] = o
			mu.Unlock()
		})
	}
	wg.Wait()
	e.primary = findPrimary(e.obs)

	rep := Report{Topology: t.Name, At: start.UTC(), Findings: []Finding{}}
	for _, name := range t.RegionNames() {
		o := e.obs[name]
		rr := RegionReport{Region: name, URL: o.url}
		if o.state != nil {
			rr.Role, rr.Epoch = o.state.Role, o.state.Epoch
		}
		for _, c := range run {
			res := CheckResult{Check: c.name}
			var out outcome
			switch {
			case o.unreachable != nil:
				out.unknownf("region unreachable: %v", o.unreachable)
			case c.needs == needInventory && o.invErr != nil:
				out.unknownf("GET /admin/inventory: %v", o.invErr)
			case c.needs == needAgents && o.agentsErr != nil:
				out.unknownf("GET /admin/agents: %v", o.agentsErr)
			default:
				out = c.fn(e, o)
			}
			for i := range out.findings {
				out.findings[i].Check, out.findings[i].Region = c.name, name
			}
			res.Findings, res.Unknown, res.Notes = out.findings, out.unknown, out.notes
			switch {
			case len(out.findings) > 0:
				res.Status = Fail
			case len(out.unknown) > 0:
				res.Status = StatusUnknown
			default:
				res.Status = Pass
			}
			rr.Checks = append(rr.Checks, res)
			rep.Findings = append(rep.Findings, out.findings...)
		}
		rr.Verdict, rr.Reasons = verdictOf(rr.Checks)
		rep.Regions = append(rep.Regions, rr)
	}
	rep.Duration = opts.Now().Sub(start)
	return rep, nil
}

// loadAgents reads the topology's agent definitions; a missing directory
// is no agents.
func loadAgents(t *topology.Topology) ([]*agents.Definition, error) {
	deps := make([]string, len(t.Deployments))
	for i, d := range t.Deployments {
		deps[i] = d.Name
	}
	defs, err := agents.LoadDir(t.Path(t.Agents.Dir), deps)
	if errors.Is(err, fs.ErrNotExist) && len(defs) == 0 {
		return []*agents.Definition{}, nil
	}
	return defs, err
}

// findPrimary is the region reporting the primary role at the highest
// epoch.
func findPrimary(obs map[string]*observation) string {
	best, epoch := "", int64(-1)
	for name, o := range obs {
		if o.state != nil && o.state.Role == "primary" && (o.state.Epoch > epoch || (o.state.Epoch == epoch && name < best)) {
			best, epoch = name, o.state.Epoch
		}
	}
	return best
}
