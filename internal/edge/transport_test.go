package edge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newTestInline() *inline {
	return newInline(&http.Transport{}, (&net.Dialer{Timeout: time.Second}).DialContext)
}

// connCounter counts the connections a test server accepted.
func connCounter(srv *httptest.Server) *atomic.Int64 {
	var n atomic.Int64
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	return &n
}

func TestInlineTransport(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/chunked":
			w.Write([]byte("part1 "))
			w.(http.Flusher).Flush()
			w.Write([]byte("part2"))
		case "/close":
			w.Header().Set("Connection", "close")
			w.Write([]byte("bye"))
		case "/continue":
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("after hints"))
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/big":
			w.Write([]byte(strings.Repeat("x", 256<<10)))
		default:
			fmt.Fprintf(w, "%s %s host=%s ua=%q len=%d body=%s", r.Method, r.URL.RequestURI(), r.Host, r.UserAgent(), r.ContentLength, body)
		}
	}))
	conns := connCounter(srv)
	srv.Start()
	defer srv.Close()
	tr := newTestInline()
	defer tr.CloseIdleConnections()

	do := func(method, path, body string, hdr ...string) (*http.Response, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequestWithContext(t.Context(), method, srv.URL+path, rd)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		if body != "" {
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s %s: body: %v", method, path, err)
		}
		return resp, string(b)
	}

	tests := []struct {
		method, path, body string
		hdr                []string
		status             int
		want               string
	}{
		{"POST", "/v1/chat/completions?x=1", `{"a":1}`, []string{"User-Agent", ""}, 200, `POST /v1/chat/completions?x=1 host=` + srv.Listener.Addr().String() + ` ua="" len=7 body={"a":1}`},
		{"GET", "/v1/models", "", []string{"User-Agent", "openai-go"}, 200, `GET /v1/models host=` + srv.Listener.Addr().String() + ` ua="openai-go" len=0 body=`},
		{"GET", "/chunked", "", nil, 200, "part1 part2"},
		{"GET", "/continue", "", nil, 200, "after hints"},
		{"GET", "/empty", "", nil, 204, ""},
		{"HEAD", "/v1/models", "", nil, 200, ""},
		{"GET", "/big", "", nil, 200, strings.Repeat("x", 256<<10)},
	}
	for _, tt := range tests {
		resp, body := do(tt.method, tt.path, tt.body, tt.hdr...)
		if resp.StatusCode != tt.status || body != tt.want {
			t.Errorf("%s %s: %d %.80q, want %d %.80q", tt.method, tt.path, resp.StatusCode, body, tt.status, tt.want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d requests in sequence used %d connections, want 1", len(tests), n)
	}

	// Connection: close is honoured: the next request dials again.
	do("GET", "/close", "")
	do("GET", "/v1/models", "")
	if n := conns.Load(); n != 2 {
		t.Errorf("after Connection: close: %d connections, want 2", n)
	}

	// A body closed before its end is not reused.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/big", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Read(make([]byte, 10))
	resp.Body.Close()
	do("GET", "/v1/models", "")
	if n := conns.Load(); n != 3 {
		t.Errorf("after an unread body: %d connections, want 3", n)
	}
}

// TestInlineStaleConnection: a kept-alive connection the origin closed while
// idle is replaced, and the request (body included) is sent again.
func TestInlineStaleConnection(t *testing.T) {
	var mu sync.Mutex
	var serverConns []net.Conn
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateIdle {
			mu.Lock()
			serverConns = append(serverConns, c)
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()
	tr := newTestInline()
	post := func(body string) (string, error) {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", srv.URL, strings.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if got, err := post("one"); err != nil || got != "one" {
		t.Fatalf("first: %q %v", got, err)
	}
	// The origin drops its idle side.
	mu.Lock()
	for _, c := range serverConns {
		c.Close()
	}
	mu.Unlock()
	if got, err := post("two"); err != nil || got != "two" {
		t.Fatalf("on a stale connection: %q %v", got, err)
	}
}

func TestInlineCancel(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	tr := newTestInline()
	ctx, cancel := context.WithCancelCause(t.Context())
	cause := errors.New("attempt timeout")
	go func() {
		<-arrived
		cancel(cause)
	}()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	start := time.Now()
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, cause) || time.Since(start) > 5*time.Second {
		t.Fatalf("cancelled round trip: %v after %s, want the cause at once", err, time.Since(start))
	}
}

// TestInlineRefusedAndGarbage: a refused dial and a non-HTTP answer are
// errors, never a retry loop.
func TestInlineRefusedAndGarbage(t *testing.T) {
	tr := newTestInline()
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("refused: %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		bufio.NewReader(c).ReadString('\n')
		c.Write([]byte("SSH-2.0-nope\r\n"))
		c.Close()
	}()
	req, _ = http.NewRequestWithContext(t.Context(), "GET", "http://"+ln.Addr().String(), nil)
	if _, err := tr.RoundTrip(req); err == nil {
		t.Error("garbage answer accepted")
	}
}

func TestInlineHTTPSUsesStd(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.Proto))
	}))
	defer srv.Close()
	std := srv.Client().Transport.(*http.Transport).Clone()
	tr := newInline(std, (&net.Dialer{}).DialContext)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "HTTP/") {
		t.Errorf("https: %d %s", resp.StatusCode, b)
	}
}
