// Package plan chooses a failover pattern for a workload and explains why.
//
// Decide turns the customer's inputs (RTO, RPO, budget, whether agents keep
// server-side state, data residency, latency sensitivity) into a Decision by
// running an ordered list of rules (see rules.go). Each rule is a small
// function that reads the inputs and the decision so far, may raise the
// pattern, set the replication mode, the deployment type or the approval
// gate, and records why it fired. Targets are never traded away silently: a
// budget that cannot pay for what the targets need is reported as a
// conflict, and the recommendation still meets the targets, with its cost.
//
// The numbers the rules compare against are the product's own: hot-warm's
// failover estimate comes from topology.EstimatedRTO of the starter
// topology's probe and lease settings; the hot-cold figures are stated
// assumptions. Cost is a multiplier of one region under a stated split of a
// region's cost into infrastructure and model capacity.
//
// Report writes the decision for a terminal; Design writes a design document
// for a risk team and Topology a starter topology that topology.Parse and
// Validate accept.
package plan
