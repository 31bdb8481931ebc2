package plan

import (
	"fmt"
	"time"

	"github.com/understudy/understudy/internal/topology"
)

// Facts describe a pattern as the seed guide's "Choose Your Pattern" table
// does, with the figures Understudy achieves.
type Facts struct {
	Pattern   topology.Pattern
	Secondary string // what the secondary region is doing
	RTO       string
	RPO       string
	Cost      string // relative: Lowest, Balanced, Highest
	UseWhen   string
	rank      int // cost and readiness order: 0 hot-cold, 1 hot-warm, 2 hot-hot
}

// Patterns lists the three patterns, cheapest first.
var Patterns = []Facts{
	{
		Pattern: topology.HotCold, rank: 0,
		Secondary: "minimal footprint, deployed on failover",
		RTO:       "hours (deploy the standby, restore data)",
		RPO:       "possible data loss: what was written since the last backup",
		Cost:      "Lowest",
		UseWhen:   "cost-sensitive, generous RTO, tolerant of data loss",
	},
	{
		Pattern: topology.HotWarm, rank: 1,
		Secondary: "pre-provisioned, running, idle",
		RTO:       "seconds to minutes (detect, fence, promote, validate)",
		RPO:       "0 with sync replication, else the replication lag",
		Cost:      "Balanced",
		UseWhen:   "most enterprise workloads; the recommended default",
	},
	{
		Pattern: topology.HotHot, rank: 2,
		Secondary: "live, load-balanced with the primary",
		RTO:       "near zero for stateless inference; state still fails over",
		RPO:       "0 with sync replication, else the replication lag",
		Cost:      "Highest",
		UseWhen:   "strict SLA, latency-sensitive, budget available",
	},
}

func factsOf(p topology.Pattern) Facts {
	for _, f := range Patterns {
		if f.Pattern == p {
			return f
		}
	}
	panic("plan: unknown pattern " + string(p))
}

func patternOfRank(r int) topology.Pattern { return Patterns[r].Pattern }

// Assumptions the rules compare against. They are stated in every report
// so a reader can replace them with measured values.
const (
	// ColdStartRTO is how long a hot-cold recovery takes: deploy the
	// standby region from IaC, restore its data, start it. The seed guide
	// says "hours"; measure yours with a hot-cold drill.
	ColdStartRTO = 2 * time.Hour
	// BackupInterval is what a hot-cold recovery can lose: writes since the
	// last backup of the primary's state.
	BackupInterval = 15 * time.Minute
	// ApprovalMinRTO is the shortest RTO that leaves time for a person to
	// approve a failover.
	ApprovalMinRTO = 30 * time.Minute
)

// WarmFailover is the estimated automated hot-warm failover, with its
// parts, computed by the topology package from the starter topology's
// default probe, detection and lease settings.
type WarmFailover struct {
	Total, Detection, Lease, PromoteValidate time.Duration
}

// EstimateWarmFailover returns the product's own estimate of a hot-warm
// failover with the starter topology's settings.
func EstimateWarmFailover() WarmFailover {
	t := &topology.Topology{}
	t.Default()
	det := t.Controller.DetectionWindow(t.Probes.Timeout.D())
	total := t.EstimatedRTO()
	return WarmFailover{
		Total: total, Detection: det, Lease: t.Controller.LeaseTTL.D(),
		PromoteValidate: total - det - t.Controller.LeaseTTL.D(),
	}
}

// DeploymentType is a Foundry / Azure OpenAI deployment type.
type DeploymentType struct {
	SKU         string // as written in the topology, e.g. DataZoneStandard
	Name        string // as customers say it, e.g. "Data Zone Standard"
	Processing  string // where prompts and responses are processed
	Provisioned bool   // reserved PTU capacity rather than pay-per-token
}

// Reason is one rule that fired and why.
type Reason struct {
	Rule string
	Text string
}

// Decision is the recommendation and everything that explains it.
type Decision struct {
	Inputs      Inputs
	Pattern     topology.Pattern
	Replication string // sync or async
	Deployment  DeploymentType
	Approval    bool // failover waits for `understudy approve`
	Warm        WarmFailover
	// StateRTO is the estimated time until writes and agent turns are
	// served again; StatelessRTO until stateless inference is.
	StateRTO     time.Duration
	StatelessRTO time.Duration
	Reasons      []Reason // rules that fired, in order
	Conflicts    []string // targets and constraints that cannot all hold
	Caveats      []string
	Cost         Cost
}

// Facts returns the facts of the recommended pattern.
func (d *Decision) Facts() Facts { return factsOf(d.Pattern) }

// raise moves the pattern up to at least p.
func (d *Decision) raise(p topology.Pattern) {
	if factsOf(p).rank > factsOf(d.Pattern).rank {
		d.Pattern = p
	}
}

func (d *Decision) conflict(format string, a ...any) {
	d.Conflicts = append(d.Conflicts, fmt.Sprintf(format, a...))
}

func (d *Decision) caveat(format string, a ...any) {
	d.Caveats = append(d.Caveats, fmt.Sprintf(format, a...))
}

// A rule reads the inputs and the decision so far, may change the decision,
// and returns why it fired, or "" when it did not.
type rule struct {
	name  string
	apply func(d *Decision) string
}

// rules run in this order. The pattern starts at the cheapest, hot-cold,
// and rules only raise it: the result is the cheapest pattern that meets
// every target, unless a rule upgrades it for a stated reason.
var rules = []rule{
	{"rto", rtoRule},
	{"rpo", rpoRule},
	{"stateful-agents", statefulAgentsRule},
	{"latency-pattern", latencyPatternRule},
	{"residency", residencyRule},
	{"latency-deployment", latencyDeploymentRule},
	{"budget", budgetRule},
	{"approval", approvalRule},
	{"data-zone", dataZoneRule},
}

// Decide runs the rules on valid, defaulted inputs.
func Decide(in Inputs) *Decision {
	d := &Decision{Inputs: in, Pattern: topology.HotCold, Warm: EstimateWarmFailover()}
	for _, r := range rules {
		if why := r.apply(d); why != "" {
			d.Reasons = append(d.Reasons, Reason{Rule: r.name, Text: why})
		}
	}
	finish(d)
	return d
}

// rtoRule: the RTO sets the least-ready pattern that recovers in time.
func rtoRule(d *Decision) string {
	in, w := d.Inputs, d.Warm
	switch {
	case in.RTO < w.Total:
		d.raise(topology.HotHot)
		return fmt.Sprintf("RTO %s is shorter than a hot-warm failover (about %s: detection %s, lease %s, promotion and validation %s): "+
			"only hot-hot, where both regions already serve, keeps inference available without a failover step",
			dur(in.RTO), dur(w.Total), dur(w.Detection), dur(w.Lease), dur(w.PromoteValidate))
	case in.RTO < ColdStartRTO:
		d.raise(topology.HotWarm)
		return fmt.Sprintf("RTO %s is shorter than a hot-cold recovery (about %s to deploy the standby region and restore its data): "+
			"the standby must be provisioned and running (hot-warm), which fails over in about %s",
			dur(in.RTO), dur(ColdStartRTO), dur(w.Total))
	default:
		return fmt.Sprintf("RTO %s leaves time to deploy the standby region on failover (hot-cold, about %s)",
			dur(in.RTO), dur(ColdStartRTO))
	}
}

// rpoRule: the RPO sets the replication mode and whether the standby must
// receive writes continuously.
func rpoRule(d *Decision) string {
	in := d.Inputs
	switch {
	case in.RPO == 0:
		d.Replication = "sync"
		d.raise(topology.HotWarm)
		return "RPO 0: no acknowledged write may be lost, so every write waits until the standby has applied it " +
			"(sync replication, one cross-region round trip per write); that needs a running standby, hot-warm or better"
	case in.RPO < BackupInterval:
		d.Replication = "async"
		d.raise(topology.HotWarm)
		return fmt.Sprintf("RPO %s is shorter than what a restore from backup loses (up to %s): replicate continuously to a running standby "+
			"(async replication; a failover loses the replication lag of that moment, which must stay below %s)",
			dur(in.RPO), dur(BackupInterval), dur(in.RPO))
	default:
		d.Replication = "async"
		return fmt.Sprintf("RPO %s tolerates losing what was written since the last backup (up to %s): async replication",
			dur(in.RPO), dur(BackupInterval))
	}
}

// statefulAgentsRule: agents with server-side state cannot run
// active-active (seed guide: "Hot/Warm is your real ceiling").
func statefulAgentsRule(d *Decision) string {
	in := d.Inputs
	if !in.StatefulAgents {
		return ""
	}
	if d.Pattern != topology.HotHot {
		return fmt.Sprintf("agents keep server-side state: conversations and responses are replicated by the journal (%s) and agents are "+
			"recreated in %s from their definitions on failover; hot-warm is the ceiling for the agent tier", d.Replication, in.Regions[1])
	}
	if in.RTO < d.Warm.Total {
		d.conflict("RTO %s cannot be met for agent turns and conversation writes: stateful agents cannot run active-active, "+
			"so they are served again only after the standby's state is promoted, about %s. Stateless inference meets %s in hot-hot. "+
			"Accept about %s for agent turns, or keep conversation state on the client.",
			dur(in.RTO), dur(d.Warm.Total), dur(in.RTO), dur(d.Warm.Total))
	}
	return "agents keep server-side state, which cannot run active-active: hot-hot covers stateless inference only; " +
		"conversations, responses and agents stay primary/standby and fail over as in hot-warm"
}

// latencyPatternRule: with budget available, a latency-sensitive
// stateless workload runs hot-hot so each client uses its nearest region.
func latencyPatternRule(d *Decision) string {
	in := d.Inputs
	if !in.LatencySensitive || d.Pattern == topology.HotHot {
		return ""
	}
	switch {
	case in.StatefulAgents:
		d.caveat("Not upgraded to hot-hot for latency: agent turns must reach the region holding the primary state, so serving them from two regions would not lower their latency.")
		return ""
	case in.Budget != BudgetHigh:
		d.caveat("Hot-hot would also serve each client from its nearest region (latency routing), at about %.2f× one region; not chosen with a %s budget.",
			costOf(topology.HotHot, true, in.ModelShare).Multiplier, in.Budget) // latency-sensitive: provisioned
		return ""
	}
	d.raise(topology.HotHot)
	return "latency-sensitive with a high budget: hot-hot serves each client from the nearest healthy region (latency routing) " +
		"and leaves no failover step for inference"
}

// residencyRule: where data may be processed decides the deployment type's
// family (seed guide, "Deployment Types & Data Residency").
func residencyRule(d *Decision) string {
	switch d.Inputs.Residency {
	case ResidencyRegion:
		d.Deployment = DeploymentType{SKU: "Standard", Name: "Standard (regional)",
			Processing: "only in the deployment's region"}
		return "residency region: Standard pins processing to the deployment's region; both regions must offer the exact model and version as Standard"
	case ResidencyDataZone:
		d.Deployment = DeploymentType{SKU: "DataZoneStandard", Name: "Data Zone Standard",
			Processing: "only inside the Microsoft-defined data zone (US or EU)"}
		return "residency datazone: Data Zone Standard keeps processing inside the data zone without pinning it to one region"
	default:
		d.Deployment = DeploymentType{SKU: "GlobalStandard", Name: "Global Standard",
			Processing: "in any Azure region where the model is offered"}
		return "residency global: Global Standard gives the widest model availability and the highest default quota; " +
			"prompts and responses may be processed in any region where the model is offered"
	}
}

// latencyDeploymentRule: predictable latency needs reserved capacity.
func latencyDeploymentRule(d *Decision) string {
	if !d.Inputs.LatencySensitive {
		return ""
	}
	dt := &d.Deployment
	dt.Provisioned = true
	switch d.Inputs.Residency {
	case ResidencyRegion:
		dt.SKU, dt.Name = "ProvisionedManaged", "Provisioned (regional)"
	case ResidencyDataZone:
		dt.SKU, dt.Name = "DataZoneProvisionedManaged", "Data Zone Provisioned"
	default:
		dt.SKU, dt.Name = "GlobalProvisionedManaged", "Global Provisioned"
	}
	return fmt.Sprintf("latency-sensitive: provisioned throughput (reserved PTUs) gives predictable latency and low variance; %s keeps the residency above",
		dt.Name)
}

// budgetRule: the budget never silently lowers a target; a budget too small
// for what the targets need is a conflict, stated with both costs.
func budgetRule(d *Decision) string {
	in := d.Inputs
	need, have := factsOf(d.Pattern).rank, in.Budget.rank()
	prov := d.Deployment.Provisioned
	if prov && in.Budget == BudgetLow {
		d.conflict("Latency sensitivity needs provisioned throughput, which reserves capacity in every region that may serve "+
			"(about %.2f× one region for %s, against %.2f× pay-per-token). With a low budget the alternative is pay-per-token and its latency variance.",
			costOf(d.Pattern, true, in.ModelShare).Multiplier, d.Pattern, costOf(d.Pattern, false, in.ModelShare).Multiplier)
	}
	switch {
	case need > have:
		fits := patternOfRank(have)
		rto, rpo := achievable(fits, d.Warm)
		d.conflict("Budget %s pays for %s (about %.2f× one region), but the targets need %s: recommended %s at about %.2f×. "+
			"To stay within the budget, relax the targets to what %s achieves: RTO %s or more and RPO %s or more.",
			in.Budget, fits, costOf(fits, prov, in.ModelShare).Multiplier, d.Pattern, d.Pattern,
			costOf(d.Pattern, prov, in.ModelShare).Multiplier, fits, dur(rto), dur(rpo))
		return fmt.Sprintf("budget %s is below what the targets need: the targets decide and the gap is reported as a conflict", in.Budget)
	case need < have:
		return fmt.Sprintf("budget %s allows more than the targets need: the cheapest pattern that meets them, %s", in.Budget, d.Pattern)
	default:
		return fmt.Sprintf("budget %s matches %s", in.Budget, d.Pattern)
	}
}

// achievable returns the shortest RTO and RPO a pattern can promise.
func achievable(p topology.Pattern, w WarmFailover) (rto, rpo time.Duration) {
	switch p {
	case topology.HotCold:
		return ColdStartRTO, BackupInterval
	case topology.HotWarm:
		return w.Total, 0
	}
	return 0, 0
}

// approvalRule: a person approves failover when the RTO leaves time for one.
func approvalRule(d *Decision) string {
	if d.Inputs.RTO >= ApprovalMinRTO {
		d.Approval = true
		return fmt.Sprintf("RTO %s leaves time for a person: the controller detects and prepares, and failover waits for `understudy approve`",
			dur(d.Inputs.RTO))
	}
	return fmt.Sprintf("RTO %s is too short to wait for a person: failover is automatic once the controller has confirmed the region is down",
		dur(d.Inputs.RTO))
}

// dataZones lists regions whose data zone is known. A region not listed is
// reported as unknown, never guessed.
var dataZones = map[string]string{
	"eastus": "US", "eastus2": "US", "centralus": "US", "northcentralus": "US", "southcentralus": "US",
	"westus": "US", "westus2": "US", "westus3": "US", "westcentralus": "US",
	"westeurope": "EU", "northeurope": "EU", "swedencentral": "EU", "francecentral": "EU",
	"germanywestcentral": "EU", "italynorth": "EU", "polandcentral": "EU", "spaincentral": "EU",
}

// dataZoneRule: Data Zone deployments fail over only within one zone.
func dataZoneRule(d *Decision) string {
	in := d.Inputs
	if in.Residency != ResidencyDataZone {
		return ""
	}
	a, b := dataZones[in.Regions[0]], dataZones[in.Regions[1]]
	switch {
	case a == "" || b == "":
		d.caveat("Confirm that %s and %s are in the same data zone: a Data Zone deployment cannot fail over across zones.", in.Regions[0], in.Regions[1])
		return ""
	case a != b:
		d.conflict("%s (%s) and %s (%s) are in different data zones: failing over would move processing out of the zone. Choose two regions of one zone.",
			in.Regions[0], a, in.Regions[1], b)
		return fmt.Sprintf("residency datazone, but the regions are in different zones (%s, %s)", a, b)
	}
	return fmt.Sprintf("%s and %s are both in the %s data zone, so failover keeps processing inside it", in.Regions[0], in.Regions[1], a)
}

// finish computes what follows from the decision: recovery estimates,
// cost, and the caveats every design with this shape must state.
func finish(d *Decision) {
	in := d.Inputs
	primary, secondary := in.Regions[0], in.Regions[1]
	switch d.Pattern {
	case topology.HotHot:
		d.StatelessRTO, d.StateRTO = 0, d.Warm.Total
	case topology.HotWarm:
		d.StatelessRTO, d.StateRTO = d.Warm.Total, d.Warm.Total
	default:
		d.StatelessRTO, d.StateRTO = ColdStartRTO, ColdStartRTO
	}
	d.Cost = costOf(d.Pattern, d.Deployment.Provisioned, in.ModelShare)

	if d.Approval {
		d.caveat("The on-call engineer must approve within the RTO: the estimates above exclude the time a person takes.")
	}
	switch d.Replication {
	case "sync":
		d.caveat("Sync replication: while %s is unreachable, writes fail after replication.sync_timeout instead of being acknowledged without a copy "+
			"(degrade_to_async is off); reads and inference keep working.", secondary)
		if in.LatencySensitive {
			d.caveat("Sync adds one round trip between %s and %s to every write (conversation items, responses), not to token streaming; "+
				"measure it with a drill that adds latency to the replication link.", primary, secondary)
		}
	default:
		d.caveat("Async replication: alert when replication lag exceeds the RPO (%s); a failover loses the lag of that moment, and the drill report counts every lost item.",
			dur(in.RPO))
	}
	if d.Pattern != topology.HotCold {
		d.caveat("The estimates assume Understudy's edge and controller. With Azure Front Door as the edge, its common probe settings " +
			"(every 30s, 3 of 4 samples) alone take about 60s to notice a region down.")
	}
	switch d.Pattern {
	case topology.HotHot:
		d.caveat("Each region must carry the full load alone after the other fails: size quota (TPM) or PTUs per region for 100%% of peak.")
		d.caveat("A streamed response that already sent bytes cannot move to the other region; clients retry it.")
	case topology.HotCold:
		d.caveat("The %s recovery time is an assumption: measure deploying and starting %s in a drill and rerun plan if it is longer.", dur(ColdStartRTO), secondary)
		if d.Deployment.Provisioned {
			d.caveat("Hot-cold buys the standby's PTUs on failover, when capacity in %s is not guaranteed; reserve it or accept pay-per-token during failover.", secondary)
		}
	}
	if in.StatefulAgents && d.Pattern == topology.HotCold {
		d.caveat("Agent conversations written since the last backup are lost on failover; agents themselves are recreated from their definitions.")
	}
	if !in.StatefulAgents {
		d.caveat("Planned as stateless: if clients start using conversations, stored responses or agents, rerun plan with --stateful-agents.")
	}
	switch in.Residency {
	case ResidencyGlobal:
		d.caveat("Global Standard may process prompts in any region where the model is offered: confirm the risk team accepts that.")
	case ResidencyRegion:
		d.caveat("A failover moves processing from %s to %s: the residency policy must allow both regions.", primary, secondary)
	}
	d.caveat("Confirm that the exact model and version are offered as %s in both %s and %s before committing to the pair.", d.Deployment.Name, primary, secondary)
	d.caveat("Re-validate quota in %s on a schedule (`understudy drift`): quota can be reclaimed while a region sits idle.", secondary)
}

// dur formats a duration the way people write targets: 5m, 1h30m, 6s, 0.
func dur(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	s := d.String()
	for _, suf := range []string{"m0s", "h0m"} {
		if len(s) > len(suf) && s[len(s)-len(suf):] == suf {
			s = s[:len(s)-2]
		}
	}
	return s
}
