package drill

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/understudy/understudy/internal/topology"
	"github.com/understudy/understudy/internal/up"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// rounds builds validation rounds of 100ms every 250ms from a pattern:
// '.' passes, 'x' fails.
func rounds(start int, pattern string) []Round {
	var out []Round
	for i, c := range pattern {
		r := Round{Start: at(start + i*250), End: at(start + i*250 + 100), OK: c == '.'}
		if !r.OK {
			r.Failed = map[string]string{CheckAgentTurn: "http_502"}
		}
		out = append(out, r)
	}
	return out
}

func TestRecovery(t *testing.T) {
	for _, tc := range []struct {
		name        string
		pattern     string // rounds from t0, every 250ms
		from, to    int    // window in ms
		interrupted bool
		recovered   bool
		atMs        int // recovery end, ms after t0
		failed      int
	}{
		{"never failed", "........", 0, 2000, false, true, 0, 0},
		{"failed then recovered", "..xxx...", 500, 2000, true, true, 5*250 + 100, 3},
		{"failed, blipped, failed again, recovered", "..x.x...", 500, 2000, true, true, 5*250 + 100, 2},
		{"still failing at the end", "..xxxxxx", 500, 2000, true, false, 0, 6},
		{"failures before the window do not count", "xx......", 500, 2000, false, true, 0, 0},
		{"no rounds in the window", "....", 5000, 6000, false, false, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := recovery(rounds(0, tc.pattern), at(tc.from), at(tc.to))
			if rec.Interrupted != tc.interrupted || rec.Recovered != tc.recovered || rec.Failed != tc.failed {
				t.Fatalf("recovery %+v", rec)
			}
			var want time.Time
			if tc.atMs > 0 {
				want = at(tc.atMs)
			}
			if !rec.At.Equal(want) {
				t.Errorf("recovered at %v, want %v", rec.At.Sub(t0), want.Sub(t0))
			}
			if tc.failed > 0 && rec.FailedChecks[CheckAgentTurn]["http_502"] != tc.failed {
				t.Errorf("failed checks %v", rec.FailedChecks)
			}
		})
	}
}

func TestStablePassing(t *testing.T) {
	rs := rounds(0, "xx......") // passing from 500ms, last round starts at 1750ms
	for _, tc := range []struct {
		now  int
		d    time.Duration
		want bool
	}{
		{2000, time.Second, true},              // the round at 1000ms started a second ago and passed
		{2000, 1600 * time.Millisecond, false}, // the round at 250ms failed
		{2000, 1500 * time.Millisecond, true},
	} {
		if got := stablePassing(rs, at(tc.now), tc.d); got != tc.want {
			t.Errorf("stablePassing(now %dms, %s) = %v, want %v", tc.now, tc.d, got, tc.want)
		}
	}
	if stablePassing(nil, t0, time.Second) {
		t.Error("no rounds is not stable")
	}
}

// outageReport is the report of a synthetic outage: fault at +4s, the edge
// notices at +4.1s, the controller's runbook starts at +5.4s, the first
// success from centralus ends at +4.54s, validations fail from +4s to +6s.
func outageReport(lostItems int, rto time.Duration) *Report {
	r := &Report{Scenario: "region-outage", Primary: "eastus2", Standby: "centralus", Started: t0, Result: ""}
	r.Targets.RTOMs = ms(rto)
	r.LoadStarted, r.LoadStopped = t0, at(12000)
	r.Fault.Injected, r.Fault.Restored, r.AfterStarted = at(4000), at(8000), at(10000)
	r.Failover = &Runbook{ID: "f1", Kind: "failover", From: "eastus2", To: "centralus", Status: "completed",
		FaultAt: at(4400), Created: at(5400), Ended: at(6000), Data: map[string]any{"rto_ms": 1600.0}}
	r.Failback = &Runbook{ID: "b1", Kind: "failback", From: "centralus", To: "eastus2", Status: "completed", Planned: true, Created: at(8500), Ended: at(9000)}
	r.RPO.Final = &RPOCheck{At: at(12000), Acked: 40, Items: 40, Conversations: 4, Lost: lostItems}
	if lostItems > 0 {
		r.RPO.Final.FirstLost, r.RPO.Final.LastLost, r.RPO.Final.SpanMs = at(3900), at(4000), 100
	}
	rd := rounds(0, "................xxxxxxxx................................")
	r.observed = recovery(rd, r.Fault.Injected, r.Fault.Restored)
	events := []Event{
		{At: at(4000), Source: "drill", Kind: EvInject, Region: "eastus2", Message: "inject: SIGKILL gateway/eastus2"},
		{At: at(4100), Source: "edge", Kind: EvOriginEjected, Region: "eastus2", Message: "edge: origin eastus2 ejected after failed requests"},
		{At: at(5500), Source: "controller", Kind: EvDeclaredDown, Region: "eastus2", Message: "controller: eastus2 declared down"},
		{At: at(8000), Source: "drill", Kind: EvRestore, Region: "eastus2", Message: "restore: <started> eastus2"},
	}
	var samples []Sample
	for i := range 48 {
		s := Sample{Kind: Kinds[i%3], Start: at(i * 250), Latency: 40 * time.Millisecond, Region: "eastus2"}
		switch {
		case i >= 16 && i < 24 && s.Kind == KindAgent:
			s.Err, s.Region = "http_502", NoRegion
		case i >= 17 && i < 32:
			s.Region = "centralus"
		}
		if s.Kind == KindStream && s.OK() {
			s.TTFT = 20 * time.Millisecond
		}
		samples = append(samples, s)
	}
	snap := Snapshot{Acked: 40, Total: Counts{Requests: len(samples), Errors: 3}}
	r.compute(events, samples, nil, snap, rd)
	return r
}

func TestReportMeasures(t *testing.T) {
	r := outageReport(0, 10*time.Second)
	m := r.Measures
	want := map[string]*float64{"detect": m.DetectMs, "edge": m.EdgeNoticedMs, "declared": m.ControllerDeclaredDownMs,
		"probe failing": m.ControllerProbeFailingMs, "reroute": m.RerouteMs, "rto": m.RTOMs, "controller rto": m.ControllerRTOMs,
		"failover": m.FailoverMs, "failback": m.FailbackMs}
	for name, v := range map[string]float64{"detect": 100, "edge": 100, "declared": 1400, "probe failing": 400,
		"reroute": 540, "rto": 2100, "controller rto": 1600, "failover": 600, "failback": 500} {
		if want[name] == nil || *want[name] != v {
			t.Errorf("%s = %v, want %vms", name, fmtMsp(want[name]), v)
		}
	}
	if m.RerouteRegion != "centralus" || !m.RTOMet || !m.Interrupted || !m.Recovered || r.Result != Succeeded || len(r.Reasons) != 0 {
		t.Errorf("measures %+v result %s %v", m, r.Result, r.Reasons)
	}
	if r.Errors.Total != 3 || r.Errors.ByKind["http_502"] != 3 || r.Errors.ByType[KindAgent].Errors != 3 {
		t.Errorf("errors %+v", r.Errors)
	}
	var names []string
	for _, p := range r.Phases {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"before", "during", "failback", "after"}) {
		t.Errorf("phases %v", names)
	}
	if !slices.ContainsFunc(r.Timeline, func(e Event) bool { return e.Kind == EvRecovered && e.At.Equal(at(6100)) }) ||
		!slices.ContainsFunc(r.Timeline, func(e Event) bool { return e.Kind == EvReroute }) {
		t.Errorf("timeline lacks the recovery or the reroute: %+v", r.Timeline)
	}
	if !slices.IsSortedFunc(r.Timeline, func(a, b Event) int { return a.At.Compare(b.At) }) {
		t.Error("timeline not in time order")
	}
}

func TestReportJudges(t *testing.T) {
	for _, tc := range []struct {
		name   string
		report func() *Report
		want   []string // substrings of the reasons, in order
	}{
		{"meets its targets", func() *Report { return outageReport(0, 10*time.Second) }, nil},
		{"RTO target missed", func() *Report { return outageReport(0, time.Millisecond) }, []string{"RTO target missed: 2.1s measured, target 1ms"}},
		{"acknowledged items lost", func() *Report { return outageReport(2, 10*time.Second) }, []string{"2 acknowledged items lost", "RPO target missed"}},
		{"not recovered", func() *Report {
			r := &Report{Primary: "eastus2", LoadStarted: t0, LoadStopped: at(3000)}
			r.Fault.Injected, r.Fault.Restored = at(1000), at(2500)
			rd := rounds(0, "....xxxxxx")
			r.observed = recovery(rd, r.Fault.Injected, r.Fault.Restored)
			r.RPO.Final = &RPOCheck{Items: 3}
			r.compute(nil, nil, nil, Snapshot{Acked: 3}, rd)
			return r
		}, []string{"not recovered: validations were still failing when the fault was restored (agent_turn http_502×6)"}},
		{"no acknowledged writes", func() *Report {
			r := &Report{LoadStarted: t0, LoadStopped: at(1000)}
			r.compute(nil, nil, nil, Snapshot{}, nil)
			return r
		}, []string{"no agent turn was acknowledged"}},
		{"drift missed the version", func() *Report {
			r := &Report{LoadStarted: t0, LoadStopped: at(1000), Drift: []DriftResult{{Verdict: "READY", Phase: "during", Region: "centralus"}}}
			r.compute(nil, nil, nil, Snapshot{Acked: 1}, nil)
			return r
		}, []string{"drift reported centralus READY"}},
		{"unverified items", func() *Report {
			r := &Report{LoadStarted: t0, LoadStopped: at(1000)}
			r.RPO.Final = &RPOCheck{Items: 3, Unverified: 3, Errors: []string{"conv_1: 503"}}
			r.compute(nil, nil, nil, Snapshot{Acked: 3}, nil)
			return r
		}, []string{"3 acknowledged items could not be read back: conv_1: 503"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.report()
			if len(r.Reasons) != len(tc.want) {
				t.Fatalf("reasons %q, want %q", r.Reasons, tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(r.Reasons[i], w) {
					t.Errorf("reason %q, want %q", r.Reasons[i], w)
				}
			}
			want := Succeeded
			if len(tc.want) > 0 {
				want = Failed
			}
			if r.Result != want || r.Failed() != (want != Succeeded) {
				t.Errorf("result %s, want %s", r.Result, want)
			}
		})
	}
}

func TestReportFiles(t *testing.T) {
	r := outageReport(0, 10*time.Second)
	r.Ended = at(12500)
	r.Timeline = append(r.Timeline, Event{At: at(9000), Source: "drill", Message: `<script>alert("x")</script>`})
	dir := t.TempDir()
	if err := r.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	var back Report
	data, _ := os.ReadFile(filepath.Join(dir, "report.json"))
	if err := json.Unmarshal(data, &back); err != nil || back.Result != Succeeded || *back.Measures.RTOMs != 2100 {
		t.Fatalf("report.json: %v %+v", err, back.Measures)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	for _, want := range []string{"# Drill report: region-outage — SUCCEEDED", "| RTO (client validations) | 2.1s | 10s |",
		"| Time to reroute | 540ms — first success from centralus |", "## Runbook: failover eastus2 → centralus (completed)", "| +1.50s | controller | controller: eastus2 declared down |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	page, _ := os.ReadFile(filepath.Join(dir, "report.html"))
	if m := regexp.MustCompile(`(?i)<(script|link|img|iframe)\b|\b(src|href)\s*=`).Find(page); m != nil {
		t.Errorf("report.html is not self-contained or not escaped: %q", m)
	}
	for _, want := range []string{"<svg", "&lt;script&gt;", "eastus2 ok", "centralus ok", ">fault<", ">rerouted<", ">RTO<", "failover</text>", "failback</text>"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
}

// fakeSystem is a control API, a links admin API and a model server
// recording the calls a scenario makes; fail makes one path fail.
type fakeSystem struct {
	mu    sync.Mutex
	calls []string
	fail  string
	// method is what the control API says it partitions with.
	method string
}

func (f *fakeSystem) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer adm-test" {
		http.Error(w, "token", http.StatusUnauthorized)
		return
	}
	call := r.Method + " " + r.URL.Path
	if r.Method == "PUT" {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		b, _ := json.Marshal(body)
		call += " " + string(b)
	}
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
	if f.fail != "" && strings.HasPrefix(call, f.fail) {
		http.Error(w, `{"error":{"message":"no"}}`, http.StatusConflict)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/links/") {
		fmt.Fprint(w, `{"latency":"5ms"}`)
		return
	}
	if strings.HasSuffix(r.URL.Path, "/partition") || strings.HasSuffix(r.URL.Path, "/heal") {
		fmt.Fprintf(w, `{"region":"eastus2","method":%q,"detail":"did %s"}`, f.method, path.Base(r.URL.Path))
		return
	}
	fmt.Fprint(w, `{}`)
}

func (f *fakeSystem) taken() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.calls
	f.calls = nil
	return out
}

func fakeSys(t *testing.T, f *fakeSystem) *System {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	tp := &topology.Topology{Name: "t", Regions: []topology.Region{{Name: "eastus2"}, {Name: "centralus"}}}
	tp.Admin.Token = topology.NewSecret("adm-test")
	st := up.State{Control: srv.URL, Components: []up.ComponentState{
		{Name: "modelsim/eastus2/m-1", Kind: "modelsim", Region: "eastus2", URL: srv.URL + "/sim-east"},
		{Name: "gateway/eastus2", Kind: "gateway", Region: "eastus2"},
		{Name: "modelsim/centralus/m-1", Kind: "modelsim", Region: "centralus", URL: srv.URL + "/sim-central"},
		{Name: "gateway/centralus", Kind: "gateway", Region: "centralus"},
	}}
	for _, n := range []string{"edge-to-eastus2", "controller-to-eastus2", "eastus2-to-controller", "eastus2-to-centralus",
		"edge-to-centralus", "controller-to-centralus", "centralus-to-controller", "centralus-to-eastus2"} {
		st.Links = append(st.Links, up.LinkState{Name: n, Admin: srv.URL + "/links/" + n})
	}
	return NewSystem(tp, st)
}

func TestScenariosInjectAndRestore(t *testing.T) {
	for _, tc := range []struct {
		scenario      string
		inject, after []string
	}{
		{"region-outage", []string{"POST /v1/regions/eastus2/down"}, []string{"POST /v1/regions/eastus2/up"}},
		{"region-freeze",
			[]string{"POST /v1/components/modelsim/eastus2/m-1/stop", "POST /v1/components/gateway/eastus2/stop"},
			[]string{"POST /v1/components/modelsim/eastus2/m-1/cont", "POST /v1/components/gateway/eastus2/cont"}},
		{"partition", []string{"POST /v1/regions/eastus2/partition"}, []string{"POST /v1/regions/eastus2/heal"}},
		{"slow-link",
			[]string{"GET /links/eastus2-to-centralus", `PUT /links/eastus2-to-centralus/latency {"latency":"100ms"}`,
				"GET /links/centralus-to-eastus2", `PUT /links/centralus-to-eastus2/latency {"latency":"100ms"}`},
			nil}, // restores 5ms on both, in map order: checked below
		{"backend-429-storm", []string{`PUT /sim-east/admin/faults {"rate_limit_rate":1,"retry_after":"2s"}`}, []string{"DELETE /sim-east/admin/faults"}},
		{"slow-backend", []string{`PUT /sim-east/admin/faults {"latency":"1.5s"}`}, []string{"DELETE /sim-east/admin/faults"}},
		{"version-drift", []string{`PUT /sim-central/admin/faults {"version":"2099-12-31"}`}, []string{"DELETE /sim-central/admin/faults"}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			f := &fakeSystem{}
			sys := fakeSys(t, f)
			o := Options{}
			o.defaults(sys.Topology)
			fl := &fault{sys: sys, opts: &o, primary: "eastus2", standby: "centralus"}
			restore, err := Scenarios[tc.scenario].inject(t.Context(), fl)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.taken(); !slices.Equal(got, tc.inject) {
				t.Errorf("inject calls\n%q\nwant\n%q", got, tc.inject)
			}
			if err := restore(t.Context()); err != nil {
				t.Fatal(err)
			}
			got := f.taken()
			if tc.after == nil {
				slices.Sort(got)
				tc.after = []string{`PUT /links/centralus-to-eastus2/latency {"latency":"5ms"}`, `PUT /links/eastus2-to-centralus/latency {"latency":"5ms"}`}
			}
			if !slices.Equal(got, tc.after) {
				t.Errorf("restore calls\n%q\nwant\n%q", got, tc.after)
			}
			if len(fl.detail) < 2 {
				t.Errorf("detail %q: want what was injected and what was restored", fl.detail)
			}
		})
	}
}

// A fault that fails half-way undoes what it did.
func TestScenarioInjectFailureUndoes(t *testing.T) {
	f := &fakeSystem{fail: "POST /v1/components/gateway/eastus2/stop"}
	sys := fakeSys(t, f)
	o := Options{}
	o.defaults(sys.Topology)
	_, err := Scenarios["region-freeze"].inject(t.Context(), &fault{sys: sys, opts: &o, primary: "eastus2", standby: "centralus"})
	if err == nil || !strings.Contains(err.Error(), "409") {
		t.Fatalf("err %v", err)
	}
	want := []string{"POST /v1/components/modelsim/eastus2/m-1/stop", "POST /v1/components/gateway/eastus2/stop",
		"POST /v1/components/modelsim/eastus2/m-1/cont"}
	if got := f.taken(); !slices.Equal(got, want) {
		t.Errorf("calls %q, want %q", got, want)
	}
}

// The partition records the method up used, and says the limit of link
// proxies in a note; without links it is refused with the reason.
func TestPartitionMethod(t *testing.T) {
	for _, tc := range []struct{ method, note string }{
		{"netns", ""},
		{"linkproxy", "link proxies in user space"},
	} {
		t.Run(tc.method, func(t *testing.T) {
			sys := fakeSys(t, &fakeSystem{method: tc.method})
			o := Options{}
			o.defaults(sys.Topology)
			fl := &fault{sys: sys, opts: &o, primary: "eastus2", standby: "centralus"}
			restore, err := Scenarios["partition"].inject(t.Context(), fl)
			if err != nil {
				t.Fatal(err)
			}
			if err := restore(t.Context()); err != nil {
				t.Fatal(err)
			}
			want := []string{"partition eastus2 (" + tc.method + "): did partition", "heal eastus2 (" + tc.method + "): did heal"}
			if fl.method != tc.method || !slices.Equal(fl.detail, want) {
				t.Errorf("method %q detail %q, want %s %q", fl.method, fl.detail, tc.method, want)
			}
			if tc.note == "" && fl.note != "" || !strings.Contains(fl.note, tc.note) {
				t.Errorf("note %q, want %q", fl.note, tc.note)
			}
		})
	}
	sys := fakeSys(t, &fakeSystem{})
	sys.State.Links = nil
	o := Options{}
	o.defaults(sys.Topology)
	if _, err := Scenarios["partition"].inject(t.Context(), &fault{sys: sys, opts: &o, primary: "eastus2"}); err == nil || !strings.Contains(err.Error(), "links.enabled") {
		t.Errorf("partition without links: %v", err)
	}
}

// TestWatcher feeds a controller and an edge whose state changes between
// two steps and checks the events.
func TestWatcher(t *testing.T) {
	var mu sync.Mutex
	status := `{"primary":"eastus2","epoch":1,"regions":{"eastus2":{"up":true,"last_ok":true,"readiness":{"role":"primary","epoch":1}},"centralus":{"up":true,"last_ok":true,"readiness":{"role":"standby","epoch":1}}},"drift":{"centralus":"NOT_READY"}}`
	origins := `{"origins":[{"name":"eastus2","healthy":true,"priority":1},{"name":"centralus","healthy":true,"priority":2}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/v1/status":
			fmt.Fprint(w, status)
		case "/admin/origins":
			fmt.Fprint(w, origins)
		}
	}))
	defer srv.Close()
	tp := &topology.Topology{}
	tp.Controller.URL, tp.Edge.URL = srv.URL, srv.URL
	var events []Event
	w := newWatcher(NewSystem(tp, up.State{}), time.Hour, func(e Event) { events = append(events, e) })
	w.step(t.Context())
	if len(events) != 0 {
		t.Fatalf("first step emitted %+v", events)
	}
	mu.Lock()
	status = `{"primary":"centralus","epoch":2,"regions":{"eastus2":{"up":false,"last_ok":false,"last_error":"refused","readiness":{"role":"primary","epoch":1}},"centralus":{"up":true,"last_ok":true,"readiness":{"role":"primary","epoch":2}}},"drift":{"centralus":"READY"},
		"last":{"id":"f1","kind":"failover","from":"eastus2","to":"centralus","status":"running","steps":[{"name":"detect","status":"done"},{"name":"promote","status":"pending"}]}}`
	origins = `{"origins":[{"name":"eastus2","healthy":false,"ejected":true,"priority":2},{"name":"centralus","healthy":true,"priority":1}]}`
	mu.Unlock()
	w.step(t.Context())
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, e.Kind+":"+e.Region)
	}
	want := []string{"primary:centralus", "role:centralus", "probe_failing:eastus2", "declared_down:eastus2", "drift:centralus", "run_started:centralus", "step:centralus",
		"origin_unhealthy:eastus2", "origin_ejected:eastus2", "origin_priority:eastus2", "origin_priority:centralus"}
	if !slices.Equal(kinds, want) {
		t.Errorf("events\n%q\nwant\n%q", kinds, want)
	}
	if st, ok := w.Status(); !ok || st.Primary != "centralus" {
		t.Errorf("status %+v", st)
	}
}

// TestCheckAcks reads back acknowledged turns from a fake edge that lost
// one item and one whole conversation.
func TestCheckAcks(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/conversations/conv_a/items":
			fmt.Fprint(w, `{"object":"list","data":[{"type":"message","id":"msg_1","role":"user","status":"completed","content":[]},{"type":"message","id":"msg_3","role":"assistant","status":"completed","content":[]}],"has_more":false,"first_id":"msg_1","last_id":"msg_3"}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":{"message":"no such conversation","type":"invalid_request_error"}}`)
		}
	}))
	defer srv.Close()
	client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("k"), option.WithMaxRetries(0))
	acks := []Ack{
		{Conversation: "conv_a", Items: []string{"msg_1"}, At: at(1000)},
		{Conversation: "conv_a", Items: []string{"msg_2"}, At: at(2000)},
		{Conversation: "conv_a", Items: []string{"msg_3"}, At: at(3000)},
		{Conversation: "conv_b", Items: []string{"msg_9"}, At: at(2500)},
	}
	c := checkAcks(t.Context(), client, acks, 0)
	if c.Acked != 4 || c.Items != 4 || c.Conversations != 2 || c.Lost != 2 || c.LostTurns != 2 || c.Unverified != 0 ||
		!c.FirstLost.Equal(at(2000)) || !c.LastLost.Equal(at(2500)) || c.SpanMs != 500 {
		t.Fatalf("check %+v", c)
	}
	if !slices.Equal(c.Examples, []string{"conv_a/msg_2", "conv_b/msg_9"}) {
		t.Errorf("examples %q", c.Examples)
	}
	// An edge that cannot list leaves items unverified, never "not lost".
	srv.Close()
	c = checkAcks(context.Background(), client, acks[:1], 0)
	if c.Unverified != 1 || c.Lost != 0 || len(c.Errors) != 1 {
		t.Errorf("unreachable edge: %+v", c)
	}
}

func TestDiscover(t *testing.T) {
	dir := t.TempDir()
	tp := &topology.Topology{Dir: dir, DataDir: "data"}
	if _, err := Discover(tp, nil); err == nil || !strings.Contains(err.Error(), "understudy up") {
		t.Errorf("no up.json: %v", err)
	}
	os.MkdirAll(filepath.Join(dir, "data"), 0o755)
	os.WriteFile(filepath.Join(dir, "data", "up.json"), []byte(`{"topology":"x","pid":2147483000,"control":"http://127.0.0.1:1"}`), 0o644)
	if _, err := Discover(tp, nil); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("stale up.json: %v", err)
	}
}

func TestRunRefusesUnknownScenario(t *testing.T) {
	if _, err := Run(t.Context(), fakeSys(t, &fakeSystem{}), Options{Scenario: "meteor"}); err == nil || !strings.Contains(err.Error(), "region-outage") {
		t.Errorf("err %v", err)
	}
}

func TestSteady(t *testing.T) {
	healthy := func() ControllerStatus {
		var st ControllerStatus
		json.Unmarshal([]byte(`{"primary":"eastus2","epoch":1,"regions":{
			"eastus2":{"up":true,"last_ok":true,"readiness":{"role":"primary","epoch":1,"writable":true,"replication":{"centralus":{"events":0}}}},
			"centralus":{"up":true,"last_ok":true,"readiness":{"role":"standby","epoch":1}}}}`), &st)
		return st
	}
	for _, tc := range []struct {
		name     string
		edit     func(*ControllerStatus)
		failover bool
		want     string
	}{
		{"ready", func(*ControllerStatus) {}, true, ""},
		{"standby lags", func(s *ControllerStatus) {
			s.Regions["eastus2"].Readiness.Replication["centralus"] = struct {
				Events    int64   `json:"events"`
				Seconds   float64 `json:"seconds"`
				Connected bool    `json:"connected"`
			}{Events: 3}
		}, true, "standby centralus lags 3 events"},
		{"cooldown", func(s *ControllerStatus) { s.CooldownUntil = time.Now().Add(time.Minute) }, true, "cooldown"},
		{"cooldown does not matter without failover", func(s *ControllerStatus) { s.CooldownUntil = time.Now().Add(time.Minute) }, false, ""},
		{"standby NOT_READY", func(s *ControllerStatus) { s.Drift = map[string]string{"centralus": "NOT_READY"} }, true, "would refuse an automatic failover"},
		{"runbook running", func(s *ControllerStatus) { s.Active = &Runbook{ID: "f1"} }, false, "a runbook is running: f1"},
		{"primary not writable", func(s *ControllerStatus) { s.Regions["eastus2"].Readiness.Writable = false }, false, "not up and writable"},
		{"standby down", func(s *ControllerStatus) { s.Regions["centralus"].Up = false }, false, "centralus is not an answering standby"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := healthy()
			tc.edit(&st)
			got := steady(st, tc.failover)
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("steady = %q, want %q", got, tc.want)
			}
		})
	}
}
