package modelsim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/understudy/understudy/internal/oaierr"
)

const testVersion = "2025-04-14"

func testConfig() Config {
	return Config{Model: "gpt-4.1-mini", Version: testVersion}
}

// start runs a Server for cfg behind a real loopback httptest server.
func start(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	s := New(cfg, nil)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts
}

// client is the official OpenAI client pointed at base, without retries so
// that every fault reaches the test.
func client(base string, opts ...option.RequestOption) openai.Client {
	return openai.NewClient(append([]option.RequestOption{
		option.WithBaseURL(base), option.WithAPIKey("test-key"), option.WithMaxRetries(0),
	}, opts...)...)
}

func userMsg(text string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    "gpt-4.1-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)},
	}
}

// post sends body to url and returns the answer with its body read.
func post(t *testing.T, url, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, b
}

// wantError checks an OpenAI-shaped error body.
func wantError(t *testing.T, body []byte, code, param string) oaierr.Fields {
	t.Helper()
	var e struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := e.Error[k]; !ok {
			t.Fatalf("error body %s lacks %q", body, k)
		}
	}
	str := func(k string) string { s, _ := e.Error[k].(string); return s }
	if got := str("code"); got != code {
		t.Errorf("error code = %q, want %q (body %s)", got, code, body)
	}
	if got := str("param"); got != param {
		t.Errorf("error param = %q, want %q (body %s)", got, param, body)
	}
	if str("message") == "" || str("type") == "" {
		t.Errorf("error body %s: empty message or type", body)
	}
	return oaierr.Fields{Message: str("message"), Type: str("type")}
}

// sseEvents splits an SSE body into the data of its events.
func sseEvents(t *testing.T, body []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("unexpected SSE line %q", line)
		}
		out = append(out, data)
	}
	return out
}

// chunk is the part of a chat.completion.chunk the tests read.
type chunk struct {
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Delta struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

// timedWriter is a ResponseWriter that records, at every flush, the virtual
// time since start and the bytes written so far; for synctest bubbles.
type timedWriter struct {
	start time.Time

	mu      sync.Mutex
	h       http.Header
	status  int
	buf     bytes.Buffer
	flushes []flushAt
}

type flushAt struct {
	at time.Duration
	n  int // bytes written when flushed
}

func newTimedWriter() *timedWriter {
	return &timedWriter{start: time.Now(), h: http.Header{}}
}

func (w *timedWriter) Header() http.Header { return w.h }

func (w *timedWriter) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.status == 0 {
		w.status = code
	}
}

func (w *timedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.buf.Write(p)
}

func (w *timedWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushes = append(w.flushes, flushAt{time.Since(w.start), w.buf.Len()})
}

func (w *timedWriter) body() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf.Bytes())
}

func (w *timedWriter) flushTimes() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []time.Duration
	for _, f := range w.flushes {
		out = append(out, f.at)
	}
	return out
}

// serve calls h for a POST of body to path with ctx, recording into a
// timedWriter, and returns the writer and the virtual time the call took.
func serve(ctx context.Context, h http.Handler, path, body string) (*timedWriter, time.Duration) {
	w := newTimedWriter()
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, path, strings.NewReader(body))
	h.ServeHTTP(w, r)
	return w, time.Since(w.start)
}
