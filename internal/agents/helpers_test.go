package agents

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/understudy/understudy/internal/modelsim"
	"github.com/understudy/understudy/internal/oaierr"
	"github.com/understudy/understudy/internal/store"
	"github.com/understudy/understudy/internal/store/sqlite"
)

const testDeployment = "gpt-4.1-mini"

// backend is a real modelsim behind httptest that records every chat
// request body it receives.
type backend struct {
	URL string
	mu  sync.Mutex
	got [][]byte
}

func newBackend(t testing.TB) *backend {
	t.Helper()
	sim := modelsim.New(modelsim.Config{Model: testDeployment, Version: "2025-04-14"}, nil)
	b := &backend{}
	h := sim.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.got = append(b.got, body)
		b.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	b.URL = ts.URL
	return b
}

// calls returns the chat requests received so far.
func (b *backend) calls() [][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([][]byte(nil), b.got...)
}

// lastMessages decodes the messages of the n-th chat request.
func (b *backend) messages(t *testing.T, n int) []map[string]any {
	t.Helper()
	calls := b.calls()
	if n >= len(calls) {
		t.Fatalf("backend received %d requests, want at least %d", len(calls), n+1)
	}
	var req struct {
		Messages []map[string]any `json:"messages"`
	}
	if err := json.Unmarshal(calls[n], &req); err != nil {
		t.Fatal(err)
	}
	return req.Messages
}

// Do is the test Completer: a plain POST to modelsim.
func (b *backend) Do(ctx context.Context, deployment string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.URL+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return http.DefaultClient.Do(req)
}

// env is a Service over a real sqlite store and a real modelsim, behind a
// real httptest server.
type env struct {
	svc     *Service
	st      *sqlite.Store
	sim     *backend
	srv     *httptest.Server
	admin   *httptest.Server
	client  openai.Client
	afterMu sync.Mutex
	after   error // what AfterWrite returns
	acks    []store.Position
}

type envOption func(*Options, *env)

// newEnv opens a primary store (epoch 1) unless primary is false.
func newEnv(t testing.TB, primary bool, opts ...envOption) *env {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "region.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if primary {
		if err := st.Promote(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{st: st, sim: newBackend(t)}
	o := Options{
		Store: st, Completer: e.sim, Deployments: []string{testDeployment, "other-deployment"},
		AfterWrite: func(ctx context.Context, pos store.Position) error {
			e.afterMu.Lock()
			defer e.afterMu.Unlock()
			if e.after != nil {
				return e.after
			}
			e.acks = append(e.acks, pos)
			return nil
		},
	}
	for _, f := range opts {
		f(&o, e)
	}
	e.svc = New(o)
	e.srv = httptest.NewServer(e.svc.Handler())
	t.Cleanup(e.srv.Close)
	e.admin = httptest.NewServer(e.svc.AdminHandler())
	t.Cleanup(e.admin.Close)
	e.client = openai.NewClient(option.WithBaseURL(e.srv.URL+"/v1"), option.WithAPIKey("test"), option.WithMaxRetries(0))
	return e
}

func (e *env) setAfterWrite(err error) {
	e.afterMu.Lock()
	defer e.afterMu.Unlock()
	e.after = err
}

// do sends a raw request to the client API and returns status and body.
func (e *env) do(t testing.TB, method, path, body string, hdr ...string) (int, []byte) {
	t.Helper()
	return send(t, method, e.srv.URL+path, body, hdr...)
}

func send(t testing.TB, method, url, body string, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// applyAgents PUTs definitions through the admin handler.
func (e *env) applyAgents(t testing.TB, defs ...string) ApplyResults {
	t.Helper()
	code, body := send(t, http.MethodPut, e.admin.URL+"/admin/agents", "["+strings.Join(defs, ",")+"]")
	if code != http.StatusOK {
		t.Fatalf("apply agents: %d %s", code, body)
	}
	var res ApplyResults
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

const weatherAgent = `{"name":"weather","model":"gpt-4.1-mini","instructions":"You answer questions about the weather.",
 "tools":[{"type":"function","name":"get_weather","description":"Current weather in a city",
  "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}],
 "metadata":{"version":"1","owner":"tests"}}`

const chatAgent = `{"name":"chat","model":"gpt-4.1-mini","instructions":"You are a helpful assistant.","metadata":{"version":"1"}}`

func agentRef(name string) option.RequestOption {
	return option.WithJSONSet("agent_reference", map[string]any{"type": "agent_reference", "name": name})
}

// apiErr asserts err is an OpenAI API error with status and code.
func apiErr(t *testing.T, err error, status int, code string) *openai.Error {
	t.Helper()
	var e *openai.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an API error", err)
	}
	if e.StatusCode != status || e.Code != code {
		t.Fatalf("error = %d %q (%s), want %d %q", e.StatusCode, e.Code, e.Message, status, code)
	}
	return e
}

// errorOf decodes an OpenAI error body.
func errorOf(t testing.TB, body []byte) oaierr.Fields {
	t.Helper()
	var e oaierr.Body
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("not an OpenAI error body: %s", body)
	}
	return e.Error
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func ioNopCloser(s string) io.ReadCloser { return io.NopCloser(strings.NewReader(s)) }
