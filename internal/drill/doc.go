// Package drill runs chaos drills against a topology started by `up` and
// writes the evidence: what clients saw, when the fault was noticed, when
// traffic moved, when serving was whole again (RTO) and whether any
// acknowledged write was lost (RPO).
//
// A drill is three things run side by side. Load drives bounded traffic
// through the edge with the official openai-go client: open-loop chat and
// streamed chat at fixed rates, and closed-loop agent conversations whose
// turns are retried under one Idempotency-Key until acknowledged; every
// attempt becomes a Sample and every acknowledged turn an Ack. A scenario
// injects one fault through the operator surfaces that already exist (up's
// control API for processes, link proxies for the network, modelsim's
// fault API for backends) and restores it. A watcher polls the controller
// and the edge so that detection, reroute and the runbook's steps land on
// the same timeline as the client's samples.
//
// RTO is measured from the client's side, as AWS Resilience Hub measures it:
// from the injection until every validation (an inference, an agent turn and a
// conversation write through the edge, every 250ms) passes and keeps passing
// until the fault is restored. RPO is checked item by item: after the
// failover and again at the end, every acknowledged turn's output items are
// listed through the edge, and each missing one is counted with the time it
// was acknowledged. Run judges the measures against the topology's targets:
// SUCCEEDED or FAILED with the reasons.
package drill
