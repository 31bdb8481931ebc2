package region

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/conversations"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/understudy/understudy/internal/lease"
	"github.com/understudy/understudy/internal/modelsim"
	"github.com/understudy/understudy/internal/testutil/pgtest"
	"github.com/understudy/understudy/internal/topology"
)

const (
	key    = "sk-region-test-0123456789"
	admin  = "admin-region-test-0123456789"
	secret = "repl-region-test-0123456789"
)

// world is two regions served in-process on real loopback listeners.
type world struct {
	t    *testing.T
	topo *topology.Topology
	lns  map[string]net.Listener
	stop map[string]func()
}

func newWorld(t *testing.T, driver string) *world {
	t.Helper()
	sim := httptest.NewServer(modelsim.New(modelsim.Config{Model: "gpt-4.1-mini", Version: "2025-04-14"}, nil).Handler())
	t.Cleanup(sim.Close)
	dir := t.TempDir()
	w := &world{t: t, lns: map[string]net.Listener{}, stop: map[string]func(){}}
	tp := &topology.Topology{
		DataDir:     dir,
		Keys:        []topology.Key{{Name: "test", Key: topology.NewSecret(key)}},
		Admin:       topology.Admin{Token: topology.NewSecret(admin)},
		Deployments: []topology.Deployment{{Name: "gpt-4.1-mini", Version: "2025-04-14"}},
		Replication: topology.Replication{Secret: topology.NewSecret(secret), SyncTimeout: topology.Duration(time.Second)},
		// No controller listens here: leases come from the standby.
		Controller: topology.Controller{Listen: "127.0.0.1:1", LeaseTTL: topology.Duration(time.Second)},
	}
	off := false
	tp.Gateway.AccessLog = &off
	for _, name := range []string{"eastus2", "centralus"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		w.lns[name] = ln
		st := topology.Store{Path: filepath.Join(dir, name+".db")}
		if driver == "postgres" {
			// Independent databases, one per region (journal mode).
			st = topology.Store{Driver: "postgres", DSN: topology.NewSecret(pgtest.Shared(t).NewDatabase(t))}
		}
		tp.Regions = append(tp.Regions, topology.Region{Name: name, Listen: ln.Addr().String(),
			Store:    st,
			Backends: map[string][]topology.Backend{"gpt-4.1-mini": {{Kind: "openai", URL: sim.URL}}}})
	}
	tp.Default()
	if err := tp.Validate(); err != nil {
		t.Fatal(err)
	}
	w.topo = tp
	return w
}

// start serves region name until the returned stop is called.
func (w *world) start(name string) {
	w.t.Helper()
	s, err := New(w.topo, name, Options{ReconcileEvery: 50 * time.Millisecond, Logger: testLogger(w.t, name)})
	if err != nil {
		w.t.Fatal(err)
	}
	ln := w.lns[name]
	if ln == nil { // restarted: listen on the same address again
		if ln, err = net.Listen("tcp", w.topo.Region(name).Listen); err != nil {
			w.t.Fatal(err)
		}
	}
	w.lns[name] = nil
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			w.t.Errorf("region %s: %v", name, err)
		}
	})
	w.stop[name] = stop
	w.t.Cleanup(stop)
}

func (w *world) kill(name string) { w.stop[name]() }

func (w *world) url(name string) string { return w.topo.Region(name).URL }

func (w *world) client(name string) openai.Client {
	return openai.NewClient(option.WithBaseURL(w.url(name)+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
}

// adminCall sends an admin request and decodes the JSON answer into out.
func (w *world) adminCall(method, name, path string, body any, out any) int {
	w.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, w.url(name)+path, rd)
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

func (w *world) state(name string) State {
	var st State
	if code := w.adminCall("GET", name, "/admin/state", nil, &st); code != 200 {
		w.t.Fatalf("state of %s: %d", name, code)
	}
	return st
}

// dump, when set, logs the regions' states when eventually gives up.
var dump func()

// eventually polls cond until it holds, failing after limit.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for ; !cond(); <-tick.C {
		if time.Now().After(deadline) {
			if dump != nil {
				dump()
			}
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
	}
}

var agent = map[string]any{
	"name": "support", "model": "gpt-4.1-mini", "instructions": "Be brief.", "metadata": map[string]string{"version": "1"},
}

func turn(t *testing.T, c openai.Client, conv, text string) *responses.Response {
	t.Helper()
	resp, err := c.Responses.New(context.Background(), responses.ResponseNewParams{
		Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String(text)},
		Conversation: responses.ResponseNewParamsConversationUnion{OfString: openai.String(conv)},
	}, option.WithJSONSet("agent_reference", map[string]string{"type": "agent_reference", "name": "support"}))
	if err != nil {
		t.Fatalf("turn %q: %v", text, err)
	}
	return resp
}

func itemIDs(t *testing.T, c openai.Client, conv string) []string {
	t.Helper()
	page, err := c.Conversations.Items.List(context.Background(), conv, conversations.ItemListParams{
		Limit: openai.Int(100), Order: conversations.ItemListParamsOrderAsc})
	if err != nil {
		t.Fatalf("list items: %v", err)
	}
	var ids []string
	for _, it := range page.Data {
		ids = append(ids, it.ID)
	}
	return ids
}

// The life of two regions: sync replication, a primary lost, the standby
// promoted with every acknowledged turn, the old primary back, fenced by
// its lease, rejoined as a standby and caught up.
func TestFailoverAndRejoin(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) { testFailoverAndRejoin(t, driver) })
	}
}

func testFailoverAndRejoin(t *testing.T, driver string) {
	w := newWorld(t, driver)
	w.start("eastus2")
	w.start("centralus")
	dump = func() {
		for _, n := range []string{"eastus2", "centralus"} {
			b, _ := json.Marshal(w.state(n))
			t.Logf("%s: %s", n, b)
		}
	}
	eventually(t, 5*time.Second, "eastus2 to hold a lease vouched by the standby", func() bool {
		st := w.state("eastus2")
		return st.Role == "primary" && st.Epoch == 1 && st.Lease != nil && st.Lease.Valid
	})
	if code := w.adminCall("PUT", "eastus2", "/admin/agents", []any{agent}, nil); code != 200 {
		t.Fatalf("apply agent: %d", code)
	}

	east := w.client("eastus2")
	conv, err := east.Conversations.New(context.Background(), conversations.ConversationNewParams{})
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"Where is order A-1?", "And A-2?", "Thanks."} {
		turn(t, east, conv.ID, text)
	}
	acked := itemIDs(t, east, conv.ID)
	if len(acked) != 6 {
		t.Fatalf("primary holds %d items, want 6", len(acked))
	}
	// Sync mode: every acknowledged item is already on the standby.
	central := w.client("centralus")
	if got := itemIDs(t, central, conv.ID); len(got) != len(acked) {
		t.Fatalf("standby holds %d of %d acknowledged items", len(got), len(acked))
	}
	// The standby refuses writes, naming the primary.
	_, err = central.Conversations.New(context.Background(), conversations.ConversationNewParams{})
	var apiErr *openai.Error
	if !errorsAs(err, &apiErr) || apiErr.StatusCode != 503 || apiErr.Code != "not_primary" {
		t.Fatalf("write on the standby: %v", err)
	}

	// Lose the primary; promote the standby.
	w.kill("eastus2")
	var promoted map[string]any
	if code := w.adminCall("POST", "centralus", "/admin/promote", nil, &promoted); code != 200 {
		t.Fatalf("promote: %d %v", code, promoted)
	}
	if promoted["epoch"].(float64) != 2 {
		t.Fatalf("promoted to %v", promoted["epoch"])
	}
	if got := itemIDs(t, central, conv.ID); !equal(got, acked) {
		t.Fatalf("after failover the standby holds %v, want %v", got, acked)
	}
	// No controller runs here and the old primary is gone: one voter of
	// three cannot grant a lease, so the new primary refuses writes rather
	// than risk two writers.
	_, err = central.Conversations.New(context.Background(), conversations.ConversationNewParams{})
	if !errorsAs(err, &apiErr) || apiErr.StatusCode != 503 || apiErr.Code != "write_refused" {
		t.Fatalf("write on a primary without a lease: %v", err)
	}

	// The old primary comes back: its lease is refused as superseded, it
	// fences itself, then rejoins as a standby and catches up.
	w.start("eastus2")
	eventually(t, 10*time.Second, "eastus2 to rejoin as a standby of epoch 2", func() bool {
		st := w.state("eastus2")
		return st.Role == "standby" && st.Epoch == 2
	})
	if q := w.state("eastus2").Quarantined; q != 0 {
		t.Errorf("eastus2 quarantined %d events; it acknowledged nothing the standby lacked", q)
	}
	// Its vouching gives centralus a lease: writes resume, and since
	// eastus2 is caught up in epoch 2 it is back in the sync set.
	eventually(t, 10*time.Second, "centralus to hold a lease and eastus2 to be in sync", func() bool {
		st := w.state("centralus")
		return st.Lease != nil && st.Lease.Valid && st.Lease.From == "standby" && len(st.SyncPeers) == 1
	})
	turn(t, central, conv.ID, "Still there?")
	if got := itemIDs(t, east, conv.ID); len(got) != len(acked)+2 {
		t.Fatalf("sync standby eastus2 holds %d items after an acknowledged turn, want %d", len(got), len(acked)+2)
	}
	_, err = east.Conversations.New(context.Background(), conversations.ConversationNewParams{})
	if !errorsAs(err, &apiErr) || apiErr.Code != "not_primary" {
		t.Fatalf("write on the rejoined standby: %v", err)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A topology of one region: its store is primary of epoch 1 and writes
// need no lease (no other region can hold the epoch).
func TestSingleRegionWrites(t *testing.T) {
	w := newWorld(t, "sqlite")
	w.topo.Regions = w.topo.Regions[:1]
	w.start("eastus2")
	eventually(t, 5*time.Second, "eastus2 primary of epoch 1", func() bool {
		st := w.state("eastus2")
		return st.Role == "primary" && st.Epoch == 1
	})
	c := w.client("eastus2")
	if _, err := c.Conversations.New(context.Background(), conversations.ConversationNewParams{}); err != nil {
		t.Fatalf("write in a one-region topology: %v", err)
	}
}

// A primary fenced in its own epoch (the planned runbook pausing writes)
// keeps shipping until its peers hold every event it committed: here the
// standby is down while acknowledged async writes pile up, the primary is
// fenced, and the standby, back, still receives them all. (The shippers
// used to stop at the fence, and the failback waited for ever.)
func TestFencedPrimaryShipsItsLastEvents(t *testing.T) {
	w := newWorld(t, "sqlite")
	w.topo.Replication.Mode = "async"
	// A controller that always vouches for eastus2 at epoch 1, so writes
	// go on while the standby is down.
	grantor := lease.NewGrantor(w.topo.Controller.LeaseTTL.D(), "eastus2", 1)
	ctl := httptest.NewServer(lease.Handler(grantor, "/v1/lease", secret, admin))
	defer ctl.Close()
	w.topo.Controller.URL = ctl.URL
	w.start("eastus2")
	w.start("centralus")
	east := w.client("eastus2")
	eventually(t, 5*time.Second, "eastus2 writable", func() bool {
		st := w.state("eastus2")
		return st.Lease != nil && st.Lease.Valid
	})
	w.kill("centralus")
	for range 5 {
		if _, err := east.Conversations.New(context.Background(), conversations.ConversationNewParams{}); err != nil {
			t.Fatal(err)
		}
	}
	var fenced State
	if code := w.adminCall("POST", "eastus2", "/admin/fence", nil, &fenced); code != 200 {
		t.Fatalf("fence: %d", code)
	}
	want := w.state("eastus2").Position.Seq
	w.start("centralus")
	dump = func() {
		for _, n := range []string{"eastus2", "centralus"} {
			b, _ := json.Marshal(w.state(n))
			t.Logf("%s: %s", n, b)
		}
	}
	eventually(t, 10*time.Second, "centralus to hold every event the fenced primary committed", func() bool {
		return w.state("centralus").Position.Seq == want
	})
}
