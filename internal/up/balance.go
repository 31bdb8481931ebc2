package up

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/understudy/understudy/internal/linkproxy"
)

// A region with regions[].replicas > 1 runs that many gateway processes,
// each on its own loopback port-0 address, behind one balancer that listens
// at the region's listen address, so the edge, the controller and the
// other regions keep dialling the one region URL, as they would a
// region's load balancer in production. The balancer is a linkproxy with
// several upstreams in this process: round robin per connection, a replica
// that refuses the connection (killed) skipped. It is not a component: a
// region taken down keeps its balancer, which then resets every
// connection, as a load balancer with no healthy backend would answer.
// A replica started again listens on a new port; the balancer follows.

// ReplicaName names replica i (1-based) of a region's gateway.
func ReplicaName(region string, i int) string { return "gateway/" + region + "/" + strconv.Itoa(i) }

// BalancerState is a region's balancer in up.json.
type BalancerState struct {
	Region    string   `json:"region"`
	Listen    string   `json:"listen"`
	Upstreams []string `json:"upstreams"`
}

// balancers are the regions' balancers, by region.
type balancers struct {
	mu sync.Mutex
	m  map[string]*linkproxy.Proxy
}

// balance points region's balancer at the current addresses of the
// region's replicas, starting the balancer on first use.
func (u *Up) balance(ctx context.Context, region string) error {
	var ups []string
	for _, p := range u.procs.list() {
		if p.Region == region && p.Replica > 0 {
			if pu, err := url.Parse(p.URL); err == nil && pu.Host != "" {
				ups = append(ups, pu.Host)
			}
		}
	}
	if len(ups) == 0 {
		return nil
	}
	b := &u.balancers
	b.mu.Lock()
	defer b.mu.Unlock()
	if p := b.m[region]; p != nil {
		if err := p.SetUpstreams(ups); err != nil {
			return fmt.Errorf("balancer %s: %w", region, err)
		}
		return nil
	}
	r := u.Topology.Region(region)
	p := linkproxy.New(linkproxy.Config{Name: "balancer-" + region, Listen: r.Listen, Upstreams: ups},
		u.opts.Log.With("balancer", region))
	// The balancer outlives Start's context: it stops in Close.
	if err := p.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("balancer of region %s: %w", region, err)
	}
	if b.m == nil {
		b.m = map[string]*linkproxy.Proxy{}
	}
	b.m[region] = p
	fmt.Fprintf(u.opts.Stdout, "balancer region=%s listen=%s upstreams=%s\n", region, p.Addr(), strings.Join(ups, ","))
	return nil
}

// Balancers returns the regions' balancers, sorted by region.
func (u *Up) Balancers() []BalancerState {
	b := &u.balancers
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []BalancerState
	for r, p := range b.m {
		out = append(out, BalancerState{Region: r, Listen: p.Addr().String(), Upstreams: p.Upstreams()})
	}
	slices.SortFunc(out, func(a, b BalancerState) int { return strings.Compare(a.Region, b.Region) })
	return out
}

// close stops every balancer.
func (b *balancers) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, p := range b.m {
		p.Close(ctx)
	}
	b.m = nil
}
