package edge

import (
	"strings"
	"testing"

	"github.com/understudy/understudy/internal/topology"
)

func TestExplain(t *testing.T) {
	topo, err := topology.Parse(strings.NewReader(string(topology.ExampleYAML(topology.ExampleOptions{
		Key: "sk-test-0123456789abcdef", AdminToken: adminToken, ReplicationSecret: "rep-0123456789abcdef",
		Ports: topology.DefaultPorts,
	}))))
	if err != nil {
		t.Fatal(err)
	}
	topo.Default()
	var b strings.Builder
	Explain(&b, topo)
	out := b.String()
	for _, want := range []string{
		"routing: priority",
		"eastus2      http://127.0.0.1:7081",
		"priority 1",
		"healthy while 3 of the last 4 pass",
		"detection by probes alone (worst case): 2.5s = 2 failed probes x 1s + 500ms timeout",
		"ejected after 5s (edge.attempt_timeout)",
		"ejection backoff: 1s, doubling on repeated failures up to 30s",
		"recovery after an outage: 3s = 3 passing probes x 1s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
}
