package up

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/understudy/understudy/internal/topology"
)

// gateway.procs and edge.procs reach every gateway process, each replica
// included, and the edge: each runs `<kind> -f FILE` and every rewrite of
// the topology up writes (ports, namespaces, link proxies) keeps them.
func TestProcsReachEveryProcess(t *testing.T) {
	src := string(topology.ExampleYAML(topology.ExampleOptions{
		Key: "sk-test-0123456789abcdef", AdminToken: "admin-0123456789abcdef", ReplicationSecret: "repl-0123456789abcdef",
	})) // all ports zero
	src = strings.Replace(src, "    priority: 1\n", "    priority: 1\n    replicas: 3\n    store: {driver: postgres, dsn: postgres://127.0.0.1:1/x}\n", 1)
	src = strings.Replace(src, "  routing: priority\n", "  routing: priority\n  procs: 2\n", 1)
	src += "gateway:\n  procs: 1\n"
	next := 20000
	resolved, err := Resolve([]byte(src), "/srv/dr", func() (int, error) { next++; return next, nil })
	if err != nil {
		t.Fatal(err)
	}
	isolated, err := isolateText(resolved, map[string]string{"eastus2": "10.78.3.2", "centralus": "10.78.4.2"})
	if err != nil {
		t.Fatal(err)
	}
	linked, err := rewriteURLs(resolved, map[string]string{"eastus2": "http://127.0.0.1:30001"}, "http://127.0.0.1:30002")
	if err != nil {
		t.Fatal(err)
	}
	var tp *topology.Topology
	for name, text := range map[string][]byte{"resolved": resolved, "isolated": isolated, "linked": linked} {
		got, err := topology.Parse(bytes.NewReader(text))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.Gateway.Procs != 1 || got.Edge.Procs != 2 {
			t.Errorf("%s topology: gateway.procs %d, edge.procs %d; want 1, 2", name, got.Gateway.Procs, got.Edge.Procs)
		}
		if name == "resolved" {
			tp = got
		}
	}
	tp.Default()
	u := &Up{Topology: tp, TopologyPath: "/srv/dr/data/up-topology.yaml", opts: Options{Has: func(string) bool { return true }}}
	var gateways, edges int
	for _, s := range u.specs() {
		if s.Kind != "gateway" && s.Kind != "edge" {
			continue
		}
		if i := slices.Index(s.Args, "-f"); s.Args[0] != s.Kind || i < 0 || s.Args[i+1] != u.TopologyPath {
			t.Errorf("%s runs %q, want `%s -f %s`", s.Name, s.Args, s.Kind, u.TopologyPath)
		}
		if s.Kind == "gateway" {
			gateways++
		} else {
			edges++
		}
	}
	if gateways != 4 || edges != 1 {
		t.Errorf("%d gateway and %d edge processes, want 4 (3 replicas + 1) and 1", gateways, edges)
	}
}
