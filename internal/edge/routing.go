package edge

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/understudy/understudy/internal/probe"
	"github.com/understudy/understudy/internal/topology"
)

// Role a gateway's readiness reports for the region that accepts writes.
const rolePrimary = "primary"

var (
	errAttemptTimeout = errors.New("no response headers within the attempt timeout")
	errOriginDown     = errors.New("origin ejected or unhealthy while waiting")
	errUnhealthy      = errors.New("origin failed its probes")
)

// origin is one regional gateway. Fields after the mutex comment are
// guarded by Edge.mu; the plan holds pointers but reads only name, url and
// the immutable fields.
type origin struct {
	name  string
	url   *url.URL
	index int // position in the topology: the last tie-breaker

	down atomic.Pointer[downSignal]

	// Guarded by Edge.mu.
	enabled      bool
	priority     int
	weight       int
	status       probe.Status
	probed       bool
	ejected      bool // passive ejection in force (backoff or awaiting a pass)
	ejectedAt    time.Time
	ejectedUntil time.Time
	ejectReason  string
	streak       int // consecutive ejections; sets the backoff
	ejections    int
	serving      bool // enabled && probe-healthy && !ejected
}

// downSignal is cancelled when the origin is ejected or turns unhealthy,
// so attempts still waiting for its headers give up at once.
type downSignal struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func newDownSignal() *downSignal {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &downSignal{ctx: ctx, cancel: cancel}
}

// signalDown abandons the attempts waiting on o.
func (o *origin) signalDown(cause error) {
	o.down.Swap(newDownSignal()).cancel(cause)
}

// updateServing recomputes o.serving at now; it reports whether o came
// back from an ejection: its backoff is over and its latest probe, sent
// after the ejection, passed. Edge.mu is held.
func (o *origin) updateServing(now time.Time) (returned bool) {
	if o.ejected && !now.Before(o.ejectedUntil) && o.status.Last.OK && o.status.Last.Start.After(o.ejectedAt) {
		o.ejected = false
		returned = true
	}
	o.serving = o.enabled && o.probed && o.status.Healthy && !o.ejected
	return returned
}

// backoff is the ejection time for the n-th consecutive ejection.
func backoff(n int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// plan is an immutable routing decision.
type plan struct {
	mode string
	// first is the best group: one origin in priority mode, the best
	// priority's serving origins in weighted mode, those within the latency
	// band in latency mode. A request starts at a weighted pick from it.
	first   []*origin
	weights []int
	total   int
	// rest are the other serving origins, in the order to try them.
	rest []*origin
	// fallback are enabled origins that are not serving, by priority: the
	// last resort (Front Door routes to every enabled origin when none is
	// healthy).
	fallback []*origin
	// primaries are the enabled origins reporting role primary at the
	// highest epoch, serving ones first; empty while no origin reports a
	// role.
	primaries []*origin
	epoch     int64
	serving   int
	enabled   int
}

// buildPlan computes the plan from the origins; Edge.mu is held.
func buildPlan(mode string, band time.Duration, origins []*origin) *plan {
	p := &plan{mode: mode}
	sorted := slices.Clone(origins)
	slices.SortStableFunc(sorted, func(a, b *origin) int {
		if a.priority != b.priority {
			return a.priority - b.priority
		}
		return a.index - b.index
	})
	var serving []*origin
	for _, o := range sorted {
		switch {
		case !o.enabled:
		case o.serving:
			serving = append(serving, o)
		default:
			p.fallback = append(p.fallback, o)
		}
	}
	p.serving, p.enabled = len(serving), len(serving)+len(p.fallback)
	if len(serving) > 0 {
		best := serving[0].priority
		n := 1
		for n < len(serving) && serving[n].priority == best {
			n++
		}
		group, others := slices.Clone(serving[:n]), serving[n:]
		switch mode {
		case topology.RoutePriority:
			// One origin takes all traffic: the heaviest, then the first listed.
			slices.SortStableFunc(group, func(a, b *origin) int { return b.weight - a.weight })
			p.first, p.rest = group[:1], append(group[1:], others...)
		case topology.RouteLatency:
			fastest := time.Duration(-1)
			for _, o := range group {
				if l := o.status.Latency; l > 0 && (fastest < 0 || l < fastest) {
					fastest = l
				}
			}
			var out []*origin
			for _, o := range group {
				if l := o.status.Latency; fastest < 0 || l <= 0 || l <= fastest+band {
					p.first = append(p.first, o)
				} else {
					out = append(out, o)
				}
			}
			slices.SortStableFunc(out, func(a, b *origin) int { return int(a.status.Latency - b.status.Latency) })
			p.rest = append(out, others...)
		default: // weighted
			p.first, p.rest = group, others
		}
		for _, o := range p.first {
			p.weights = append(p.weights, o.weight)
			p.total += o.weight
		}
	}

	// Affinity: the primary with the highest epoch.
	for _, o := range sorted {
		if !o.enabled || o.status.Readiness.Role != rolePrimary {
			continue
		}
		switch e := o.status.Readiness.Epoch; {
		case len(p.primaries) == 0 || e > p.epoch:
			p.primaries, p.epoch = []*origin{o}, e
		case e == p.epoch:
			p.primaries = append(p.primaries, o)
		}
	}
	slices.SortStableFunc(p.primaries, func(a, b *origin) int {
		switch {
		case a.serving == b.serving:
			return 0
		case a.serving:
			return -1
		}
		return 1
	})
	return p
}

// order appends to buf the origins a request tries, in order.
func (p *plan) order(stateful bool, buf []*origin) []*origin {
	if stateful && len(p.primaries) > 0 {
		return append(buf, p.primaries...)
	}
	if n := len(p.first); n > 0 {
		i := 0
		if n > 1 && p.total > 0 {
			r := rand.IntN(p.total)
			for i = 0; i < n-1 && r >= p.weights[i]; i++ {
				r -= p.weights[i]
			}
		}
		buf = append(buf, p.first[i])
		buf = append(buf, p.first[:i]...)
		buf = append(buf, p.first[i+1:]...)
	}
	buf = append(buf, p.rest...)
	return append(buf, p.fallback...)
}

// describe names where normal and stateful traffic goes, for route events.
func (p *plan) describe() string {
	var b strings.Builder
	b.WriteString("traffic → ")
	switch {
	case len(p.first) > 0:
		for i, o := range p.first {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(o.name)
		}
	case len(p.fallback) > 0:
		b.WriteString("no serving origin; trying every enabled origin")
	default:
		b.WriteString("no enabled origin")
	}
	if len(p.primaries) > 0 {
		b.WriteString("; state → ")
		for i, o := range p.primaries {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(o.name)
		}
		b.WriteString(" (primary, epoch ")
		b.WriteString(itoa64(p.epoch))
		b.WriteString(")")
	}
	return b.String()
}

// statePrefixes are the paths whose requests touch conversation state.
var statePrefixes = []string{"/v1/responses", "/v1/conversations", "/responses", "/conversations"}

// isStateful reports whether a request names or writes conversation state:
// any /v1/responses or /v1/conversations path (also under /openai/), or a
// body with a conversation or previous_response_id field.
func isStateful(path string, body []byte) bool {
	p := path
	azure := false
	if rest, ok := strings.CutPrefix(path, "/openai"); ok {
		p, azure = rest, true
	}
	for i, pre := range statePrefixes {
		if i >= 2 && !azure {
			break
		}
		if rest, ok := strings.CutPrefix(p, pre); ok && (rest == "" || rest[0] == '/') {
			return true
		}
	}
	return namesState(body)
}
