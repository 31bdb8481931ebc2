package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func newTestTransport() *Transport {
	return &Transport{Std: &http.Transport{}, Dial: (&net.Dialer{Timeout: time.Second}).DialContext}
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

// roundTrip sends a request and reads the whole answer.
func roundTrip(t *testing.T, tr http.RoundTripper, req *http.Request) (*http.Response, string, error) {
	t.Helper()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// replayable sets a GetBody that gives body again.
func replayable(req *http.Request, body string) *http.Request {
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
	return req
}

func TestClientRoundTrip(t *testing.T) {
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
			fmt.Fprintf(w, "%s %s host=%s ua=%q len=%d te=%v key=%s body=%s", r.Method, r.URL.RequestURI(), r.Host,
				r.UserAgent(), r.ContentLength, r.TransferEncoding, r.Header.Get("Api-Key"), body)
		}
	}))
	conns := connCounter(srv)
	srv.Start()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	tr := newTestTransport()
	defer tr.CloseIdleConnections()

	tests := []struct {
		name, method, path string
		body               io.Reader
		length             int64 // ContentLength when body is set
		hdr                http.Header
		status             int
		want               string
	}{
		{"post", "POST", "/v1/chat/completions?x=1", strings.NewReader(`{"a":1}`), 7, http.Header{"User-Agent": {""}, "Api-Key": {"k"}},
			200, `POST /v1/chat/completions?x=1 host=` + addr + ` ua="" len=7 te=[] key=k body={"a":1}`},
		{"bytes body", "POST", "/b", NewBytesBody([]byte("bytes")), 5, nil,
			200, `POST /b host=` + addr + ` ua="" len=5 te=[] key= body=bytes`},
		{"own fields in header skipped", "POST", "/own", strings.NewReader("abc"), 3,
			http.Header{"Content-Length": {"999"}, "Host": {"evil"}, "Connection": {"close"}, "transfer-encoding": {"chunked"}},
			200, `POST /own host=` + addr + ` ua="" len=3 te=[] key= body=abc`},
		{"unknown length chunked", "PUT", "/u", io.NopCloser(strings.NewReader("streamed")), -1, nil,
			200, `PUT /u host=` + addr + ` ua="" len=-1 te=[chunked] key= body=streamed`},
		{"empty body of unknown length", "POST", "/e", io.NopCloser(strings.NewReader("")), 0, nil,
			200, `POST /e host=` + addr + ` ua="" len=0 te=[] key= body=`},
		{"empty bytes body", "GET", "/e", NewBytesBody(nil), 0, nil,
			200, `GET /e host=` + addr + ` ua="" len=0 te=[] key= body=`},
		{"get", "GET", "/v1/models", nil, 0, http.Header{"User-Agent": {"openai-go"}},
			200, `GET /v1/models host=` + addr + ` ua="openai-go" len=0 te=[] key= body=`},
		{"post no body", "POST", "/n", nil, 0, nil, 200, `POST /n host=` + addr + ` ua="" len=0 te=[] key= body=`},
		{"chunked answer", "GET", "/chunked", nil, 0, nil, 200, "part1 part2"},
		{"early hints skipped", "GET", "/continue", nil, 0, nil, 200, "after hints"},
		{"no content", "GET", "/empty", nil, 0, nil, 204, ""},
		{"head", "HEAD", "/v1/models", nil, 0, nil, 200, ""},
		{"big", "GET", "/big", nil, 0, nil, 200, strings.Repeat("x", 256<<10)},
	}
	for _, tt := range tests {
		req, err := http.NewRequestWithContext(t.Context(), tt.method, srv.URL+tt.path, tt.body)
		if err != nil {
			t.Fatal(err)
		}
		if tt.body != nil {
			req.ContentLength = tt.length
		}
		for k, vs := range tt.hdr {
			req.Header[k] = vs
		}
		resp, body, err := roundTrip(t, tr, req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if resp.StatusCode != tt.status || body != tt.want {
			t.Errorf("%s: %d %.80q, want %d %.80q", tt.name, resp.StatusCode, body, tt.status, tt.want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d requests in sequence used %d connections, want 1", len(tests), n)
	}

	get := func(path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+path, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// An answer without a body frees its connection at once.
	get("/empty")
	resp := get("/v1/models")
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if n := conns.Load(); n != 1 {
		t.Errorf("after an empty answer never closed: %d connections, want 1", n)
	}

	// Connection: close is honoured: the next request dials again.
	resp = get("/close")
	io.ReadAll(resp.Body)
	resp.Body.Close()
	resp = get("/v1/models")
	io.ReadAll(resp.Body)
	if n := conns.Load(); n != 2 {
		t.Errorf("after Connection: close: %d connections, want 2", n)
	}
	// Reading after the end still says EOF (and the connection is not
	// handed out twice).
	if n, err := resp.Body.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("read after EOF: %d %v", n, err)
	}
	resp.Body.Close()

	// A body closed before its end is not reused.
	resp = get("/big")
	resp.Body.Read(make([]byte, 10))
	resp.Body.Close()
	if _, err := resp.Body.Read(make([]byte, 1)); err == nil {
		t.Error("read on a closed body succeeded")
	}
	resp = get("/v1/models")
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if n := conns.Load(); n != 3 {
		t.Errorf("after an unread body: %d connections, want 3", n)
	}
}

// TestClientHeaders: header injection is refused before anything is sent.
func TestClientHeaders(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { requests.Add(1) }))
	defer srv.Close()
	tr := newTestTransport()
	tests := []struct {
		name string
		edit func(*http.Request)
	}{
		{"value with CRLF", func(r *http.Request) { r.Header["Api-Key"] = []string{"k\r\nX-Evil: 1"} }},
		{"value with NUL", func(r *http.Request) { r.Header["Api-Key"] = []string{"k\x00"} }},
		{"name with colon", func(r *http.Request) { r.Header["X-A: b\r\nX-Evil"] = []string{"1"} }},
		{"host with LF", func(r *http.Request) { r.Host = "a\nX-Evil: 1" }},
		{"query with CRLF", func(r *http.Request) { r.URL.RawQuery = "a=1 HTTP/1.1\r\nX-Evil: 1" }},
		{"method", func(r *http.Request) { r.Method = "GET /x" }},
	}
	for _, tt := range tests {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", srv.URL, strings.NewReader("x"))
		tt.edit(req)
		if _, err := tr.RoundTrip(req); !errors.Is(err, errInvalidRequest) {
			t.Errorf("%s: %v, want an invalid request error", tt.name, err)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("server got %d requests, want 0", n)
	}
}

// rawServer answers each connection's first request with answer(n), n
// counting requests, and then closes the connection (as a server whose
// keep-alive timeout passed).
func rawServer(t *testing.T, answer func(n int) string) (url string, requests *atomic.Int32) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	requests = &atomic.Int32{}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				io.WriteString(conn, answer(int(requests.Add(1))))
			}()
		}
	}()
	return "http://" + ln.Addr().String(), requests
}

// TestClientStaleConnection: a kept-alive connection the upstream closed
// while idle is detected on use and the request, body included, is sent
// again on a fresh connection, once; an upstream that answered part of a
// response and broke is not sent the request twice, nor is a body that
// cannot be replayed.
func TestClientStaleConnection(t *testing.T) {
	tr := newTestTransport()
	post := func(url, body string, replay bool) (string, error) {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", url, strings.NewReader(body))
		if replay {
			replayable(req, body)
		} else {
			req.GetBody = nil
		}
		_, got, err := roundTrip(t, tr, req)
		return got, err
	}

	url, requests := rawServer(t, func(int) string { return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" })
	for i := range 3 {
		if got, err := post(url, "x", true); err != nil || got != "ok" {
			t.Fatalf("request %d: %q %v", i, got, err)
		}
	}
	if n := requests.Load(); n != 3 {
		t.Errorf("upstream processed %d requests, want 3", n)
	}
	// Without GetBody the body cannot be sent again.
	if _, err := post(url, "x", false); err == nil {
		t.Error("a request without GetBody succeeded on a stale connection")
	}
	if n := requests.Load(); n != 3 {
		t.Errorf("upstream processed %d requests, want 3", n)
	}

	url, requests = rawServer(t, func(n int) string {
		if n == 1 {
			return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
		}
		return "HTTP/1.1 200 OK\r\nContent-Le" // breaks mid-head
	})
	// The first answer's connection is closed after it, so the second
	// request finds it stale, retries on a new one, and that one breaks
	// after part of its head: no third send.
	post(url, "x", true)
	if _, err := post(url, "x", true); err == nil {
		t.Fatal("a broken answer was taken for a response")
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("upstream processed %d requests, want 2 (no resend after a partial answer)", n)
	}

	// An echo server closing its idle side: the body is sent again.
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
	if got, err := post(srv.URL, "one", true); err != nil || got != "one" {
		t.Fatalf("first: %q %v", got, err)
	}
	mu.Lock()
	for _, c := range serverConns {
		c.Close()
	}
	mu.Unlock()
	if got, err := post(srv.URL, "two", true); err != nil || got != "two" {
		t.Fatalf("on a stale connection: %q %v", got, err)
	}
}

// pipeNet dials in-memory connections to a server loop that answers each
// request with answer(request) and closes the connection after it when
// close is set; it counts dials and connections the server saw end.
type pipeNet struct {
	answer func(r *http.Request) (text string, close bool)
	dials  atomic.Int32
	ended  atomic.Int32
}

func (p *pipeNet) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	p.dials.Add(1)
	c, s := net.Pipe()
	go func() {
		defer p.ended.Add(1)
		defer s.Close()
		br := bufio.NewReader(s)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			text, close := p.answer(req)
			if _, err := io.WriteString(s, text); err != nil || close {
				return
			}
		}
	}()
	return c, nil
}

func ok(*http.Request) (string, bool) { return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false }

func pipeGet(t *testing.T, tr *Transport) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://up.test/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readClose(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestClientPool: idle connections are reused most recent first, kept at
// most MaxIdlePerHost per host and IdleTimeout long.
func TestClientPool(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &pipeNet{answer: ok}
		tr := &Transport{Dial: p.Dial, MaxIdlePerHost: 2, IdleTimeout: time.Minute}
		defer tr.CloseIdleConnections()
		// Three answers in flight: three connections; two stay.
		rs := []*http.Response{pipeGet(t, tr), pipeGet(t, tr), pipeGet(t, tr)}
		for _, r := range rs {
			readClose(t, r)
		}
		synctest.Wait()
		if d, e := p.dials.Load(), p.ended.Load(); d != 3 || e != 1 {
			t.Fatalf("dials %d, ended %d; want 3, 1 (pool of 2)", d, e)
		}
		readClose(t, pipeGet(t, tr))
		readClose(t, pipeGet(t, tr))
		if d := p.dials.Load(); d != 3 {
			t.Fatalf("dials %d, want 3 (pooled connections reused)", d)
		}
		time.Sleep(time.Minute - time.Nanosecond)
		readClose(t, pipeGet(t, tr))
		if d := p.dials.Load(); d != 3 {
			t.Fatalf("dials %d just before IdleTimeout, want 3", d)
		}
		// The other pooled connection is now older than IdleTimeout: the
		// next put closes it, and a get after IdleTimeout dials.
		time.Sleep(time.Nanosecond)
		readClose(t, pipeGet(t, tr))
		synctest.Wait()
		if d, e := p.dials.Load(), p.ended.Load(); d != 3 || e != 2 {
			t.Fatalf("dials %d, ended %d; want 3, 2 (the expired idle connection closed)", d, e)
		}
		time.Sleep(time.Minute)
		readClose(t, pipeGet(t, tr))
		synctest.Wait()
		if d, e := p.dials.Load(), p.ended.Load(); d != 4 || e != 3 {
			t.Fatalf("dials %d, ended %d after IdleTimeout; want 4, 3", d, e)
		}
	})
}

// TestClientNotReused: a connection whose upstream sent more than the
// answer, or whose answer said HTTP/1.0, is closed after the answer.
func TestClientNotReused(t *testing.T) {
	tests := []struct{ name, answer string }{
		{"bytes beyond the answer", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n"},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"},
		{"switching protocols", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := &pipeNet{answer: func(*http.Request) (string, bool) { return tt.answer, false }}
				tr := &Transport{Dial: p.Dial}
				defer tr.CloseIdleConnections()
				readClose(t, pipeGet(t, tr))
				synctest.Wait()
				if e := p.ended.Load(); e != 1 {
					t.Errorf("%d connections ended, want 1", e)
				}
			})
		})
	}
}

// TestClientRetryOnce: with every pooled connection stale, the request is
// sent again once, on a fresh connection, not on the next stale one.
func TestClientRetryOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &pipeNet{answer: func(*http.Request) (string, bool) {
			return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true
		}}
		tr := &Transport{Dial: p.Dial}
		defer tr.CloseIdleConnections()
		a, b := pipeGet(t, tr), pipeGet(t, tr)
		readClose(t, a)
		readClose(t, b)
		synctest.Wait() // both closed by the upstream, both pooled
		if got := readClose(t, pipeGet(t, tr)); got != "ok" {
			t.Fatalf("got %q", got)
		}
		if d := p.dials.Load(); d != 3 {
			t.Errorf("dials %d, want 3 (one fresh connection for the retry)", d)
		}
	})
}

// TestClientCancel: cancelling the request ends a read of the body in
// progress and the connection is not reused; a round trip cancelled while
// waiting for the head returns an error that is both the context's error
// and its cause.
func TestClientCancel(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow-body":
			w.Write([]byte("part"))
			w.(http.Flusher).Flush()
		case "/slow-head":
			arrived <- struct{}{}
		default:
			w.Write([]byte("ok"))
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	conns := connCounter(srv)
	srv.Start()
	defer srv.Close()
	defer close(release)
	tr := newTestTransport()

	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/slow-body", strings.NewReader("x"))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "part" {
		t.Fatalf("first bytes %q %v", buf, err)
	}
	cancel()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("read went on after cancel")
	}
	resp.Body.Close()
	req, _ = http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/fast", strings.NewReader("x"))
	if _, body, err := roundTrip(t, tr, req); err != nil || body != "ok" {
		t.Fatalf("after cancel: %q %v", body, err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the cancelled one is not reused)", n)
	}

	cause := errors.New("attempt timeout")
	tests := []struct {
		name   string
		ctx    func() (context.Context, func())
		is     []error
		reason string
	}{
		{"cancel with cause", func() (context.Context, func()) {
			ctx, cancel := context.WithCancelCause(t.Context())
			go func() { <-arrived; cancel(cause) }()
			return ctx, func() { cancel(nil) }
		}, []error{cause, context.Canceled}, cause.Error()},
		{"cancel", func() (context.Context, func()) {
			ctx, cancel := context.WithCancel(t.Context())
			go func() { <-arrived; cancel() }()
			return ctx, cancel
		}, []error{context.Canceled}, context.Canceled.Error()},
		{"already cancelled", func() (context.Context, func()) {
			ctx, cancel := context.WithCancelCause(t.Context())
			cancel(cause)
			return ctx, func() {}
		}, []error{cause, context.Canceled}, cause.Error()},
	}
	for _, tt := range tests {
		ctx, done := tt.ctx()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/slow-head", nil)
		_, err := tr.RoundTrip(req)
		done()
		for _, want := range tt.is {
			if !errors.Is(err, want) {
				t.Errorf("%s: %v, want errors.Is %v", tt.name, err, want)
			}
		}
		if err == nil || err.Error() != tt.reason {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.reason)
		}
	}

	// A deadline with a cause, as the gateway's total timeout.
	synctest.Test(t, func(t *testing.T) {
		never := make(chan struct{})
		defer close(never)
		p := &pipeNet{answer: func(*http.Request) (string, bool) { <-never; return "", true }}
		tr := &Transport{Dial: p.Dial}
		ctx, cancel := context.WithTimeoutCause(t.Context(), time.Second, cause)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://up.test/", nil)
		_, err := tr.RoundTrip(req)
		if !errors.Is(err, cause) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("timeout: %v, want the cause and DeadlineExceeded", err)
		}
	})
}

// TestClientRefusedAndGarbage: a refused dial and a non-HTTP answer are
// errors, never a retry loop.
func TestClientRefusedAndGarbage(t *testing.T) {
	tr := newTestTransport()
	dead := httptest.NewServer(http.NotFoundHandler())
	u := dead.URL
	dead.Close()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", u, nil)
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

// TestClientStd: HTTPS, proxied URLs and Upgrade requests go to Std.
func TestClientStd(t *testing.T) {
	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("tls " + r.Proto))
	}))
	defer tls.Close()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A proxy sees the absolute URL in the request line.
		w.Write([]byte("plain " + r.RequestURI))
	}))
	defer plain.Close()
	proxyURL, _ := url.Parse(plain.URL)

	var inline atomic.Int32
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		inline.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	tests := []struct {
		name string
		std  *http.Transport
		url  string
		hdr  http.Header
		want string
	}{
		{"https", tls.Client().Transport.(*http.Transport).Clone(), tls.URL, nil, "tls HTTP/1.1"},
		{"proxy", &http.Transport{Proxy: http.ProxyURL(proxyURL)}, "http://upstream.test/x", nil, "plain http://upstream.test/x"},
		{"upgrade", &http.Transport{}, plain.URL + "/u", http.Header{"Upgrade": {"websocket"}}, "plain /u"},
		{"plain with a nil Proxy", &http.Transport{}, plain.URL + "/p", nil, "plain /p"},
	}
	for _, tt := range tests {
		before := inline.Load()
		tr := &Transport{Std: tt.std, Dial: dial}
		req, _ := http.NewRequestWithContext(t.Context(), "GET", tt.url, nil)
		for k, v := range tt.hdr {
			req.Header[k] = v
		}
		_, body, err := roundTrip(t, tr, req)
		if err != nil || body != tt.want {
			t.Errorf("%s: %q %v, want %q", tt.name, body, err, tt.want)
		}
		wantInline := tt.name == "plain with a nil Proxy"
		if got := inline.Load() != before; got != wantInline {
			t.Errorf("%s: served inline %v, want %v", tt.name, got, wantInline)
		}
		tr.CloseIdleConnections()
	}
}

// BenchmarkClient measures a POST round trip with a small body to a
// loopback net/http server, inline and with http.Transport.
func BenchmarkClient(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"hello"}]}`)
	for _, tt := range []struct {
		name string
		rt   http.RoundTripper
	}{
		{"inline", &Transport{Std: &http.Transport{}}},
		{"std", &http.Transport{}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequestWithContext(b.Context(), "POST", srv.URL+"/v1/chat/completions", nil)
				req.Body, req.ContentLength = NewBytesBody(body), int64(len(body))
				resp, err := tt.rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			tt.rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
		})
	}
}
