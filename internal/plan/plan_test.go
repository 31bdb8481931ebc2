package plan

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/topology"
)

func inputs(rto, rpo time.Duration, budget Budget, opts ...func(*Inputs)) Inputs {
	in := Inputs{RTO: rto, RPO: rpo, Budget: budget}
	for _, o := range opts {
		o(&in)
	}
	in.Default()
	return in
}

func stateful(in *Inputs)         { in.StatefulAgents = true }
func latencySensitive(in *Inputs) { in.LatencySensitive = true }
func residency(r Residency) func(*Inputs) {
	return func(in *Inputs) { in.Residency = r }
}
func regions(a, b string) func(*Inputs) {
	return func(in *Inputs) { in.Regions = [2]string{a, b} }
}

func TestWarmEstimateIsTheTopologys(t *testing.T) {
	w := EstimateWarmFailover()
	tp := &topology.Topology{}
	tp.Default()
	if w.Total != tp.EstimatedRTO() || w.Total <= 0 {
		t.Fatalf("warm failover %v, topology estimates %v", w.Total, tp.EstimatedRTO())
	}
	if w.Detection+w.Lease+w.PromoteValidate != w.Total || w.PromoteValidate <= 0 {
		t.Errorf("parts %v + %v + %v do not add up to %v", w.Detection, w.Lease, w.PromoteValidate, w.Total)
	}
}

// Each case names the inputs that decide it.
func TestDecide(t *testing.T) {
	warm := EstimateWarmFailover().Total
	tests := []struct {
		name        string
		in          Inputs
		pattern     topology.Pattern
		replication string
		sku         string
		approval    bool
		conflicts   []string // each must appear in one conflict; none means no conflicts
		caveat      string   // must appear in one caveat when set
	}{
		{name: "RTO below the warm failover: hot-hot",
			in: inputs(warm-time.Second, 0, BudgetHigh), pattern: topology.HotHot, replication: "sync", sku: "GlobalStandard"},
		{name: "RTO equal to the warm failover: hot-warm",
			in: inputs(warm, 0, BudgetMedium), pattern: topology.HotWarm, replication: "sync", sku: "GlobalStandard"},
		{name: "RTO minutes, RPO 0: hot-warm sync",
			in: inputs(5*time.Minute, 0, BudgetMedium, stateful), pattern: topology.HotWarm, replication: "sync", sku: "GlobalStandard"},
		{name: "RTO hours, RPO above the backup interval: hot-cold async with approval",
			in: inputs(4*time.Hour, time.Hour, BudgetLow), pattern: topology.HotCold, replication: "async", sku: "GlobalStandard", approval: true},
		{name: "RTO at the cold start exactly, RPO at the backup interval exactly: hot-cold",
			in: inputs(ColdStartRTO, BackupInterval, BudgetLow), pattern: topology.HotCold, replication: "async", sku: "GlobalStandard", approval: true},
		{name: "RTO just below the cold start: hot-warm",
			in: inputs(ColdStartRTO-time.Minute, time.Hour, BudgetMedium), pattern: topology.HotWarm, replication: "async", sku: "GlobalStandard", approval: true},
		{name: "RTO hours but RPO 0: hot-warm sync (RPO decides)",
			in: inputs(8*time.Hour, 0, BudgetMedium), pattern: topology.HotWarm, replication: "sync", sku: "GlobalStandard", approval: true},
		{name: "RTO hours but RPO below the backup interval: hot-warm async",
			in: inputs(8*time.Hour, 5*time.Minute, BudgetMedium), pattern: topology.HotWarm, replication: "async", sku: "GlobalStandard", approval: true},
		{name: "stateful agents with an RTO only hot-hot meets: hot-hot, conflict for agent turns",
			in: inputs(2*time.Second, 0, BudgetHigh, stateful), pattern: topology.HotHot, replication: "sync", sku: "GlobalStandard",
			conflicts: []string{"cannot be met for agent turns"}},
		{name: "low budget, tight RTO: conflict, the RTO wins",
			in: inputs(5*time.Second, 0, BudgetLow), pattern: topology.HotHot, replication: "sync", sku: "GlobalStandard",
			conflicts: []string{"Budget low pays for hot-cold (about 1.03× one region), but the targets need hot-hot: recommended hot-hot at about 1.32×"}},
		{name: "low budget, RTO minutes: conflict, hot-warm",
			in: inputs(5*time.Minute, 0, BudgetLow), pattern: topology.HotWarm, replication: "sync", sku: "GlobalStandard",
			conflicts: []string{"relax the targets to what hot-cold achieves: RTO 2h or more and RPO 15m or more"}},
		{name: "medium budget, tight RTO: conflict",
			in: inputs(3*time.Second, time.Minute, BudgetMedium), pattern: topology.HotHot, replication: "async", sku: "GlobalStandard",
			conflicts: []string{"Budget medium pays for hot-warm"}},
		{name: "high budget, generous targets: still the cheapest",
			in: inputs(12*time.Hour, time.Hour, BudgetHigh), pattern: topology.HotCold, replication: "async", sku: "GlobalStandard", approval: true},
		{name: "latency-sensitive, high budget, stateless: upgraded to hot-hot, provisioned",
			in: inputs(5*time.Minute, 0, BudgetHigh, latencySensitive), pattern: topology.HotHot, replication: "sync", sku: "GlobalProvisionedManaged"},
		{name: "latency-sensitive, high budget, stateful: not upgraded",
			in: inputs(5*time.Minute, 0, BudgetHigh, latencySensitive, stateful), pattern: topology.HotWarm, replication: "sync", sku: "GlobalProvisionedManaged",
			caveat: "Not upgraded to hot-hot for latency"},
		{name: "latency-sensitive, medium budget: hot-warm, hot-hot named as the option",
			in: inputs(5*time.Minute, 0, BudgetMedium, latencySensitive), pattern: topology.HotWarm, replication: "sync", sku: "GlobalProvisionedManaged",
			caveat: "Hot-hot would also serve each client from its nearest region"},
		{name: "latency-sensitive, low budget: provisioned conflict",
			in: inputs(4*time.Hour, time.Hour, BudgetLow, latencySensitive), pattern: topology.HotCold, replication: "async", sku: "GlobalProvisionedManaged", approval: true,
			conflicts: []string{"Latency sensitivity needs provisioned throughput"}, caveat: "buys the standby's PTUs on failover"},
		{name: "residency region: Standard",
			in: inputs(5*time.Minute, 0, BudgetMedium, residency(ResidencyRegion)), pattern: topology.HotWarm, replication: "sync", sku: "Standard",
			caveat: "the residency policy must allow both regions"},
		{name: "residency region, latency-sensitive: regional provisioned",
			in: inputs(5*time.Minute, 0, BudgetMedium, residency(ResidencyRegion), latencySensitive), pattern: topology.HotWarm, replication: "sync", sku: "ProvisionedManaged"},
		{name: "residency datazone: Data Zone Standard",
			in: inputs(5*time.Minute, 0, BudgetMedium, residency(ResidencyDataZone)), pattern: topology.HotWarm, replication: "sync", sku: "DataZoneStandard"},
		{name: "residency datazone, latency-sensitive: Data Zone provisioned",
			in: inputs(5*time.Minute, 0, BudgetMedium, residency(ResidencyDataZone), latencySensitive), pattern: topology.HotWarm, replication: "sync", sku: "DataZoneProvisionedManaged"},
		{name: "residency datazone across zones: conflict",
			in: inputs(5*time.Minute, 0, BudgetMedium, residency(ResidencyDataZone), regions("eastus2", "westeurope")), pattern: topology.HotWarm, replication: "sync", sku: "DataZoneStandard",
			conflicts: []string{"eastus2 (US) and westeurope (EU) are in different data zones"}},
		{name: "residency datazone, unknown region: a caveat, not a guess",
			in: inputs(5*time.Minute, 0, BudgetMedium, residency(ResidencyDataZone), regions("eastus2", "marsnorth")), pattern: topology.HotWarm, replication: "sync", sku: "DataZoneStandard",
			caveat: "Confirm that eastus2 and marsnorth are in the same data zone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.in.Validate(); err != nil {
				t.Fatalf("inputs: %v", err)
			}
			d := Decide(tc.in)
			if d.Pattern != tc.pattern || d.Replication != tc.replication || d.Deployment.SKU != tc.sku || d.Approval != tc.approval {
				t.Errorf("got %s, %s, %s, approval %v; want %s, %s, %s, approval %v",
					d.Pattern, d.Replication, d.Deployment.SKU, d.Approval, tc.pattern, tc.replication, tc.sku, tc.approval)
			}
			if len(d.Conflicts) != len(tc.conflicts) {
				t.Errorf("conflicts = %q, want %d", d.Conflicts, len(tc.conflicts))
			}
			for _, want := range tc.conflicts {
				if !slices.ContainsFunc(d.Conflicts, func(c string) bool { return strings.Contains(c, want) }) {
					t.Errorf("no conflict mentions %q; conflicts %q", want, d.Conflicts)
				}
			}
			if tc.caveat != "" && !slices.ContainsFunc(d.Caveats, func(c string) bool { return strings.Contains(c, tc.caveat) }) {
				t.Errorf("no caveat mentions %q; caveats %q", tc.caveat, d.Caveats)
			}
			// A verdict is missed exactly when a conflict says a target cannot be met.
			missed := false
			for _, v := range d.Verdicts() {
				missed = missed || !v.Met
			}
			if wantMiss := slices.ContainsFunc(d.Conflicts, func(c string) bool { return strings.Contains(c, "cannot be met") }); missed != wantMiss {
				t.Errorf("a target is missed: %v; a conflict says so: %v", missed, wantMiss)
			}
		})
	}
}

func TestRulesFireInOrderAndExplain(t *testing.T) {
	order := make([]string, len(rules))
	for i, r := range rules {
		order[i] = r.name
	}
	for _, in := range []Inputs{
		inputs(5*time.Minute, 0, BudgetLow, stateful, residency(ResidencyDataZone)),
		inputs(2*time.Second, 0, BudgetHigh, latencySensitive),
		inputs(6*time.Hour, time.Hour, BudgetMedium),
	} {
		d := Decide(in)
		last := -1
		for _, r := range d.Reasons {
			i := slices.Index(order, r.Rule)
			if i <= last {
				t.Errorf("%s: rule %s fired out of order: %v", in.Command(), r.Rule, d.Reasons)
			}
			last = i
			if r.Text == "" {
				t.Errorf("%s: rule %s fired without a reason", in.Command(), r.Rule)
			}
		}
		// The rules that decide the pattern, the replication and the
		// deployment type always fire.
		for _, must := range []string{"rto", "rpo", "residency", "budget", "approval"} {
			if !slices.ContainsFunc(d.Reasons, func(r Reason) bool { return r.Rule == must }) {
				t.Errorf("%s: rule %s did not fire", in.Command(), must)
			}
		}
	}
}

func TestCost(t *testing.T) {
	tests := []struct {
		pattern     topology.Pattern
		provisioned bool
		share       float64
		want        float64
	}{
		{topology.HotHot, false, 0.7, 1.32},
		{topology.HotWarm, false, 0.7, 1.17},
		{topology.HotCold, false, 0.7, 1.03},
		{topology.HotHot, true, 0.7, 2.02},
		{topology.HotWarm, true, 0.7, 1.87},
		{topology.HotCold, true, 0.7, 1.03},
		{topology.HotHot, true, 1, 2.02},
		{topology.HotHot, false, 0.5, 1.52},
		{topology.HotWarm, false, 0.5, 1.27},
	}
	for _, tc := range tests {
		c := costOf(tc.pattern, tc.provisioned, tc.share)
		if c.Multiplier != tc.want {
			t.Errorf("%s provisioned %v share %v: %.2f×, want %.2f×", tc.pattern, tc.provisioned, tc.share, c.Multiplier, tc.want)
		}
		if c.Lines[0].Value != 1 || len(c.Assumptions) == 0 {
			t.Errorf("%s: cost must start from one region and state assumptions: %+v", tc.pattern, c)
		}
	}
	// The seed guide's order: hot-hot costs most, hot-cold least.
	for _, prov := range []bool{false, true} {
		hh, hw, hc := costOf(topology.HotHot, prov, 0.7), costOf(topology.HotWarm, prov, 0.7), costOf(topology.HotCold, prov, 0.7)
		if !(hh.Multiplier > hw.Multiplier && hw.Multiplier > hc.Multiplier && hc.Multiplier > 1) {
			t.Errorf("provisioned %v: %.2f, %.2f, %.2f are not in cost order", prov, hh.Multiplier, hw.Multiplier, hc.Multiplier)
		}
	}
}

func TestInputsValidate(t *testing.T) {
	ok := inputs(5*time.Minute, 0, BudgetMedium)
	tests := []struct {
		name   string
		change func(*Inputs)
		flag   string
	}{
		{"zero RTO", func(in *Inputs) { in.RTO = 0 }, "--rto"},
		{"negative RPO", func(in *Inputs) { in.RPO = -time.Second }, "--rpo"},
		{"unknown budget", func(in *Inputs) { in.Budget = "cheap" }, "--budget"},
		{"unknown residency", func(in *Inputs) { in.Residency = "moon" }, "--residency"},
		{"bad name", func(in *Inputs) { in.Name = "a b" }, "--name"},
		{"bad region", func(in *Inputs) { in.Regions[1] = "" }, "--regions"},
		{"same regions", func(in *Inputs) { in.Regions[1] = in.Regions[0] }, "--regions"},
		{"model share above 1", func(in *Inputs) { in.ModelShare = 1.5 }, "--model-share"},
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid inputs rejected: %v", err)
	}
	for _, tc := range tests {
		in := ok
		tc.change(&in)
		err := in.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.flag+":") {
			t.Errorf("%s: error %v, want one naming %s", tc.name, err, tc.flag)
		}
	}
}

func TestFlagValues(t *testing.T) {
	var b Budget
	for _, s := range []string{"low", "Medium", "HIGH"} {
		if err := b.Set(s); err != nil || string(b) != strings.ToLower(s) {
			t.Errorf("Set(%q) = %v, %q", s, err, b)
		}
	}
	if err := b.Set("cheap"); err == nil {
		t.Error("budget cheap accepted")
	}
	var r Residency
	for _, s := range []string{"region", "datazone", "global"} {
		if err := r.Set(s); err != nil || string(r) != s {
			t.Errorf("Set(%q) = %v, %q", s, err, r)
		}
	}
	if err := r.Set("eu"); err == nil {
		t.Error("residency eu accepted")
	}
	if _, err := ParseRegions("eastus2"); err == nil {
		t.Error("one region accepted")
	}
	if got, err := ParseRegions("westeurope, northeurope"); err != nil || got != [2]string{"westeurope", "northeurope"} {
		t.Errorf("ParseRegions = %v, %v", got, err)
	}
}

func TestDur(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0", 6 * time.Second: "6s", 5 * time.Minute: "5m", 2 * time.Hour: "2h",
		90 * time.Minute: "1h30m", 1500 * time.Millisecond: "1.5s", 5*time.Minute + 3*time.Second: "5m3s",
	} {
		if got := dur(d); got != want {
			t.Errorf("dur(%v) = %q, want %q", d, got, want)
		}
	}
}

// The starter topology must load with the real topology pipeline and say
// what the decision says, for every shape of decision.
func TestStarterTopologyLoads(t *testing.T) {
	env := map[string]string{
		"UNDERSTUDY_KEY":                "sk-test-0123456789abcdef",
		"UNDERSTUDY_ADMIN_TOKEN":        "adm-test-0123456789abcdef",
		"UNDERSTUDY_REPLICATION_SECRET": "rep-test-0123456789abcdef",
	}
	for _, in := range []Inputs{
		inputs(5*time.Second, 0, BudgetHigh),
		inputs(2*time.Second, 0, BudgetHigh, stateful, latencySensitive),
		inputs(5*time.Minute, 0, BudgetMedium, stateful, residency(ResidencyDataZone)),
		inputs(45*time.Minute, 30*time.Second, BudgetMedium, residency(ResidencyRegion), latencySensitive),
		inputs(6*time.Hour, time.Hour, BudgetLow, regions("westeurope", "northeurope"), func(in *Inputs) { in.Name = "claims-bot" }),
	} {
		t.Run(in.Command(), func(t *testing.T) {
			d := Decide(in)
			var b bytes.Buffer
			if err := Topology(&b, d); err != nil {
				t.Fatal(err)
			}
			tp, err := topology.Parse(&b)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if err := tp.ExpandSecrets(func(k string) string { return env[k] }); err != nil {
				t.Fatal(err)
			}
			tp.Default()
			if err := tp.Validate(); err != nil {
				t.Fatalf("validate: %v", err)
			}
			if tp.Name != in.Name || tp.Pattern != d.Pattern || tp.Replication.Mode != d.Replication ||
				tp.Deployments[0].SKU != d.Deployment.SKU || tp.Controller.Approval != d.Approval ||
				tp.Targets.RTO.D() != in.RTO || tp.Targets.RPO.D() != in.RPO || tp.Replication.DegradeToAsync {
				t.Errorf("topology says %s %s %s approval %v rto %s rpo %s; decision %s %s %s approval %v",
					tp.Pattern, tp.Replication.Mode, tp.Deployments[0].SKU, tp.Controller.Approval, tp.Targets.RTO, tp.Targets.RPO,
					d.Pattern, d.Replication, d.Deployment.SKU, d.Approval)
			}
			if got := tp.RegionNames(); got[0] != in.Regions[0] || tp.Primary().Name != in.Regions[0] || len(got) != 2 {
				t.Errorf("regions %v, primary %s; want %v", got, tp.Primary().Name, in.Regions)
			}
			wantRouting := topology.RoutePriority
			if d.Pattern == topology.HotHot {
				wantRouting = topology.RouteLatency
				if tp.Regions[0].Priority != tp.Regions[1].Priority {
					t.Error("hot-hot regions must share a priority")
				}
			}
			if tp.Edge.Routing != wantRouting {
				t.Errorf("edge routing %s, want %s", tp.Edge.Routing, wantRouting)
			}
			// The estimate in the design is the one `understudy validate` prints.
			if tp.EstimatedRTO() != d.Warm.Total {
				t.Errorf("topology estimates %v, plan %v", tp.EstimatedRTO(), d.Warm.Total)
			}
		})
	}
}

func TestWriteFiles(t *testing.T) {
	d := Decide(inputs(5*time.Minute, 0, BudgetMedium, stateful))
	dir := filepath.Join(t.TempDir(), "new", "dir")
	paths, err := WriteFiles(dir, d)
	if err != nil {
		t.Fatal(err)
	}
	for i, render := range []func(*bytes.Buffer) error{
		func(b *bytes.Buffer) error { return Design(b, d) },
		func(b *bytes.Buffer) error { return Topology(b, d) },
	} {
		var want bytes.Buffer
		if err := render(&want); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(paths[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s differs from the rendered document", paths[i])
		}
	}
	if filepath.Base(paths[0]) != "DESIGN.md" || filepath.Base(paths[1]) != "topology.yaml" {
		t.Errorf("wrote %v", paths)
	}
}

// docs/PLAN.md documents the rules in the order they run.
func TestDocListsRulesInOrder(t *testing.T) {
	doc, err := os.ReadFile("../../docs/PLAN.md")
	if err != nil {
		t.Fatal(err)
	}
	last := -1
	for i, r := range rules {
		at := bytes.Index(doc, []byte(fmt.Sprintf("%d. **%s**", i+1, r.name)))
		if at < 0 {
			t.Errorf("docs/PLAN.md does not document rule %d, %s", i+1, r.name)
			continue
		}
		if at < last {
			t.Errorf("docs/PLAN.md documents rule %s out of order", r.name)
		}
		last = at
	}
}
