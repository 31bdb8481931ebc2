package drift

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/understudy/understudy/internal/topology"
)

func TestCheckOptions(t *testing.T) {
	w := newWorld(t, nil)
	if _, err := Check(t.Context(), w.topo, Options{Checks: []string{"model", "vibes"}}); err == nil || !strings.Contains(err.Error(), `unknown check "vibes"`) {
		t.Errorf("unknown check: err = %v", err)
	}
	r := w.check(t, Options{Checks: []string{CheckConfig, CheckModel}})
	var names []string
	for _, c := range r.Region(east).Checks {
		names = append(names, c.Check)
	}
	if !slices.Equal(names, []string{CheckModel, CheckConfig}) {
		t.Errorf("checks run = %v, want model, config in registry order", names)
	}
	r = w.check(t, Options{})
	if len(r.Region(central).Checks) != len(Checks()) || r.Worst() != Ready || r.Topology != "drift-test" {
		t.Errorf("full run: %d checks, worst %s, topology %q", len(r.Region(central).Checks), r.Worst(), r.Topology)
	}
	if got := r.Region(central).Check(CheckReplication); got == nil || got.Status != Pass || r.Region(central).Role != "standby" {
		t.Errorf("centralus replication = %+v, role %q", got, r.Region(central).Role)
	}
	if got := r.Region(east).Check(CheckReplication); got == nil || !slices.Equal(got.Notes, []string{"primary at epoch 1"}) {
		t.Errorf("eastus2 replication = %+v", got)
	}
}

func TestWrongAdminToken(t *testing.T) {
	w := newWorld(t, nil)
	w.topo.Admin.Token = topology.NewSecret("not-the-token-0123456789")
	r := w.check(t, Options{Checks: []string{CheckDeployment}})
	if r.Worst() != Unknown {
		t.Fatalf("worst = %s, want UNKNOWN", r.Worst())
	}
	if u := r.Region(east).Checks[0].Unknown; len(u) != 1 || !strings.Contains(u[0], "HTTP 401: Admin endpoints need") {
		t.Errorf("unknown = %q", u)
	}
}

// TestSingleRegion: quota and replication have nothing to compare.
func TestSingleRegion(t *testing.T) {
	w := newWorld(t, func(tp *topology.Topology) { tp.Regions = tp.Regions[:1] })
	w.fake[east].set(func(f *fakeRegion) { f.state.Replication, f.state.SyncPeers = nil, nil })
	r := w.check(t, Options{})
	if len(r.Regions) != 1 || r.Verdict(east) != Ready {
		t.Fatalf("regions %d, verdict %s: %q", len(r.Regions), r.Verdict(east), r.Region(east).Reasons)
	}
	for _, c := range []string{CheckQuota, CheckReplication} {
		if n := r.Region(east).Check(c).Notes; len(n) != 1 || !strings.HasPrefix(n[0], "single region") {
			t.Errorf("%s notes = %q", c, n)
		}
	}
	if r.Verdict("nowhere") != Unknown {
		t.Error("a region the report does not cover must be UNKNOWN")
	}
}

// TestAgentsDirectory: definitions come from agents.dir; a missing
// directory is no agents, a broken file makes the check unknown.
func TestAgentsDirectory(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string // nil: no directory
		central Verdict
		want    string // finding or unknown reason
	}{
		{"no directory: applied agents are Removed", nil, NotReady, "Removed | centralus | agents | agent support"},
		{"one file", map[string]string{"support.yaml": "name: support\nmodel: gpt-4.1-mini\ninstructions: Help.\nmetadata:\n  version: \"1\"\n"},
			NotReady, "Removed | centralus | agents | agent triage"},
		{"broken file", map[string]string{"bad.yaml": "name: [\n"}, Unknown, "agent definitions:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, nil)
			dir := filepath.Join(t.TempDir(), "agents")
			if tt.files != nil {
				os.MkdirAll(dir, 0o755)
				for n, c := range tt.files {
					os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644)
				}
			}
			w.topo.Agents.Dir = dir
			r, err := Check(t.Context(), w.topo, Options{Checks: []string{CheckAgents}})
			if err != nil {
				t.Fatal(err)
			}
			if r.Verdict(central) != tt.central {
				t.Errorf("centralus = %s, want %s: %q", r.Verdict(central), tt.central, r.Region(central).Reasons)
			}
			var lines []string
			for _, f := range r.Findings {
				lines = append(lines, findingKey(f))
			}
			lines = append(lines, r.Region(central).Check(CheckAgents).Unknown...)
			if !strings.Contains(strings.Join(lines, "\n"), tt.want) {
				t.Errorf("findings and unknown %q lack %q", lines, tt.want)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	w := newWorld(t, nil)
	w.fake[central].set(func(f *fakeRegion) { f.backend(0).Reported.Version = "2024-01-01" })
	w.fake[east].set(func(f *fakeRegion) { f.backend(0).Reported.Version = "" })
	r := w.check(t, Options{Checks: []string{CheckModel}})
	r.Duration = 1500 * time.Millisecond
	want := `
# HELP understudy_drift_region_verdict Readiness of a region from the last drift check: 1 for its verdict (READY, NOT_READY, UNKNOWN), 0 for the others.
# TYPE understudy_drift_region_verdict gauge
understudy_drift_region_verdict{region="centralus",verdict="NOT_READY"} 1
understudy_drift_region_verdict{region="centralus",verdict="READY"} 0
understudy_drift_region_verdict{region="centralus",verdict="UNKNOWN"} 0
understudy_drift_region_verdict{region="eastus2",verdict="NOT_READY"} 0
understudy_drift_region_verdict{region="eastus2",verdict="READY"} 0
understudy_drift_region_verdict{region="eastus2",verdict="UNKNOWN"} 1
# HELP understudy_drift_findings Findings of the last drift check per region, check and kind (Added, Removed, NotEqual).
# TYPE understudy_drift_findings gauge
understudy_drift_findings{check="model",kind="Added",region="centralus"} 0
understudy_drift_findings{check="model",kind="Added",region="eastus2"} 0
understudy_drift_findings{check="model",kind="NotEqual",region="centralus"} 1
understudy_drift_findings{check="model",kind="NotEqual",region="eastus2"} 0
understudy_drift_findings{check="model",kind="Removed",region="centralus"} 0
understudy_drift_findings{check="model",kind="Removed",region="eastus2"} 0
# HELP understudy_drift_check_status Outcome of each drift check per region: 1 for its status (pass, fail, unknown), 0 for the others.
# TYPE understudy_drift_check_status gauge
understudy_drift_check_status{check="model",region="centralus",status="fail"} 1
understudy_drift_check_status{check="model",region="centralus",status="pass"} 0
understudy_drift_check_status{check="model",region="centralus",status="unknown"} 0
understudy_drift_check_status{check="model",region="eastus2",status="fail"} 0
understudy_drift_check_status{check="model",region="eastus2",status="pass"} 0
understudy_drift_check_status{check="model",region="eastus2",status="unknown"} 1
# HELP understudy_drift_last_check_duration_seconds How long the last drift check took.
# TYPE understudy_drift_last_check_duration_seconds gauge
understudy_drift_last_check_duration_seconds 1.5
`
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(Metrics(r))
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "understudy_drift_region_verdict",
		"understudy_drift_findings", "understudy_drift_check_status", "understudy_drift_last_check_duration_seconds"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(Metrics(r), "understudy_drift_last_check_timestamp_seconds"); n != 1 {
		t.Errorf("timestamp series: %d", n)
	}
}

func TestWriteText(t *testing.T) {
	w := newWorld(t, nil)
	w.fake[central].set(func(f *fakeRegion) { f.backend(0).Reported.Version = "2024-01-01" })
	w.fake[east].set(func(f *fakeRegion) {
		st := f.state.Replication[central]
		st.Connected, st.LastError = false, "dial tcp: connection refused"
		f.state.Replication[central] = st
	})
	w.topo.Agents.Dir = filepath.Join(t.TempDir(), "none")
	var b bytes.Buffer
	if err := WriteText(&b, w.check(t, Options{Agents: w.defs})); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"REGION     ROLE     VERDICT    FINDINGS  UNKNOWN",
		"eastus2    primary  READY      0         0",
		"centralus  standby  NOT_READY  2         0",
		"model         pass     FAIL",
		"NotEqual  centralus  model        gpt-4.1-mini/centralus-b1  version                2025-04-14  2024-01-01",
		"NotEqual  centralus  replication  -                          replication.connected  true        false",
		"centralus  replication.connected: dial tcp: connection refused",
		"verdict: NOT_READY: centralus",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestWriteTextUnreachable: a region that cannot be reached is one line
// for all its checks, not one per check.
func TestWriteTextUnreachable(t *testing.T) {
	w := newWorld(t, nil)
	w.fake[central].srv.Close()
	var b bytes.Buffer
	if err := WriteText(&b, w.check(t, Options{})); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	want := "  centralus deployment, model, sku_capacity, serving, quota, agents, config, replication: region unreachable: Get"
	if !strings.Contains(out, want) || strings.Count(out, "connection refused") != 1 || !strings.Contains(out, "verdict: UNKNOWN: eastus2, centralus") {
		t.Errorf("output:\n%s\nwant one line %q", out, want)
	}
	if got := w.check(t, Options{}).Region(central).Reasons; len(got) != 1 {
		t.Errorf("reasons = %q, want one", got)
	}
}

// TestReportJSON: the report round-trips through JSON (the --json output
// and what the controller may store).
func TestReportJSON(t *testing.T) {
	w := newWorld(t, nil)
	w.fake[central].set(func(f *fakeRegion) { f.backend(0).Reported.Version = "2024-01-01" })
	r := w.check(t, Options{})
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Verdict(central) != NotReady || len(back.Findings) != 1 || back.Findings[0] != r.Findings[0] || !back.At.Equal(r.At) {
		t.Errorf("round trip: %+v", back)
	}
	for _, key := range []string{`"kind":"NotEqual"`, `"verdict":"NOT_READY"`, `"expected":"2025-04-14"`, `"actual":"2024-01-01"`, `"field":"version"`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("JSON lacks %s", key)
		}
	}
}

// errTransport fails every request at once, without a network.
type errTransport struct{}

func (errTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no network in this test")
}

// TestCheckerInterval: Start checks at once and then every interval,
// exactly; Verdict is UNKNOWN before the first report; Close stops it.
func TestCheckerInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &topology.Topology{Name: "x", Admin: topology.Admin{Token: topology.NewSecret("a")},
			Regions: []topology.Region{{Name: east, URL: "http://127.0.0.1:1"}}}
		c := NewChecker(w, 30*time.Second, Options{HTTPClient: &http.Client{Transport: errTransport{}}}, nil)
		if c.Verdict(east) != Unknown {
			t.Fatal("verdict before any report")
		}
		if _, ok := c.Last(); ok {
			t.Fatal("a report before Start")
		}
		begin := time.Now()
		if err := c.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(t.Context()); err == nil {
			t.Error("second Start succeeded")
		}
		synctest.Wait()
		r, ok := c.Last()
		if !ok || !r.At.Equal(begin.UTC()) || c.Verdict(east) != Unknown {
			t.Fatalf("first report at %v (ok %v), want at once (%v)", r.At, ok, begin)
		}
		time.Sleep(30*time.Second - time.Nanosecond)
		synctest.Wait()
		if r, _ := c.Last(); !r.At.Equal(begin.UTC()) {
			t.Fatalf("second report at %v, before the interval", r.At)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if r, _ := c.Last(); !r.At.Equal(begin.Add(30 * time.Second).UTC()) {
			t.Fatalf("second report at %v, want %v", r.At, begin.Add(30*time.Second))
		}
		if n := testutil.CollectAndCount(c, "understudy_drift_region_verdict"); n != 3 {
			t.Errorf("checker exports %d verdict series, want 3", n)
		}
		if err := c.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if r, _ := c.Last(); !r.At.Equal(begin.Add(30 * time.Second).UTC()) {
			t.Errorf("a check ran after Close: %v", r.At)
		}
	})
}

// TestReadyCheck: the controller's hook refuses only NOT_READY regions,
// from the last report.
func TestReadyCheck(t *testing.T) {
	w := newWorld(t, nil)
	w.fake[central].set(func(f *fakeRegion) { f.backend(0).Reported.Version = "2024-01-01" })
	w.fake[east].set(func(f *fakeRegion) { f.backend(0).Reported.Version = "" })
	c := NewChecker(w.topo, time.Minute, Options{Agents: w.defs}, nil)
	if ok, reason := c.ReadyCheck(t.Context(), central); !ok || reason != "" {
		t.Errorf("before any report: %v %q", ok, reason)
	}
	if _, err := c.Step(t.Context()); err != nil {
		t.Fatal(err)
	}
	ok, reason := c.ReadyCheck(t.Context(), central)
	if ok || !strings.Contains(reason, "centralus is NOT_READY: model: NotEqual gpt-4.1-mini/centralus-b1 version: expected 2025-04-14, actual 2024-01-01") {
		t.Errorf("NOT_READY standby: %v %q", ok, reason)
	}
	if ok, reason := c.ReadyCheck(t.Context(), east); !ok || reason != "" {
		t.Errorf("UNKNOWN primary: %v %q", ok, reason)
	}
}

// memTransport serves each request with the handler of its host, in
// memory: a synctest bubble can wait on it, unlike on a socket.
type memTransport map[string]http.Handler

func (m memTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	h, ok := m[r.URL.Host]
	if !ok {
		return nil, errors.New("no such host: " + r.URL.Host)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	res := rec.Result()
	res.Request = r
	return res, nil
}

// TestReadyCheckRechecks: a refusal from a report a second old or more
// has the running checker check again at once, and the fresh verdict
// decides; a refusal from a fresher report does not.
func TestReadyCheckRechecks(t *testing.T) {
	w := newWorld(t, nil) // its servers live outside the bubble; the checker reaches them in memory
	mem := memTransport{}
	for _, f := range w.fake {
		mem[strings.TrimPrefix(f.srv.URL, "http://")] = f
	}
	w.fake[central].set(func(f *fakeRegion) { f.backend(0).Reported.Version = "2024-01-01" })
	synctest.Test(t, func(t *testing.T) {
		c := NewChecker(w.topo, time.Hour, Options{Agents: w.defs, HTTPClient: &http.Client{Transport: mem}}, nil)
		begin := time.Now()
		if err := c.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		synctest.Wait()
		if ok, _ := c.ReadyCheck(t.Context(), central); ok {
			t.Fatal("NOT_READY standby accepted")
		}
		synctest.Wait()
		if r, _ := c.Last(); !r.At.Equal(begin.UTC()) {
			t.Fatalf("a refusal from a fresh report checked again (report at %v)", r.At)
		}

		w.fake[central].set(func(f *fakeRegion) { f.backend(0).Reported.Version = "2025-04-14" })
		time.Sleep(recheck)
		if ok, _ := c.ReadyCheck(t.Context(), central); ok {
			t.Fatal("accepted before a new report")
		}
		synctest.Wait()
		if r, _ := c.Last(); !r.At.Equal(begin.Add(recheck).UTC()) {
			t.Fatalf("report at %v after the refusal, want a fresh one at %v", r.At, begin.Add(recheck))
		}
		if ok, reason := c.ReadyCheck(t.Context(), central); !ok {
			t.Errorf("ready standby refused after the recheck: %s", reason)
		}
	})
}

// TestConfigDiffDetail: the config finding names the paths that differ.
func TestConfigDiffDetail(t *testing.T) {
	w := newWorld(t, nil)
	w.topo.Deployments[0].Timeouts.Total = topology.Duration(time.Minute)
	w.topo.Region(central).Backends[dep][0].Weight = 7
	r := w.check(t, Options{Checks: []string{CheckConfig}})
	want := []string{
		`deployments[gpt-4.1-mini].timeouts.total: file "1m0s", region "2m0s"`,
		`deployments[gpt-4.1-mini].backends[centralus-b1].weight: file 7, region 1`,
	}
	if len(r.Findings) != 2 || r.Findings[0].Detail != want[0] || r.Findings[1].Detail != want[1]+"; "+want[0] {
		t.Errorf("details:\n%q\n%q\nwant %q", r.Findings[0].Detail, r.Findings[1].Detail, want)
	}
}

func TestUseAddresses(t *testing.T) {
	file := &topology.Topology{Regions: []topology.Region{
		{Name: east, Listen: "127.0.0.1:0", URL: "http://127.0.0.1:0", Backends: map[string][]topology.Backend{dep: {
			{Name: "s", Kind: topology.KindSim, URL: "http://127.0.0.1:0"},
			{Name: "o", Kind: topology.KindOpenAI, URL: "https://example.invalid"},
		}}},
		{Name: central, Listen: "127.0.0.1:7082", URL: "http://127.0.0.1:7082", Backends: map[string][]topology.Backend{dep: {
			{Name: "s", Kind: topology.KindSim, URL: "http://127.0.0.1:0"},
		}}},
		{Name: "westus", Listen: "127.0.0.1:0", URL: "http://127.0.0.1:0"}, // added since up started
	}}
	resolved := &topology.Topology{Regions: []topology.Region{
		{Name: east, Listen: "127.0.0.1:40001", URL: "http://127.0.0.1:40001", Backends: map[string][]topology.Backend{dep: {
			{Name: "s", Kind: topology.KindSim, URL: "http://127.0.0.1:40002"},
			{Name: "o", Kind: topology.KindOpenAI, URL: "https://changed.invalid"},
		}}},
		{Name: central, Listen: "127.0.0.1:7082", URL: "http://127.0.0.1:7082", Backends: map[string][]topology.Backend{dep: {
			{Name: "s", Kind: topology.KindSim, URL: "http://127.0.0.1:40003"},
		}}},
	}}
	file.Deployments = []topology.Deployment{{Name: dep}}
	if got := PortZero(file); len(got) != 4 {
		t.Errorf("PortZero = %q, want 4 addresses", got)
	}
	if n := UseAddresses(file, resolved); n != 3 {
		t.Errorf("filled %d addresses, want 3", n)
	}
	got := []string{file.Regions[0].URL, file.Regions[0].Backends[dep][0].URL, file.Regions[0].Backends[dep][1].URL,
		file.Regions[1].Backends[dep][0].URL, file.Regions[2].URL}
	want := []string{"http://127.0.0.1:40001", "http://127.0.0.1:40002", "https://example.invalid", "http://127.0.0.1:40003", "http://127.0.0.1:0"}
	if !slices.Equal(got, want) {
		t.Errorf("addresses = %q, want %q", got, want)
	}
	if got := PortZero(file); !slices.Equal(got, []string{"regions[westus].listen"}) {
		t.Errorf("PortZero after = %q", got)
	}
}
