package modelsim

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"testing/synctest"
	"time"
)

const ms = time.Millisecond

func streamBody(n int) string {
	return `{"messages":[{"role":"user","content":"pace me"}],"stream":true,"max_tokens":` + strconv.Itoa(n) + `}`
}

func chatN(n int) string {
	return `{"messages":[{"role":"user","content":"pace me"}],"max_tokens":` + strconv.Itoa(n) + `}`
}

func TestPacing(t *testing.T) {
	tests := []struct {
		name        string
		cfg         Config
		faults      Faults
		path, body  string
		wantTook    time.Duration
		wantFlushes []time.Duration // nil: no flush expected
	}{
		{"stream ttft and tps", Config{TTFT: 200 * ms, TokensPerSecond: 10}, Faults{}, "/v1/chat/completions", streamBody(5),
			600 * ms, []time.Duration{200 * ms, 300 * ms, 400 * ms, 500 * ms, 600 * ms, 600 * ms}},
		{"stream tps only", Config{TokensPerSecond: 4}, Faults{}, "/v1/chat/completions", streamBody(3),
			500 * ms, []time.Duration{0, 250 * ms, 500 * ms, 500 * ms}},
		{"stream with latency fault", Config{TTFT: 200 * ms, TokensPerSecond: 10}, Faults{Latency: Duration(time.Second)}, "/v1/chat/completions", streamBody(2),
			1300 * ms, []time.Duration{1200 * ms, 1300 * ms, 1300 * ms}},
		{"stream as fast as possible", Config{}, Faults{}, "/v1/chat/completions", streamBody(3),
			0, []time.Duration{0, 0, 0, 0}},
		{"non-stream waits for the last token", Config{TTFT: 200 * ms, TokensPerSecond: 10}, Faults{}, "/v1/chat/completions", chatN(5),
			600 * ms, nil},
		{"non-stream with latency fault", Config{TTFT: 200 * ms, TokensPerSecond: 10}, Faults{Latency: Duration(time.Second)}, "/v1/chat/completions", chatN(5),
			1600 * ms, nil},
		{"non-stream zero latency", Config{}, Faults{}, "/v1/chat/completions", chatN(50), 0, nil},
		{"embeddings ttft", Config{TTFT: 200 * ms, TokensPerSecond: 10}, Faults{}, "/v1/embeddings", `{"input":["a","b"]}`, 200 * ms, nil},
		{"latency before errors too", Config{TTFT: 200 * ms}, Faults{Latency: Duration(50 * ms), ErrorRate: 1}, "/v1/chat/completions", chatN(5), 50 * ms, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := New(tt.cfg, nil)
				s.SetFaults(tt.faults)
				w, took := serve(t.Context(), s.Handler(), tt.path, tt.body)
				if took != tt.wantTook {
					t.Errorf("took %v, want %v", took, tt.wantTook)
				}
				if got := w.flushTimes(); !slices.Equal(got, tt.wantFlushes) {
					t.Errorf("flushes at %v, want %v", got, tt.wantFlushes)
				}
				if tt.faults.ErrorRate == 0 && w.status != 200 {
					t.Errorf("status %d: %s", w.status, w.body())
				}
			})
		})
	}
}

func TestStreamChunkPerFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Config{TTFT: time.Second, TokensPerSecond: 2}, nil)
		w, _ := serve(t.Context(), s.Handler(), "/v1/chat/completions", streamBody(3))
		// The first flush carries the role chunk and the first token; each
		// later one exactly one more chunk; the last the finish and [DONE].
		body := w.body()
		w.mu.Lock()
		flushes := slices.Clone(w.flushes)
		w.mu.Unlock()
		if len(flushes) != 4 {
			t.Fatalf("%d flushes", len(flushes))
		}
		prev := 0
		var perFlush []int
		for _, f := range flushes {
			perFlush = append(perFlush, len(sseEvents(t, body[prev:f.n])))
			prev = f.n
		}
		if want := []int{2, 1, 1, 2}; !slices.Equal(perFlush, want) {
			t.Errorf("events per flush %v, want %v", perFlush, want)
		}
		if h := w.Header().Get("Content-Type"); h != "text/event-stream" {
			t.Errorf("Content-Type %q", h)
		}
	})
}

func TestStreamStopsWhenClientLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Config{TTFT: 200 * ms, TokensPerSecond: 10}, nil)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(350*ms, cancel)
		w, took := serve(ctx, s.Handler(), "/v1/chat/completions", streamBody(10))
		if took != 350*ms {
			t.Errorf("handler returned after %v, want 350ms", took)
		}
		if events := sseEvents(t, w.body()); len(events) != 3 {
			t.Errorf("%d events, want role + 2 content chunks", len(events))
		}
	})
}

func TestWaitsHonourCancellation(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		f    Faults
		path string
		body string
	}{
		{"ttft", Config{TTFT: time.Hour}, Faults{}, "/v1/chat/completions", streamBody(1)},
		{"non-stream", Config{TokensPerSecond: 0.001}, Faults{}, "/v1/chat/completions", chatN(5)},
		{"latency", Config{}, Faults{Latency: Duration(time.Hour)}, "/v1/embeddings", `{"input":"x"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := New(tc.cfg, nil)
				s.SetFaults(tc.f)
				ctx, cancel := context.WithCancel(t.Context())
				time.AfterFunc(time.Second, cancel)
				w, took := serve(ctx, s.Handler(), tc.path, tc.body)
				if took != time.Second || w.status != 0 {
					t.Errorf("took %v, status %d; want 1s and no answer", took, w.status)
				}
			})
		})
	}
}
