package up

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/topology"
)

// pidChild is the UP_TEST_CHILD=pid process: an HTTP server on the
// --listen address of its arguments (else a free loopback port) that
// answers its name (the arguments after the subcommand) and pid.
func pidChild() {
	addr := "127.0.0.1:0"
	for i, a := range os.Args {
		if a == "--listen" && i+1 < len(os.Args) {
			addr = os.Args[i+1]
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d", os.Getpid())
	}))
	fmt.Printf("ready component=fake url=http://%s\n", ln.Addr())
	<-sig
	os.Exit(0)
}

func TestReplicasBehindBalancer(t *testing.T) {
	t.Setenv("UP_TEST_CHILD", "pid")
	dir := t.TempDir()
	src := string(topology.ExampleYAML(topology.ExampleOptions{
		Key: "sk-test-0123456789abcdef", AdminToken: "admin-0123456789abcdef", ReplicationSecret: "repl-0123456789abcdef",
	}))
	// eastus2 gets two replicas on postgres (never dialled: the children are fakes).
	src = strings.Replace(src, "    priority: 1\n", "    priority: 1\n    replicas: 2\n    store: {driver: postgres, dsn: postgres://127.0.0.1:1/x}\n", 1)
	path := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var out lockedOutput
	u, _ := New(path, Options{Binary: os.Args[0], Stdout: &out, ReadyTimeout: 10 * time.Second, Grace: 5 * time.Second})
	if err := u.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close(context.Background()) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go u.Wait(ctx)

	var gws []string
	for _, p := range u.Procs() {
		if p.Kind == "gateway" {
			gws = append(gws, fmt.Sprintf("%s#%d", p.Name, p.Replica))
		}
	}
	if want := []string{"gateway/eastus2/1#1", "gateway/eastus2/2#2", "gateway/centralus#0"}; !slices.Equal(gws, want) {
		t.Fatalf("gateways %v, want %v", gws, want)
	}
	regionURL := u.Topology.Region("eastus2").URL
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	// who returns the pids that answer n requests at the region's URL.
	who := func(n int) map[string]int {
		got := map[string]int{}
		for range n {
			resp, err := client.Get(regionURL)
			if err != nil {
				got["error"]++
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got[string(b)]++
		}
		return got
	}
	pids := func() map[string]int {
		m := map[string]int{}
		for _, name := range []string{ReplicaName("eastus2", 1), ReplicaName("eastus2", 2)} {
			m[fmt.Sprint(u.procs.get(name).Pid())] = 2
		}
		return m
	}
	if got, want := who(4), pids(); !mapsEqual(got, want) {
		t.Fatalf("answers at the region URL %v, want each replica twice %v", got, want)
	}
	if !strings.Contains(out.String(), "ready component=gateway region=eastus2 replica=2 url=") ||
		!strings.Contains(out.String(), "balancer region=eastus2 listen="+u.Topology.Region("eastus2").Listen) {
		t.Errorf("up's output lacks the replica's ready line or the balancer line:\n%s", out.String())
	}
	var st State
	data, err := os.ReadFile(filepath.Join(u.Topology.DataDir, "up.json"))
	if err == nil {
		err = json.Unmarshal(data, &st)
	}
	if err != nil || len(st.Balancers) != 1 || len(st.Balancers[0].Upstreams) != 2 {
		t.Fatalf("up.json balancers = %+v, %v", st.Balancers, err)
	}

	srv := httptest.NewServer(u.ControlHandler("admin-0123456789abcdef"))
	defer srv.Close()
	post := func(path string) {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer admin-0123456789abcdef")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	// One replica killed: the balancer skips it.
	post("/v1/components/gateway/eastus2/1/kill")
	only := map[string]int{fmt.Sprint(u.procs.get(ReplicaName("eastus2", 2)).Pid()): 3}
	if got := who(3); !mapsEqual(got, only) {
		t.Fatalf("with replica 1 killed: %v, want %v", got, only)
	}
	// Region down kills every replica; the balancer resets connections.
	post("/v1/regions/eastus2/down")
	for _, p := range u.Procs() {
		if p.Region == "eastus2" {
			select {
			case <-p.Done():
			default:
				t.Fatalf("%s still runs after region down", p.Name)
			}
		}
	}
	if got := who(2); got["error"] != 2 {
		t.Fatalf("region down: %v, want every request to fail", got)
	}
	// Region up: new replicas on new ports, the balancer follows.
	post("/v1/regions/eastus2/up")
	if got, want := who(4), pids(); !mapsEqual(got, want) {
		t.Fatalf("after region up: %v, want %v", got, want)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// lockedOutput is up's stdout, written by several goroutines.
type lockedOutput struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedOutput) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedOutput) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
