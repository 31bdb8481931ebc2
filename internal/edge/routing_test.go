package edge

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/probe"
	"github.com/understudy/understudy/internal/topology"
)

// o builds an origin for plan tests: "name:priority:weight:latencyMs" plus
// flags in state: s (serving), d (disabled), p<epoch> (reports primary).
func po(spec string) *origin {
	parts := strings.Split(spec, ":")
	o := &origin{name: parts[0], url: &url.URL{Scheme: "http", Host: parts[0]}, enabled: true}
	o.priority = atoi(parts[1])
	o.weight = atoi(parts[2])
	o.status.Latency = time.Duration(atoi(parts[3])) * time.Millisecond
	for _, f := range strings.Split(parts[4], ",") {
		switch {
		case f == "s":
			o.serving = true
		case f == "d":
			o.enabled = false
		case strings.HasPrefix(f, "p"):
			o.status.Readiness = probe.Readiness{Role: rolePrimary, Epoch: int64(atoi(f[1:]))}
		case strings.HasPrefix(f, "r"):
			o.status.Readiness = probe.Readiness{Role: f[1:]}
		}
	}
	return o
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func names(os []*origin) string {
	var s []string
	for _, o := range os {
		s = append(s, o.name)
	}
	return strings.Join(s, ",")
}

func TestBuildPlan(t *testing.T) {
	tests := []struct {
		name      string
		mode      string
		origins   []string
		first     string // the group a request starts in
		rest      string
		fallback  string
		primaries string
	}{
		{"priority: best serving takes all", "priority",
			[]string{"a:1:100:10:s", "b:2:100:10:s", "c:3:100:10:s"}, "a", "b,c", "", ""},
		{"priority: unhealthy best falls to fallback", "priority",
			[]string{"a:1:100:10:", "b:2:100:10:s"}, "b", "", "a", ""},
		{"priority: equal priority, heaviest wins", "priority",
			[]string{"a:1:100:10:s", "b:1:300:10:s"}, "b", "a", "", ""},
		{"priority: disabled is never tried", "priority",
			[]string{"a:1:100:10:s,d", "b:2:100:10:s"}, "b", "", "", ""},
		{"priority: nothing serving, every enabled origin by priority", "priority",
			[]string{"b:2:100:10:", "a:1:100:10:", "c:3:1:1:d"}, "", "", "a,b", ""},
		{"weighted: best priority group shares", "weighted",
			[]string{"a:1:100:10:s", "b:1:300:10:s", "c:2:100:10:s"}, "a,b", "c", "", ""},
		{"latency: band keeps the close ones", "latency",
			[]string{"a:1:100:10:s", "b:1:100:55:s", "c:1:100:61:s", "d:2:100:1:s"}, "a,b", "c,d", "", ""},
		{"latency: outside band sorted by latency", "latency",
			[]string{"a:1:100:300:s", "b:1:100:100:s", "c:1:100:10:s"}, "c", "b,a", "", ""},
		{"affinity: highest epoch primary, serving first", "priority",
			[]string{"a:1:100:10:s,p3", "c:3:100:10:p4", "b:2:100:10:s,p4"}, "a", "b", "c", "b,c"},
		{"affinity: disabled primary is not a target", "priority",
			[]string{"a:1:100:10:s,rstandby", "b:2:100:10:s,p2,d"}, "a", "", "", ""},
		{"affinity: unhealthy primary is still the target", "priority",
			[]string{"a:1:100:10:p5", "b:2:100:10:s,rstandby"}, "b", "", "a", "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var os []*origin
			for i, s := range tt.origins {
				o := po(s)
				o.index = i
				os = append(os, o)
			}
			p := buildPlan(tt.mode, 50*time.Millisecond, os)
			first := names(p.first)
			if tt.mode != "priority" {
				// Order inside a weighted group does not matter.
				fs := strings.Split(first, ",")
				slices.Sort(fs)
				first = strings.Join(fs, ",")
			}
			if first != tt.first || names(p.rest) != tt.rest || names(p.fallback) != tt.fallback || names(p.primaries) != tt.primaries {
				t.Errorf("first=%q rest=%q fallback=%q primaries=%q; want %q %q %q %q",
					first, names(p.rest), names(p.fallback), names(p.primaries), tt.first, tt.rest, tt.fallback, tt.primaries)
			}
			// A request tries each enabled origin exactly once.
			seen := map[string]bool{}
			for _, o := range p.order(false, nil) {
				if seen[o.name] || !o.enabled {
					t.Errorf("order tries %s twice or disabled", o.name)
				}
				seen[o.name] = true
			}
			if len(seen) != p.enabled {
				t.Errorf("order tries %d origins, %d enabled", len(seen), p.enabled)
			}
		})
	}
}

func TestWeightedPick(t *testing.T) {
	os := []*origin{po("a:1:100:10:s"), po("b:1:300:10:s"), po("c:2:1000:10:s")}
	for i, o := range os {
		o.index = i
	}
	p := buildPlan(topology.RouteWeighted, 0, os)
	counts := map[string]int{}
	const n = 4000
	for range n {
		order := p.order(false, nil)
		counts[order[0].name]++
		if order[len(order)-1].name != "c" {
			t.Fatal("lower priority origin not last")
		}
	}
	// Expect 1000 a / 3000 b; six standard deviations (~27) either way.
	if counts["a"] < 840 || counts["a"] > 1160 || counts["c"] != 0 {
		t.Errorf("weighted 100:300 split %v over %d", counts, n)
	}
}

func TestIsStateful(t *testing.T) {
	tests := []struct {
		path string
		body string
		want bool
	}{
		{"/v1/chat/completions", `{"model":"m"}`, false},
		{"/v1/responses", `{"model":"m","input":"hi"}`, true},
		{"/v1/responses/resp_1", ``, true},
		{"/v1/responses/resp_1/input_items", ``, true},
		{"/v1/conversations", `{}`, true},
		{"/v1/conversations/conv_1/items", ``, true},
		{"/v1/responsesX", ``, false},
		{"/openai/v1/responses", `{}`, true},
		{"/openai/responses", `{}`, true},
		{"/responses", `{}`, false},
		{"/openai/deployments/gpt/chat/completions", `{}`, false},
		{"/v1/agents/x/run", `{"conversation":"conv_1"}`, true},
		{"/v1/agents/x/run", `{"conversation":{"id":"conv_1"}}`, true},
		{"/v1/agents/x/run", `{"previous_response_id":"resp_9"}`, true},
		{"/v1/agents/x/run", `{"previous_response_id":null,"conversation":null}`, false},
		{"/v1/agents/x/run", `{"previous_response_id":""}`, false},
		{"/v1/chat/completions", `{"messages":[{"content":"\"conversation\": x"}]}`, false},
		{"/v1/chat/completions", `not json "conversation"`, false},
	}
	for _, tt := range tests {
		if got := isStateful(tt.path, []byte(tt.body)); got != tt.want {
			t.Errorf("isStateful(%q, %s) = %v, want %v", tt.path, tt.body, got, tt.want)
		}
	}
}

func FuzzNamesState(f *testing.F) {
	for _, s := range []string{`{"conversation":"c"}`, `{"previous_response_id":"r"}`, `{"conversation":null}`,
		`{"a":{"conversation":"nested"}}`, `[]`, `"conversation"`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got := namesState(body)
		if got && !strings.Contains(string(body), "conversation") && !strings.Contains(string(body), "previous_response_id") {
			t.Errorf("namesState(%q) without either key", body)
		}
	})
}

func TestBackoff(t *testing.T) {
	var got []time.Duration
	for n := 1; n <= 7; n++ {
		got = append(got, backoff(n, time.Second, 30*time.Second))
	}
	want := []time.Duration{1e9, 2e9, 4e9, 8e9, 16e9, 30e9, 30e9}
	if !slices.Equal(got, want) {
		t.Errorf("backoff %v, want %v", got, want)
	}
}
