package gateway

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func postTo(t *testing.T, c *http.Client, ctx context.Context, url, body string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header["Content-Type"] = hdrJSON
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// TestTransportKeepAlive: sequential requests share one connection, for
// fixed-length and chunked answers; an answer with Connection: close is
// not reused.
func TestTransportKeepAlive(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/chunked":
			w.Write(b)
			w.(http.Flusher).Flush() // no Content-Length: chunked
			w.Write([]byte("!"))
		case "/close":
			w.Header().Set("Connection", "close")
			w.Write(b)
		default:
			w.Write(b)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := DefaultHTTPClient()
	for i, path := range []string{"/a", "/chunked", "/a", "/chunked", "/a"} {
		_, body, err := postTo(t, c, t.Context(), srv.URL+path, "hello")
		want := map[bool]string{true: "hello!", false: "hello"}[path == "/chunked"]
		if err != nil || body != want {
			t.Fatalf("request %d: %q %v", i, body, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 sequential requests, want 1", n)
	}
	postTo(t, c, t.Context(), srv.URL+"/close", "x")
	postTo(t, c, t.Context(), srv.URL+"/a", "x")
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections after a Connection: close answer, want 2", n)
	}
}

// rawServer answers each connection's first request with body, then does
// what after says: close the connection (as a server whose keep-alive
// timeout passed), or nothing.
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
				br := bufio.NewReader(conn)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				n := int(requests.Add(1))
				io.WriteString(conn, answer(n))
			}()
		}
	}()
	return "http://" + ln.Addr().String(), requests
}

// TestTransportStaleConnection: a kept-alive connection the backend closed
// while idle is detected on use and the request is sent again on a fresh
// connection, once; a backend that answered part of a response and broke
// is not sent the request twice.
func TestTransportStaleConnection(t *testing.T) {
	url, requests := rawServer(t, func(int) string {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	})
	c := DefaultHTTPClient()
	for i := range 3 {
		_, body, err := postTo(t, c, t.Context(), url, "x")
		if err != nil || body != "ok" {
			t.Fatalf("request %d: %q %v", i, body, err)
		}
	}
	if n := requests.Load(); n != 3 {
		t.Errorf("backend processed %d requests, want 3", n)
	}

	url, requests = rawServer(t, func(n int) string {
		if n == 1 {
			return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
		}
		return "HTTP/1.1 200 OK\r\nContent-Le" // breaks mid-head
	})
	// The first answer's connection is closed by rawServer after it, so
	// the second request finds it stale, retries on a new one, and that
	// one breaks after answering part of its head: no third send.
	postTo(t, c, t.Context(), url, "x")
	if _, _, err := postTo(t, c, t.Context(), url, "x"); err == nil {
		t.Fatal("a broken answer was taken for a response")
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("backend processed %d requests, want 2 (no resend after a partial answer)", n)
	}
}

// TestTransportCancel: cancelling the request ends a read in progress and
// the connection is not reused.
func TestTransportCancel(t *testing.T) {
	release := make(chan struct{})
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/slow") {
			w.Write([]byte("part"))
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	defer close(release)
	c := DefaultHTTPClient()
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/slow", strings.NewReader("x"))
	resp, err := c.Do(req)
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
	if _, body, err := postTo(t, c, t.Context(), srv.URL+"/fast", "x"); err != nil || body != "ok" {
		t.Fatalf("after cancel: %q %v", body, err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the cancelled one is not reused)", n)
	}
}

// TestTransportHeaders: the request goes out as written, and header
// injection is refused.
func TestTransportHeaders(t *testing.T) {
	got := make(chan *http.Request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got <- r
	}))
	defer srv.Close()
	c := DefaultHTTPClient()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/x?api-version=1", strings.NewReader(`{"a":1}`))
	req.Header["Api-Key"] = []string{"k"}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r := <-got
	if r.URL.RequestURI() != "/v1/x?api-version=1" || r.Header.Get("Api-Key") != "k" || r.ContentLength != 7 {
		t.Errorf("backend saw %s %v %d", r.URL.RequestURI(), r.Header, r.ContentLength)
	}
	req, _ = http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("x"))
	req.Header["Api-Key"] = []string{"k\r\nX-Evil: 1"}
	if _, err := c.Do(req); err == nil {
		t.Error("a header with CRLF was sent")
	}
}
