package plan

import (
	"bytes"
	"embed"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"unicode/utf8"

	"github.com/understudy/understudy/internal/topology"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"dur": dur,
	"inc": func(i int) int { return i + 1 },
}).ParseFS(templateFS, "templates/*.tmpl"))

// Command returns the command line that reproduces the decision.
func (in Inputs) Command() string {
	args := []string{"understudy plan", "--rto", dur(in.RTO), "--rpo", dur(in.RPO), "--budget", string(in.Budget)}
	if in.StatefulAgents {
		args = append(args, "--stateful-agents")
	}
	args = append(args, "--residency", string(in.Residency))
	if in.LatencySensitive {
		args = append(args, "--latency-sensitive")
	}
	if in.Regions != [2]string{"eastus2", "centralus"} {
		args = append(args, "--regions", in.Regions[0]+","+in.Regions[1])
	}
	if in.Name != "workload" {
		args = append(args, "--name", in.Name)
	}
	if in.ModelShare != DefaultModelShare {
		args = append(args, "--model-share", strconv.FormatFloat(in.ModelShare, 'g', -1, 64))
	}
	return strings.Join(args, " ")
}

// view is what the templates see.
type view struct {
	In          Inputs
	D           *Decision
	Facts       Facts
	Command     string
	Verdicts    []Verdict
	Diagram     string
	Patterns    []patternRow
	Data        []dataRow
	Runbook     []string
	Drills      []drill
	Assumptions []string
	// For the topology template.
	T       *topology.Topology // defaults the starter spells out
	Regions []regionRow
	Routing string
}

type patternRow struct {
	Facts
	Multiplier float64
	Chosen     bool
}

type dataRow struct{ Service, Holds, How, RPO, Failover string }

type drill struct{ Name, Fault, Pass, Cadence string }

type regionRow struct {
	Name     string
	Priority int
	Comment  string
}

func newView(d *Decision) *view {
	in := d.Inputs
	defaults := &topology.Topology{}
	defaults.Default()
	v := &view{
		In: in, D: d, Facts: d.Facts(), Command: in.Command(), Verdicts: d.Verdicts(),
		Diagram: diagram(d), Data: dataLayer(d), Runbook: runbook(d, defaults), Drills: drills(d, defaults),
		Assumptions: recoveryAssumptions(d), T: defaults, Routing: topology.RoutePriority,
	}
	for _, f := range Patterns {
		v.Patterns = append(v.Patterns, patternRow{Facts: f, Chosen: f.Pattern == d.Pattern,
			Multiplier: costOf(f.Pattern, d.Deployment.Provisioned, in.ModelShare).Multiplier})
	}
	primary, secondary := in.Regions[0], in.Regions[1]
	switch d.Pattern {
	case topology.HotHot:
		v.Routing = topology.RouteLatency
		v.Regions = []regionRow{{primary, 1, "serves; its state starts as primary (listed first)"}, {secondary, 1, "serves; its state is the standby"}}
	case topology.HotWarm:
		v.Regions = []regionRow{{primary, 1, "primary"}, {secondary, 2, "warm standby: running and idle"}}
	default:
		v.Regions = []regionRow{{primary, 1, "primary"}, {secondary, 2, "cold standby: started by the runbook on failover"}}
	}
	return v
}

// Design writes the design document (DESIGN.md) for d.
func Design(w io.Writer, d *Decision) error {
	return templates.ExecuteTemplate(w, "design.md.tmpl", newView(d))
}

// Topology writes the starter topology (topology.yaml) for d.
func Topology(w io.Writer, d *Decision) error {
	return templates.ExecuteTemplate(w, "topology.yaml.tmpl", newView(d))
}

// WriteFiles writes DESIGN.md and topology.yaml into dir, creating it, and
// returns the paths written.
func WriteFiles(dir string, d *Decision) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	var paths []string
	for _, f := range []struct {
		name  string
		write func(io.Writer, *Decision) error
	}{{"DESIGN.md", Design}, {"topology.yaml", Topology}} {
		var b bytes.Buffer
		if err := f.write(&b, d); err != nil {
			return nil, fmt.Errorf("render %s: %w", f.name, err)
		}
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", p, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// diagram draws the two regions side by side under the edge.
func diagram(d *Decision) string {
	in := d.Inputs
	primary, secondary := in.Regions[0], in.Regions[1]
	model := "gpt-4.1-mini (" + d.Deployment.SKU + ")"
	var route1, route2, gw2, model2, store2, agents2, link string
	switch d.Pattern {
	case topology.HotHot:
		route1 = "nearest healthy region"
		route2 = "nearest healthy region"
		gw2, model2, store2 = "gateway: serving", model, "store: standby"
		agents2 = "agents: applied on failover"
	case topology.HotWarm:
		route1 = "priority 1"
		route2 = "priority 2: only while " + primary + " is unhealthy"
		gw2, model2, store2 = "gateway: running, idle", model, "store: standby"
		agents2 = "agents: applied on failover"
	default:
		route1 = "priority 1"
		route2 = "priority 2: once the runbook has started it"
		gw2, model2, store2 = "gateway: not running", "model: deployed on failover", "store: restored on failover"
		agents2 = "agents: applied on failover"
	}
	switch {
	case d.Pattern == topology.HotCold:
		link = " · backups ·► "
	case d.Replication == "sync":
		link = " ─── sync ───► "
	default:
		link = " ─── async ──► "
	}
	agents1 := "agents: applied"
	if !in.StatefulAgents {
		agents1, agents2 = "agents: none (stateless)", "agents: none (stateless)"
	}
	left := []string{"gateway: serving", model, "store: primary", agents1}
	right := []string{gw2, model2, store2, agents2}

	var b strings.Builder
	fmt.Fprintf(&b, "clients ──► edge (routing: %s; probes GET /readyz)\n", map[bool]string{true: "latency", false: "priority"}[d.Pattern == topology.HotHot])
	fmt.Fprintf(&b, "              ├── %s ──► %s\n", route1, primary)
	fmt.Fprintf(&b, "              └── %s ──► %s\n", route2, secondary)
	if d.Pattern == topology.HotHot && in.StatefulAgents {
		fmt.Fprintf(&b, "              (requests naming a conversation or response go to the region holding the primary state)\n")
	}
	b.WriteString("\n")

	width := 0
	for _, s := range append(append([]string{primary, secondary}, left...), right...) {
		width = max(width, utf8.RuneCountInString(s)+2)
	}
	top := func(name string) string {
		return "┌─ " + name + " " + strings.Repeat("─", width-utf8.RuneCountInString(name)-2) + "┐"
	}
	row := func(s string) string {
		return "│ " + s + strings.Repeat(" ", width-utf8.RuneCountInString(s)) + "│"
	}
	bottom := "└" + strings.Repeat("─", width+1) + "┘"
	gap := strings.Repeat(" ", utf8.RuneCountInString(link))
	b.WriteString(top(primary) + gap + top(secondary) + "\n")
	for i := range left {
		mid := gap
		if i == 2 { // the store line carries the replication arrow
			mid = link
		}
		b.WriteString(row(left[i]) + mid + row(right[i]) + "\n")
	}
	b.WriteString(bottom + gap + bottom + "\n\n")
	approve := ""
	if d.Approval {
		approve = ", waits for approval"
	}
	fmt.Fprintf(&b, "controller (witness): grants the write lease, detects a region down, runs the runbook%s\n", approve)
	return b.String()
}

func dataLayer(d *Decision) []dataRow {
	in := d.Inputs
	primary, secondary := in.Regions[0], in.Regions[1]
	conv := dataRow{
		Service: "Conversations and agent state",
		Holds:   "conversations and their items, responses (status, usage, idempotency keys), applied agent versions, replication position",
	}
	if !in.StatefulAgents {
		conv.Holds = "only if clients use conversations or stored responses: " + conv.Holds
	}
	switch {
	case d.Pattern == topology.HotCold:
		conv.How = fmt.Sprintf("backups of %s's store (every %s, assumed), restored into %s when the runbook starts it", primary, dur(BackupInterval), secondary)
		conv.RPO = fmt.Sprintf("up to %s (assumed backup interval)", dur(BackupInterval))
		conv.Failover = "restored from the latest backup, then promoted at a new epoch"
	case d.Replication == "sync":
		conv.How = fmt.Sprintf("the journal, shipped in order to %s and applied there before each write is acknowledged (sync)", secondary)
		conv.RPO = "0"
		conv.Failover = "promoted at epoch e+1 once the old primary's lease has ended; a returning old primary fences itself and reports any writes the new primary never received"
	default:
		conv.How = fmt.Sprintf("the journal, shipped continuously in order to %s; writes are acknowledged locally (async)", secondary)
		conv.RPO = "the replication lag at the time of failure, kept below " + dur(in.RPO)
		conv.Failover = "promoted at epoch e+1 once the old primary's lease has ended; writes not yet shipped are counted in the failover report"
	}
	agents := dataRow{
		Service:  "Agent definitions",
		Holds:    "instructions, model deployment, tools, metadata.version",
		How:      "kept as code in version control (agents/) and applied to every region by name and version; drift compares them by content hash",
		RPO:      "0 (version control holds them)",
		Failover: "applied to the new primary by the runbook; clients refer to agents by name, so nothing they hold changes",
	}
	if !in.StatefulAgents {
		agents.Holds = "none today; if agents are added: " + agents.Holds
	}
	models := dataRow{
		Service: "Model deployments",
		Holds:   fmt.Sprintf("gpt-4.1-mini version 2025-04-14 as %s (no data)", d.Deployment.Name),
		How:     "not replicated: one definition in topology.yaml is deployed identically in both regions; drift compares name, model, version, SKU, capacity and quota",
		RPO:     "n/a",
	}
	switch d.Pattern {
	case topology.HotHot:
		models.Failover = "nothing to do: already serving in both regions"
	case topology.HotWarm:
		models.Failover = "nothing to do: already deployed and idle in " + secondary
	default:
		models.Failover = "deployed in " + secondary + " by the runbook"
		if d.Deployment.Provisioned {
			models.Failover += "; its PTUs are bought then, and capacity is not guaranteed"
		}
	}
	keys := dataRow{
		Service:  "Keys and configuration",
		Holds:    "client keys, admin token, replication secret, the topology",
		How:      "topology.yaml in version control, read by both regions; secrets from the environment (one Key Vault per region, secrets synced)",
		RPO:      "0 (version control and the synced vaults)",
		Failover: "nothing to do: both regions already read the same file and secrets",
	}
	logs := dataRow{
		Service:  "Logs and metrics",
		Holds:    "structured access logs, Prometheus metrics, failover and drill reports",
		How:      "not replicated: each region ships them to a central workspace",
		RPO:      "what the failed region had not shipped yet",
		Failover: "the central workspace shows the failover end to end; the controller writes the failover report with measured RTO and RPO",
	}
	return []dataRow{conv, agents, models, keys, logs}
}

func runbook(d *Decision, t *topology.Topology) []string {
	in := d.Inputs
	primary, secondary := in.Regions[0], in.Regions[1]
	c := t.Controller
	steps := []string{fmt.Sprintf("**Detect**: the controller probes each region every %s; %d consecutive failures within %s declare it down (within %s of the fault).",
		c.ProbeInterval, c.Failures, c.Window, dur(c.DetectionWindow(t.Probes.Timeout.D())))}
	if d.Approval {
		steps = append(steps, "**Approve**: the on-call engineer runs `understudy approve`; nothing below starts before.")
	}
	steps = append(steps, fmt.Sprintf("**Fence**: %s stops writing when it cannot renew its lease (%s); the controller waits until every lease has ended.", primary, c.LeaseTTL))
	if d.Pattern == topology.HotCold {
		steps = append(steps, fmt.Sprintf("**Start %s**: deploy its gateway and model deployment and restore its store from the latest backup (about %s, assumed).", secondary, dur(ColdStartRTO)))
	}
	steps = append(steps,
		fmt.Sprintf("**Promote**: %s's state becomes primary at epoch e+1; writes and batches from an older epoch are refused from then on.", secondary),
		fmt.Sprintf("**Apply agents**: the agent definitions are applied to %s by name and version (a no-op without agents).", secondary),
	)
	if d.Pattern == topology.HotHot {
		steps = append(steps, fmt.Sprintf("**Switch routing**: stateless traffic already flows to %s; writes and agent turns now go there too.", secondary))
	} else {
		steps = append(steps, fmt.Sprintf("**Switch routing**: the edge sends every request to %s.", secondary))
	}
	check := "an inference request"
	if in.StatefulAgents {
		check += " and an agent turn"
	}
	steps = append(steps,
		fmt.Sprintf("**Validate** through the edge: %s must succeed in %s.", check, secondary),
		"**Report**: the measured RTO and RPO against the targets.",
	)
	return steps
}

func drills(d *Decision, t *topology.Topology) []drill {
	in := d.Inputs
	primary, secondary := in.Regions[0], in.Regions[1]
	targets := fmt.Sprintf("RTO ≤ %s and RPO ≤ %s; no client error that a retry inside the system could hide", dur(in.RTO), dur(in.RPO))
	ds := []drill{
		{"Region outage", "kill every process of " + primary + " (gateway, store, model servers)", targets, "monthly, and before each release"},
		{"Region freeze", "blackhole every link to " + primary + " (linkproxy): processes alive, nothing answers",
			targets + "; " + primary + " stops writing within its lease (" + t.Controller.LeaseTTL.String() + ")", "monthly"},
	}
	if d.Replication == "sync" {
		ds = append(ds,
			drill{"Replication link cut", "cut the link between the regions (linkproxy)",
				fmt.Sprintf("writes fail after the sync timeout and none is acknowledged without a copy; inference keeps working in %s", primary), "quarterly"},
			drill{"Replication latency", "add 30ms one-way latency to the replication link",
				"write latency grows by one round trip (about 60ms) and stays within client timeouts", "quarterly"})
	} else if d.Pattern != topology.HotCold {
		ds = append(ds,
			drill{"Replication link cut", "cut the link between the regions (linkproxy)",
				"replication lag grows and its alert fires before the lag reaches the RPO (" + dur(in.RPO) + ")", "quarterly"})
	}
	ds = append(ds,
		drill{"429 storm", "the model backends in " + primary + " answer 429 with Retry-After",
			"the gateway cools backends down and retries; the edge moves traffic only when " + primary + "'s /readyz fails", "quarterly"},
		drill{"Version drift", secondary + " reports another model version",
			"drift reports NOT_READY and the controller refuses an automatic failover to " + secondary, "on every deployment"},
	)
	if d.Pattern == topology.HotCold {
		ds = append(ds, drill{"Cold start", "deploy and start " + secondary + " from IaC with a restored backup",
			"the measured recovery is within the RTO; rerun plan if it exceeds the assumed " + dur(ColdStartRTO), "quarterly"})
	}
	ds = append(ds, drill{"Failback", "after the outage drill, fail back to " + primary,
		"no acknowledged write lost; the roles swap; clients see no errors", "with every outage drill"})
	return ds
}
