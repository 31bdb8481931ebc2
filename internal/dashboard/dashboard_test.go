package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/topology"
	"github.com/understudy/understudy/internal/up"
)

const testToken = "adm-test-0123456789abcdef"

// TestMain doubles as a fake `understudy drill` when the dashboard starts
// the test binary as its drill command.
func TestMain(m *testing.M) {
	if mode := os.Getenv("DASHBOARD_FAKE_DRILL"); mode != "" {
		os.Exit(fakeDrill(mode))
	}
	os.Exit(m.Run())
}

// fakeDrill prints its arguments; "pass" writes a report and exits 0,
// "block" waits for SIGINT and exits 1.
func fakeDrill(mode string) int {
	fmt.Println("args:", strings.Join(os.Args[1:], " "))
	report := ""
	for i, a := range os.Args {
		if a == "--report" && i+1 < len(os.Args) {
			report = os.Args[i+1]
		}
	}
	switch mode {
	case "pass":
		fmt.Println("injecting fault")
		os.WriteFile(filepath.Join(report, "report.html"), []byte("<!doctype html><title>report</title><p>RTO 3s"), 0o644)
		fmt.Println("passed")
		return 0
	case "block":
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, os.Interrupt)
		fmt.Println("waiting")
		<-ch
		fmt.Println("interrupted: restoring")
		return 1
	}
	return 2
}

// fakeEdge serves the edge's admin endpoints the dashboard reads.
type fakeEdge struct {
	*httptest.Server
	requests atomic.Value // map[string][2]int: origin → {200s, 503s}
	authFail atomic.Int64
}

func newFakeEdge(t *testing.T) *fakeEdge {
	e := &fakeEdge{}
	e.requests.Store(map[string][2]int{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "# HELP understudy_edge_requests_total Client requests answered.")
		fmt.Fprintln(w, "# TYPE understudy_edge_requests_total counter")
		for origin, n := range e.requests.Load().(map[string][2]int) {
			fmt.Fprintf(w, "understudy_edge_requests_total{code=\"200\",origin=%q} %d\n", origin, n[0])
			fmt.Fprintf(w, "understudy_edge_requests_total{code=\"503\",origin=%q} %d\n", origin, n[1])
		}
		fmt.Fprintln(w, `understudy_edge_retries_total{origin="eastus2",reason="connection"} 4`)
	})
	mux.HandleFunc("GET /admin/origins", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"routing":"priority","route":"traffic → eastus2","origins":[
			{"name":"eastus2","priority":1,"enabled":true,"healthy":true,"serving":true,"passes":4,"samples":4,"role":"primary","epoch":1,"probes":[{"ok":true}]},
			{"name":"centralus","priority":2,"enabled":true,"healthy":true,"serving":true,"passes":4,"samples":4,"role":"standby","epoch":1}]}`)
	})
	mux.HandleFunc("GET /admin/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i, ev := range []string{
			`{"seq":1,"kind":"health","origin":"eastus2","message":"eastus2 is unhealthy"}`,
			`{"seq":2,"kind":"retry","origin":"eastus2","message":"attempt 1 failed"}`,
			`{"seq":3,"kind":"retry","origin":"eastus2","message":"attempt 2 failed"}`,
			`{"seq":4,"kind":"route","message":"traffic → centralus"}`,
		} {
			fmt.Fprintf(w, "id: %d\nevent: x\ndata: %s\n\n", i+1, ev)
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			e.authFail.Add(1)
			http.Error(w, "admin token required", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(e.Close)
	return e
}

// fakeUp serves up's control API and records the actions it receives.
type fakeUp struct {
	*httptest.Server
	mu      sync.Mutex
	actions []string
	running map[string]bool
}

func newFakeUp(t *testing.T) *fakeUp {
	u := &fakeUp{running: map[string]bool{"gateway/eastus2": true, "gateway/centralus": true}}
	list := func(w http.ResponseWriter) {
		var data []up.ComponentStatus
		for _, n := range []string{"gateway/eastus2", "gateway/centralus"} {
			data = append(data, up.ComponentStatus{Name: n, Kind: "gateway", Region: strings.TrimPrefix(n, "gateway/"), Running: u.running[n]})
		}
		json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/components", func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		defer u.mu.Unlock()
		list(w)
	})
	mux.HandleFunc("POST /v1/regions/{region}/{action}", func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		defer u.mu.Unlock()
		u.actions = append(u.actions, r.PathValue("region")+" "+r.PathValue("action"))
		u.running["gateway/"+r.PathValue("region")] = r.PathValue("action") == "up"
		list(w)
	})
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			http.Error(w, `{"error":{"message":"admin token required"}}`, http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testTopology writes and loads a two-region topology whose edge is
// edgeURL and whose data directory is dir/data.
func testTopology(t *testing.T, edgeURL string) *topology.Topology {
	t.Helper()
	dir := t.TempDir()
	src := fmt.Sprintf(`version: 1
name: dash
keys: [{name: k, key: sk-test-0123456789abcdef}]
admin: {token: %s}
deployments: [{name: gpt-4.1-mini, version: "2025-04-14"}]
regions:
  - name: eastus2
    listen: 127.0.0.1:18001
    backends: {gpt-4.1-mini: [{kind: sim, url: "http://127.0.0.1:18011"}]}
  - name: centralus
    listen: 127.0.0.1:18002
    backends: {gpt-4.1-mini: [{kind: sim, url: "http://127.0.0.1:18012"}]}
replication: {mode: sync, secret: rep-test-0123456789abcdef}
edge: {listen: 127.0.0.1:18000, url: %q}
controller: {listen: 127.0.0.1:18003}
`, testToken, edgeURL)
	path := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(topo.Path(topo.DataDir), 0o755)
	return topo
}

func writeUpJSON(t *testing.T, topo *topology.Topology, control string) {
	t.Helper()
	data, _ := json.Marshal(up.State{Control: control})
	if err := os.WriteFile(filepath.Join(topo.Path(topo.DataDir), "up.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// rig is a dashboard mounted as the controller mounts it, with fakes
// around it.
type rig struct {
	s     *Server
	h     http.Handler
	edge  *fakeEdge
	up    *fakeUp
	clock *clock
	topo  *topology.Topology
}

func newRig(t *testing.T, opts Options) *rig {
	t.Helper()
	r := &rig{edge: newFakeEdge(t), up: newFakeUp(t), clock: &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	r.topo = testTopology(t, r.edge.URL)
	if opts.Status == nil {
		opts.Status = func() any { return map[string]any{"primary": "eastus2", "epoch": 1} }
	}
	opts.Now = r.clock.Now
	s, err := New(r.topo, opts)
	if err != nil {
		t.Fatal(err)
	}
	r.s = s
	admin := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, req *http.Request) {
			if req.Header.Get("Authorization") != "Bearer "+testToken {
				writeErr(w, http.StatusUnauthorized, "admin token required")
				return
			}
			h(w, req)
		}
	}
	mux := http.NewServeMux()
	s.Mount(mux, admin)
	r.h = http.NewCrossOriginProtection().Handler(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return r
}

// do sends a request from a loopback peer, with the admin token when
// admin is set, and returns the status and body.
func (r *rig) do(t *testing.T, method, path, body string, admin bool, hdr ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	req.RemoteAddr = "127.0.0.1:5555"
	if admin {
		req.Header.Set("Authorization", "Bearer "+testToken)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	r.h.ServeHTTP(w, req)
	return w.Code, w.Body.String()
}

func TestPageAndAssets(t *testing.T) {
	r := newRig(t, Options{})
	req := httptest.NewRequest("GET", "/", nil)
	w := httptest.NewRecorder()
	r.h.ServeHTTP(w, req)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `<script src="/assets/app.js"`) {
		t.Fatalf("GET / = %d %.200s", w.Code, w.Body.String())
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("page CSP = %q", csp)
	}
	if strings.Contains(w.Body.String(), testToken) {
		t.Error("the page embeds the admin token")
	}
	for _, tc := range []struct{ path, ctype string }{
		{"/assets/app.js", "javascript"},
		{"/assets/style.css", "text/css"},
	} {
		code, body := r.do(t, "GET", tc.path, "", false)
		if code != 200 || len(body) < 100 {
			t.Errorf("GET %s = %d (%d bytes)", tc.path, code, len(body))
		}
	}
	if code, _ := r.do(t, "GET", "/assets/missing.js", "", false); code != 404 {
		t.Errorf("missing asset: %d", code)
	}
}

func TestAuthentication(t *testing.T) {
	r := newRig(t, Options{})
	// State needs the admin token.
	if code, _ := r.do(t, "GET", "/v1/dashboard/state", "", false); code != 401 {
		t.Fatalf("state without token: %d", code)
	}
	// A one-time code, minted with the token, is exchanged once.
	code, body := r.do(t, "POST", "/v1/dashboard/codes", "", true)
	var minted struct{ Code, URL string }
	json.Unmarshal([]byte(body), &minted)
	if code != 200 || minted.Code == "" || minted.URL != r.topo.Controller.URL+"/#code="+minted.Code {
		t.Fatalf("mint: %d %s", code, body)
	}
	redeem := `{"code":"` + minted.Code + `"}`
	code, body = r.do(t, "POST", "/v1/dashboard/session", redeem, false)
	if code != 200 || !strings.Contains(body, testToken) {
		t.Fatalf("redeem: %d %s", code, body)
	}
	if code, _ = r.do(t, "POST", "/v1/dashboard/session", redeem, false); code != 401 {
		t.Fatalf("second redeem: %d, want 401", code)
	}

	tests := []struct {
		name   string
		method string
		path   string
		body   string
		admin  bool
		hdr    []string
		remote string
		want   int
	}{
		{"mint without token", "POST", "/v1/dashboard/codes", "", false, nil, "", 401},
		{"region action without token", "POST", "/v1/dashboard/regions/eastus2/down", "", false, nil, "", 401},
		{"drill without token", "POST", "/v1/dashboard/drill", `{"scenario":"region-outage"}`, false, nil, "", 401},
		{"cross-site region action", "POST", "/v1/dashboard/regions/eastus2/down", "", true, []string{"Sec-Fetch-Site", "cross-site"}, "", 403},
		{"cross-origin session", "POST", "/v1/dashboard/session", `{"code":"x"}`, false, []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}, "", 403},
		{"session from a remote peer", "POST", "/v1/dashboard/session", `{"code":"x"}`, false, nil, "192.0.2.7:1234", 403},
		{"session with an unknown code", "POST", "/v1/dashboard/session", `{"code":"nope"}`, false, nil, "", 401},
		{"session without a code", "POST", "/v1/dashboard/session", `{}`, false, nil, "", 400},
		{"report without a code", "GET", "/v1/dashboard/drill/report", "", true, nil, "", 401},
		{"mint with an unknown purpose", "POST", "/v1/dashboard/codes", `{"purpose":"root"}`, true, nil, "", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rd io.Reader
			if tc.body != "" {
				rd = strings.NewReader(tc.body)
			}
			req := httptest.NewRequest(tc.method, tc.path, rd)
			req.RemoteAddr = "127.0.0.1:5555"
			if tc.remote != "" {
				req.RemoteAddr = tc.remote
			}
			if tc.admin {
				req.Header.Set("Authorization", "Bearer "+testToken)
			}
			for i := 0; i+1 < len(tc.hdr); i += 2 {
				req.Header.Set(tc.hdr[i], tc.hdr[i+1])
			}
			w := httptest.NewRecorder()
			r.h.ServeHTTP(w, req)
			if w.Code != tc.want {
				t.Errorf("%s %s = %d %s, want %d", tc.method, tc.path, w.Code, w.Body.String(), tc.want)
			}
		})
	}
	if r.up.actions != nil {
		t.Errorf("refused requests reached up: %v", r.up.actions)
	}
}

func TestStateGathersEdgeTrafficAndComponents(t *testing.T) {
	r := newRig(t, Options{
		Status: func() any { return map[string]any{"primary": "eastus2", "epoch": 7} },
		Drift:  func() map[string]string { return map[string]string{"eastus2": "READY", "centralus": "NOT_READY"} },
		Ready: func(ctx context.Context, region string) (bool, string) {
			if region == "centralus" {
				return false, "deployment gpt-4.1-mini version 2024-07-18, want 2025-04-14"
			}
			return true, ""
		},
	})
	writeUpJSON(t, r.topo, r.up.URL)
	ctx := context.Background()

	r.edge.requests.Store(map[string][2]int{"eastus2": {100, 0}})
	r.s.step(ctx)
	st := r.s.State()
	if len(st.Traffic.Origins) != 0 {
		t.Fatalf("rates from a single sample: %v", st.Traffic.Origins)
	}
	r.clock.Add(2 * time.Second)
	r.edge.requests.Store(map[string][2]int{"eastus2": {120, 4}, "none": {0, 2}})
	r.s.step(ctx)
	waitUntil(t, "the drift check", func() bool { return r.s.State().Drift.Available })
	st = r.s.State()

	wantRates := map[string]Rate{
		"eastus2":   {RPS: 12, ErrorsPS: 2, Available: true}, // (124-100)/2s, 4 errors/2s
		"centralus": {Available: true},                       // no requests counted: zero
		EdgeOrigin:  {RPS: 1, ErrorsPS: 1, Available: true},
	}
	for name, want := range wantRates {
		if got := st.Traffic.Origins[name]; got != want {
			t.Errorf("rate of %s = %+v, want %+v", name, got, want)
		}
	}
	if len(st.Traffic.Series) != 1 || st.Traffic.Series[0].RPS["eastus2"] != 12 {
		t.Errorf("series = %+v", st.Traffic.Series)
	}
	if st.Edge.Routing != "priority" || len(st.Edge.Origins) != 2 || st.Edge.Origins[0].Role != "primary" || st.Edge.Origins[0].Probes != nil {
		t.Errorf("edge = %+v", st.Edge)
	}
	if !st.Components.Available || len(st.Components.Data) != 2 {
		t.Errorf("components = %+v", st.Components)
	}
	if st.Controller.(map[string]any)["epoch"] != 7 {
		t.Errorf("controller status not passed through: %v", st.Controller)
	}
	if v := st.Drift.Regions["centralus"]; v.Verdict != "NOT_READY" || !strings.Contains(v.Reason, "2024-07-18") ||
		st.Drift.Regions["eastus2"].Verdict != "READY" || st.Drift.Regions["eastus2"].Reason != "" {
		t.Errorf("drift = %+v", st.Drift)
	}
	if got := []string{st.Regions[0].Name, st.Regions[1].Name}; !slices.Equal(got, []string{"eastus2", "centralus"}) {
		t.Errorf("regions = %v", got)
	}
	if r.edge.authFail.Load() != 0 {
		t.Errorf("%d edge requests without the admin token", r.edge.authFail.Load())
	}
}

func TestStateWithoutUpOrDrift(t *testing.T) {
	r := newRig(t, Options{})
	r.s.step(context.Background())
	st := r.s.State()
	if st.Components.Available || !strings.Contains(st.Components.Error, "up.json") {
		t.Errorf("components without up.json = %+v", st.Components)
	}
	if st.Drift.Available {
		t.Errorf("drift without drift checks = %+v", st.Drift)
	}
	r = newRig(t, Options{Drift: func() map[string]string { return nil }})
	r.s.step(context.Background())
	waitUntil(t, "the drift step", func() bool { r.s.mu.Lock(); defer r.s.mu.Unlock(); return !r.s.driftAt.IsZero() })
	if st := r.s.State(); st.Drift.Available {
		t.Errorf("drift before the first check = %+v", st.Drift)
	}
	code, body := r.do(t, "POST", "/v1/dashboard/regions/eastus2/down", "", true)
	if code != http.StatusConflict || !strings.Contains(body, "up.json") {
		t.Errorf("region action without up: %d %s", code, body)
	}
}

func TestEdgeEventsFollowed(t *testing.T) {
	r := newRig(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.s.followEvents(ctx)
	waitUntil(t, "the edge's events", func() bool { return len(r.s.State().Events) == 3 })
	evs := r.s.State().Events
	if evs[0].Kind != "health" || evs[1].Kind != "retry" || evs[1].Count != 2 || evs[1].Message != "attempt 2 failed" || evs[2].Kind != "route" {
		t.Errorf("events = %+v", evs)
	}
}

func TestRegionActions(t *testing.T) {
	r := newRig(t, Options{})
	writeUpJSON(t, r.topo, r.up.URL)
	tests := []struct {
		path string
		want int
	}{
		{"/v1/dashboard/regions/eastus2/down", 200},
		{"/v1/dashboard/regions/eastus2/up", 200},
		{"/v1/dashboard/regions/westus/down", 404},
		{"/v1/dashboard/regions/eastus2/reboot", 404},
	}
	for _, tc := range tests {
		code, body := r.do(t, "POST", tc.path, "", true)
		if code != tc.want {
			t.Errorf("POST %s = %d %s, want %d", tc.path, code, body, tc.want)
		}
		if code == 200 && !strings.Contains(body, `"gateway/eastus2"`) {
			t.Errorf("POST %s answered %s", tc.path, body)
		}
	}
	if want := []string{"eastus2 down", "eastus2 up"}; !slices.Equal(r.up.actions, want) {
		t.Errorf("up received %v, want %v", r.up.actions, want)
	}
}

func TestDrill(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("passes and serves its report once", func(t *testing.T) {
		t.Setenv("DASHBOARD_FAKE_DRILL", "pass")
		r := newRig(t, Options{Binary: exe, TopologyPath: "/etc/topology.yaml"})
		code, body := r.do(t, "POST", "/v1/dashboard/drill", `{"scenario":"region-outage"}`, true)
		if code != 202 {
			t.Fatalf("start: %d %s", code, body)
		}
		waitUntil(t, "the drill to end", func() bool { d := r.s.State().Drill; return d != nil && !d.Running })
		d := r.s.State().Drill
		wantArgs := "args: drill --scenario region-outage -f /etc/topology.yaml --report " + d.Report
		if d.ExitCode != 0 || !d.HasHTML || !slices.Equal(d.Tail, []string{wantArgs, "injecting fault", "passed"}) {
			t.Fatalf("drill = %+v", d)
		}
		if log, _ := os.ReadFile(d.Log); !strings.Contains(string(log), "injecting fault") {
			t.Errorf("drill log: %q", log)
		}
		_, body = r.do(t, "POST", "/v1/dashboard/codes", `{"purpose":"report"}`, true)
		var minted struct{ Code string }
		json.Unmarshal([]byte(body), &minted)
		req := httptest.NewRequest("GET", "/v1/dashboard/drill/report?code="+minted.Code, nil)
		req.RemoteAddr = "127.0.0.1:1"
		w := httptest.NewRecorder()
		r.h.ServeHTTP(w, req)
		if w.Code != 200 || !strings.Contains(w.Body.String(), "RTO 3s") || !strings.HasPrefix(w.Header().Get("Content-Security-Policy"), "sandbox") {
			t.Fatalf("report: %d %q %v", w.Code, w.Body.String(), w.Header())
		}
		w = httptest.NewRecorder()
		r.h.ServeHTTP(w, req)
		if w.Code != 401 {
			t.Errorf("report code used twice: %d", w.Code)
		}
		// A session code does not open a report, and is spent trying.
		_, body = r.do(t, "POST", "/v1/dashboard/codes", `{"purpose":"session"}`, true)
		json.Unmarshal([]byte(body), &minted)
		if code, _ := r.do(t, "GET", "/v1/dashboard/drill/report?code="+minted.Code, "", false); code != 401 {
			t.Errorf("session code on the report: %d", code)
		}
		if code, _ := r.do(t, "POST", "/v1/dashboard/session", `{"code":"`+minted.Code+`"}`, false); code != 401 {
			t.Errorf("spent session code redeemed: %d", code)
		}
	})
	t.Run("one at a time, stopped with SIGINT", func(t *testing.T) {
		t.Setenv("DASHBOARD_FAKE_DRILL", "block")
		r := newRig(t, Options{Binary: exe, TopologyPath: "/etc/topology.yaml"})
		if code, body := r.do(t, "POST", "/v1/dashboard/drill", `{"scenario":"partition"}`, true); code != 202 {
			t.Fatalf("start: %d %s", code, body)
		}
		waitUntil(t, "the drill to wait", func() bool { d := r.s.State().Drill; return len(d.Tail) == 2 })
		if code, _ := r.do(t, "POST", "/v1/dashboard/drill", `{"scenario":"region-outage"}`, true); code != 409 {
			t.Errorf("second drill: %d, want 409", code)
		}
		code, body := r.do(t, "POST", "/v1/dashboard/drill/stop", "", true)
		if code != 200 {
			t.Fatalf("stop: %d %s", code, body)
		}
		d := r.s.State().Drill
		if d.Running || d.ExitCode != 1 || d.Tail[len(d.Tail)-1] != "interrupted: restoring" {
			t.Errorf("stopped drill = %+v", d)
		}
		if code, _ := r.do(t, "POST", "/v1/dashboard/drill/stop", "", true); code != 409 {
			t.Errorf("stop without a drill: %d", code)
		}
	})
	t.Run("refused", func(t *testing.T) {
		r := newRig(t, Options{Binary: exe})
		for body, want := range map[string]int{
			`{"scenario":"rm -rf"}`:         400,
			`{"scenario":"region-outage"}`:  500, // no topology file to give the drill
			`{"scenario":"x","extra":true}`: 400,
		} {
			if code, ans := r.do(t, "POST", "/v1/dashboard/drill", body, true); code != want {
				t.Errorf("drill %s = %d %s, want %d", body, code, ans, want)
			}
		}
	})
}

// waitUntil polls cond every 10ms for up to 10s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for ; !cond(); <-tick.C {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
