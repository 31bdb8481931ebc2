package topology

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
)

// MaxReplicas is the most gateway replicas a region may have.
const MaxReplicas = 16

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Validate checks a defaulted topology and returns every problem at once
// as Problems, each naming the field and the reason.
func (t *Topology) Validate() error {
	var ps Problems
	if t.Version != 1 {
		ps.add("version", "unsupported version %d (want 1)", t.Version)
	}
	switch t.Pattern {
	case HotHot, HotWarm, HotCold:
	default:
		ps.add("pattern", "%q is not one of hot-hot, hot-warm, hot-cold", t.Pattern)
	}
	if t.Targets.RTO < 0 || t.Targets.RPO < 0 {
		ps.add("targets", "durations must not be negative")
	}

	if len(t.Keys) == 0 {
		ps.add("keys", "at least one client key is required")
	}
	seenKey := map[string]bool{}
	seenVal := map[string]bool{}
	for i, k := range t.Keys {
		f := fmt.Sprintf("keys[%d]", i)
		checkName(&ps, f+".name", k.Name, seenKey)
		switch {
		case k.Key.Value() == "":
			ps.add(f+".key", "required")
		case len(k.Key.Value()) < 16:
			ps.add(f+".key", "too short (at least 16 characters)")
		case seenVal[k.Key.Value()]:
			ps.add(f+".key", "the same key is listed twice")
		}
		seenVal[k.Key.Value()] = true
		if k.RPM < 0 || k.TPM < 0 {
			ps.add(f, "rpm and tpm must not be negative")
		}
	}
	if len(t.Admin.Token.Value()) < 16 {
		ps.add("admin.token", "required, at least 16 characters")
	}

	if len(t.Deployments) == 0 {
		ps.add("deployments", "at least one deployment is required")
	}
	seenDep := map[string]bool{}
	for i, d := range t.Deployments {
		f := fmt.Sprintf("deployments[%d]", i)
		checkName(&ps, f+".name", d.Name, seenDep)
		if d.Version == "" {
			ps.add(f+".version", "required: pin the model version so regions cannot drift")
		}
		if d.Capacity < 0 {
			ps.add(f+".capacity", "must not be negative")
		}
		if d.MaxAttempts < 1 || d.MaxAttempts > 10 {
			ps.add(f+".max_attempts", "must be 1..10")
		}
		for _, to := range []struct {
			name string
			v    Duration
		}{{"headers", d.Timeouts.Headers}, {"first_token", d.Timeouts.FirstToken}, {"idle", d.Timeouts.Idle}, {"total", d.Timeouts.Total}} {
			if to.v <= 0 {
				ps.add(f+".timeouts."+to.name, "must be positive")
			}
		}
	}
	for i, d := range t.Deployments {
		for j, fb := range d.Fallbacks {
			f := fmt.Sprintf("deployments[%d].fallbacks[%d]", i, j)
			switch {
			case fb == d.Name:
				ps.add(f, "a deployment cannot fall back to itself")
			case !seenDep[fb]:
				ps.add(f, "unknown deployment %q", fb)
			}
		}
	}

	if len(t.Regions) == 0 {
		ps.add("regions", "at least one region is required")
	}
	seenRegion := map[string]bool{}
	listens := map[string]string{}
	checkListen := func(field, addr string) {
		if addr == "" {
			ps.add(field, "required")
			return
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			ps.add(field, "%q is not host:port", addr)
			return
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			ps.add(field, "bad port %q", port)
			return
		}
		if port != "0" {
			key := host + ":" + port
			if other, dup := listens[key]; dup {
				ps.add(field, "address %s is also used by %s", addr, other)
			}
			listens[key] = field
		}
	}
	for i, r := range t.Regions {
		f := fmt.Sprintf("regions[%d]", i)
		checkName(&ps, f+".name", r.Name, seenRegion)
		checkListen(f+".listen", r.Listen)
		checkURL(&ps, f+".url", r.URL)
		if r.Priority < 1 || r.Priority > 5 {
			ps.add(f+".priority", "must be 1..5")
		}
		if r.Weight < 1 || r.Weight > 1000 {
			ps.add(f+".weight", "must be 1..1000")
		}
		switch r.Store.Driver {
		case "sqlite":
			if r.Store.Path == "" {
				ps.add(f+".store.path", "required for sqlite")
			}
		case "postgres":
			if r.Store.DSN.Value() == "" {
				ps.add(f+".store.dsn", "required for postgres")
			}
		default:
			ps.add(f+".store.driver", "%q is not one of sqlite, postgres", r.Store.Driver)
		}
		switch {
		case r.Replicas < 1 || r.Replicas > MaxReplicas:
			ps.add(f+".replicas", "must be 1..%d", MaxReplicas)
		case r.Replicas > 1 && r.Store.Driver != "postgres":
			ps.add(f+".replicas", "%d replicas need store.driver postgres (a sqlite file belongs to one process)", r.Replicas)
		case r.Replicas > 1 && t.Pattern == HotCold:
			ps.add(f+".replicas", "pattern hot-cold starts one gateway per region on failover; use replicas 1")
		}
		if r.Store.MaxConns < 1 {
			ps.add(f+".store.max_conns", "must be positive")
		}
		for _, d := range t.Deployments {
			if len(r.Backends[d.Name]) == 0 {
				ps.add(f+".backends."+d.Name, "deployment %q has no backend in region %s", d.Name, r.Name)
			}
		}
		for _, dep := range sortedKeys(r.Backends) {
			if !seenDep[dep] {
				ps.add(f+".backends."+dep, "unknown deployment %q", dep)
			}
			seenBackend := map[string]bool{}
			for j, b := range r.Backends[dep] {
				bf := fmt.Sprintf("%s.backends.%s[%d]", f, dep, j)
				checkName(&ps, bf+".name", b.Name, seenBackend)
				switch b.Kind {
				case KindSim, KindOpenAI, KindAzureOpenAI:
				case "":
					ps.add(bf+".kind", "required (sim, openai or azure-openai)")
				default:
					ps.add(bf+".kind", "%q is not one of sim, openai, azure-openai", b.Kind)
				}
				if b.URL == "" {
					ps.add(bf+".url", "required")
				} else {
					checkURL(&ps, bf+".url", b.URL)
					if b.Kind == KindSim {
						if u, err := url.Parse(b.URL); err == nil {
							checkListen(bf+".url", u.Host)
						}
					}
				}
				if b.Priority < 1 {
					ps.add(bf+".priority", "must be 1 or more")
				}
				if b.Weight < 1 || b.Weight > 1000 {
					ps.add(bf+".weight", "must be 1..1000")
				}
				switch b.Auth {
				case "none", "bearer", "api-key":
					if b.Auth != "none" && b.APIKey.Value() == "" {
						ps.add(bf+".api_key", "required for auth %s", b.Auth)
					}
				case "entra":
					if b.Kind != KindAzureOpenAI {
						ps.add(bf+".auth", "entra is for azure-openai backends")
					}
				default:
					ps.add(bf+".auth", "%q is not one of none, bearer, api-key, entra", b.Auth)
				}
			}
		}
		if len(r.StartCommand) > 0 && t.Pattern != HotCold {
			ps.add(f+".start_command", "only used with pattern hot-cold")
		}
	}

	g := t.Gateway
	if g.MaxBody < 1024 {
		ps.add("gateway.max_body", "must be at least 1024 bytes")
	}
	if g.CooldownMax < g.CooldownDefault {
		ps.add("gateway.cooldown_max", "must not be below cooldown_default")
	}
	if g.EjectMax < g.EjectBase {
		ps.add("gateway.eject_max", "must not be below eject_base")
	}
	if g.Procs < 0 {
		ps.add("gateway.procs", "must not be negative (0 leaves GOMAXPROCS to Go)")
	}
	checkCPUs(&ps, "gateway.cpus", g.CPUs)

	rp := t.Replication
	switch rp.Mode {
	case "sync", "async":
	default:
		ps.add("replication.mode", "%q is not one of sync, async", rp.Mode)
	}
	switch rp.Transport {
	case "journal":
	case "engine":
		for i, r := range t.Regions {
			if r.Store.Driver != "postgres" {
				ps.add(fmt.Sprintf("regions[%d].store.driver", i), "replication.transport engine needs postgres")
			}
		}
	default:
		ps.add("replication.transport", "%q is not one of journal, engine", rp.Transport)
	}
	if len(t.Regions) > 1 && len(rp.Secret.Value()) < 16 {
		ps.add("replication.secret", "required with more than one region, at least 16 characters")
	}
	if rp.BatchSize < 1 || rp.BatchSize > 10000 {
		ps.add("replication.batch_size", "must be 1..10000")
	}
	if t.Targets.RPO == 0 && rp.Mode == "async" {
		ps.add("replication.mode", "async replication cannot meet targets.rpo 0; use sync or set an RPO")
	}

	e := t.Edge
	checkListen("edge.listen", e.Listen)
	checkURL(&ps, "edge.url", e.URL)
	switch e.Routing {
	case RoutePriority, RouteWeighted, RouteLatency:
	default:
		ps.add("edge.routing", "%q is not one of priority, weighted, latency", e.Routing)
	}
	if e.AttemptTimeout > e.RequestTimeout {
		ps.add("edge.attempt_timeout", "must not exceed request_timeout")
	}
	if e.EjectMax < e.EjectBase {
		ps.add("edge.eject_max", "must not be below eject_base")
	}
	if e.Procs < 0 {
		ps.add("edge.procs", "must not be negative (0 leaves GOMAXPROCS to Go)")
	}
	checkCPUs(&ps, "edge.cpus", e.CPUs)

	p := t.Probes
	if p.Method != "GET" && p.Method != "HEAD" {
		ps.add("probes.method", "%q is not GET or HEAD", p.Method)
	}
	if len(p.Path) == 0 || p.Path[0] != '/' {
		ps.add("probes.path", "must start with /")
	}
	if p.Timeout >= p.Interval {
		ps.add("probes.timeout", "must be below probes.interval (%s)", p.Interval)
	}
	if p.SampleSize < 1 || p.SampleSize > 100 {
		ps.add("probes.sample_size", "must be 1..100")
	}
	if p.SuccessfulSamplesRequired < 1 || p.SuccessfulSamplesRequired > p.SampleSize {
		ps.add("probes.successful_samples_required", "must be 1..sample_size (%d)", p.SampleSize)
	}

	c := t.Controller
	checkListen("controller.listen", c.Listen)
	checkURL(&ps, "controller.url", c.URL)
	if c.Failures < 1 {
		ps.add("controller.failures", "must be 1 or more")
	}
	if c.LeaseTTL < Duration(300e6) {
		ps.add("controller.lease_ttl", "must be at least 300ms")
	}
	if c.ProbeInterval <= 0 || c.Window < c.ProbeInterval {
		ps.add("controller.window", "must be at least one probe_interval")
	}
	if t.Links.Latency < 0 {
		ps.add("links.latency", "must not be negative")
	}
	switch t.Links.Isolation {
	case IsolationAuto, IsolationProxy:
	case IsolationNetns:
		for _, b := range t.NetnsBlockers() {
			ps.add("links.isolation", "netns: %s", b)
		}
	default:
		ps.add("links.isolation", "%q is not one of auto, netns, proxy", t.Links.Isolation)
	}
	return ps.err()
}

func checkName(ps *Problems, field, name string, seen map[string]bool) {
	switch {
	case name == "":
		ps.add(field, "required")
	case !nameRE.MatchString(name):
		ps.add(field, "%q must be letters, digits, '.', '_' or '-' (at most 63)", name)
	case seen[name]:
		ps.add(field, "duplicate name %q", name)
	}
	seen[name] = true
}

func checkURL(ps *Problems, field, raw string) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		ps.add(field, "%q is not an http(s) URL", raw)
	}
}

// MaxCPU bounds CPU numbers in cpus lists (the kernel's default CPU set
// size, what sched_setaffinity takes).
const MaxCPU = 1023

func checkCPUs(ps *Problems, field string, cpus []int) {
	seen := map[int]bool{}
	for _, c := range cpus {
		switch {
		case c < 0 || c > MaxCPU:
			ps.add(field, "CPU %d is not a CPU number (0..%d)", c, MaxCPU)
		case seen[c]:
			ps.add(field, "CPU %d is listed twice", c)
		}
		seen[c] = true
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// NetnsBlockers lists what in the topology keeps `up` from running its
// regions in network namespaces (links.isolation: netns); empty when
// nothing does. A region in a namespace reaches only its own model servers
// and the link proxies on the host side of its veth, so its backends must
// be sims started by `up` and its store a local file; the controller
// starts a hot-cold standby itself, outside any namespace; and `up` lets
// admin APIs answer peers that are not on loopback (the host side of each
// veth), which is only safe while the edge and the controller listen on
// loopback.
func (t *Topology) NetnsBlockers() []string {
	var out []string
	if !t.Links.Enabled {
		out = append(out, "needs links.enabled: true")
	}
	if t.Pattern == HotCold {
		out = append(out, "pattern hot-cold: the controller starts the standby's gateway outside any namespace")
	}
	for _, r := range t.Regions {
		if r.Store.Driver != "" && r.Store.Driver != "sqlite" {
			out = append(out, fmt.Sprintf("region %s: store %s is not reachable from a namespace (sqlite only)", r.Name, r.Store.Driver))
		}
		for _, dep := range slices.Sorted(maps.Keys(r.Backends)) {
			for _, b := range r.Backends[dep] {
				if b.Kind != KindSim {
					out = append(out, fmt.Sprintf("region %s: backend %s of %s is %s (sim only: a namespace has no route out)", r.Name, b.Name, dep, b.Kind))
				}
			}
		}
	}
	if !t.Admin.AllowRemote {
		for field, addr := range map[string]string{"edge.listen": t.Edge.Listen, "controller.listen": t.Controller.Listen} {
			if host, _, err := net.SplitHostPort(addr); err == nil && !isLoopbackHost(host) {
				out = append(out, fmt.Sprintf("%s %s is not on loopback (up sets admin.allow_remote for the namespaces)", field, addr))
			}
		}
	}
	slices.Sort(out)
	return out
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
