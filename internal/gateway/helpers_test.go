package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/modelsim"
	"github.com/understudy/understudy/internal/topology"
)

// Keys and tokens of the test topologies.
const (
	keyAlice   = "sk-test-alice-00000000000000"
	keyLimited = "sk-test-limited-000000000000"
	adminToken = "admin-token-0123456789abcdef"
	testRegion = "eastus2"
)

// fakeClock is the injected clock of cooldowns, ejections and key limits.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// topo builds a defaulted, validated one-region topology. deps maps a
// deployment name to its backends; the first deployment listed in order
// gets the timeouts given by mutate.
func topo(t testing.TB, order []string, deps map[string][]topology.Backend, mutate func(*topology.Topology)) *topology.Topology {
	t.Helper()
	tp := &topology.Topology{
		Keys: []topology.Key{
			{Name: "alice", Key: topology.NewSecret(keyAlice)},
			{Name: "limited", Key: topology.NewSecret(keyLimited), RPM: 2, TPM: 1000},
		},
		Admin:   topology.Admin{Token: topology.NewSecret(adminToken)},
		Regions: []topology.Region{{Name: testRegion, Listen: "127.0.0.1:0", Backends: deps}},
	}
	off := false
	tp.Gateway.AccessLog = &off
	for _, name := range order {
		tp.Deployments = append(tp.Deployments, topology.Deployment{Name: name, Version: "2024-07-18"})
	}
	if mutate != nil {
		mutate(tp)
	}
	tp.Default()
	if err := tp.Validate(); err != nil {
		t.Fatalf("test topology: %v", err)
	}
	return tp
}

func openaiBackend(name, url string, prio int) topology.Backend {
	return topology.Backend{Name: name, Kind: topology.KindOpenAI, URL: url, Priority: prio}
}

// sim is a modelsim behind a real httptest server.
type sim struct {
	*modelsim.Server
	srv *httptest.Server
}

func newSim(t testing.TB, model string) *sim {
	t.Helper()
	s := modelsim.New(modelsim.Config{Model: model, Version: "2024-07-18", MaxTokens: 5}, nil)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &sim{Server: s, srv: srv}
}

func (s *sim) URL() string { return s.srv.URL }

// gw is a gateway serving on a real loopback listener.
type gw struct {
	*Gateway
	url   string
	clock *fakeClock
	logs  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startGateway(t testing.TB, tp *topology.Topology) *gw {
	t.Helper()
	clock := newFakeClock()
	logs := &syncBuffer{}
	g, err := New(tp, testRegion, Options{Now: clock.Now, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background(), ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g.Close(ctx)
	})
	return &gw{Gateway: g, url: "http://" + ln.Addr().String(), clock: clock, logs: logs}
}

// post sends a JSON body with the alice key and returns status, headers, body.
func (g *gw) post(t testing.TB, path, body string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, g.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+keyAlice)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func do(t testing.TB, req *http.Request) (int, http.Header, string) {
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
	return resp.StatusCode, resp.Header, string(b)
}

// apiErr decodes an OpenAI-shaped error body, failing the test if it is not one.
func apiErr(t testing.TB, body string) errorFieldsT {
	t.Helper()
	var e struct {
		Error *errorFieldsT `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == nil || e.Error.Message == "" {
		t.Fatalf("not an OpenAI error body: %q", body)
	}
	return *e.Error
}

type errorFieldsT struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e errorFieldsT) code() string {
	if e.Code == nil {
		return ""
	}
	return *e.Code
}

func chatBody(model string, stream bool) string {
	b, _ := json.Marshal(map[string]any{
		"model":    model,
		"stream":   stream,
		"messages": []map[string]string{{"role": "user", "content": "hello there"}},
	})
	return string(b)
}

// sseEvents splits an SSE body into its data payloads.
func sseEvents(body string) []string {
	var out []string
	for _, ev := range strings.Split(body, "\n\n") {
		for _, line := range strings.Split(ev, "\n") {
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				out = append(out, d)
			}
		}
	}
	return out
}

// memNet is an in-memory network for tests inside a testing/synctest
// bubble: connections are net.Pipe pairs, so a goroutine waiting on one is
// durably blocked and the bubble's fake clock can advance.
type memNet struct {
	mu sync.Mutex
	ls map[string]*memListener
}

func newMemNet() *memNet { return &memNet{ls: map[string]*memListener{}} }

type memListener struct {
	n    *memNet
	addr string
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

func (n *memNet) Listen(addr string) *memListener {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := &memListener{n: n, addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
	n.ls[addr] = l
	return l
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.n.mu.Lock()
		if l.n.ls[l.addr] == l {
			delete(l.n.ls, l.addr)
		}
		l.n.mu.Unlock()
	})
	return nil
}

func (l *memListener) Addr() net.Addr { return memAddr(l.addr) }

func (n *memNet) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	l := n.ls[addr]
	n.mu.Unlock()
	refused := &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
	if l == nil {
		return nil, refused
	}
	c1, c2 := net.Pipe()
	select {
	case l.ch <- c2:
		return c1, nil
	case <-l.done:
		return nil, refused
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Client returns an HTTP client that dials on n.
func (n *memNet) Client() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: n.Dial, DisableCompression: true}}
}

// Serve serves h on addr until the returned stop is called.
func (n *memNet) Serve(addr string, h http.Handler) (stop func()) {
	l := n.Listen(addr)
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	return func() {
		srv.Close()
		<-done
	}
}

// metricValue returns the value of one series from /metrics, "" if absent.
func metricValue(t testing.TB, g *gw, series string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.url+"/metrics", nil)
	st, _, body := do(t, req)
	if st != 200 {
		t.Fatalf("/metrics: %d", st)
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// backendStatus reads one backend's state from GET /admin/backends.
func backendStatus(t testing.TB, g *gw, dep, name string) BackendStatus {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.url+"/admin/backends", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	st, _, body := do(t, req)
	var out AdminBackends
	if st != 200 || json.Unmarshal([]byte(body), &out) != nil {
		t.Fatalf("/admin/backends: %d %s", st, body)
	}
	for _, b := range out.Deployments[dep] {
		if b.Name == name {
			return b
		}
	}
	t.Fatalf("no backend %s/%s in %s", dep, name, body)
	return BackendStatus{}
}
