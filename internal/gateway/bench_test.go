package gateway

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/understudy/understudy/internal/h1"
	"github.com/understudy/understudy/internal/topology"
)

// fixedCompletion is the answer of the benchmark backend (the shape of
// ../shared/bench/fakeoai).
var fixedCompletion = []byte(`{"id":"chatcmpl-fake","object":"chat.completion","created":1700000000,` +
	`"model":"gpt-4o-mini","system_fingerprint":"fp_fake","choices":[{"index":0,` +
	`"message":{"role":"assistant","content":"Hello! How can I help you today?"},` +
	`"logprobs":null,"finish_reason":"stop"}],` +
	`"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18}}`)

var benchBody = []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello in five words."}],"max_tokens":16}`)

func fixedBackend(tb testing.TB) string {
	cl := []string{strconv.Itoa(len(fixedCompletion))}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header()["Content-Type"] = hdrJSON
		w.Header()["Content-Length"] = cl
		w.Write(fixedCompletion)
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}

func benchGateway(b *testing.B) *Gateway { return benchGatewayWith(b, nil) }

func benchGatewayWith(b *testing.B, c *http.Client) *Gateway {
	tp := topo(b, []string{"gpt-4o-mini"}, map[string][]topology.Backend{
		"gpt-4o-mini": {openaiBackend("fake", fixedBackend(b), 1)},
	}, func(tp *topology.Topology) {
		tp.Keys = append(tp.Keys, topology.Key{Name: "bench", Key: topology.NewSecret("sk-bench-0000-0000-0000")})
	})
	g, err := New(tp, testRegion, Options{HTTPClient: c})
	if err != nil {
		b.Fatal(err)
	}
	return g
}

// BenchmarkHandlerChat is the hot path: one non-streamed chat completion
// through the gateway's handler (auth, limits, decode, pool, backend round
// trip over loopback, answer), without the client-side HTTP server.
func BenchmarkHandlerChat(b *testing.B) {
	b.Run("inline", func(b *testing.B) { benchHandler(b, benchGateway(b)) })
	b.Run("std", func(b *testing.B) {
		benchHandler(b, benchGatewayWith(b, &http.Client{Transport: h1.NewTransport(nil).Std}))
	})
}

func benchHandler(b *testing.B, g *Gateway) {
	h := g.Handler()
	rd := bytes.NewReader(benchBody)
	req := httptest.NewRequest(http.MethodPost, chatPath, rd)
	req.Header.Set("Authorization", "Bearer sk-bench-0000-0000-0000")
	req.RemoteAddr = "127.0.0.1:1234"
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(benchBody)
		req.Body = io.NopCloser(rd)
		req.ContentLength = int64(len(benchBody))
		clear(w.h)
		w.code = 0
		h.ServeHTTP(w, req)
		if w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
}

// BenchmarkHTTPChat is the same request through a real listener: what a
// client measures, minus the client's own cost.
func BenchmarkHTTPChat(b *testing.B) {
	g := benchGateway(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	if err := g.Start(b.Context(), ln); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close(b.Context()) })
	url := "http://" + ln.Addr().String() + chatPath
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(benchBody))
		req.Header.Set("Authorization", "Bearer sk-bench-0000-0000-0000")
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

func BenchmarkParseRequest(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		if _, err := parseRequest(benchBody, chatEndpoint); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPoolPick(b *testing.B) {
	clock := newFakeClock()
	p := testPool(clock, 1, 1, 2)
	b.ReportAllocs()
	for b.Loop() {
		t, ok, _ := p.pick(nil)
		if !ok {
			b.Fatal("no backend")
		}
		p.report(t, outcomeOK, 0, "")
	}
}

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = 200
	}
	return len(p), nil
}
func (w *discardWriter) WriteHeader(code int) { w.code = code }
