package modelsim

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// discardWriter is a ResponseWriter that keeps nothing, so benchmarks
// measure the server and not the recorder.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
func (w *discardWriter) Flush()                      {}

func benchHandler(b *testing.B, path, body string) {
	s := New(testConfig(), nil)
	h := s.Handler()
	r := httptest.NewRequest(http.MethodPost, path, nil)
	rd := strings.NewReader(body)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		r.Body = http.NoBody
		r.Body = readCloser{rd}
		r.ContentLength = int64(len(body))
		clear(w.h)
		w.status = 0
		h.ServeHTTP(w, r)
	}
	if w.status != 0 && w.status != 200 {
		b.Fatalf("status %d", w.status)
	}
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }

// BenchmarkChatCompletion is a non-streaming completion (16 tokens, no
// latency configured) through the handler: the cost modelsim adds to a
// latency benchmark.
func BenchmarkChatCompletion(b *testing.B) {
	benchHandler(b, "/v1/chat/completions",
		`{"model":"gpt-4.1-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is the capital of France? Answer in one word."}]}`)
}

// BenchmarkChatStream is a streamed completion of 16 tokens.
func BenchmarkChatStream(b *testing.B) {
	benchHandler(b, "/v1/chat/completions",
		`{"model":"gpt-4.1-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"What is the capital of France?"}]}`)
}

// BenchmarkEmbeddings embeds two inputs at 256 dimensions.
func BenchmarkEmbeddings(b *testing.B) {
	benchHandler(b, "/v1/embeddings", `{"model":"e","input":["the quick brown fox","jumps over the lazy dog"],"dimensions":256}`)
}

// BenchmarkChatCompletionLoopback is the same completion over a real
// loopback connection, for scale.
func BenchmarkChatCompletionLoopback(b *testing.B) {
	s := New(testConfig(), nil)
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	body := []byte(`{"model":"gpt-4.1-mini","messages":[{"role":"user","content":"What is the capital of France?"}]}`)
	c := ts.Client()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Post(ts.URL+"/v1/chat/completions", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		var buf [2048]byte
		for {
			if _, err := resp.Body.Read(buf[:]); err != nil {
				break
			}
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
