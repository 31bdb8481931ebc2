package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/oaierr"
	"github.com/understudy/understudy/internal/probe"
	"github.com/understudy/understudy/internal/topology"
)

const adminToken = "adm-test-token-0123456789"

// clock is an injected clock the test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeOrigin is a regional gateway stand-in: /readyz answers with the
// configured status and role, every other path follows mode.
type fakeOrigin struct {
	name string
	srv  *httptest.Server

	mu          sync.Mutex
	mode        string // ok, 500, 503, 429, hang, sse, ssebreak
	readyStatus int
	role        string
	epoch       int64
	bodies      [][]byte
	arrived     chan string // receives the path of each request, if set

	hits    atomic.Int64
	release chan struct{}
}

func newOrigin(t *testing.T, name string) *fakeOrigin {
	f := &fakeOrigin{name: name, mode: "ok", readyStatus: 200, release: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		close(f.release)
		f.srv.CloseClientConnections()
		f.srv.Close()
	})
	return f
}

func (f *fakeOrigin) set(mode string) {
	f.mu.Lock()
	f.mode = mode
	f.mu.Unlock()
}

func (f *fakeOrigin) setReady(status int, role string, epoch int64) {
	f.mu.Lock()
	f.readyStatus, f.role, f.epoch = status, role, epoch
	f.mu.Unlock()
}

func (f *fakeOrigin) lastBody() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bodies) == 0 {
		return nil
	}
	return f.bodies[len(f.bodies)-1]
}

func (f *fakeOrigin) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Understudy-Region", f.name)
	f.mu.Lock()
	mode, rs, role, epoch, arrived := f.mode, f.readyStatus, f.role, f.epoch, f.arrived
	f.mu.Unlock()
	if r.URL.Path == "/readyz" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rs)
		fmt.Fprintf(w, `{"ready":%v,"region":%q,"draining":false,"role":%q,"epoch":%d}`, rs == 200, f.name, role, epoch)
		return
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.bodies = append(f.bodies, body)
	f.mu.Unlock()
	f.hits.Add(1)
	if arrived != nil {
		arrived <- r.URL.Path
	}
	switch mode {
	case "500", "503":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(map[string]int{"500": 500, "503": 503}[mode])
		fmt.Fprintf(w, `{"error":{"message":"boom in %s","type":"server_error","param":null,"code":null}}`, f.name)
	case "refused":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set(refusalHeader, "write_refused")
		w.WriteHeader(503)
		fmt.Fprintf(w, `{"error":{"message":"%s holds no write lease yet","type":"server_error","param":null,"code":"write_refused"}}`, f.name)
	case "429":
		w.Header().Set("Retry-After", "7")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(429)
		fmt.Fprintf(w, `{"error":{"message":"slow down, %s","type":"requests","param":null,"code":"rate_limit_exceeded"}}`, f.name)
	case "hang":
		select {
		case <-f.release:
		case <-r.Context().Done():
		}
	case "sse", "ssebreak":
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		for i := range 2 {
			fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"part%d \"}}]}\n\n", i)
			w.(http.Flusher).Flush()
		}
		if mode == "ssebreak" {
			panic(http.ErrAbortHandler) // cut the connection mid-stream
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	default:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hello from %s"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":3,"total_tokens":4}}`, f.name)
	}
}

// testTopology returns a defaulted topology with one region per origin,
// priorities in order.
func testTopology(mut func(*topology.Topology), origins ...*fakeOrigin) *topology.Topology {
	t := &topology.Topology{Admin: topology.Admin{Token: topology.NewSecret(adminToken)}}
	for i, o := range origins {
		t.Regions = append(t.Regions, topology.Region{Name: o.name, URL: o.srv.URL, Priority: i + 1})
	}
	t.Probes.Timeout = topology.Duration(time.Second)
	t.Probes.Interval = topology.Duration(2 * time.Second)
	if mut != nil {
		mut(t)
	}
	t.Default()
	return t
}

type harness struct {
	e     *Edge
	srv   *httptest.Server
	clock *clock
}

// newHarness builds an edge (not started: no probe loop), serves its
// handler and runs one probe round.
func newHarness(t *testing.T, topo *topology.Topology, o Options) *harness {
	t.Helper()
	c := newClock()
	if o.Now == nil {
		o.Now = c.Now
	}
	e, err := New(topo, o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Close(ctx)
	})
	e.ProbeStep(t.Context())
	return &harness{e: e, srv: srv, clock: c}
}

type answer struct {
	status int
	region string
	edge   string
	body   string
	header http.Header
}

func (h *harness) do(t *testing.T, method, path string, body []byte) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	return h.doReader(t, method, path, rd)
}

// doReader sends rd as the body; a reader of unknown length is sent chunked.
func (h *harness) doReader(t *testing.T, method, path string, rd io.Reader) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, h.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return answer{resp.StatusCode, resp.Header.Get("X-Understudy-Region"), resp.Header.Get(HeaderEdge), string(b), resp.Header}
}

func (h *harness) chat(t *testing.T) answer {
	t.Helper()
	return h.do(t, "POST", "/v1/chat/completions", []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
}

func (h *harness) admin(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(t.Context(), method, h.srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, v
}

func (h *harness) origin(t *testing.T, name string) OriginView {
	t.Helper()
	for _, v := range h.e.Origins() {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no origin %s", name)
	return OriginView{}
}

// errCode extracts error.code of an OpenAI error body.
func errCode(t *testing.T, body string) string {
	t.Helper()
	var v oaierr.Body
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("not an OpenAI error body: %q", body)
	}
	if v.Error.Code == nil {
		return ""
	}
	return *v.Error.Code
}

type (
	probeTarget = probe.Target
	probeResult = probe.Result
)

type probeCtx = context.Context
