package plan

import (
	"fmt"
	"io"
	"strings"

	"github.com/understudy/understudy/internal/topology"
)

// Verdict is a target against what the design achieves.
type Verdict struct {
	Kind     string // RTO or RPO
	Value    string // the target, e.g. 5m
	Estimate string
	Met      bool
}

// Verdicts compares the targets with the design's estimates.
func (d *Decision) Verdicts() []Verdict {
	in := d.Inputs
	rto := Verdict{Kind: "RTO", Value: dur(in.RTO)}
	switch {
	case d.Pattern == topology.HotHot && in.StatefulAgents:
		rto.Estimate = fmt.Sprintf("stateless inference about 0 (a retry inside the edge); agent turns and writes about %s (promotion)", dur(d.StateRTO))
		rto.Met = d.StateRTO <= in.RTO
	case d.Pattern == topology.HotHot:
		rto.Estimate = "about 0: the edge retries a failed request on the other region before its first byte"
		rto.Met = true
	case d.Pattern == topology.HotWarm:
		rto.Estimate = fmt.Sprintf("about %s: detect, fence, promote, apply agents, switch routing, validate", dur(d.StateRTO))
		rto.Met = d.StateRTO <= in.RTO
	default:
		rto.Estimate = fmt.Sprintf("about %s (assumed): deploy and start the standby, restore data, then fail over", dur(d.StateRTO))
		rto.Met = d.StateRTO <= in.RTO
	}
	if d.Approval {
		rto.Estimate += ", plus the time to approve"
	}
	rpo := Verdict{Kind: "RPO", Value: dur(in.RPO)}
	switch {
	case d.Replication == "sync":
		rpo.Estimate, rpo.Met = "0: a write is acknowledged only once the standby has applied it", true
	case d.Pattern == topology.HotCold:
		rpo.Estimate = fmt.Sprintf("up to %s (assumed backup interval): what was written since the last backup", dur(BackupInterval))
		rpo.Met = BackupInterval <= in.RPO
	default:
		rpo.Estimate, rpo.Met = "the replication lag at the moment of failure (seconds when healthy; alert above the RPO)", true
	}
	return []Verdict{rto, rpo}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (v Verdict) status() string {
	if v.Met {
		return "met"
	}
	return "MISSED (see conflicts)"
}

// Report writes the decision for a terminal.
func Report(w io.Writer, d *Decision) error {
	in := d.Inputs
	f := d.Facts()
	var b strings.Builder
	fmt.Fprintf(&b, "Understudy plan for %s\n", in.Name)
	fmt.Fprintf(&b, "  inputs: RTO %s, RPO %s, budget %s, stateful agents %s, residency %s, latency-sensitive %s, regions %s (primary) and %s\n\n",
		dur(in.RTO), dur(in.RPO), in.Budget, yesNo(in.StatefulAgents), in.Residency, yesNo(in.LatencySensitive), in.Regions[0], in.Regions[1])

	b.WriteString("Recommendation\n")
	fmt.Fprintf(&b, "  pattern      %s (secondary region: %s; relative cost %s)\n", d.Pattern, f.Secondary, strings.ToLower(f.Cost))
	fmt.Fprintf(&b, "  replication  %s\n", d.Replication)
	fmt.Fprintf(&b, "  deployment   %s (sku %s): processing %s\n", d.Deployment.Name, d.Deployment.SKU, d.Deployment.Processing)
	failover := "automatic"
	if d.Approval {
		failover = "waits for `understudy approve`"
	}
	fmt.Fprintf(&b, "  failover     %s\n", failover)
	fmt.Fprintf(&b, "  cost         %.2f× one region (breakdown and assumptions below)\n\n", d.Cost.Multiplier)

	b.WriteString("Targets\n")
	for _, v := range d.Verdicts() {
		wrap(&b, fmt.Sprintf("%s %s: %s. Estimate: %s", v.Kind, v.Value, v.status(), v.Estimate), "  ", "    ")
	}

	b.WriteString("\nWhy (the rules that fired, in order)\n")
	for i, r := range d.Reasons {
		wrap(&b, fmt.Sprintf("%d. [%s] %s", i+1, r.Rule, r.Text), "  ", "     ")
	}

	b.WriteString("\nConflicts\n")
	if len(d.Conflicts) == 0 {
		b.WriteString("  none: the recommendation meets every target within the budget\n")
	}
	for _, c := range d.Conflicts {
		wrap(&b, "- "+c, "  ", "    ")
	}

	b.WriteString("\nCaveats\n")
	for _, c := range d.Caveats {
		wrap(&b, "- "+c, "  ", "    ")
	}

	fmt.Fprintf(&b, "\nCost: %.2f× one region\n", d.Cost.Multiplier)
	for _, l := range d.Cost.Lines {
		wrap(&b, fmt.Sprintf("%5.2f  %s: %s", l.Value, l.Part, l.Why), "  ", "         ")
	}
	b.WriteString("  assumptions:\n")
	for _, a := range d.Cost.Assumptions {
		wrap(&b, "- "+a, "  ", "    ")
	}
	b.WriteString("\nAssumed recovery figures (replace with measured ones)\n")
	for _, a := range recoveryAssumptions(d) {
		wrap(&b, "- "+a, "  ", "    ")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// recoveryAssumptions states the figures the rules compared against.
func recoveryAssumptions(d *Decision) []string {
	return []string{
		fmt.Sprintf("Hot-warm failover about %s: the controller's detection (%s), the old primary's lease (%s), promotion and validation (%s), with the starter topology's settings (understudy validate prints the same estimate).",
			dur(d.Warm.Total), dur(d.Warm.Detection), dur(d.Warm.Lease), dur(d.Warm.PromoteValidate)),
		fmt.Sprintf("Hot-cold recovery about %s: deploying the standby region from IaC and restoring its data (the seed guide's \"hours\").", dur(ColdStartRTO)),
		fmt.Sprintf("Hot-cold loses up to %s of writes: the backup interval.", dur(BackupInterval)),
		fmt.Sprintf("A person can approve a failover when the RTO is %s or more.", dur(ApprovalMinRTO)),
	}
}

// wrap writes text folded at 100 columns, the first line after first and
// the rest after rest.
func wrap(b *strings.Builder, text, first, rest string) {
	const width = 100
	line := first
	empty := true
	for _, word := range strings.Fields(text) {
		if !empty && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line, empty = rest, true
		}
		if !empty {
			line += " "
		}
		line += word
		empty = false
	}
	b.WriteString(line + "\n")
}
