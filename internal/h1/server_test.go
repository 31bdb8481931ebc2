package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func start(t *testing.T, s *Server) (addr string, ln *countingListener, served chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln = &countingListener{Listener: l}
	served = make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() { s.Close() })
	return l.Addr().String(), ln, served
}

// raw sends a request text on a new connection and returns the
// connection and a reader of what comes back.
func raw(t *testing.T, addr, text string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, text); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

func readResp(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func echo() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
	})
}

func TestKeepAliveWithStandardClient(t *testing.T) {
	addr, ln, _ := start(t, &Server{Handler: echo()})
	c := &http.Client{}
	for i := range 3 {
		resp, err := c.Post("http://"+addr+"/v1/x", "text/plain", strings.NewReader(fmt.Sprint("body", i)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprint("POST /v1/x body", i); string(b) != want || resp.ContentLength != int64(len(want)) {
			t.Fatalf("got %q (length %d), want %q with its length", b, resp.ContentLength, want)
		}
		if resp.Header.Get("Date") == "" {
			t.Error("no Date header")
		}
	}
	if n := ln.n.Load(); n != 1 {
		t.Fatalf("%d connections for 3 requests, want 1 (keep-alive)", n)
	}
}

func TestFraming(t *testing.T) {
	big := strings.Repeat("x", bufSize+1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			io.WriteString(w, "hello")
		case "/big":
			io.WriteString(w, big)
		case "/declared":
			w.Header().Set("Content-Length", "3")
			io.WriteString(w, "abc")
		case "/empty204":
			w.WriteHeader(http.StatusNoContent)
			if _, err := io.WriteString(w, "x"); !errors.Is(err, http.ErrBodyNotAllowed) {
				panic("write after 204 accepted")
			}
		case "/flushed":
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b")
		}
	})
	addr, _, _ := start(t, &Server{Handler: h})
	cases := []struct {
		path, method string
		wantBody     string
		wantLen      int64
		wantChunked  bool
	}{
		{"/small", "GET", "hello", 5, false},
		{"/big", "GET", big, -1, true},
		{"/declared", "GET", "abc", 3, false},
		{"/empty204", "GET", "", 0, false},
		{"/flushed", "GET", "ab", -1, true},
		{"/small", "HEAD", "", 5, false},
	}
	// All on one connection: every response must be framed exactly.
	var sb strings.Builder
	for _, tc := range cases {
		fmt.Fprintf(&sb, "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", tc.method, tc.path)
	}
	_, br := raw(t, addr, sb.String())
	for _, tc := range cases {
		resp, b := readResp(t, br, tc.method)
		chunked := len(resp.TransferEncoding) > 0
		if b != tc.wantBody || chunked != tc.wantChunked || (!chunked && resp.ContentLength != tc.wantLen && tc.path != "/empty204") {
			t.Errorf("%s %s: body %d bytes, chunked %v, length %d; want %d bytes, chunked %v, length %d",
				tc.method, tc.path, len(b), chunked, resp.ContentLength, len(tc.wantBody), tc.wantChunked, tc.wantLen)
		}
	}
}

func TestStreamFlushesEachWrite(t *testing.T) {
	next := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			if err := rc.Flush(); err != nil {
				return
			}
			<-next
		}
	})
	addr, _, _ := start(t, &Server{Handler: h})
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: %d\n", i) {
			t.Fatalf("event %d: %q, %v", i, line, err)
		}
		br.ReadString('\n')
		next <- struct{}{} // the handler writes the next event only now
	}
}

func TestExpectContinue(t *testing.T) {
	addr, _, _ := start(t, &Server{Handler: echo()})
	c, br := raw(t, addr, "POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusContinue {
		t.Fatalf("want 100 Continue before the body is sent, got %v %v", resp, err)
	}
	io.WriteString(c, "data")
	if resp, b := readResp(t, br, "POST"); resp.StatusCode != 200 || b != "POST /e data" {
		t.Fatalf("got %d %q", resp.StatusCode, b)
	}
	// No body, or HTTP/1.0: nothing to wait for, no 100.
	io.WriteString(c, "POST /z HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n")
	if resp, b := readResp(t, br, "POST"); resp.StatusCode != 200 || b != "POST /z " {
		t.Fatalf("empty body with Expect: got %d %q", resp.StatusCode, b)
	}
}

// TestExpectContinueNotRead: a handler that answers without reading the
// body never sends 100 Continue, and the connection closes after the
// answer (the client may or may not send the body now).
func TestExpectContinueNotRead(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusUnauthorized) })
	addr, _, _ := start(t, &Server{Handler: h})
	_, br := raw(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	resp, _ := readResp(t, br, "POST")
	if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
		t.Fatalf("got %d close %v, want 401 with Connection: close", resp.StatusCode, resp.Close)
	}
}

func TestChunkedRequestBodyAndPipelining(t *testing.T) {
	addr, _, _ := start(t, &Server{Handler: echo()})
	_, br := raw(t, addr, "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"+
		"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nfg")
	for _, want := range []string{"POST /a abcde", "POST /b fg"} {
		if _, b := readResp(t, br, "POST"); b != want {
			t.Fatalf("got %q, want %q", b, want)
		}
	}
}

func TestUnreadBodyIsDrained(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) })
	addr, ln, _ := start(t, &Server{Handler: h})
	_, br := raw(t, addr, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"+"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, want := range []string{"/a", "/b"} {
		if resp, b := readResp(t, br, "GET"); b != want || resp.Close {
			t.Fatalf("got %q (close %v), want %q on a kept connection", b, resp.Close, want)
		}
	}
	if ln.n.Load() != 1 {
		t.Fatal("want one connection")
	}
}

func TestMalformedRequests(t *testing.T) {
	addr, _, _ := start(t, &Server{Handler: echo(), MaxHeaderBytes: 1 << 10})
	cases := []struct {
		name, text string
		want       int
	}{
		{"garbage", "NOT HTTP\r\n\r\n", 400},
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"header too large", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("y", 8<<10) + "\r\n\r\n", 431},
		{"bad expect", "POST / HTTP/1.1\r\nHost: a\r\nExpect: tea\r\nContent-Length: 1\r\n\r\nx", 417},
		{"http2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, br := raw(t, addr, tc.text)
			resp, _ := readResp(t, br, "GET")
			if resp.StatusCode != tc.want || !resp.Close {
				t.Fatalf("status %d close %v, want %d and Connection: close", resp.StatusCode, resp.Close, tc.want)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("connection still open after %d: %v", tc.want, err)
			}
		})
	}
}

func TestHTTP10(t *testing.T) {
	addr, _, _ := start(t, &Server{Handler: echo()})
	_, br := raw(t, addr, "GET /old HTTP/1.0\r\n\r\n")
	resp, b := readResp(t, br, "GET")
	if b != "GET /old " || !resp.Close {
		t.Fatalf("got %q close %v", b, resp.Close)
	}
	_, br = raw(t, addr, "GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /ka2 HTTP/1.0\r\n\r\n")
	if resp, b := readResp(t, br, "GET"); b != "GET /ka " || resp.Close {
		t.Fatalf("keep-alive 1.0: got %q close %v", b, resp.Close)
	}
	if resp, _ := readResp(t, br, "GET"); !resp.Close {
		t.Fatal("second 1.0 request without keep-alive must close")
	}
}

// TestClientGoneCancelsRequest: a client that closes its connection while
// the handler waits (a long model call) cancels the request's context. The
// handler reads exactly Content-Length bytes, as the gateway does, so it
// gets io.EOF with the last bytes, not from a further Read.
func TestClientGoneCancelsRequest(t *testing.T) {
	cancelled := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadFull(r.Body, make([]byte, r.ContentLength))
		select {
		case <-r.Context().Done():
			cancelled <- nil
		case <-time.After(10 * time.Second):
			cancelled <- errors.New("context not cancelled 10 s after the client left")
		}
	})
	addr, _, _ := start(t, &Server{Handler: h, WatchAfter: time.Millisecond})
	c, _ := raw(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
	c.Close()
	if err := <-cancelled; err != nil {
		t.Fatal(err)
	}
}

// TestWatchKeepsPipelinedRequest: a request that arrives while the watch
// reads the connection is not lost, and the first request is not
// cancelled.
func TestWatchKeepsPipelinedRequest(t *testing.T) {
	watching := make(chan struct{}, 4)
	testHookWatch = func() { watching <- struct{}{} }
	t.Cleanup(func() { testHookWatch = nil })
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
			if r.Context().Err() != nil {
				http.Error(w, "cancelled", 500)
				return
			}
		}
		io.WriteString(w, r.URL.Path)
	})
	addr, _, _ := start(t, &Server{Handler: h, WatchAfter: time.Millisecond})
	c, br := raw(t, addr, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-watching
	io.WriteString(c, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
	// The watch has the first byte of /next now or soon; either way both
	// answers must come, in order.
	close(release)
	for _, want := range []string{"/slow", "/next"} {
		if resp, b := readResp(t, br, "GET"); resp.StatusCode != 200 || b != want {
			t.Fatalf("got %d %q, want %q", resp.StatusCode, b, want)
		}
	}
}

func TestShutdown(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "done")
	})
	s := &Server{Handler: h}
	addr, _, served := start(t, s)
	_, idleBr := raw(t, addr, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
	readResp(t, idleBr, "GET") // that connection is now idle
	_, br := raw(t, addr, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if _, err := idleBr.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection not closed by Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	close(release)
	resp, b := readResp(t, br, "GET")
	if b != "done" || !resp.Close {
		t.Fatalf("in-flight request: %q close %v, want done with Connection: close", b, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}

func TestShutdownDeadlineThenClose(t *testing.T) {
	entered := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done() // hangs until the connection is closed
	})
	s := &Server{Handler: h, WatchAfter: time.Millisecond}
	addr, _, _ := start(t, s)
	_, br := raw(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the deadline", err)
	}
	s.Close()
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("connection open after Close")
	}
}

func TestReadHeaderTimeout(t *testing.T) {
	addr, _, _ := start(t, &Server{Handler: echo(), ReadHeaderTimeout: 50 * time.Millisecond})
	_, br := raw(t, addr, "GET / HTTP/1.1\r\nHost:") // never finished
	start := time.Now()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("want the connection closed, got %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("closed after %v", el)
	}
}

func TestPanicClosesOnlyItsConnection(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("boom")
		}
		io.WriteString(w, "ok")
	})
	addr, _, _ := start(t, &Server{Handler: h, Log: discardLog()})
	_, br := raw(t, addr, "GET /panic HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("want the panicking request's connection closed, got %v", err)
	}
	resp, err := http.Get("http://" + addr + "/fine")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
}

func TestHeaderValuesSanitised(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Evil"] = []string{"a\r\nSet-Cookie: x=1"}
		w.Header()["Bad Name"] = []string{"v"}
		io.WriteString(w, "ok")
	})
	addr, _, _ := start(t, &Server{Handler: h})
	_, br := raw(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, _ := readResp(t, br, "GET")
	if resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("X-Evil") != "a  Set-Cookie: x=1" || resp.Header.Get("Bad Name") != "" {
		t.Fatalf("header injection: %v", resp.Header)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestHeaderChangedAfterWriteHeader: as with net/http, header changes
// after WriteHeader are not sent, through Header() or through a map kept
// from before; a Content-Length set that way is never sent beside the
// chunked framing (a proxy in front would be free to choose either and
// desynchronise). Header() after WriteHeader still reads what was set.
func TestHeaderChangedAfterWriteHeader(t *testing.T) {
	tests := []struct {
		name   string
		change func(w http.ResponseWriter, kept http.Header)
	}{
		{"through Header()", func(w http.ResponseWriter, _ http.Header) {
			w.Header().Set("X-Late", "1")
			w.Header().Set("Content-Length", "1")
		}},
		{"through a kept map", func(_ http.ResponseWriter, kept http.Header) {
			kept.Set("Content-Length", "1")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			read := make(chan string, 1)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				kept := w.Header()
				kept.Set("X-Early", "1")
				w.WriteHeader(http.StatusOK)
				read <- w.Header().Get("X-Early")
				tt.change(w, kept)
				io.WriteString(w, strings.Repeat("x", bufSize+1))
			})
			addr, _, _ := start(t, &Server{Handler: h})
			_, br := raw(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			var head strings.Builder
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				if line == "\r\n" {
					break
				}
				head.WriteString(line)
			}
			got := head.String()
			if strings.Contains(got, "Content-Length") || strings.Contains(got, "X-Late") ||
				!strings.Contains(got, "X-Early: 1") || !strings.Contains(got, "Transfer-Encoding: chunked") {
				t.Fatalf("want X-Early, chunked, no Content-Length or X-Late; got header:\n%s", got)
			}
			if v := <-read; v != "1" {
				t.Fatalf("Header() after WriteHeader reads X-Early %q, want 1", v)
			}
		})
	}
}
