package edge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/understudy/understudy/internal/topology"
)

func TestPriorityRoutingAndFailover(t *testing.T) {
	a, b := newOrigin(t, "eastus2"), newOrigin(t, "centralus")
	h := newHarness(t, testTopology(nil, a, b), Options{})
	for range 5 {
		if got := h.chat(t); got.status != 200 || got.region != "eastus2" || got.edge != "origin=eastus2 attempts=1" {
			t.Fatalf("got %d from %q (%s), want 200 from eastus2 in one attempt", got.status, got.region, got.edge)
		}
	}
	if b.hits.Load() != 0 {
		t.Errorf("standby got %d requests in priority mode", b.hits.Load())
	}
	// Probes fail twice (4/3 window): eastus2 is unhealthy, traffic moves.
	a.setReady(503, "", 0)
	h.e.ProbeStep(t.Context())
	if got := h.chat(t); got.region != "eastus2" {
		t.Fatalf("one failed probe moved traffic to %s", got.region)
	}
	h.e.ProbeStep(t.Context())
	if got := h.chat(t); got.status != 200 || got.region != "centralus" {
		t.Fatalf("after two failed probes: %d from %s, want centralus", got.status, got.region)
	}
	if v := h.origin(t, "eastus2"); v.Healthy || v.Serving || v.Passes != 2 || v.Samples != 4 {
		t.Errorf("eastus2 view %+v", v)
	}
	// Recovery takes three passes.
	a.setReady(200, "", 0)
	for i := range 3 {
		if got := h.chat(t); got.region != "centralus" {
			t.Fatalf("after %d passes traffic went back early", i)
		}
		h.e.ProbeStep(t.Context())
	}
	if got := h.chat(t); got.region != "eastus2" {
		t.Fatalf("after three passes traffic at %s, want eastus2", got.region)
	}
}

func TestLatencyRouting(t *testing.T) {
	a, b, c := newOrigin(t, "a"), newOrigin(t, "b"), newOrigin(t, "c")
	lat := map[string]time.Duration{"a": 20 * time.Millisecond, "b": 60 * time.Millisecond, "c": 90 * time.Millisecond}
	topo := testTopology(func(t *topology.Topology) {
		t.Pattern = topology.HotHot
		for i := range t.Regions {
			t.Regions[i].Priority = 1
		}
	}, a, b, c)
	h := newHarness(t, topo, Options{Probe: func(ctx context.Context, tg probeTarget) probeResult {
		return probeResult{OK: true, Status: 200, Latency: lat[tg.Name]}
	}})
	if h.e.cfg.routing != topology.RouteLatency {
		t.Fatalf("hot-hot default routing %s", h.e.cfg.routing)
	}
	for range 200 {
		if got := h.chat(t); got.status != 200 {
			t.Fatal(got.status)
		}
	}
	// a (20ms) and b (60ms, within 50ms) share; c (90ms) is out of the band.
	if a.hits.Load() < 60 || b.hits.Load() < 60 || c.hits.Load() != 0 {
		t.Errorf("hits a=%d b=%d c=%d, want a and b sharing, c none", a.hits.Load(), b.hits.Load(), c.hits.Load())
	}
}

func TestPassiveEjectionBackoff(t *testing.T) {
	a, b := newOrigin(t, "eastus2"), newOrigin(t, "centralus")
	h := newHarness(t, testTopology(func(t *topology.Topology) {
		t.Edge.EjectBase = topology.Duration(time.Second)
		t.Edge.EjectMax = topology.Duration(4 * time.Second)
	}, a, b), Options{})
	t0 := h.clock.Now()

	// A 500 ejects eastus2 at once; the request itself is replayed on centralus.
	a.set("500")
	got := h.chat(t)
	if got.status != 200 || got.region != "centralus" || got.edge != "origin=centralus attempts=2" {
		t.Fatalf("got %d from %s (%s)", got.status, got.region, got.edge)
	}
	v := h.origin(t, "eastus2")
	if !v.Ejected || v.EjectedUntil == nil || !v.EjectedUntil.Equal(t0.Add(time.Second)) || v.Serving {
		t.Fatalf("after a 500: %+v", v)
	}
	a.set("ok")
	before := a.hits.Load()
	h.chat(t)
	if a.hits.Load() != before {
		t.Fatal("ejected origin got traffic")
	}

	// Probes pass during the backoff: still out.
	h.clock.Advance(999 * time.Millisecond)
	h.e.ProbeStep(t.Context())
	if v := h.origin(t, "eastus2"); !v.Ejected {
		t.Fatal("returned before the backoff ended")
	}
	// Backoff over but the probe fails: still out.
	h.clock.Advance(time.Millisecond)
	a.setReady(503, "", 0)
	h.e.ProbeStep(t.Context())
	if v := h.origin(t, "eastus2"); !v.Ejected {
		t.Fatal("returned without a passing probe")
	}
	// Backoff over and a probe passes: back.
	a.setReady(200, "", 0)
	h.e.ProbeStep(t.Context())
	if v := h.origin(t, "eastus2"); v.Ejected || !v.Serving {
		t.Fatalf("not back after backoff and a pass: %+v", v)
	}
	if got := h.chat(t); got.region != "eastus2" {
		t.Fatalf("traffic at %s after return", got.region)
	}

	// Failing again soon: the backoff doubles, then doubles, then caps.
	want := []time.Duration{2 * time.Second, 4 * time.Second, 4 * time.Second}
	for i, d := range want {
		a.set("503")
		now := h.clock.Now()
		h.chat(t)
		v := h.origin(t, "eastus2")
		if !v.Ejected || !v.EjectedUntil.Equal(now.Add(d)) {
			t.Fatalf("ejection %d: until %v, want %v", i+2, v.EjectedUntil, now.Add(d))
		}
		// A burst of failures while ejected is one ejection.
		h.e.eject(h.e.byName["eastus2"], "test")
		if v2 := h.origin(t, "eastus2"); !v2.EjectedUntil.Equal(*v.EjectedUntil) {
			t.Fatal("a failure inside the backoff extended it")
		}
		a.set("ok")
		h.clock.Advance(d)
		h.e.ProbeStep(t.Context())
	}
	if v := h.origin(t, "eastus2"); v.Ejections != 4 {
		t.Errorf("ejections %d, want 4", v.Ejections)
	}
	// Serving for longer than eject_max resets the streak to eject_base.
	h.clock.Advance(4*time.Second + time.Millisecond)
	a.set("500")
	now := h.clock.Now()
	h.chat(t)
	if v := h.origin(t, "eastus2"); !v.EjectedUntil.Equal(now.Add(time.Second)) {
		t.Fatalf("after a quiet period: until %v, want %v", v.EjectedUntil, now.Add(time.Second))
	}
}

func TestNotEjectedBy4xx429AndRefusals(t *testing.T) {
	a, b := newOrigin(t, "eastus2"), newOrigin(t, "centralus")
	h := newHarness(t, testTopology(nil, a, b), Options{})
	got := h.do(t, "GET", "/v1/nothing-here", nil)
	if got.status != 200 || got.region != "eastus2" {
		t.Fatalf("got %d from %s", got.status, got.region)
	}
	a.set("429")
	h.chat(t)
	if v := h.origin(t, "eastus2"); v.Ejected {
		t.Error("429 ejected the origin")
	}
	// A write refused by the region's role (X-Understudy-Refusal) is not
	// a failing region either; a plain 503 is.
	a.set("refused")
	h.chat(t)
	if v := h.origin(t, "eastus2"); v.Ejected {
		t.Error("a role refusal ejected the origin")
	}
	a.set("503")
	h.chat(t)
	if v := h.origin(t, "eastus2"); !v.Ejected {
		t.Error("a plain 503 did not eject the origin")
	}
}

func TestRetryBeforeFirstByte(t *testing.T) {
	big := make([]byte, 300<<10)
	rand.Read(big)
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"` + base64.StdEncoding.EncodeToString(big) + `"}]}`)

	t.Run("connection refused: body replayed intact", func(t *testing.T) {
		a, b := newOrigin(t, "eastus2"), newOrigin(t, "centralus")
		h := newHarness(t, testTopology(nil, a, b), Options{})
		a.srv.Close() // refuses connections from now on
		got := h.do(t, "POST", "/v1/chat/completions", body)
		if got.status != 200 || got.region != "centralus" || got.edge != "origin=centralus attempts=2" {
			t.Fatalf("got %d from %s (%s)", got.status, got.region, got.edge)
		}
		if !bytes.Equal(b.lastBody(), body) {
			t.Errorf("replayed body differs: %d bytes, want %d", len(b.lastBody()), len(body))
		}
		if v := h.origin(t, "eastus2"); !v.Ejected || v.EjectReason != "connection" {
			t.Errorf("refusing origin not ejected: %+v", v)
		}
	})

	t.Run("chunked body replayed intact, or streamed once when too large", func(t *testing.T) {
		a, b := newOrigin(t, "eastus2"), newOrigin(t, "centralus")
		h := newHarness(t, testTopology(func(t *topology.Topology) {
			t.Edge.MaxReplayBody = int64(len(body))
		}, a, b), Options{})
		a.set("503")
		chunked := func(p []byte) io.Reader { return io.MultiReader(bytes.NewReader(p)) } // hides the length
		got := h.doReader(t, "POST", "/v1/chat/completions", chunked(body))
		if got.status != 200 || got.region != "centralus" || !bytes.Equal(b.lastBody(), body) {
			t.Fatalf("chunked at the limit: %d from %s, body equal %v", got.status, got.region, bytes.Equal(b.lastBody(), body))
		}
		// eastus2 returns (backoff over, probe passes) and still answers 503.
		h.clock.Advance(time.Second)
		h.e.ProbeStep(t.Context())
		longer := append(bytes.Clone(body), ' ')
		hitsB := b.hits.Load()
		got = h.doReader(t, "POST", "/v1/chat/completions", chunked(longer))
		if got.status != 503 || got.region != "eastus2" || b.hits.Load() != hitsB || !bytes.Equal(a.lastBody(), longer) {
			t.Fatalf("chunked over the limit: %d from %s, standby hits %d→%d: want the 503, no replay", got.status, got.region, hitsB, b.hits.Load())
		}
	})

	t.Run("5xx: body replayed intact", func(t *testing.T) {
		a, b := newOrigin(t, "eastus2"), newOrigin(t, "centralus")
		h := newHarness(t, testTopology(nil, a, b), Options{})
		a.set("503")
		got := h.do(t, "POST", "/v1/chat/completions", body)
		if got.status != 200 || got.region != "centralus" {
			t.Fatalf("got %d from %s", got.status, got.region)
		}
		if !bytes.Equal(a.lastBody(), body) || !bytes.Equal(b.lastBody(), body) {
			t.Error("a body differs between attempts")
		}
	})

	t.Run("attempt timeout", func(t *testing.T) {
		a, b := newOrigin(t, "eastus2"), newOrigin(t, "centralus")
		const timeout = 150 * time.Millisecond
		h := newHarness(t, testTopology(func(t *topology.Topology) {
			t.Edge.AttemptTimeout = topology.Duration(timeout)
		}, a, b), Options{})
		a.set("hang")
		start := time.Now()
		got := h.do(t, "POST", "/v1/chat/completions", body)
		took := time.Since(start)
		if got.status != 200 || got.region != "centralus" {
			t.Fatalf("got %d from %s", got.status, got.region)
		}
		if took < timeout || took > timeout+2*time.Second {
			t.Errorf("took %s, want just over the %s attempt timeout", took, timeout)
		}
		if v := h.origin(t, "eastus2"); !v.Ejected || v.EjectReason != "timeout" {
			t.Errorf("silent origin not ejected: %+v", v)
		}
	})

	t.Run("request timeout bounds every attempt", func(t *testing.T) {
		a, b := newOrigin(t, "eastus2"), newOrigin(t, "centralus")
		h := newHarness(t, testTopology(func(t *topology.Topology) {
			t.Edge.AttemptTimeout = topology.Duration(100 * time.Millisecond)
			t.Edge.RequestTimeout = topology.Duration(150 * time.Millisecond)
		}, a, b), Options{})
		a.set("hang")
		b.set("hang")
		start := time.Now()
		got := h.chat(t)
		if took := time.Since(start); got.status != 504 || errCode(t, got.body) != "timeout" || took < 150*time.Millisecond {
			t.Fatalf("got %d %s after %s, want 504 timeout after 150ms", got.status, got.body, took)
		}
		if !strings.Contains(got.body, "eastus2: timeout") || got.edge != "origin=none attempts=2" {
			t.Errorf("body %s, header %s", got.body, got.edge)
		}
	})

	t.Run("every origin down: OpenAI error", func(t *testing.T) {
		a, b := newOrigin(t, "eastus2"), newOrigin(t, "centralus")
		h := newHarness(t, testTopology(nil, a, b), Options{})
		a.srv.Close()
		b.srv.Close()
		got := h.chat(t)
		if got.status != 502 || errCode(t, got.body) != "origin_unavailable" {
			t.Fatalf("got %d %s", got.status, got.body)
		}
		if strings.Contains(got.body, "127.0.0.1") {
			t.Errorf("error leaks an address: %s", got.body)
		}
	})

	t.Run("body above max_replay_body is not replayed", func(t *testing.T) {
		a, b := newOrigin(t, "eastus2"), newOrigin(t, "centralus")
		h := newHarness(t, testTopology(func(t *topology.Topology) {
			t.Edge.MaxReplayBody = 1024
		}, a, b), Options{})
		a.set("503")
		got := h.do(t, "POST", "/v1/chat/completions", body)
		if got.status != 503 || b.hits.Load() != 0 {
			t.Fatalf("got %d, standby hits %d: a body too large to buffer was replayed", got.status, b.hits.Load())
		}
		if !bytes.Equal(a.lastBody(), body) {
			t.Error("streamed body differs")
		}
		a.set("ok")
		if got := h.do(t, "POST", "/v1/chat/completions", body); got.status != 200 || !bytes.Equal(b.lastBody(), body) {
			t.Errorf("large body through the standby: %d", got.status)
		}
	})
}

// TestAbandonWaitingOnEjection: attempts waiting for headers from an origin
// move on the moment it is ejected, not at their own timeout.
func TestAbandonWaitingOnEjection(t *testing.T) {
	a, b := newOrigin(t, "eastus2"), newOrigin(t, "centralus")
	h := newHarness(t, testTopology(func(t *topology.Topology) {
		t.Edge.AttemptTimeout = topology.Duration(20 * time.Second)
	}, a, b), Options{})
	a.set("hang")
	a.arrived = make(chan string, 1)
	done := make(chan answer, 1)
	start := time.Now()
	go func() { done <- h.chat(t) }()
	<-a.arrived // the request waits at eastus2
	h.e.eject(h.e.byName["eastus2"], "test")
	got := <-done
	if got.status != 200 || got.region != "centralus" || time.Since(start) > 10*time.Second {
		t.Fatalf("got %d from %s after %s", got.status, got.region, time.Since(start))
	}
}

// TestLastOriginWaitsOnEjection: with nowhere else to go, an attempt keeps
// waiting when its origin is ejected or fails its probes.
func TestLastOriginWaitsOnEjection(t *testing.T) {
	a := newOrigin(t, "eastus2")
	h := newHarness(t, testTopology(nil, a), Options{})
	a.set("hang")
	a.arrived = make(chan string, 1)
	done := make(chan answer, 1)
	go func() { done <- h.chat(t) }()
	<-a.arrived
	h.e.eject(h.e.byName["eastus2"], "test")
	a.setReady(503, "", 0)
	h.e.ProbeStep(t.Context())
	h.e.ProbeStep(t.Context())
	select {
	case got := <-done:
		t.Fatalf("the only attempt gave up: %d %s", got.status, got.body)
	default:
	}
	a.set("ok")
	a.release <- struct{}{} // let the waiting request answer
	if got := <-done; got.status != 200 || got.region != "eastus2" {
		t.Fatalf("got %d from %s", got.status, got.region)
	}
}

func TestStreamBreakEndsWithErrorEvent(t *testing.T) {
	a, b := newOrigin(t, "eastus2"), newOrigin(t, "centralus")
	h := newHarness(t, testTopology(nil, a, b), Options{})
	client := openai.NewClient(option.WithBaseURL(h.srv.URL+"/v1/"), option.WithAPIKey("k"), option.WithMaxRetries(0))
	params := openai.ChatCompletionNewParams{Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}

	a.set("sse")
	s := client.Chat.Completions.NewStreaming(t.Context(), params)
	var text strings.Builder
	for s.Next() {
		for _, c := range s.Current().Choices {
			text.WriteString(c.Delta.Content)
		}
	}
	if s.Err() != nil || text.String() != "part0 part1 " {
		t.Fatalf("whole stream: %q, err %v", text.String(), s.Err())
	}

	a.set("ssebreak")
	text.Reset()
	s = client.Chat.Completions.NewStreaming(t.Context(), params)
	for s.Next() {
		for _, c := range s.Current().Choices {
			text.WriteString(c.Delta.Content)
		}
	}
	if text.String() != "part0 part1 " {
		t.Errorf("chunks before the break: %q", text.String())
	}
	if s.Err() == nil || !strings.Contains(s.Err().Error(), "stream_interrupted") {
		t.Errorf("broken stream ended with err %v, want the edge's stream_interrupted error", s.Err())
	}
	if b.hits.Load() != 0 {
		t.Error("a stream that had started was retried elsewhere")
	}
	if v := h.origin(t, "eastus2"); !v.Ejected || v.EjectReason != "stream broken" {
		t.Errorf("origin whose stream broke: %+v", v)
	}
}

func Test429Passthrough(t *testing.T) {
	tests := []struct {
		name       string
		a, b       string
		disableB   bool
		status     int
		region     string
		retryAfter string
	}{
		{"another origin serves", "429", "ok", false, 200, "centralus", ""},
		{"both limited: the 429 comes back", "429", "429", false, 429, "eastus2", "7"},
		{"429 beats a later 5xx", "429", "500", false, 429, "eastus2", "7"},
		{"429 beats an earlier 5xx", "500", "429", false, 429, "centralus", "7"},
		{"only origin: passed through", "429", "ok", true, 429, "eastus2", "7"},
		{"both 5xx: the last one", "500", "503", false, 503, "centralus", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := newOrigin(t, "eastus2"), newOrigin(t, "centralus")
			h := newHarness(t, testTopology(nil, a, b), Options{})
			if tt.disableB {
				if _, err := h.e.Change("centralus", OriginChange{Enabled: new(false)}); err != nil {
					t.Fatal(err)
				}
			}
			a.set(tt.a)
			b.set(tt.b)
			got := h.chat(t)
			if got.status != tt.status || got.region != tt.region || got.header.Get("Retry-After") != tt.retryAfter {
				t.Fatalf("got %d from %s Retry-After %q, want %d from %s %q (%s)", got.status, got.region,
					got.header.Get("Retry-After"), tt.status, tt.region, tt.retryAfter, got.body)
			}
			if got.status >= 400 && !strings.Contains(got.body, tt.region) {
				t.Errorf("error body is not the origin's: %s", got.body)
			}
		})
	}
}

func TestAffinity(t *testing.T) {
	tests := []struct {
		name           string
		roleA, roleB   string
		epochA, epochB int64
		method, path   string
		body           string
		want           string
	}{
		{"chat follows priority", "standby", "primary", 1, 2, "POST", "/v1/chat/completions", `{"model":"m"}`, "eastus2"},
		{"responses write to primary", "standby", "primary", 1, 2, "POST", "/v1/responses", `{"model":"m","input":"hi"}`, "centralus"},
		{"conversation read from primary", "standby", "primary", 1, 2, "GET", "/v1/conversations/conv_1/items", ``, "centralus"},
		{"response by id", "standby", "primary", 1, 2, "GET", "/v1/responses/resp_1", ``, "centralus"},
		{"body names a conversation", "standby", "primary", 1, 2, "POST", "/v1/agents/a/turns", `{"conversation":"conv_1"}`, "centralus"},
		{"azure path", "standby", "primary", 1, 2, "POST", "/openai/v1/responses", `{}`, "centralus"},
		{"two claim primary: highest epoch", "primary", "primary", 5, 4, "POST", "/v1/responses", `{}`, "eastus2"},
		{"fenced old primary loses", "fenced", "primary", 3, 4, "POST", "/v1/conversations", `{}`, "centralus"},
		{"no roles: normal routing", "", "", 0, 0, "POST", "/v1/responses", `{}`, "eastus2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := newOrigin(t, "eastus2"), newOrigin(t, "centralus")
			a.setReady(200, tt.roleA, tt.epochA)
			b.setReady(200, tt.roleB, tt.epochB)
			h := newHarness(t, testTopology(nil, a, b), Options{})
			var body []byte
			if tt.body != "" {
				body = []byte(tt.body)
			}
			if got := h.do(t, tt.method, tt.path, body); got.region != tt.want {
				t.Errorf("%s %s went to %s, want %s", tt.method, tt.path, got.region, tt.want)
			}
		})
	}

	t.Run("promotion moves state traffic", func(t *testing.T) {
		a, b := newOrigin(t, "eastus2"), newOrigin(t, "centralus")
		a.setReady(200, "primary", 1)
		b.setReady(200, "standby", 1)
		h := newHarness(t, testTopology(nil, a, b), Options{})
		if got := h.do(t, "POST", "/v1/responses", []byte(`{}`)); got.region != "eastus2" {
			t.Fatalf("before: %s", got.region)
		}
		b.setReady(200, "primary", 2)
		h.e.ProbeStep(t.Context())
		if got := h.do(t, "POST", "/v1/responses", []byte(`{}`)); got.region != "centralus" {
			t.Fatalf("after promotion: %s", got.region)
		}
		if got := h.chat(t); got.region != "eastus2" {
			t.Fatalf("stateless traffic moved too: %s", got.region)
		}
	})
}
