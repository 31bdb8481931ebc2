package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/understudy/understudy/internal/topology"
)

func TestApplyProcs(t *testing.T) {
	tests := []struct {
		name  string
		procs int   // gateway.procs or edge.procs
		calls []int // arguments given to GOMAXPROCS
		want  int   // in effect afterwards
	}{
		{"unset leaves Go's default", 0, []int{0}, 4},
		{"one per core", 1, []int{1, 0}, 1},
		{"budget of two", 2, []int{2, 0}, 2},
		{"above the CPUs is Go's business", 8, []int{8, 0}, 8},
		{"negative (rejected by validate) is ignored", -1, []int{0}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := 4 // the fake process's GOMAXPROCS, as Go's default set it
			var calls []int
			fake := func(n int) int {
				calls = append(calls, n)
				prev := cur
				if n > 0 {
					cur = n
				}
				return prev
			}
			if got := applyProcs(tt.procs, fake); got != tt.want {
				t.Errorf("applyProcs(%d) = %d, want %d", tt.procs, got, tt.want)
			}
			if !slices.Equal(calls, tt.calls) {
				t.Errorf("GOMAXPROCS calls %v, want %v", calls, tt.calls)
			}
			if cur != tt.want {
				t.Errorf("GOMAXPROCS left at %d, want %d", cur, tt.want)
			}
		})
	}
}

// validate mentions procs only when set, on the gateway's and the edge's line.
func TestValidateSummaryProcs(t *testing.T) {
	tests := []struct {
		name       string
		add        string // YAML appended to the example topology
		edgeProcs  string // "" or "  procs: N\n" under edge
		gw, edge   string // want on the region lines and the edge line
		wantAbsent bool   // no mention of GOMAXPROCS at all
	}{
		{name: "unset", wantAbsent: true},
		{name: "gateway", add: "gateway:\n  procs: 1\n", gw: "gateway http://127.0.0.1:7081 (GOMAXPROCS 1), store", edge: "edge: http://127.0.0.1:7080, routing"},
		{name: "edge", edgeProcs: "  procs: 2\n", gw: "gateway http://127.0.0.1:7081, store", edge: "edge: http://127.0.0.1:7080 (GOMAXPROCS 2), routing"},
		{name: "gateway cpus", add: "gateway:\n  cpus: [1, 3]\n", gw: "gateway http://127.0.0.1:7081 (GOMAXPROCS 2, CPUs 1,3), store", edge: "edge: http://127.0.0.1:7080, routing"},
		{name: "edge cpus and procs", edgeProcs: "  procs: 1\n  cpus: [0, 1]\n", gw: "gateway http://127.0.0.1:7081, store", edge: "edge: http://127.0.0.1:7080 (GOMAXPROCS 1, CPUs 0,1), routing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := string(topology.ExampleYAML(topology.ExampleOptions{
				Key: "sk-test-0123456789abcdef", AdminToken: "admin-0123456789abcdef",
				ReplicationSecret: "repl-0123456789abcdef", Ports: topology.DefaultPorts,
			})) + tt.add
			src = strings.Replace(src, "  routing: priority\n", "  routing: priority\n"+tt.edgeProcs, 1)
			path := filepath.Join(t.TempDir(), "topology.yaml")
			if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, errs := run(t, "validate", "-f", path)
			if code != 0 {
				t.Fatalf("validate exit %d: %s", code, errs)
			}
			if tt.wantAbsent {
				if strings.Contains(out, "GOMAXPROCS") {
					t.Errorf("summary mentions GOMAXPROCS with procs unset:\n%s", out)
				}
				return
			}
			for _, want := range []string{tt.gw, tt.edge} {
				if !strings.Contains(out, want) {
					t.Errorf("summary lacks %q:\n%s", want, out)
				}
			}
		})
	}
}
