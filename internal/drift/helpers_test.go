package drift

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/agents"
	"github.com/understudy/understudy/internal/gateway"
	"github.com/understudy/understudy/internal/replication"
	"github.com/understudy/understudy/internal/topology"
)

const (
	adminToken = "admin-drift-test-0123456789"
	dep        = "gpt-4.1-mini"
	east       = "eastus2"
	central    = "centralus"
)

// t0 is the fake gateways' clock when they take their inventory.
var t0 = time.Date(2026, 3, 4, 5, 6, 0, 0, time.UTC)

// fakeRegion is a region's admin API served from values the test sets:
// a fake gateway whose answers have the real types' shapes.
type fakeRegion struct {
	srv *httptest.Server

	mu     sync.Mutex
	inv    *gateway.Inventory
	agents []agents.AppliedAgent
	state  *regionState
	status map[string]int // path -> status to answer instead (404, 401, 500)
}

func (f *fakeRegion) set(fn func(f *fakeRegion)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeRegion) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+adminToken {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":{"message":"Admin endpoints need 'Authorization: Bearer <admin token>'.","code":"invalid_admin_token"}}`))
		return
	}
	if st := f.status[r.URL.Path]; st != 0 {
		w.WriteHeader(st)
		w.Write([]byte(`{"error":{"message":"injected by the test"}}`))
		return
	}
	var v any
	switch r.URL.Path {
	case "/admin/inventory":
		v = f.inv
	case "/admin/agents":
		v = agents.AgentList{Object: "list", Data: f.agents}
	case "/admin/state":
		v = f.state
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// world is a two-region topology whose regions are fake gateways that,
// until a test changes them, run exactly the file.
type world struct {
	topo *topology.Topology
	fake map[string]*fakeRegion
	defs []*agents.Definition
}

func newWorld(t *testing.T, mutate func(*topology.Topology)) *world {
	t.Helper()
	w := &world{fake: map[string]*fakeRegion{}}
	for _, name := range []string{east, central} {
		f := &fakeRegion{status: map[string]int{}}
		f.srv = httptest.NewServer(f)
		t.Cleanup(f.srv.Close)
		w.fake[name] = f
	}
	tp := &topology.Topology{
		Name:        "drift-test",
		Keys:        []topology.Key{{Name: "k", Key: topology.NewSecret("sk-drift-test-0123456789")}},
		Admin:       topology.Admin{Token: topology.NewSecret(adminToken)},
		Deployments: []topology.Deployment{{Name: dep, Version: "2025-04-14", SKU: "GlobalStandard", Capacity: 100}},
		Replication: topology.Replication{Secret: topology.NewSecret("repl-drift-test-0123456789")},
	}
	for _, name := range []string{east, central} {
		tp.Regions = append(tp.Regions, topology.Region{Name: name, Listen: "127.0.0.1:0", URL: w.fake[name].srv.URL,
			Backends: map[string][]topology.Backend{dep: {{Name: name + "-b1", Kind: topology.KindOpenAI, URL: "http://127.0.0.1:9"}}}})
	}
	if mutate != nil {
		mutate(tp)
	}
	tp.Default()
	if err := tp.Validate(); err != nil {
		t.Fatal(err)
	}
	w.topo = tp
	w.defs = []*agents.Definition{
		{Name: "support", Model: dep, Instructions: "Help.", Metadata: map[string]string{"version": "1"}},
		{Name: "triage", Model: dep, Instructions: "Sort.", Metadata: map[string]string{"version": "2"}},
	}
	var applied []agents.AppliedAgent
	for _, d := range w.defs {
		applied = append(applied, agents.AppliedAgent{Object: "agent", Name: d.Name, Version: d.Version(), Hash: d.Hash(), Model: d.Model})
	}
	for _, r := range tp.Regions {
		name := r.Name
		f := w.fake[name]
		f.inv = inventoryFor(tp, name)
		f.agents = slices.Clone(applied)
		f.state = &regionState{Region: name, Role: "standby", Epoch: 1}
	}
	w.fake[east].state = &regionState{Region: east, Role: "primary", Epoch: 1, SyncPeers: []string{central},
		Replication: map[string]replication.Status{central: {Mode: replication.Mode("sync"), Peer: central, Connected: true, Epoch: 1, PeerEpoch: 1}}}
	return w
}

// inventoryFor is what a gateway running tp in region would report when
// every backend reports the pinned model and version.
func inventoryFor(tp *topology.Topology, region string) *gateway.Inventory {
	cfg := gateway.RenderConfig(tp, region)
	inv := &gateway.Inventory{Region: region, ConfigHash: cfg.Hash(), Config: cfg, At: t0}
	for _, d := range tp.Deployments {
		id := gateway.InventoryDeployment{Name: d.Name, Model: d.Model, Version: d.Version, SKU: d.SKU, Capacity: d.Capacity}
		for _, b := range tp.Region(region).Backends[d.Name] {
			id.Backends = append(id.Backends, gateway.InventoryBackend{Name: b.Name, Kind: b.Kind, Model: b.Model, State: "healthy",
				Serving: true, Reported: gateway.ReportedModel{Source: gateway.SourceModels, Model: b.Model, Version: d.Version}})
		}
		inv.Deployments = append(inv.Deployments, id)
	}
	return inv
}

// backend returns a pointer into f's inventory (call inside set).
func (f *fakeRegion) backend(i int) *gateway.InventoryBackend {
	return &f.inv.Deployments[0].Backends[i]
}

// check runs the checks against the world.
func (w *world) check(t *testing.T, opts Options) Report {
	t.Helper()
	if opts.Agents == nil {
		opts.Agents = w.defs
	}
	r, err := Check(t.Context(), w.topo, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// findingKey is a finding as one comparable line.
func findingKey(f Finding) string {
	subj := f.Subject()
	if subj == "" {
		subj = "-"
	}
	return strings.Join([]string{string(f.Kind), f.Region, f.Check, subj, f.Field, f.Expected, f.Actual}, " | ")
}

func quota(at time.Time, limReq, remReq, limTok, remTok int64) *gateway.Quota {
	q := &gateway.Quota{At: at, Status: 200}
	if limReq >= 0 {
		q.LimitRequests, q.RemainingRequests = &limReq, &remReq
	}
	if limTok >= 0 {
		q.LimitTokens, q.RemainingTokens = &limTok, &remTok
	}
	return q
}

func i64(v int64) *int64 { return &v }
