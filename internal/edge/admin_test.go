package edge

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/topology"
)

func TestAdminAuth(t *testing.T) {
	a := newOrigin(t, "eastus2")
	h := newHarness(t, testTopology(nil, a), Options{})
	tests := []struct {
		name   string
		remote string
		auth   string
		want   int
		code   string
	}{
		{"loopback with token", "127.0.0.1:5555", "Bearer " + adminToken, 200, ""},
		{"ipv6 loopback", "[::1]:5555", "Bearer " + adminToken, 200, ""},
		{"no token", "127.0.0.1:5555", "", 401, "invalid_admin_token"},
		{"wrong token", "127.0.0.1:5555", "Bearer nope", 401, "invalid_admin_token"},
		{"remote peer", "192.0.2.7:5555", "Bearer " + adminToken, 403, "admin_remote"},
	}
	for _, tt := range tests {
		for _, path := range []string{"/admin/origins", "/metrics"} {
			t.Run(tt.name+path, func(t *testing.T) {
				req := httptest.NewRequest("GET", path, nil)
				req.RemoteAddr = tt.remote
				if tt.auth != "" {
					req.Header.Set("Authorization", tt.auth)
				}
				w := httptest.NewRecorder()
				h.e.Handler().ServeHTTP(w, req)
				if w.Code != tt.want {
					t.Fatalf("status %d, want %d: %s", w.Code, tt.want, w.Body)
				}
				if tt.code != "" && errCode(t, w.Body.String()) != tt.code {
					t.Errorf("body %s", w.Body)
				}
				if w.Header().Get(HeaderEdge) != "edge" {
					t.Errorf("missing %s", HeaderEdge)
				}
			})
		}
	}

	t.Run("allow_remote", func(t *testing.T) {
		h := newHarness(t, testTopology(func(t *topology.Topology) { t.Admin.AllowRemote = true }, a), Options{})
		req := httptest.NewRequest("GET", "/admin/origins", nil)
		req.RemoteAddr = "192.0.2.7:5555"
		req.Header.Set("Authorization", "Bearer "+adminToken)
		w := httptest.NewRecorder()
		h.e.Handler().ServeHTTP(w, req)
		if w.Code != 200 {
			t.Errorf("status %d with allow_remote", w.Code)
		}
	})
}

func TestAdminChanges(t *testing.T) {
	a, b := newOrigin(t, "eastus2"), newOrigin(t, "centralus")
	a.setReady(200, "primary", 3)
	h := newHarness(t, testTopology(nil, a, b), Options{})

	code, v := h.admin(t, "GET", "/admin/origins", "")
	if code != 200 || v["routing"] != "priority" {
		t.Fatalf("list: %d %v", code, v)
	}
	origins := v["origins"].([]any)
	first := origins[0].(map[string]any)
	if first["name"] != "eastus2" || first["healthy"] != true || first["role"] != "primary" || first["epoch"] != 3.0 ||
		len(first["probes"].([]any)) != 1 || first["latency_ms"].(float64) <= 0 {
		t.Errorf("origin view %v", first)
	}

	steps := []struct {
		method, path, body string
		status             int
		code               string
		route              string // region a chat lands on afterwards
	}{
		{"POST", "/admin/origins/eastus2/disable", "", 200, "", "centralus"},
		{"POST", "/admin/origins/centralus/disable", "", 409, "last_enabled_origin", "centralus"},
		{"PATCH", "/admin/origins/centralus", `{"enabled":false}`, 409, "last_enabled_origin", "centralus"},
		{"POST", "/admin/origins/eastus2/enable", "", 200, "", "eastus2"},
		{"PATCH", "/admin/origins/centralus", `{"priority":1,"weight":500}`, 200, "", "centralus"},
		{"PATCH", "/admin/origins/centralus", `{"weight":5000}`, 400, "invalid_value", "centralus"},
		{"PATCH", "/admin/origins/centralus", `{"priority":0}`, 400, "invalid_value", "centralus"},
		{"PATCH", "/admin/origins/centralus", `{"bogus":1}`, 400, "invalid_body", "centralus"},
		{"POST", "/admin/origins/westus/disable", "", 404, "origin_not_found", "centralus"},
		{"PATCH", "/admin/origins/centralus", `{"priority":2,"weight":100}`, 200, "", "eastus2"},
		{"POST", "/admin/origins/centralus/disable", "", 200, "", "eastus2"},
		{"POST", "/admin/origins/eastus2/disable", "", 409, "last_enabled_origin", "eastus2"},
	}
	for i, s := range steps {
		code, v := h.admin(t, s.method, s.path, s.body)
		if code != s.status {
			t.Fatalf("step %d %s %s: %d %v, want %d", i, s.method, s.path, code, v, s.status)
		}
		if s.code != "" {
			e, _ := v["error"].(map[string]any)
			if e["code"] != s.code {
				t.Fatalf("step %d: error %v, want code %s", i, v, s.code)
			}
			if s.code == "last_enabled_origin" && !strings.Contains(e["message"].(string), "last enabled origin") {
				t.Errorf("step %d: message %q is not clear", i, e["message"])
			}
		}
		if got := h.chat(t); got.region != s.route {
			t.Fatalf("step %d: chat went to %s, want %s", i, got.region, s.route)
		}
	}
	if v := h.origin(t, "centralus"); v.Enabled || v.Priority != 2 || v.Weight != 100 {
		t.Errorf("final centralus %+v", v)
	}

	t.Run("cross-origin browser change refused", func(t *testing.T) {
		req, _ := http.NewRequest("POST", h.srv.URL+"/admin/origins/centralus/enable", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site POST: %d", resp.StatusCode)
		}
	})
}

// sseReader reads events from /admin/events.
type sseReader struct {
	sc   *bufio.Scanner
	body io.Closer
}

func openEvents(t *testing.T, url string) *sseReader {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/admin/events", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &sseReader{sc: bufio.NewScanner(resp.Body), body: resp.Body}
}

// next returns the next event of kind (skipping others).
func (r *sseReader) next(t *testing.T, kind string) Event {
	t.Helper()
	var ev Event
	var typ string
	for r.sc.Scan() {
		line := r.sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			typ = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[len("data: "):]), &ev); err != nil {
				t.Fatal(err)
			}
		case line == "":
			if typ == kind {
				if ev.Kind != kind {
					t.Fatalf("event type %s carries kind %s", typ, ev.Kind)
				}
				return ev
			}
			typ = ""
		}
	}
	t.Fatalf("stream ended before a %s event: %v", kind, r.sc.Err())
	return ev
}

func TestEventStream(t *testing.T) {
	a, b := newOrigin(t, "eastus2"), newOrigin(t, "centralus")
	h := newHarness(t, testTopology(nil, a, b), Options{})
	ev := openEvents(t, h.srv.URL)
	// The backlog holds the start: nothing probed yet, then the first
	// probe round.
	if e := ev.next(t, "route"); !strings.Contains(e.Message, "no serving origin") {
		t.Errorf("route before probes %q", e.Message)
	}
	if e := ev.next(t, "health"); e.Origin != "eastus2" || e.Detail["healthy"] != true {
		t.Errorf("first health event %+v", e)
	}
	if e := ev.next(t, "route"); e.Message != "traffic → eastus2" {
		t.Errorf("first route %q", e.Message)
	}

	a.set("500")
	h.chat(t)
	if e := ev.next(t, "eject"); e.Origin != "eastus2" || e.Detail["reason"] != "status 500" || e.Detail["backoff_ms"] != 1000.0 {
		t.Errorf("eject event %+v", e)
	}
	if e := ev.next(t, "route"); e.Message != "traffic → centralus" {
		t.Errorf("route after eject %q", e.Message)
	}
	if e := ev.next(t, "retry"); e.Origin != "eastus2" || e.Detail["reason"] != "status 500" {
		t.Errorf("retry event %+v", e)
	}

	if _, err := h.e.Change("centralus", OriginChange{Weight: new(7)}); err != nil {
		t.Fatal(err)
	}
	if e := ev.next(t, "admin"); e.Origin != "centralus" || e.Message != "centralus: weight 7" {
		t.Errorf("admin event %+v", e)
	}

	b.setReady(503, "", 0)
	h.e.ProbeStep(t.Context())
	h.e.ProbeStep(t.Context())
	if e := ev.next(t, "health"); e.Origin != "centralus" || e.Detail["healthy"] != false {
		t.Errorf("health event %+v", e)
	}
	// eastus2's backoff is not over (the clock did not move): nothing serves.
	if e := ev.next(t, "route"); !strings.Contains(e.Message, "no serving origin") {
		t.Errorf("route with nothing serving %q", e.Message)
	}
	h.clock.Advance(time.Second)
	a.set("ok")
	h.e.ProbeStep(t.Context())
	if e := ev.next(t, "return"); e.Origin != "eastus2" {
		t.Errorf("return event %+v", e)
	}
	b.setReady(200, "primary", 9)
	h.e.ProbeStep(t.Context())
	if e := ev.next(t, "role"); e.Origin != "centralus" || e.Detail["role"] != "primary" || e.Detail["epoch"] != 9.0 {
		t.Errorf("role event %+v", e)
	}
}

func TestMetrics(t *testing.T) {
	a, b := newOrigin(t, "eastus2"), newOrigin(t, "centralus")
	h := newHarness(t, testTopology(nil, a, b), Options{})
	h.chat(t)
	a.set("503")
	h.chat(t)
	req, _ := http.NewRequest("GET", h.srv.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`understudy_edge_requests_total{code="200",origin="eastus2"} 1`,
		`understudy_edge_requests_total{code="200",origin="centralus"} 1`,
		`understudy_edge_retries_total{origin="eastus2",reason="status 503"} 1`,
		`understudy_edge_ejections_total{origin="eastus2",reason="status 503"} 1`,
		`understudy_edge_probes_total{origin="eastus2",result="pass"} 1`,
		`understudy_edge_origin_serving{origin="eastus2"} 0`,
		`understudy_edge_origin_serving{origin="centralus"} 1`,
		`understudy_edge_origin_healthy{origin="eastus2"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestStartAndStagedShutdown(t *testing.T) {
	a := newOrigin(t, "eastus2")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	topo := testTopology(func(t *topology.Topology) {
		t.Gateway.LameDuck = topology.Duration(10 * time.Second)
	}, a)
	e, err := New(topo, Options{Listener: ln})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	get := func(path string) int {
		resp, err := http.Get(e.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if get("/readyz") != 200 || get("/healthz") != 200 {
		t.Fatal("not ready after Start")
	}
	// The initial probe round ran in Start: the origin serves already.
	if v := e.Origins()[0]; !v.Serving {
		t.Fatalf("origin not serving after Start: %+v", v)
	}
	ev := openEvents(t, e.URL())
	ctx, cancel := context.WithCancel(context.Background())
	closed := make(chan error, 1)
	go func() { closed <- e.Close(ctx) }()
	ev.next(t, "draining")
	// Lame duck: /readyz fails, /healthz and traffic still work.
	if get("/readyz") != 503 || get("/healthz") != 200 || get("/v1/models") != 200 {
		t.Error("lame duck: want readyz 503, healthz 200, proxy 200")
	}
	cancel() // cut the lame duck short; drain has an expired context but nothing is in flight
	<-closed
	if _, err := http.Get(e.URL() + "/healthz"); err == nil {
		t.Error("still serving after Close")
	}
}
