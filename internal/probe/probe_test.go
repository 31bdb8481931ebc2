package probe

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestChecker(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var mu sync.Mutex
	peers := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		peers[r.RemoteAddr] = true
		mu.Unlock()
		switch r.URL.Path {
		case "/ok":
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"ready":true,"region":"eastus2","draining":false,"role":"primary","epoch":7}`))
		case "/plain":
			w.Write([]byte("ok"))
		case "/notready":
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"ready":false,"region":"eastus2","draining":true,"role":"fenced","epoch":3}`))
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/created":
			w.WriteHeader(http.StatusNoContent)
		case "/hang":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "/slowbody":
			// Headers at once, the body 40ms later: latency counts to the last byte.
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-time.After(40 * time.Millisecond)
			w.Write([]byte(`{"ready":true}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	tests := []struct {
		path, method string
		ok           bool
		status       int
		err          string
		rd           Readiness
		minLatency   time.Duration
	}{
		{"/ok", "GET", true, 200, "", Readiness{HasBody: true, Region: "eastus2", Role: "primary", Epoch: 7}, 0},
		{"/ok", "HEAD", true, 200, "", Readiness{}, 0},
		{"/plain", "GET", true, 200, "", Readiness{}, 0},
		{"/notready", "GET", false, 503, "status 503", Readiness{HasBody: true, Region: "eastus2", Role: "fenced", Epoch: 3, Draining: true}, 0},
		{"/redirect", "GET", false, 302, "status 302", Readiness{}, 0},
		{"/created", "GET", false, 204, "status 204", Readiness{}, 0},
		{"/missing", "GET", false, 404, "status 404", Readiness{}, 0},
		{"/hang", "GET", false, 0, "timeout", Readiness{}, 100 * time.Millisecond},
		{"/slowbody", "GET", true, 200, "", Readiness{HasBody: true}, 40 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			c := NewChecker(Config{Method: tt.method, Path: tt.path, Timeout: 100 * time.Millisecond}, nil)
			r := c.Check(t.Context(), srv.URL+"/")
			if r.OK != tt.ok || r.Status != tt.status || r.Err != tt.err {
				t.Errorf("got ok=%v status=%d err=%q, want ok=%v status=%d err=%q", r.OK, r.Status, r.Err, tt.ok, tt.status, tt.err)
			}
			if r.Readiness != tt.rd {
				t.Errorf("readiness %+v, want %+v", r.Readiness, tt.rd)
			}
			if r.Latency < tt.minLatency || r.Latency <= 0 {
				t.Errorf("latency %s, want at least %s", r.Latency, tt.minLatency)
			}
		})
	}

	t.Run("new connection per probe", func(t *testing.T) {
		mu.Lock()
		clear(peers)
		mu.Unlock()
		c := NewChecker(Config{Path: "/ok"}, nil)
		for range 3 {
			if r := c.Check(t.Context(), srv.URL); !r.OK {
				t.Fatalf("probe failed: %+v", r)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(peers) != 3 {
			t.Errorf("3 probes came from %d connections, want 3", len(peers))
		}
	})

	t.Run("refused", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		url := dead.URL
		dead.Close()
		r := NewChecker(Config{}, nil).Check(t.Context(), url)
		if r.OK || r.Status != 0 || !strings.Contains(r.Err, "refused") {
			t.Errorf("probe of a closed port: %+v", r)
		}
	})
}
