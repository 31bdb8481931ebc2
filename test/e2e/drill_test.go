package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/understudy/understudy/internal/netns"
)

// drillTopology: two regions with link proxies on every link, sync
// replication, a fast controller (detection within about 1s, lease 2s) and
// a short cooldown, so the drills can follow one another on one `up`.
const drillTopology = `version: 1
name: e2e-drill
pattern: hot-warm
targets: {rto: %[4]s, rpo: 0s}
keys: [{name: e2e, key: %[1]s}]
admin: {token: %[2]s}
deployments: [{name: %[3]s, version: "2025-04-14"}]
regions:
  - name: eastus2
    listen: 127.0.0.1:0
    backends: {%[3]s: [{kind: sim, url: "http://127.0.0.1:0", sim: {ttft: 10ms}}]}
  - name: centralus
    listen: 127.0.0.1:0
    backends: {%[3]s: [{kind: sim, url: "http://127.0.0.1:0", sim: {ttft: 10ms}}]}
replication: {mode: sync, secret: rep-e2e-0123456789abcdef, sync_timeout: 2s}
gateway: {access_log: false}
edge: {listen: 127.0.0.1:0, attempt_timeout: 1s, eject_base: 500ms, eject_max: 2s}
probes: {interval: 500ms, timeout: 250ms, sample_size: 3, successful_samples_required: 2}
controller: {listen: 127.0.0.1:0, lease_ttl: 2s, failures: 3, window: 2s, probe_interval: 250ms, cooldown: 1s}
links: {enabled: true}
`

// drillReport is the part of report.json the tests read.
type drillReport struct {
	Scenario string   `json:"scenario"`
	Result   string   `json:"result"`
	Reasons  []string `json:"reasons"`
	Notes    []string `json:"notes"`
	Primary  string   `json:"primary"`
	Standby  string   `json:"standby"`
	Targets  struct {
		RTOMs float64 `json:"rto_ms"`
	} `json:"targets"`
	Fault struct {
		Detail []string `json:"detail"`
		Method string   `json:"method"`
	} `json:"fault"`
	Load struct {
		Total struct {
			Requests int `json:"requests"`
		} `json:"total"`
		Acked int `json:"acked_turns"`
	} `json:"load"`
	Measures struct {
		DetectMs      *float64 `json:"detect_ms"`
		EdgeNoticedMs *float64 `json:"edge_noticed_ms"`
		DeclaredMs    *float64 `json:"controller_declared_down_ms"`
		RerouteMs     *float64 `json:"reroute_ms"`
		RerouteRegion string   `json:"reroute_region"`
		RTOMs         *float64 `json:"rto_ms"`
		RTOMet        bool     `json:"rto_met"`
		Interrupted   bool     `json:"interrupted"`
		LostItems     int      `json:"lost_items"`
	} `json:"measures"`
	Errors struct {
		Total  int            `json:"total"`
		ByKind map[string]int `json:"by_kind"`
	} `json:"errors"`
	RPO struct {
		AfterFailover *struct {
			Items int `json:"items"`
			Lost  int `json:"lost_items"`
		} `json:"after_failover"`
		Final *struct {
			Items      int `json:"items"`
			Lost       int `json:"lost_items"`
			Unverified int `json:"unverified_items"`
		} `json:"final"`
	} `json:"rpo"`
	Phases []struct {
		Name     string `json:"name"`
		Requests int    `json:"requests"`
		Latency  map[string]struct {
			Count int     `json:"count"`
			P50   float64 `json:"p50_ms"`
		} `json:"latency"`
	} `json:"phases"`
	Failover *struct {
		To     string `json:"to"`
		Status string `json:"status"`
	} `json:"failover"`
	Failback *struct {
		To     string `json:"to"`
		Status string `json:"status"`
	} `json:"failback"`
	Drift []struct {
		Phase   string `json:"phase"`
		Region  string `json:"region"`
		Verdict string `json:"verdict"`
		Version bool   `json:"version_drift"`
		Output  string `json:"output"`
	} `json:"drift"`
	Timeline []struct {
		Kind string `json:"kind"`
	} `json:"timeline"`
	Series []json.RawMessage `json:"series"`
}

func (r drillReport) phase(name string) (p50 map[string]float64, ok bool) {
	for _, p := range r.Phases {
		if p.Name == name {
			p50 = map[string]float64{}
			for k, v := range p.Latency {
				p50[k] = v.P50
			}
			return p50, true
		}
	}
	return nil, false
}

func (r drillReport) has(kind string) bool {
	for _, e := range r.Timeline {
		if e.Kind == kind {
			return true
		}
	}
	return false
}

// runDrillCmd runs `understudy drill` and returns its exit code, output and
// report.
func runDrillCmd(t *testing.T, topo, scenario string, extra ...string) (int, string, drillReport) {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"drill", "-f", topo, "--scenario", scenario, "--duration", "12s", "--report", dir}, extra...)
	out, err := exec.Command(binary(t), args...).CombinedOutput()
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("drill %s: %v", scenario, err)
	}
	var rep drillReport
	data, rerr := os.ReadFile(filepath.Join(dir, "report.json"))
	if rerr != nil {
		t.Fatalf("drill %s wrote no report (exit %d): %v\n%s", scenario, code, rerr, out)
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	page, _ := os.ReadFile(filepath.Join(dir, "report.html"))
	if !strings.Contains(string(md), "# Drill report: "+scenario+" — "+rep.Result) || !strings.Contains(string(md), "| Time to detect |") {
		t.Errorf("report.md lacks its title or measures:\n%s", md)
	}
	if !strings.Contains(string(page), "<svg") || !strings.Contains(string(page), rep.Result) {
		t.Errorf("report.html lacks the timeline chart or the result")
	}
	// Self-contained: no scripts, stylesheets, images or links to fetch.
	if m := regexp.MustCompile(`(?i)<(script|link|img|iframe)\b|\b(src|href)\s*=`).Find(page); m != nil {
		t.Errorf("report.html refers to an external asset: %q", m)
	}
	if rep.Scenario != scenario || rep.Load.Total.Requests == 0 || rep.Load.Acked == 0 || len(rep.Series) == 0 {
		t.Errorf("report of %s: scenario %q, %d requests, %d acked, %d seconds of series", scenario, rep.Scenario, rep.Load.Total.Requests, rep.Load.Acked, len(rep.Series))
	}
	if rep.RPO.Final == nil || rep.RPO.Final.Items == 0 || rep.RPO.Final.Lost != 0 || rep.RPO.Final.Unverified != 0 {
		t.Errorf("final RPO check of %s: %+v", scenario, rep.RPO.Final)
	}
	for _, p := range []string{"before", "during", "after"} {
		if _, ok := rep.phase(p); !ok {
			t.Errorf("report of %s has no %s phase", scenario, p)
		}
	}
	if !rep.has("inject") || !rep.has("restore") {
		t.Errorf("timeline of %s lacks the injection or the restore", scenario)
	}
	if t.Failed() {
		t.Logf("drill output:\n%s", out)
	}
	return code, string(out), rep
}

// TestDrills runs every scenario against one `up`, each asserting its
// report, then a drill whose RTO target cannot be met, which must fail.
func TestDrills(t *testing.T) {
	if testing.Short() {
		t.Skip("runs eight drills of about 15-25s each")
	}
	// As root (always in CI) up runs each region in a network namespace
	// and the partition takes its veth down; otherwise it cuts link
	// proxies.
	wantMethod := "linkproxy"
	if os.Getenv("CI") == "true" || netns.Available(t.Context(), fmt.Sprintf("us-e2e-%d-probe", os.Getpid())) == nil {
		wantMethod = "netns"
	}
	var upPid int
	t.Cleanup(func() { // runs after up has stopped (cleanups run last-registered first)
		names, err := netns.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if pid, ok := netns.Owner(n, "us-"); ok && pid == upPid {
				t.Errorf("up (pid %d) left namespace %s behind", upPid, n)
			}
		}
	})
	dir, st := startUp(t, fmt.Sprintf(drillTopology, e2eKey, e2eAdmin, e2eModel, "10s"), 6)
	upPid = st.Pid
	topo := filepath.Join(dir, "topology.yaml")
	if st.Isolation != wantMethod || (wantMethod == "netns") != (len(st.Namespaces) == 2) {
		t.Fatalf("up isolates with %q (namespaces %+v), want %s", st.Isolation, st.Namespaces, wantMethod)
	}

	failover := func(t *testing.T, rep drillReport) {
		t.Helper()
		m := rep.Measures
		if rep.Result != "SUCCEEDED" || rep.Primary != "eastus2" || rep.Standby != "centralus" {
			t.Fatalf("result %s (%v), primary %s standby %s", rep.Result, rep.Reasons, rep.Primary, rep.Standby)
		}
		if rep.Failover == nil || rep.Failover.Status != "completed" || rep.Failover.To != "centralus" {
			t.Errorf("failover %+v", rep.Failover)
		}
		if rep.Failback == nil || rep.Failback.Status != "completed" || rep.Failback.To != "eastus2" {
			t.Errorf("failback %+v", rep.Failback)
		}
		if m.DetectMs == nil || m.DeclaredMs == nil || m.RerouteMs == nil || m.RerouteRegion != "centralus" {
			t.Errorf("detection %v, declared down %v, reroute %v from %q", m.DetectMs, m.DeclaredMs, m.RerouteMs, m.RerouteRegion)
		}
		if m.RTOMs == nil || !m.RTOMet || !m.Interrupted || *m.RTOMs <= 0 || *m.RTOMs > rep.Targets.RTOMs {
			t.Errorf("RTO %v met %v interrupted %v (target %v ms)", m.RTOMs, m.RTOMet, m.Interrupted, rep.Targets.RTOMs)
		}
		if m.DetectMs != nil && m.RTOMs != nil && *m.DetectMs > *m.RTOMs {
			t.Errorf("detected (%vms) after the RTO (%vms)", *m.DetectMs, *m.RTOMs)
		}
		if a := rep.RPO.AfterFailover; a == nil || a.Items == 0 || a.Lost != 0 || m.LostItems != 0 {
			t.Errorf("RPO after failover %+v, lost %d", a, m.LostItems)
		}
		if !rep.has("declared_down") || !rep.has("primary") || !rep.has("recovered") {
			t.Errorf("timeline lacks the detection, the promotion or the recovery")
		}
		t.Logf("%s: detect %.0fms, reroute %.0fms, RTO %.0fms, %d errors %v, %d acked turns, 0 lost",
			rep.Scenario, *m.DetectMs, *m.RerouteMs, *m.RTOMs, rep.Errors.Total, rep.Errors.ByKind, rep.Load.Acked)
	}
	quiet := func(t *testing.T, rep drillReport) {
		t.Helper()
		if rep.Result != "SUCCEEDED" || rep.Measures.RTOMs == nil || !rep.Measures.RTOMet {
			t.Fatalf("result %s (%v), RTO %v", rep.Result, rep.Reasons, rep.Measures.RTOMs)
		}
	}

	for _, tc := range []struct {
		scenario string
		extra    []string
		check    func(t *testing.T, rep drillReport)
	}{
		{"slow-link", []string{"--link-latency", "100ms"}, func(t *testing.T, rep drillReport) {
			quiet(t, rep)
			before, _ := rep.phase("before")
			during, _ := rep.phase("during")
			// Sync replication waits at least one inter-region round trip
			// (200ms) per turn; the "before" p50 is not compared: on a busy
			// machine it varies more than the delay.
			if during["agent"] < 200 {
				t.Errorf("agent turn p50 %vms before, %vms with 100ms each way", before["agent"], during["agent"])
			}
			if !strings.Contains(strings.Join(rep.Fault.Detail, " "), "eastus2-to-centralus") {
				t.Errorf("fault %v", rep.Fault.Detail)
			}
		}},
		// Below the edge's 1s attempt timeout: slower is an outage to the
		// edge (the drill then fails: agent turns cannot move).
		{"slow-backend", []string{"--backend-latency", "500ms"}, func(t *testing.T, rep drillReport) {
			quiet(t, rep)
			before, _ := rep.phase("before")
			during, _ := rep.phase("during")
			if during["chat"] < 500 || before["chat"] > 250 || during["agent"] < 500 {
				t.Errorf("p50 before %v, with a 500ms backend %v", before, during)
			}
		}},
		{"version-drift", nil, func(t *testing.T, rep drillReport) {
			quiet(t, rep)
			// After the restore other checks may still be UNKNOWN (these
			// sims advertise no quota), but the version agrees again.
			if len(rep.Drift) != 2 || rep.Drift[0].Phase != "during" || rep.Drift[0].Region != "centralus" || rep.Drift[0].Verdict != "NOT_READY" ||
				!rep.Drift[0].Version || rep.Drift[1].Phase != "after" || rep.Drift[1].Version || rep.Drift[1].Verdict == "NOT_READY" {
				t.Errorf("drift %+v, want centralus NOT_READY with a version drift during the fault and none after", rep.Drift)
			}
		}},
		{"backend-429-storm", nil, func(t *testing.T, rep drillReport) {
			if rep.Result != "SUCCEEDED" || rep.Measures.DetectMs == nil || rep.Measures.EdgeNoticedMs == nil {
				t.Fatalf("result %s (%v), detect %v", rep.Result, rep.Reasons, rep.Measures.DetectMs)
			}
			// The storm makes the primary's readiness fail: the edge moves
			// stateless traffic at once, and whatever the controller
			// decided, the drill ends with the original primary.
			if rep.Measures.RerouteMs == nil || rep.Failover != nil && (rep.Failback == nil || rep.Failback.Status != "completed") {
				t.Errorf("reroute %v, failover %+v, failback %+v", rep.Measures.RerouteMs, rep.Failover, rep.Failback)
			}
		}},
		{"region-outage", nil, failover},
		{"region-freeze", nil, failover},
		{"partition", nil, func(t *testing.T, rep drillReport) {
			failover(t, rep)
			want := "partition eastus2 (linkproxy): cut links edge-to-eastus2, controller-to-eastus2, eastus2-to-controller, eastus2-to-centralus, centralus-to-eastus2"
			if wantMethod == "netns" {
				want = fmt.Sprintf("partition eastus2 (netns): set eth0 in namespace us-%d-eastus2 (", upPid)
			}
			if d := strings.Join(rep.Fault.Detail, " "); rep.Fault.Method != wantMethod || !strings.Contains(d, want) || !strings.Contains(d, "heal eastus2 ("+wantMethod+")") {
				t.Errorf("fault by %q: %q, want %s: %q", rep.Fault.Method, d, wantMethod, want)
			}
			if note := strings.Join(rep.Notes, " "); strings.Contains(note, "link proxies in user space") != (wantMethod == "linkproxy") {
				t.Errorf("notes %q", note)
			}
		}},
	} {
		ok := t.Run(tc.scenario, func(t *testing.T) {
			code, out, rep := runDrillCmd(t, topo, tc.scenario, tc.extra...)
			if code != 0 {
				t.Errorf("exit %d\n%s", code, out)
			}
			tc.check(t, rep)
		})
		if !ok {
			t.Fatalf("%s failed: the next drills would start from an unknown state", tc.scenario)
		}
	}

	// The same running topology judged against an RTO of 1ms: the drill
	// must fail, and still leave the topology as it found it.
	strict := filepath.Join(dir, "strict.yaml")
	if err := os.WriteFile(strict, fmt.Appendf(nil, drillTopology, e2eKey, e2eAdmin, e2eModel, "1ms"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, rep := runDrillCmd(t, strict, "region-outage")
	if code != 1 || rep.Result != "FAILED" || rep.Measures.RTOMet || !strings.Contains(strings.Join(rep.Reasons, "; "), "RTO target missed") {
		t.Fatalf("impossible RTO: exit %d, result %s, reasons %v\n%s", code, rep.Result, rep.Reasons, out)
	}
	if rep.Failback == nil || rep.Failback.Status != "completed" {
		t.Errorf("the failed drill did not fail back: %+v", rep.Failback)
	}
	if !strings.Contains(out, "drill region-outage FAILED") {
		t.Errorf("output lacks the verdict:\n%s", out)
	}
}
