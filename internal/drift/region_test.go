package drift

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/modelsim"
	"github.com/understudy/understudy/internal/region"
	"github.com/understudy/understudy/internal/topology"
)

// TestRealRegions runs the checks against two real region servers (the
// gateway, store, agents and replication of internal/region) in-process,
// each with its own modelsim: the real admin answers decode, the regions
// are READY, a standby backend reporting another version makes the
// standby NOT_READY, and fixing it makes it READY again.
func TestRealRegions(t *testing.T) {
	sims := map[string]*modelsim.Server{}
	dir := t.TempDir()
	tp := &topology.Topology{
		Name: "real", DataDir: dir,
		Keys:        []topology.Key{{Name: "k", Key: topology.NewSecret("sk-drift-real-0123456789")}},
		Admin:       topology.Admin{Token: topology.NewSecret(adminToken)},
		Deployments: []topology.Deployment{{Name: dep, Version: "2025-04-14", SKU: "GlobalStandard", Capacity: 10}},
		Replication: topology.Replication{Secret: topology.NewSecret("repl-drift-real-0123456789"), SyncTimeout: topology.Duration(time.Second)},
		// No controller listens: the standby grants the primary's lease.
		Controller: topology.Controller{Listen: "127.0.0.1:1", LeaseTTL: topology.Duration(time.Second)},
		Agents:     topology.Agents{Dir: filepath.Join(dir, "agents")}, // absent: no agents
	}
	off := false
	tp.Gateway.AccessLog = &off
	lns := map[string]net.Listener{}
	for _, name := range []string{east, central} {
		s := modelsim.New(modelsim.Config{Model: dep, Version: "2025-04-14", RPM: 600, TPM: 10000}, nil)
		srv := httptest.NewServer(s.Handler())
		t.Cleanup(srv.Close)
		sims[name] = s
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[name] = ln
		tp.Regions = append(tp.Regions, topology.Region{Name: name, Listen: ln.Addr().String(),
			Store:    topology.Store{Path: filepath.Join(dir, name+".db")},
			Backends: map[string][]topology.Backend{dep: {{Kind: topology.KindOpenAI, URL: srv.URL}}}})
	}
	tp.Default()
	if err := tp.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{east, central} {
		s, err := region.New(tp, name, region.Options{ReconcileEvery: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx, lns[name]) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("region %s: %v", name, err)
			}
		})
	}
	// Answers through both regions give the quota check numbers: 600
	// requests a minute each, one used.
	for _, name := range []string{east, central} {
		req, _ := http.NewRequest(http.MethodPost, tp.Region(name).URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"`+dep+`","messages":[{"role":"user","content":"hi"}],"max_tokens":4}`))
		req.Header.Set("Authorization", "Bearer sk-drift-real-0123456789")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("chat through %s: %d", name, resp.StatusCode)
		}
	}

	r := checkUntil(t, tp, func(r Report) bool { return r.Worst() == Ready })
	if q := r.Region(central).Check(CheckQuota); q.Status != Pass {
		t.Errorf("quota = %+v", q)
	}
	if r.Region(east).Role != "primary" || r.Region(central).Role != "standby" {
		t.Errorf("roles = %q, %q", r.Region(east).Role, r.Region(central).Role)
	}

	sims[central].SetFaults(modelsim.Faults{Version: "2024-01-01"})
	r = checkUntil(t, tp, func(r Report) bool { return r.Verdict(central) == NotReady })
	want := "NotEqual | centralus | model | gpt-4.1-mini/gpt-4.1-mini-1 | version | 2025-04-14 | 2024-01-01"
	if len(r.Findings) != 1 || findingKey(r.Findings[0]) != want || r.Verdict(east) != Ready {
		t.Errorf("findings = %+v, want only %q", r.Findings, want)
	}

	sims[central].SetFaults(modelsim.Faults{})
	checkUntil(t, tp, func(r Report) bool { return r.Worst() == Ready })
}

// checkUntil runs the checks until ok accepts the report (replication
// connects within a heartbeat) or 15 s pass.
func checkUntil(t *testing.T, tp *topology.Topology, ok func(Report) bool) Report {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		r, err := Check(t.Context(), tp, Options{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if ok(r) {
			return r
		}
		select {
		case <-deadline:
			var reasons []string
			for _, rr := range r.Regions {
				reasons = append(reasons, rr.Region+": "+string(rr.Verdict)+" "+strings.Join(rr.Reasons, "; "))
			}
			t.Fatalf("condition not met within 15s; last report:\n%s", strings.Join(reasons, "\n"))
		case <-time.After(50 * time.Millisecond):
		}
	}
}
