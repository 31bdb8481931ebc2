package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/understudy/understudy/internal/modelsim"
	"github.com/understudy/understudy/internal/topology"
)

// TestAdminAccess: admin endpoints need the admin token and a loopback
// peer unless admin.allow_remote.
func TestAdminAccess(t *testing.T) {
	for _, allowRemote := range []bool{false, true} {
		s := newSim(t, "gpt-4o-mini")
		tp := topo(t, []string{"m"}, map[string][]topology.Backend{"m": {openaiBackend("a", s.URL(), 1)}},
			func(tp *topology.Topology) { tp.Admin.AllowRemote = allowRemote })
		g, err := New(tp, testRegion, Options{})
		if err != nil {
			t.Fatal(err)
		}
		h := g.Handler()
		tests := []struct {
			name, remote, auth string
			want               int
		}{
			{"loopback with token", "127.0.0.1:5000", "Bearer " + adminToken, 200},
			{"ipv6 loopback with token", "[::1]:5000", "Bearer " + adminToken, 200},
			{"loopback without token", "127.0.0.1:5000", "", 401},
			{"loopback wrong token", "127.0.0.1:5000", "Bearer " + adminToken + "x", 401},
			{"loopback client key", "127.0.0.1:5000", "Bearer " + keyAlice, 401},
			{"remote with token", "10.1.2.3:5000", "Bearer " + adminToken, map[bool]int{false: 403, true: 200}[allowRemote]},
			{"remote without token", "10.1.2.3:5000", "", map[bool]int{false: 403, true: 401}[allowRemote]},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("allow_remote=%v/%s", allowRemote, tt.name), func(t *testing.T) {
				req := httptest.NewRequest(http.MethodGet, "/admin/backends", nil)
				req.RemoteAddr = tt.remote
				if tt.auth != "" {
					req.Header.Set("Authorization", tt.auth)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != tt.want || rec.Header().Get("X-Understudy-Region") != testRegion {
					t.Fatalf("got %d, want %d: %s", rec.Code, tt.want, rec.Body)
				}
				if rec.Code != 200 {
					apiErr(t, rec.Body.String())
					return
				}
				var out AdminBackends
				if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Region != testRegion ||
					len(out.Deployments["m"]) != 1 || out.Deployments["m"][0].State != stateHealthy || out.Deployments["m"][0].Model != "m" {
					t.Errorf("body %s", rec.Body)
				}
			})
		}
		// A cross-origin browser request cannot drain the gateway.
		req := httptest.NewRequest(http.MethodPost, "/admin/drain", nil)
		req.RemoteAddr = "127.0.0.1:5000"
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden || g.Draining() {
			t.Errorf("cross-site drain: %d, draining %v", rec.Code, g.Draining())
		}
	}
}

func readyz(t *testing.T, g *gw, method string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, g.url+"/readyz", nil)
	st, h, body := do(t, req)
	if h.Get("X-Understudy-Region") != testRegion {
		t.Errorf("readyz without region header")
	}
	if method == http.MethodHead {
		if body != "" {
			t.Errorf("HEAD /readyz has a body")
		}
		return st, nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("readyz body %q", body)
	}
	return st, m
}

// TestReadyz: deep readiness: every deployment needs a serving backend,
// the gateway must not be draining, contributors must pass.
func TestReadyz(t *testing.T) {
	a, b := newSim(t, "x"), newSim(t, "y")
	tp := topo(t, []string{"m", "n"}, map[string][]topology.Backend{
		"m": {openaiBackend("a", a.URL(), 1)},
		"n": {openaiBackend("b", b.URL(), 1)},
	}, nil)
	g := startGateway(t, tp)
	st, body := readyz(t, g, http.MethodGet)
	want := `{"deployments":{"m":{"backends":1,"serving":1},"n":{"backends":1,"serving":1}},"draining":false,"ready":true,"region":"eastus2"}`
	if got, _ := json.Marshal(body); st != 200 || string(got) != want {
		t.Fatalf("readyz %d %s\nwant %s", st, got, want)
	}
	if st, _ := readyz(t, g, http.MethodHead); st != 200 {
		t.Errorf("HEAD readyz %d", st)
	}

	// A deployment with no serving backend fails readiness.
	a.SetFaults(modelsim.Faults{ErrorRate: 1})
	g.post(t, chatPath, chatBody("m", false))
	st, body = readyz(t, g, http.MethodGet)
	if st != 503 || body["ready"] != false || fmt.Sprint(body["deployments"]) != "map[m:map[backends:1 serving:0] n:map[backends:1 serving:1]]" {
		t.Fatalf("with m's only backend ejected: %d %v", st, body)
	}
	if st, _ := readyz(t, g, http.MethodHead); st != 503 {
		t.Errorf("HEAD readyz %d", st)
	}
	g.clock.Advance(tp.Gateway.EjectBase.D()) // trial due: serving again
	if st, _ := readyz(t, g, http.MethodGet); st != 200 {
		t.Fatalf("after the ejection: %d", st)
	}

	// Contributors add fields; an error fails readiness and names the check.
	g.AddReadiness("store", func(ctx context.Context) (map[string]any, error) {
		return map[string]any{"role": "primary", "epoch": 3}, nil
	})
	st, body = readyz(t, g, http.MethodGet)
	if st != 200 || body["role"] != "primary" || body["epoch"] != float64(3) {
		t.Fatalf("with a passing contributor: %d %v", st, body)
	}
	g.AddReadiness("replication", func(ctx context.Context) (map[string]any, error) {
		return map[string]any{"lag_events": 12}, errors.New("standby unreachable: secret detail")
	})
	st, body = readyz(t, g, http.MethodGet)
	if st != 503 || body["lag_events"] != float64(12) || fmt.Sprint(body["failing"]) != "[replication]" || strings.Contains(fmt.Sprint(body), "secret") {
		t.Fatalf("with a failing contributor: %d %v", st, body)
	}
}

// TestDrainAdmin: POST /admin/drain makes /readyz fail (lame duck) while
// traffic is still served and /healthz stays up; DELETE ends it.
func TestDrainAdmin(t *testing.T) {
	g, _, _ := twoBackends(t, nil)
	admin := func(method string) int {
		req, _ := http.NewRequest(method, g.url+"/admin/drain", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		st, _, _ := do(t, req)
		return st
	}
	if st := admin(http.MethodPost); st != 200 {
		t.Fatalf("drain: %d", st)
	}
	st, body := readyz(t, g, http.MethodGet)
	if st != 503 || body["draining"] != true {
		t.Fatalf("readyz while draining: %d %v", st, body)
	}
	req, _ := http.NewRequest(http.MethodGet, g.url+"/healthz", nil)
	if st, _, _ := do(t, req); st != 200 {
		t.Errorf("healthz while draining: %d", st)
	}
	servedBy(t, g, "a")
	if got := metricValue(t, g, "understudy_gateway_draining"); got != "1" {
		t.Errorf("draining metric %q", got)
	}
	if st := admin(http.MethodDelete); st != 200 {
		t.Fatalf("undrain: %d", st)
	}
	if st, _ := readyz(t, g, http.MethodGet); st != 200 {
		t.Errorf("readyz after undrain: %d", st)
	}
}

// TestExtensionPoints: HandleClient puts routes behind keys and RPM and
// names the key; HandleRaw leaves auth to the route; HandleAdmin applies
// the admin rule.
func TestExtensionPoints(t *testing.T) {
	s := newSim(t, "x")
	tp := topo(t, []string{"m"}, map[string][]topology.Backend{"m": {openaiBackend("a", s.URL(), 1)}}, nil)
	g := startGateway(t, tp)
	g.HandleClient("POST /v1/responses", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "key=%s body=%s", KeyName(r.Context()), b)
	}))
	g.HandleRaw("POST /replication/batch", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "raw key=%q", KeyName(r.Context()))
	}))
	g.HandleAdmin("GET /admin/custom", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "admin ok")
	}))
	send := func(method, path, auth, body string) (int, string) {
		req, _ := http.NewRequest(method, g.url+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		st, h, out := do(t, req)
		if h.Get("X-Understudy-Region") != testRegion {
			t.Errorf("%s %s: no region header", method, path)
		}
		return st, out
	}
	if st, out := send("POST", "/v1/responses", "Bearer "+keyAlice, "hi"); st != 200 || out != "key=alice body=hi" {
		t.Errorf("client route: %d %q", st, out)
	}
	if st, out := send("POST", "/v1/responses", "", "hi"); st != 401 || apiErr(t, out).code() != "invalid_api_key" {
		t.Errorf("client route without key: %d %q", st, out)
	}
	if st, out := send("GET", "/v1/responses", "Bearer "+keyAlice, ""); st != 405 {
		t.Errorf("client route, wrong method: %d %q", st, out)
	}
	for i := range 3 { // key "limited": 2 requests a minute
		st, out := send("POST", "/v1/responses", "Bearer "+keyLimited, "x")
		if want := map[bool]int{true: 200, false: 429}[i < 2]; st != want {
			t.Errorf("limited key request %d: %d %q", i, st, out)
		}
	}
	if st, out := send("POST", "/replication/batch", "", ""); st != 200 || out != `raw key=""` {
		t.Errorf("raw route: %d %q", st, out)
	}
	if st, _ := send("GET", "/admin/custom", "", ""); st != 401 {
		t.Errorf("admin route without token: %d", st)
	}
	if st, out := send("GET", "/admin/custom", "Bearer "+adminToken, ""); st != 200 || out != "admin ok" {
		t.Errorf("admin route: %d %q", st, out)
	}
}

// TestAccessLog: one line per request with the key's name, never the key
// or the prompt.
func TestAccessLog(t *testing.T) {
	s := newSim(t, "x")
	tp := topo(t, []string{"m"}, map[string][]topology.Backend{"m": {openaiBackend("a", s.URL(), 1)}},
		func(tp *topology.Topology) { on := true; tp.Gateway.AccessLog = &on })
	g := startGateway(t, tp)
	secretPrompt := "my-very-private-prompt"
	body := `{"model":"m","messages":[{"role":"user","content":"` + secretPrompt + `"}]}`
	if st, _, _ := g.post(t, chatPath, body); st != 200 {
		t.Fatal(st)
	}
	g.post(t, chatPath, body, "Authorization", "Bearer sk-unknown-000000000000000")
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(g.logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "access" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d access lines:\n%s", len(lines), g.logs)
	}
	l := lines[0]
	if l["key"] != "alice" || l["deployment"] != "m" || l["backend"] != "a" || l["status"] != float64(200) || l["route"] != "POST /v1/chat/completions" {
		t.Errorf("access line %v", l)
	}
	if lines[1]["status"] != float64(401) || lines[1]["error"] != "invalid_api_key" {
		t.Errorf("401 line %v", lines[1])
	}
	all := g.logs.String()
	for _, secret := range []string{keyAlice, secretPrompt, "sk-unknown"} {
		if strings.Contains(all, secret) {
			t.Errorf("log contains %q", secret)
		}
	}
}
