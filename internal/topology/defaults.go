package topology

import (
	"fmt"
	"path/filepath"
	"time"
)

// Default fills every unset field with its documented default. It is
// idempotent and never overrides a value that was set.
func (t *Topology) Default() {
	setInt(&t.Version, 1)
	setStr(&t.Name, "understudy")
	if t.Pattern == "" {
		t.Pattern = HotWarm
	}
	setStr(&t.DataDir, "data")
	setDur(&t.Targets.RTO, 10*time.Second)

	for i := range t.Deployments {
		d := &t.Deployments[i]
		setStr(&d.Model, d.Name)
		setStr(&d.SKU, "Standard")
		setInt(&d.MaxAttempts, 3)
		setDur(&d.Timeouts.Headers, 30*time.Second)
		setDur(&d.Timeouts.FirstToken, 30*time.Second)
		setDur(&d.Timeouts.Idle, 30*time.Second)
		setDur(&d.Timeouts.Total, 120*time.Second)
	}

	for i := range t.Regions {
		r := &t.Regions[i]
		setInt(&r.Priority, i+1)
		setInt(&r.Weight, 100)
		setInt(&r.Replicas, 1)
		if r.URL == "" && r.Listen != "" {
			r.URL = "http://" + r.Listen
		}
		setStr(&r.Store.Driver, "sqlite")
		if r.Store.Driver == "sqlite" && r.Store.Path == "" && r.Name != "" {
			r.Store.Path = filepath.Join(t.DataDir, r.Name+".db")
		}
		setInt(&r.Store.MaxConns, 10)
		for dep, bs := range r.Backends {
			for j := range bs {
				b := &bs[j]
				setStr(&b.Name, fmt.Sprintf("%s-%d", dep, j+1))
				setInt(&b.Priority, 1)
				setInt(&b.Weight, 1)
				setStr(&b.Model, dep)
				if b.Kind == KindAzureOpenAI {
					setStr(&b.APIVersion, "2024-10-21")
				}
				if b.Auth == "" {
					switch {
					case b.Kind == KindAzureOpenAI && !b.APIKey.IsZero():
						b.Auth = "api-key"
					case b.Kind == KindAzureOpenAI:
						b.Auth = "entra"
					case !b.APIKey.IsZero():
						b.Auth = "bearer"
					default:
						b.Auth = "none"
					}
				}
			}
		}
	}

	g := &t.Gateway
	if g.MaxBody == 0 {
		g.MaxBody = 10 << 20
	}
	setDur(&g.DrainTimeout, 15*time.Second)
	if g.AccessLog == nil {
		on := true
		g.AccessLog = &on
	}
	setDur(&g.CooldownDefault, 10*time.Second)
	setDur(&g.CooldownMax, 60*time.Second)
	setDur(&g.EjectBase, time.Second)
	setDur(&g.EjectMax, 30*time.Second)

	rp := &t.Replication
	setStr(&rp.Mode, "sync")
	setStr(&rp.Transport, "journal")
	setDur(&rp.SyncTimeout, 2*time.Second)
	setInt(&rp.BatchSize, 500)

	e := &t.Edge
	setStr(&e.Listen, "127.0.0.1:8080")
	if e.URL == "" {
		e.URL = "http://" + e.Listen
	}
	if e.Routing == "" {
		e.Routing = RoutePriority
		if t.Pattern == HotHot {
			e.Routing = RouteLatency
		}
	}
	setDur(&e.AdditionalLatency, 50*time.Millisecond)
	setDur(&e.AttemptTimeout, 5*time.Second)
	setDur(&e.RequestTimeout, 30*time.Second)
	if e.MaxReplayBody == 0 {
		e.MaxReplayBody = 10 << 20
	}
	setDur(&e.EjectBase, time.Second)
	setDur(&e.EjectMax, 30*time.Second)

	p := &t.Probes
	setStr(&p.Path, "/readyz")
	setStr(&p.Method, "GET")
	setDur(&p.Interval, time.Second)
	setDur(&p.Timeout, 500*time.Millisecond)
	setInt(&p.SampleSize, 4)
	setInt(&p.SuccessfulSamplesRequired, 3)

	c := &t.Controller
	setStr(&c.Listen, "127.0.0.1:8070")
	if c.URL == "" {
		c.URL = "http://" + c.Listen
	}
	setDur(&c.LeaseTTL, 3*time.Second)
	setInt(&c.Failures, 3)
	setDur(&c.Window, 5*time.Second)
	setDur(&c.ProbeInterval, 500*time.Millisecond)
	setDur(&c.Cooldown, 5*time.Minute)

	setStr(&t.Agents.Dir, "agents")
	setStr(&t.Links.Isolation, IsolationAuto)
}

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setStr(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setDur(p *Duration, v time.Duration) {
	if *p == 0 {
		*p = Duration(v)
	}
}
