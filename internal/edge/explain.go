package edge

import (
	"fmt"
	"io"
	"slices"

	"github.com/understudy/understudy/internal/probe"
	"github.com/understudy/understudy/internal/topology"
)

// Explain writes what the topology makes the edge do: routing mode,
// origins, and the detection and recovery windows the probe and ejection
// settings imply.
func Explain(w io.Writer, t *topology.Topology) {
	e := t.Edge
	pc := probe.FromTopology(t.Probes)
	fmt.Fprintf(w, "edge %s (listen %s)\n", e.URL, e.Listen)
	switch e.Routing {
	case topology.RoutePriority:
		fmt.Fprintln(w, "routing: priority: all traffic to one serving origin of the best priority (the heaviest among equals); the others wait as failover targets")
	case topology.RouteWeighted:
		fmt.Fprintln(w, "routing: weighted: traffic spread by weight among the serving origins of the best priority")
	case topology.RouteLatency:
		fmt.Fprintf(w, "routing: latency: among the serving origins of the best priority, those within %s of the fastest probe latency share traffic by weight\n", e.AdditionalLatency)
	}
	fmt.Fprintln(w, "origins:")
	rs := slices.Clone(t.Regions)
	slices.SortStableFunc(rs, func(a, b topology.Region) int { return a.Priority - b.Priority })
	for _, r := range rs {
		fmt.Fprintf(w, "  %-12s %-28s priority %d  weight %d\n", r.Name, r.URL, r.Priority, r.Weight)
	}
	fmt.Fprintf(w, "probes: %s %s every %s, timeout %s, new connection each, pass only on 200; healthy while %d of the last %d pass\n",
		pc.Method, pc.Path, pc.Interval, pc.Timeout, pc.SuccessesRequired, pc.SampleSize)
	fmt.Fprintf(w, "detection by probes alone (worst case): %s = %d failed probes x %s + %s timeout\n",
		pc.DetectionWindow(), pc.FailuresToUnhealthy(), pc.Interval, pc.Timeout)
	fmt.Fprintf(w, "detection by traffic: the first request that gets a connection error or a 5xx ejects the origin at once; a silent origin is ejected after %s (edge.attempt_timeout) or declared unhealthy by the probes (%s), whichever comes first, and the requests waiting on it move to the next origin at that moment\n",
		e.AttemptTimeout, pc.DetectionWindow())
	fmt.Fprintf(w, "ejection backoff: %s, doubling on repeated failures up to %s; an ejected origin serves again at the first passing probe after its backoff (at most %s after a %s backoff)\n",
		e.EjectBase, e.EjectMax, e.EjectBase.D()+pc.Interval, e.EjectBase)
	fmt.Fprintf(w, "recovery after an outage: %s = %d passing probes x %s\n", pc.RecoveryWindow(), pc.SuccessesRequired, pc.Interval)
	fmt.Fprintf(w, "retry before the first byte: next origin, attempt timeout %s, request timeout %s, bodies up to %d bytes replayed; 429 passed back only when no other origin serves\n",
		e.AttemptTimeout, e.RequestTimeout, e.MaxReplayBody)
	fmt.Fprintln(w, "affinity: /v1/responses, /v1/conversations and bodies naming a conversation or previous_response_id go to the origin whose /readyz reports role primary (highest epoch); normal routing while no origin reports a role")
}
