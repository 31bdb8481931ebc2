package topology

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func example() []byte {
	return ExampleYAML(ExampleOptions{
		Key:               "sk-test-0123456789abcdef",
		AdminToken:        "admin-0123456789abcdef",
		ReplicationSecret: "repl-0123456789abcdef",
		Ports:             DefaultPorts,
	})
}

func load(t *testing.T, src []byte, env map[string]string) (*Topology, error) {
	t.Helper()
	tp, err := Parse(bytes.NewReader(src))
	if err != nil {
		return nil, err
	}
	if err := tp.ExpandSecrets(func(k string) string { return env[k] }); err != nil {
		return nil, err
	}
	tp.Default()
	return tp, tp.Validate()
}

func TestExampleIsValid(t *testing.T) {
	tp, err := load(t, example(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := tp.Primary().Name; got != "eastus2" {
		t.Errorf("primary = %q, want eastus2", got)
	}
	if got := tp.RegionNames(); strings.Join(got, ",") != "eastus2,centralus" {
		t.Errorf("region order = %v", got)
	}
	b := tp.Region("centralus").Backends["gpt-4.1-mini"][0]
	if b.Name != "gpt-4.1-mini-1" || b.Auth != "none" || b.Model != "gpt-4.1-mini" || b.Priority != 1 || b.Weight != 1 {
		t.Errorf("backend defaults = %+v", b)
	}
	if tp.Region("eastus2").Store.Path != filepath.Join("data", "eastus2.db") {
		t.Errorf("store path = %q", tp.Region("eastus2").Store.Path)
	}
	if tp.Edge.Routing != RoutePriority || tp.Replication.Mode != "sync" {
		t.Errorf("edge routing %q, replication %q", tp.Edge.Routing, tp.Replication.Mode)
	}
}

func TestDefaultIsIdempotent(t *testing.T) {
	tp, err := load(t, example(), nil)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := yaml.Marshal(tp)
	tp.Default()
	after, _ := yaml.Marshal(tp)
	if !bytes.Equal(before, after) {
		t.Errorf("Default changed a defaulted topology:\n%s\n---\n%s", before, after)
	}
}

func TestParseStrict(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown top-level key", "version: 1\nregionz: []\n", "field regionz not found"},
		{"unknown nested key", "edge:\n  lisen: x\n", "field lisen not found"},
		{"bad duration", "targets:\n  rto: ten\n", `"ten" is not a duration`},
		{"two documents", "version: 1\n---\nversion: 1\n", "more than one YAML document"},
		{"empty", "", "topology is empty"},
		{"duplicate key", "name: a\nname: b\n", "already defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// edit applies a YAML-text replacement to the example and expects the
// resulting validation problems.
func TestValidateNamesTheField(t *testing.T) {
	tests := []struct {
		name     string
		old, new string
		field    string
		reason   string
	}{
		{"bad pattern", "pattern: hot-warm", "pattern: lukewarm", "pattern", "not one of"},
		{"short key", "key: sk-test-0123456789abcdef", "key: short", "keys[0].key", "too short"},
		{"no version", `version: "2025-04-14"`, `version: ""`, "deployments[0].version", "required"},
		{"unknown backend kind", "- kind: sim          #", "- kind: vllm #", "regions[0].backends.gpt-4.1-mini[0].kind", "not one of"},
		{"region name", "- name: centralus", "- name: 'central us'", "regions[1].name", "must be letters"},
		{"duplicate region", "- name: centralus", "- name: eastus2", "regions[1].name", "duplicate"},
		{"duplicate listen", "listen: 127.0.0.1:7082", "listen: 127.0.0.1:7081", "regions[1].listen", "also used by regions[0].listen"},
		{"probe timeout", "timeout: 500ms", "timeout: 2s", "probes.timeout", "below probes.interval"},
		{"samples", "successful_samples_required: 3", "successful_samples_required: 5", "probes.successful_samples_required", "1..sample_size"},
		{"async with rpo 0", "mode: sync ", "mode: async ", "replication.mode", "cannot meet targets.rpo 0"},
		{"routing", "routing: priority", "routing: random", "edge.routing", "not one of"},
		{"priority", "priority: 2", "priority: 9", "regions[1].priority", "1..5"},
		{"unknown deployment backends", "    backends:\n      gpt-4.1-mini:\n        - kind: sim\n", "    backends:\n      gpt-5:\n        - kind: sim\n", "regions[1].backends.gpt-4.1-mini", "has no backend"},
		{"secret missing", "secret: repl-0123456789abcdef", "secret: ${REPL_SECRET}", "replication.secret", "REPL_SECRET is not set"},
		{"fallback unknown", "    capacity: 100\n", "    capacity: 100\n    fallbacks: [gpt-9]\n", "deployments[0].fallbacks[0]", "unknown deployment"},
		{"engine needs postgres", "mode: sync ", "transport: engine\n  mode: sync ", "regions[0].store.driver", "needs postgres"},
		{"replicas need postgres", "    priority: 2\n", "    priority: 2\n    replicas: 2\n", "regions[1].replicas", "need store.driver postgres"},
		{"replicas bound", "    priority: 2\n", "    priority: 2\n    replicas: 17\n", "regions[1].replicas", "must be 1..16"},
		{"negative gateway procs", "\nedge:\n", "\ngateway:\n  procs: -1\nedge:\n", "gateway.procs", "must not be negative"},
		{"negative edge procs", "  routing: priority\n", "  routing: priority\n  procs: -2\n", "edge.procs", "must not be negative"},
		{"negative gateway cpu", "\nedge:\n", "\ngateway:\n  cpus: [0, -1]\nedge:\n", "gateway.cpus", "CPU -1 is not a CPU number (0..1023)"},
		{"gateway cpu listed twice", "\nedge:\n", "\ngateway:\n  cpus: [1, 1]\nedge:\n", "gateway.cpus", "CPU 1 is listed twice"},
		{"edge cpu too large", "  routing: priority\n", "  routing: priority\n  cpus: [1024]\n", "edge.cpus", "CPU 1024 is not a CPU number"},
		{"start command outside hot-cold", "    priority: 2\n", "    priority: 2\n    start_command: [x]\n", "regions[1].start_command", "only used with pattern hot-cold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := string(example())
			if !strings.Contains(src, tt.old) {
				t.Fatalf("example has no %q", tt.old)
			}
			src = strings.Replace(src, tt.old, tt.new, 1)
			_, err := load(t, []byte(src), nil)
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("error = %v, want Problems", err)
			}
			for _, p := range ps {
				if p.Field == tt.field && strings.Contains(p.Reason, tt.reason) {
					return
				}
			}
			t.Fatalf("problems %v lack field %q with reason %q", ps, tt.field, tt.reason)
		})
	}
}

func TestSecretsFromEnvAreNeverPrinted(t *testing.T) {
	src := strings.Replace(string(example()), "key: sk-test-0123456789abcdef", "key: ${UNDERSTUDY_KEY}", 1)
	tp, err := load(t, []byte(src), map[string]string{"UNDERSTUDY_KEY": "sk-from-env-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	if got := tp.Keys[0].Key.Value(); got != "sk-from-env-0123456789" {
		t.Errorf("expanded key = %q", got)
	}
	out, err := yaml.Marshal(tp)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"sk-from-env-0123456789", "admin-0123456789abcdef", "repl-0123456789abcdef"} {
		if bytes.Contains(out, []byte(secret)) {
			t.Errorf("marshalled topology contains secret %q", secret)
		}
	}
	if !bytes.Contains(out, []byte("${UNDERSTUDY_KEY}")) {
		t.Errorf("marshalled topology lost the env reference:\n%s", out)
	}
}

func TestLoadResolvesRelativeToFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(path, example(), 0o600); err != nil {
		t.Fatal(err)
	}
	tp, err := Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tp.Path(tp.Region("eastus2").Store.Path), filepath.Join(dir, "data", "eastus2.db"); got != want {
		t.Errorf("Path = %q, want %q", got, want)
	}
	if got, want := tp.Path(tp.Agents.Dir), filepath.Join(dir, "agents"); got != want {
		t.Errorf("agents dir = %q, want %q", got, want)
	}
}

func TestWindows(t *testing.T) {
	p := Probes{Interval: Duration(30 * time.Second), Timeout: Duration(5 * time.Second), SampleSize: 4, SuccessfulSamplesRequired: 3}
	// Front Door: n=4, x=3, 30 s -> two failed probes, the second at its timeout.
	if got, want := p.DetectionWindow(), 65*time.Second; got != want {
		t.Errorf("DetectionWindow = %s, want %s", got, want)
	}
	if got, want := p.RecoveryWindow(), 90*time.Second; got != want {
		t.Errorf("RecoveryWindow = %s, want %s", got, want)
	}
	c := Controller{Failures: 3, ProbeInterval: Duration(500 * time.Millisecond), LeaseTTL: Duration(3 * time.Second)}
	if got, want := c.DetectionWindow(500*time.Millisecond), 2*time.Second; got != want {
		t.Errorf("controller DetectionWindow = %s, want %s", got, want)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(example())
	f.Add([]byte("version: 1\nregions: [{name: a, listen: 'x:1'}]\n"))
	f.Add([]byte("targets: {rto: 5m, rpo: 0}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tp, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		// Whatever parses must survive defaulting and validation without panicking.
		_ = tp.ExpandSecrets(func(string) string { return "" })
		tp.Default()
		_ = tp.Validate()
	})
}

func TestReplicas(t *testing.T) {
	pg := "    priority: 2\n    replicas: 2\n    store: {driver: postgres, dsn: postgres://db/x}\n"
	tests := []struct {
		name    string
		pattern string
		wantErr string
	}{
		{"postgres hot-warm", "pattern: hot-warm", ""},
		{"postgres hot-cold", "pattern: hot-cold", "regions[1].replicas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(string(example()), "    priority: 2\n", pg, 1)
			src = strings.Replace(src, "pattern: hot-warm", tt.pattern, 1)
			tp, err := load(t, []byte(src), nil)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := []int{tp.Regions[0].Replicas, tp.Regions[1].Replicas}; got[0] != 1 || got[1] != 2 {
					t.Fatalf("replicas = %v, want [1 2] (default 1)", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one naming %s", err, tt.wantErr)
			}
		})
	}
}

func TestProcs(t *testing.T) {
	tests := []struct {
		name       string
		add        string // YAML appended to the example
		gw, edge   int
		wantFields []string // problems expected, by field
	}{
		{"default leaves GOMAXPROCS to Go", "", 0, 0, nil},
		{"explicit zero", "gateway:\n  procs: 0\n", 0, 0, nil},
		{"gateway one per core", "gateway:\n  procs: 1\n", 1, 0, nil},
		{"both set", "gateway:\n  procs: 2\n", 2, 3, nil},
		{"negative both", "gateway:\n  procs: -1\n", 0, 0, []string{"gateway.procs", "edge.procs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := string(example()) + tt.add
			switch {
			case tt.edge != 0:
				src = strings.Replace(src, "  routing: priority\n", fmt.Sprintf("  routing: priority\n  procs: %d\n", tt.edge), 1)
			case tt.wantFields != nil:
				src = strings.Replace(src, "  routing: priority\n", "  routing: priority\n  procs: -1\n", 1)
			}
			tp, err := load(t, []byte(src), nil)
			if tt.wantFields == nil {
				if err != nil {
					t.Fatal(err)
				}
				if tp.Gateway.Procs != tt.gw || tp.Edge.Procs != tt.edge {
					t.Fatalf("gateway.procs %d, edge.procs %d; want %d, %d", tp.Gateway.Procs, tp.Edge.Procs, tt.gw, tt.edge)
				}
				return
			}
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("error = %v, want Problems", err)
			}
			var got []string
			for _, p := range ps {
				got = append(got, p.Field)
			}
			if !slices.Equal(got, tt.wantFields) {
				t.Fatalf("problem fields %v, want %v", got, tt.wantFields)
			}
		})
	}
}
