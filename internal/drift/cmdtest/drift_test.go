// Package cmdtest runs the `understudy drift` command in-process against a
// fake region gateway. It is a separate package so the drift package's own
// tests do not link every component of the command registry.
package cmdtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/understudy/understudy/internal/cli"
	"github.com/understudy/understudy/internal/drift"
	"github.com/understudy/understudy/internal/gateway"
	"github.com/understudy/understudy/internal/topology"
	"github.com/understudy/understudy/internal/up"
)

const admin = "admin-cmdtest-0123456789"

// fakeGateway answers the admin API of a one-region world running the
// file, with the backend reporting version.
type fakeGateway struct {
	mu      sync.Mutex
	topo    *topology.Topology
	version string
}

func (f *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+admin {
		http.Error(w, `{"error":{"message":"bad token"}}`, http.StatusUnauthorized)
		return
	}
	var v any
	switch r.URL.Path {
	case "/admin/inventory":
		cfg := gateway.RenderConfig(f.topo, "eastus2")
		d := f.topo.Deployments[0]
		v = gateway.Inventory{Region: "eastus2", ConfigHash: cfg.Hash(), Config: cfg, Deployments: []gateway.InventoryDeployment{{
			Name: d.Name, Model: d.Model, Version: d.Version, SKU: d.SKU, Capacity: d.Capacity,
			Backends: []gateway.InventoryBackend{{Name: "m-1", Kind: "openai", Model: "m", State: "healthy", Serving: true,
				Reported: gateway.ReportedModel{Source: gateway.SourceModels, Model: "m", Version: f.version}}},
		}}}
	case "/admin/agents":
		v = map[string]any{"object": "list", "data": []any{}}
	case "/admin/state":
		v = map[string]any{"region": "eastus2", "role": "primary", "epoch": 1}
	default:
		http.NotFound(w, r)
		return
	}
	json.NewEncoder(w).Encode(v)
}

// setup writes a one-region topology whose gateway is a fake at a fixed
// address, or at port 0 with an up.json naming a resolved copy.
func setup(t *testing.T, portZero bool) (path string, f *fakeGateway) {
	t.Helper()
	f = &fakeGateway{version: "2025-04-14"}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	addr := strings.TrimPrefix(srv.URL, "http://")
	write := func(path, listen string) {
		src := fmt.Sprintf(`version: 1
name: cmdtest
admin:
  token: %s
keys:
  - name: k
    key: sk-cmdtest-0123456789
deployments:
  - name: m
    version: "2025-04-14"
regions:
  - name: eastus2
    listen: %s
    backends:
      m:
        - kind: openai
          url: http://127.0.0.1:9
`, admin, listen)
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path = filepath.Join(dir, "topology.yaml")
	if portZero {
		write(path, "127.0.0.1:0")
		resolved := filepath.Join(dir, "data", "up-topology.yaml")
		os.MkdirAll(filepath.Dir(resolved), 0o755)
		write(resolved, addr)
		st, _ := json.Marshal(up.State{Topology: resolved})
		os.WriteFile(filepath.Join(dir, "data", "up.json"), st, 0o644)
	} else {
		write(path, addr)
	}
	tp, err := topology.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	tp.Regions[0].URL = srv.URL
	f.topo = tp
	return path, f
}

func run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	env := &cli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	code = cli.Main(context.Background(), env, append([]string{"drift"}, args...))
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name     string
		version  string // the backend reports
		portZero bool
		args     []string
		code     int
		stdout   []string
		stderr   string
	}{
		{"ready", "2025-04-14", false, nil, 0, []string{"eastus2  primary  READY", "verdict: READY"}, ""},
		{"not ready", "2024-01-01", false, nil, 1,
			[]string{"NotEqual  eastus2  model  m/m-1    version  2025-04-14  2024-01-01", "verdict: NOT_READY: eastus2"},
			"understudy drift: not ready: eastus2 is NOT_READY"},
		{"unknown passes by default", "", false, nil, 0, []string{"eastus2  primary  UNKNOWN", "reports model m without a version"}, ""},
		{"unknown fails on request", "", false, []string{"--fail-on-unknown"}, 1, []string{"verdict: UNKNOWN"}, "eastus2 is UNKNOWN (--fail-on-unknown)"},
		{"only other checks", "2024-01-01", false, []string{"--checks", "deployment, config"}, 0, []string{"verdict: READY"}, ""},
		{"port 0 through up.json", "2024-01-01", true, nil, 1, []string{"version  2025-04-14  2024-01-01"}, "1 port-0 addresses taken from"},
		{"json", "2024-01-01", false, []string{"--json"}, 1, []string{`"verdict": "NOT_READY"`, `"expected": "2025-04-14"`, `"actual": "2024-01-01"`}, ""},
		{"unknown check", "2025-04-14", false, []string{"--checks", "model,vibes"}, 2, nil, `unknown check "vibes"`},
		{"metrics without watch", "2025-04-14", false, []string{"--metrics", "127.0.0.1:0"}, 2, nil, "--metrics needs --watch"},
		{"arguments", "2025-04-14", false, []string{"now"}, 2, nil, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, f := setup(t, tt.portZero)
			f.mu.Lock()
			f.version = tt.version
			f.mu.Unlock()
			code, stdout, stderr := run(append([]string{"-f", path}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			for _, want := range tt.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, stderr)
			}
		})
	}
}

// TestPortZeroWithoutUp: a port-0 topology needs the state `up` writes.
func TestPortZeroWithoutUp(t *testing.T) {
	path, _ := setup(t, true)
	os.Remove(filepath.Join(filepath.Dir(path), "data", "up.json"))
	code, _, stderr := run("-f", path)
	if code != 1 || !strings.Contains(stderr, "regions[eastus2].listen use port 0") || !strings.Contains(stderr, "understudy up") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

// TestWatchStopsOnCancel: --watch repeats until the context ends and
// exits with the last completed round's status.
func TestWatchStopsOnCancel(t *testing.T) {
	path, f := setup(t, false)
	f.mu.Lock()
	f.version = "2024-01-01"
	f.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	out := &notifyWriter{rounds: make(chan struct{}, 10)}
	env := &cli.Env{Stdin: strings.NewReader(""), Stdout: out, Stderr: &bytes.Buffer{}, Getenv: func(string) string { return "" }}
	done := make(chan int, 1)
	go func() { done <- cli.Main(ctx, env, []string{"drift", "-f", path, "--json", "--watch", "1ms"}) }()
	<-out.rounds
	<-out.rounds // a second round: it repeats
	cancel()
	if code := <-done; code != 1 {
		t.Errorf("exit %d, want 1 (the last round was NOT_READY)", code)
	}
	var r drift.Report
	line, _, _ := strings.Cut(out.String(), "\n")
	if err := json.Unmarshal([]byte(line), &r); err != nil || r.Verdict("eastus2") != drift.NotReady {
		t.Errorf("first JSON line %q: %v", line, err)
	}
}

// notifyWriter signals every write (one write per round with --json).
type notifyWriter struct {
	mu     sync.Mutex
	b      bytes.Buffer
	rounds chan struct{}
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case w.rounds <- struct{}{}:
	default:
	}
	return w.b.Write(p)
}

func (w *notifyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
