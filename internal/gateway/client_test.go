package gateway

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/understudy/understudy/internal/h1"
)

// TestDefaultHTTPClient: backends are reached by the inline transport on
// kept-alive connections (the request body written from an h1.BytesBody),
// HTTPS and proxied ones by a standard transport that honours the
// environment's proxy, and redirects are never followed.
func TestDefaultHTTPClient(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		w.Write(b)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := DefaultHTTPClient()
	tr, ok := c.Transport.(*h1.Transport)
	if !ok || tr.Std == nil || tr.Std.Proxy == nil || tr.Dial == nil {
		t.Fatalf("transport %#v, want an h1.Transport with a Std honouring the environment's proxy", c.Transport)
	}
	defer tr.CloseIdleConnections()
	for i, path := range []string{"/a", "/b", "/moved"} {
		body := []byte("hello")
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+path, nil)
		req.Body, req.ContentLength = h1.NewBytesBody(body), int64(len(body))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want, status := "hello", http.StatusOK
		if path == "/moved" {
			want, status = "", http.StatusFound
		}
		if resp.StatusCode != status || (want != "" && !bytes.Equal(got, []byte(want))) {
			t.Errorf("%s: %d %q, want %d %q", path, resp.StatusCode, got, status, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 sequential requests, want 1", n)
	}
}
