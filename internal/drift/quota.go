package drift

import (
	"fmt"
	"strings"
	"time"

	"github.com/understudy/understudy/internal/gateway"
)

// The quota check. Every backend answer carries x-ratelimit-* headers
// (when the backend has limits) and the gateway keeps the last ones. From
// them, per deployment and per dimension (requests, tokens per minute):
//
//   - a region's headroom is the sum over its serving backends of what is
//     left this window (the limit again once the window has reset since
//     the answer); a backend that answered without a limit header has no
//     limit; one that has not answered since its gateway started is
//     unknown;
//   - a region's load is the sum over its backends of what was used this
//     window (limit − remaining); a backend that has not answered this
//     window has none; one without a limit header does not show its load.
//
// A region passes when the other regions together have no load, when its
// headroom is unlimited, or when its headroom covers their load; it fails
// when the numbers are known and do not cover it; otherwise it is unknown.

// dimension is requests or tokens of a Quota.
type dimension struct {
	name                    string
	limit, remaining, reset func(*gateway.Quota) *int64
}

var dimensions = []dimension{
	{"requests", func(q *gateway.Quota) *int64 { return q.LimitRequests },
		func(q *gateway.Quota) *int64 { return q.RemainingRequests }, func(q *gateway.Quota) *int64 { return q.ResetRequestsMs }},
	{"tokens", func(q *gateway.Quota) *int64 { return q.LimitTokens },
		func(q *gateway.Quota) *int64 { return q.RemainingTokens }, func(q *gateway.Quota) *int64 { return q.ResetTokensMs }},
}

// defaultWindow is the quota window when an answer has no reset header:
// Azure OpenAI and OpenAI limits are per minute.
const defaultWindow = time.Minute

// fresh reports whether q's window had not reset by at (the inventory's
// time, the gateway's clock).
func (d dimension) fresh(q *gateway.Quota, at time.Time) bool {
	w := defaultWindow
	if r := d.reset(q); r != nil {
		w = time.Duration(*r) * time.Millisecond
	}
	return at.Before(q.At.Add(w))
}

// headroom is a region's headroom in one dimension.
type headroom struct {
	n         int64
	unlimited bool
	unknown   []string // backends without data
}

func (d dimension) headroom(inv *gateway.Inventory, id *gateway.InventoryDeployment) headroom {
	var h headroom
	for _, b := range id.Backends {
		if !b.Serving {
			continue
		}
		q := b.Quota
		switch {
		case q == nil:
			h.unknown = append(h.unknown, b.Name)
		case d.limit(q) == nil:
			h.unlimited = true
		case d.remaining(q) != nil && d.fresh(q, inv.At):
			h.n += *d.remaining(q)
		default:
			h.n += *d.limit(q)
		}
	}
	return h
}

// load is other regions' load in one dimension.
type load struct {
	n       int64
	unknown []string // why part of it is not known
}

func (d dimension) addLoad(l *load, region string, inv *gateway.Inventory, id *gateway.InventoryDeployment) {
	for _, b := range id.Backends {
		q := b.Quota
		switch {
		case q == nil || !d.fresh(q, inv.At):
			// no answer this window: no load through this backend
		case d.limit(q) == nil:
			l.unknown = append(l.unknown, fmt.Sprintf("%s backend %s advertises no %s limit, so its load is not known", region, b.Name, d.name))
		case d.remaining(q) != nil:
			l.n += max(*d.limit(q)-*d.remaining(q), 0)
		}
	}
}

// checkQuota: per deployment and dimension, the region's headroom covers
// the load of every other region (what it would receive in a failover).
func checkQuota(e *eval, o *observation) (out outcome) {
	if len(e.t.Regions) < 2 {
		out.note("single region: no failover load")
		return out
	}
	for _, dep := range e.t.Deployments {
		id := invDeployment(o.inv, dep.Name)
		if id == nil {
			continue
		}
		for _, d := range dimensions {
			var l load
			var from []string
			for _, r := range e.t.Regions {
				if r.Name == o.region {
					continue
				}
				from = append(from, r.Name)
				other := e.obs[r.Name]
				if other.inv == nil {
					l.unknown = append(l.unknown, r.Name+" did not report its inventory")
					continue
				}
				if oid := invDeployment(other.inv, dep.Name); oid != nil {
					d.addLoad(&l, r.Name, other.inv, oid)
				}
			}
			h := d.headroom(o.inv, id)
			switch {
			case len(l.unknown) == 0 && l.n == 0, h.unlimited:
				continue
			case len(h.unknown) == 0 && h.n < l.n: // the known load alone exceeds it
				out.add(Finding{Kind: NotEqual, Deployment: dep.Name, Field: "quota." + d.name,
					Expected: fmt.Sprintf(">= %d per minute (load of %s)", l.n, strings.Join(from, ", ")),
					Actual:   fmt.Sprintf("%d per minute left", h.n)})
			case h.n >= l.n && len(l.unknown) == 0:
				continue
			default:
				for _, u := range l.unknown {
					out.unknownf("%s %s: %s", dep.Name, d.name, u)
				}
				for _, b := range h.unknown {
					out.unknownf("%s %s: backend %s has not answered since its gateway started, so its quota is not known", dep.Name, d.name, b)
				}
			}
		}
	}
	return out
}
