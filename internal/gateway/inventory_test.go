package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/modelsim"
	"github.com/understudy/understudy/internal/topology"
)

// inventoryOf fetches GET /admin/inventory with the admin token.
func inventoryOf(t *testing.T, g *gw) Inventory {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.url+"/admin/inventory", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	st, _, body := do(t, req)
	if st != 200 {
		t.Fatalf("GET /admin/inventory: %d %s", st, body)
	}
	var inv Inventory
	if err := json.Unmarshal([]byte(body), &inv); err != nil {
		t.Fatalf("decode inventory: %v\n%s", err, body)
	}
	return inv
}

func backendOf(t *testing.T, inv Inventory, dep, name string) InventoryBackend {
	t.Helper()
	for _, d := range inv.Deployments {
		if d.Name != dep {
			continue
		}
		for _, b := range d.Backends {
			if b.Name == name {
				return b
			}
		}
	}
	t.Fatalf("no backend %s/%s in inventory %+v", dep, name, inv)
	return InventoryBackend{}
}

func n64(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

// TestInventoryReportsVersionsStateAndConfig: the inventory lists the
// configured deployment, each backend's state and the version it reports
// on /v1/models (a drifted one too), and the hash of the running config.
func TestInventoryReportsVersionsStateAndConfig(t *testing.T) {
	a := newSim(t, "m") // reports 2024-07-18, the pinned version
	b := newSim(t, "m")
	b.SetFaults(modelsim.Faults{Version: "2023-01-01"})
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	tp := topo(t, []string{"m"}, map[string][]topology.Backend{"m": {
		openaiBackend("a", a.URL(), 1), openaiBackend("b", b.URL(), 1), openaiBackend("down", down.URL, 2),
		{Name: "az", Kind: topology.KindAzureOpenAI, URL: "https://example.invalid", APIKey: topology.NewSecret("azure-secret-key"), Priority: 3},
	}}, func(tp *topology.Topology) {
		tp.Deployments[0].SKU, tp.Deployments[0].Capacity = "GlobalStandard", 50
	})
	g := startGateway(t, tp)
	inv := inventoryOf(t, g)

	if inv.Region != testRegion || inv.Draining || len(inv.Deployments) != 1 {
		t.Fatalf("inventory = %+v", inv)
	}
	d := inv.Deployments[0]
	if d.Name != "m" || d.Model != "m" || d.Version != "2024-07-18" || d.SKU != "GlobalStandard" || d.Capacity != 50 || len(d.Backends) != 4 {
		t.Errorf("deployment = %+v", d)
	}
	tests := []struct {
		backend, model, version, source, errHas string
	}{
		{"a", "m", "2024-07-18", SourceModels, ""},
		{"b", "m", "2023-01-01", SourceModels, ""},
		{"down", "", "", SourceModels, "connect"},
		{"az", "", "", SourceNone, ""},
	}
	for _, tt := range tests {
		t.Run(tt.backend, func(t *testing.T) {
			r := backendOf(t, inv, "m", tt.backend).Reported
			if r.Model != tt.model || r.Version != tt.version || r.Source != tt.source || !strings.Contains(r.Error, tt.errHas) ||
				(tt.errHas == "" && r.Error != "") {
				t.Errorf("reported = %+v, want model %q version %q source %q error containing %q", r, tt.model, tt.version, tt.source, tt.errHas)
			}
		})
	}
	if ab := backendOf(t, inv, "m", "a"); ab.State != stateHealthy || !ab.Serving || ab.Quota != nil || ab.Model != "m" || ab.Kind != topology.KindOpenAI {
		t.Errorf("backend a = %+v, want healthy, serving, no quota yet", ab)
	}
	if want := RenderConfig(tp, testRegion).Hash(); inv.ConfigHash != want || !strings.HasPrefix(want, "sha256:") {
		t.Errorf("config hash = %q, want %q", inv.ConfigHash, want)
	}
	if inv.Config.Deployments[0].Backends[3].APIKey != "<redacted>" {
		t.Errorf("api key rendered as %q", inv.Config.Deployments[0].Backends[3].APIKey)
	}
}

// TestInventoryQuotaFromLastAnswer: the rate-limit headers of the last
// answer (2xx or 429) are reported; an answer without them says the
// backend advertises no limit.
func TestInventoryQuotaFromLastAnswer(t *testing.T) {
	var hdr http.Header
	status := 200
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range hdr {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if status == 200 {
			w.Write([]byte(`{"id":"x","object":"chat.completion","model":"m","choices":[]}`))
		} else {
			w.Write([]byte(`{"error":{"message":"slow down","code":"rate_limit_exceeded"}}`))
		}
	}))
	t.Cleanup(srv.Close)
	tp := topo(t, []string{"m"}, map[string][]topology.Backend{"m": {openaiBackend("a", srv.URL, 1)}}, nil)
	g := startGateway(t, tp)

	tests := []struct {
		name   string
		status int
		hdr    http.Header
		want   [6]int64 // limit, remaining, reset ms: requests, then tokens (-1: absent)
	}{
		{"openai headers", 200, http.Header{
			"X-Ratelimit-Limit-Requests": {"600"}, "X-Ratelimit-Remaining-Requests": {"599"}, "X-Ratelimit-Reset-Requests": {"100ms"},
			"X-Ratelimit-Limit-Tokens": {"100000"}, "X-Ratelimit-Remaining-Tokens": {"99980"}, "X-Ratelimit-Reset-Tokens": {"6m0s"},
		}, [6]int64{600, 599, 100, 100000, 99980, 360000}},
		{"tokens only, reset in seconds", 200, http.Header{
			"X-Ratelimit-Limit-Tokens": {"5000"}, "X-Ratelimit-Remaining-Tokens": {"10"}, "X-Ratelimit-Reset-Tokens": {"12"},
		}, [6]int64{-1, -1, -1, 5000, 10, 12000}},
		{"429 with headers", 429, http.Header{
			"X-Ratelimit-Limit-Requests": {"6"}, "X-Ratelimit-Remaining-Requests": {"0"}, "Retry-After": {"1"},
		}, [6]int64{6, 0, -1, -1, -1, -1}},
		{"no headers", 200, http.Header{}, [6]int64{-1, -1, -1, -1, -1, -1}},
		{"garbage", 200, http.Header{"X-Ratelimit-Limit-Requests": {"lots"}, "X-Ratelimit-Reset-Requests": {"soon"}},
			[6]int64{-1, -1, -1, -1, -1, -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr, status = tt.hdr, tt.status
			g.clock.Advance(time.Minute) // cooldowns of the 429 case end
			st, _, body := g.post(t, chatPath, chatBody("m", false))
			if st != tt.status {
				t.Fatalf("chat: %d %s", st, body)
			}
			q := backendOf(t, inventoryOf(t, g), "m", "a").Quota
			if q == nil {
				t.Fatal("no quota after an answer")
			}
			got := [6]int64{n64(q.LimitRequests), n64(q.RemainingRequests), n64(q.ResetRequestsMs),
				n64(q.LimitTokens), n64(q.RemainingTokens), n64(q.ResetTokensMs)}
			if got != tt.want || q.Status != tt.status || !q.At.Equal(g.clock.Now()) {
				t.Errorf("quota = %v status %d at %v, want %v status %d at %v", got, q.Status, q.At, tt.want, tt.status, g.clock.Now())
			}
		})
	}
}

// TestInventoryQuotaIgnoresFailures: a 5xx answer leaves the last
// observation as it was.
func TestInventoryQuotaIgnoresFailures(t *testing.T) {
	s := modelsim.New(modelsim.Config{Model: "m", Version: "2024-07-18", RPM: 100}, nil)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	tp := topo(t, []string{"m"}, map[string][]topology.Backend{"m": {openaiBackend("a", srv.URL, 1)}}, nil)
	g := startGateway(t, tp)
	if st, _, body := g.post(t, chatPath, chatBody("m", false)); st != 200 {
		t.Fatalf("chat: %d %s", st, body)
	}
	first := backendOf(t, inventoryOf(t, g), "m", "a").Quota
	if first == nil || n64(first.LimitRequests) != 100 || n64(first.RemainingRequests) != 99 {
		t.Fatalf("quota after one answer = %+v", first)
	}
	s.SetFaults(modelsim.Faults{ErrorRate: 1})
	g.clock.Advance(time.Second)
	if st, _, _ := g.post(t, chatPath, chatBody("m", false)); st != http.StatusBadGateway {
		t.Fatalf("chat against a failing backend: %d", st)
	}
	q := backendOf(t, inventoryOf(t, g), "m", "a").Quota
	if q == nil || !q.At.Equal(first.At) || n64(q.RemainingRequests) != 99 {
		t.Errorf("quota after a 500 = %+v, want the first observation %+v", q, first)
	}
}

// TestInventoryNeedsAdmin: the inventory is an admin route.
func TestInventoryNeedsAdmin(t *testing.T) {
	s := newSim(t, "m")
	g := startGateway(t, topo(t, []string{"m"}, map[string][]topology.Backend{"m": {openaiBackend("a", s.URL(), 1)}}, nil))
	for _, auth := range []string{"", "Bearer " + keyAlice} {
		req, _ := http.NewRequest(http.MethodGet, g.url+"/admin/inventory", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if st, _, body := do(t, req); st != http.StatusUnauthorized {
			t.Errorf("auth %q: %d %s", auth, st, body)
		}
	}
}

// TestInventoryModelListShapes: how a backend's model list becomes the
// reported model and version.
func TestInventoryModelListShapes(t *testing.T) {
	tests := []struct {
		name, served, body  string
		status              int
		model, version, err string
	}{
		{"modelsim version field", "m", `{"data":[{"id":"m","version":"2025-04-14"}]}`, 200, "m", "2025-04-14", ""},
		{"dated id", "gpt-4.1-mini-2025-04-14", `{"data":[{"id":"gpt-4.1-mini"},{"id":"gpt-4.1-mini-2025-04-14"}]}`, 200, "gpt-4.1-mini", "2025-04-14", ""},
		{"alias without version", "gpt-4.1-mini", `{"data":[{"id":"gpt-4.1-mini"},{"id":"gpt-4.1-mini-2025-04-14"}]}`, 200, "gpt-4.1-mini", "", ""},
		{"single model under another name", "m", `{"data":[{"id":"meta-llama/Llama-3.1-8B"}]}`, 200, "meta-llama/Llama-3.1-8B", "", ""},
		{"served model not listed", "m", `{"data":[{"id":"a"},{"id":"b"}]}`, 200, "", "", ""},
		{"not a list", "m", `<html>`, 200, "", "", "not a model list"},
		{"error status", "m", `{}`, 404, "", "", "HTTP 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/models" || r.Header.Get("Authorization") != "Bearer backend-key" {
					http.Error(w, "wrong request", http.StatusTeapot)
					return
				}
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			t.Cleanup(srv.Close)
			b := openaiBackend("a", srv.URL, 1)
			b.Model, b.APIKey = tt.served, topology.NewSecret("backend-key")
			g := startGateway(t, topo(t, []string{"m"}, map[string][]topology.Backend{"m": {b}}, nil))
			r := backendOf(t, inventoryOf(t, g), "m", "a").Reported
			if r.Model != tt.model || r.Version != tt.version || !strings.Contains(r.Error, tt.err) || (tt.err == "" && r.Error != "") {
				t.Errorf("reported = %+v, want model %q version %q error %q", r, tt.model, tt.version, tt.err)
			}
		})
	}
}

func TestSplitModelVersion(t *testing.T) {
	tests := []struct{ id, model, version string }{
		{"gpt-4.1-mini-2025-04-14", "gpt-4.1-mini", "2025-04-14"},
		{"gpt-4o-2024-08-06", "gpt-4o", "2024-08-06"},
		{"gpt-35-turbo-0613", "gpt-35-turbo", "0613"},
		{"gpt-4.1-mini", "gpt-4.1-mini", ""},
		{"o3", "o3", ""},
		{"-2025-04-14", "-2025-04-14", ""},
	}
	for _, tt := range tests {
		if m, v := SplitModelVersion(tt.id); m != tt.model || v != tt.version {
			t.Errorf("SplitModelVersion(%q) = %q, %q; want %q, %q", tt.id, m, v, tt.model, tt.version)
		}
	}
}

// TestRenderConfig: the hash changes with what the gateway runs and not
// with what it does not run; secrets never appear.
func TestRenderConfig(t *testing.T) {
	base := func() *topology.Topology {
		return topo(t, []string{"m"}, map[string][]topology.Backend{"m": {
			{Name: "a", Kind: topology.KindOpenAI, URL: "http://127.0.0.1:1", APIKey: topology.NewSecret("backend-secret-1")},
		}}, func(tp *topology.Topology) {
			tp.Regions = append(tp.Regions, topology.Region{Name: "other", Listen: "127.0.0.1:0",
				Backends: map[string][]topology.Backend{"m": {{Kind: topology.KindSim, URL: "http://127.0.0.1:2"}}}})
			tp.Replication.Secret = topology.NewSecret("replication-secret-0123")
		})
	}
	ref := RenderConfig(base(), testRegion).Hash()
	tests := []struct {
		name    string
		mutate  func(*topology.Topology)
		changes bool
	}{
		{"nothing", func(*topology.Topology) {}, false},
		{"version", func(tp *topology.Topology) { tp.Deployments[0].Version = "2025-01-01" }, true},
		{"capacity", func(tp *topology.Topology) { tp.Deployments[0].Capacity = 7 }, true},
		{"timeout", func(tp *topology.Topology) { tp.Deployments[0].Timeouts.Total = topology.Duration(time.Minute) }, true},
		{"backend url", func(tp *topology.Topology) { tp.Regions[0].Backends["m"][0].URL = "http://127.0.0.1:3" }, true},
		{"backend weight", func(tp *topology.Topology) { tp.Regions[0].Backends["m"][0].Weight = 5 }, true},
		{"key limit", func(tp *topology.Topology) { tp.Keys[0].RPM = 1 }, true},
		{"cooldown", func(tp *topology.Topology) { tp.Gateway.CooldownMax = topology.Duration(time.Hour) }, true},
		{"admin allow_remote", func(tp *topology.Topology) { tp.Admin.AllowRemote = true }, true},
		{"backend secret value", func(tp *topology.Topology) {
			tp.Regions[0].Backends["m"][0].APIKey = topology.NewSecret("backend-secret-2")
		}, false},
		{"key secret value", func(tp *topology.Topology) { tp.Keys[0].Key = topology.NewSecret("sk-other-0000000000000") }, false},
		{"other region's backends", func(tp *topology.Topology) { tp.Regions[1].Backends["m"][0].URL = "http://127.0.0.1:4" }, false},
		{"own listen address and store", func(tp *topology.Topology) {
			tp.Regions[0].Listen, tp.Regions[0].Store.Path = "127.0.0.1:9", "/elsewhere.db"
		}, false},
		{"replication", func(tp *topology.Topology) { tp.Replication.Mode = "async" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := base()
			tt.mutate(tp)
			c := RenderConfig(tp, testRegion)
			if got := c.Hash() != ref; got != tt.changes {
				t.Errorf("hash changed = %v, want %v", got, tt.changes)
			}
			js, _ := json.Marshal(c)
			for _, secret := range []string{"backend-secret", keyAlice, "sk-other"} {
				if strings.Contains(string(js), secret) {
					t.Errorf("rendered config contains a secret: %s", js)
				}
			}
		})
	}
}

// BenchmarkQuotaTap is the tap's cost per backend answer (what the hot
// path pays for the inventory's quota data).
func BenchmarkQuotaTap(b *testing.B) {
	resp := &http.Response{StatusCode: 200, Header: http.Header{
		"Content-Type": {"application/json"}, "X-Ratelimit-Limit-Requests": {"600"}, "X-Ratelimit-Remaining-Requests": {"599"},
		"X-Ratelimit-Limit-Tokens": {"100000"}, "X-Ratelimit-Remaining-Tokens": {"99980"},
	}}
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:1/v1/chat/completions", nil)
	tap := &quotaTap{next: roundTripFunc(func(*http.Request) (*http.Response, error) { return resp, nil }),
		now: time.Now, byURL: map[*url.URL]*quotaRec{req.URL: {}}}
	b.ReportAllocs()
	for b.Loop() {
		tap.RoundTrip(req)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// FuzzSplitModelVersion: a split always joins back to the id.
func FuzzSplitModelVersion(f *testing.F) {
	for _, s := range []string{"gpt-4.1-mini-2025-04-14", "gpt-35-turbo-0613", "o3", "", "-", "a-1234", "x-2025-13-99"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		m, v := SplitModelVersion(id)
		switch {
		case v == "" && m != id:
			t.Fatalf("SplitModelVersion(%q) = %q, %q: no version but the model changed", id, m, v)
		case v != "" && (m+"-"+v != id || m == ""):
			t.Fatalf("SplitModelVersion(%q) = %q, %q: does not join back", id, m, v)
		}
	})
}

// FuzzQuotaHeaders: any header values parse without panicking into
// absent or non-negative numbers.
func FuzzQuotaHeaders(f *testing.F) {
	f.Add("600", "599", "1s", "100000", "99980", "6m0s")
	f.Add("", "-1", "soon", "1e9", "NaN", "12.5")
	f.Fuzz(func(t *testing.T, a, b, c, d, e, g string) {
		var r quotaRec
		h := http.Header{}
		for i, v := range []string{a, b, c, d, e, g} {
			h[quotaHeaders[i]] = []string{v}
		}
		r.record(time.Unix(1, 0), 200, h)
		q := r.quota()
		for _, p := range []*int64{q.LimitRequests, q.RemainingRequests, q.ResetRequestsMs, q.LimitTokens, q.RemainingTokens, q.ResetTokensMs} {
			if p != nil && *p < 0 {
				t.Fatalf("negative value %d from %q", *p, []string{a, b, c, d, e, g})
			}
		}
	})
}
