package edge

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkProxy measures one non-streaming chat completion through the
// edge handler to a loopback origin (the origin's own cost included), with
// the inline transport and with the standard one.
func BenchmarkProxy(b *testing.B) {
	b.Run("inline", func(b *testing.B) { benchProxy(b, nil) })
	b.Run("std", func(b *testing.B) { benchProxy(b, &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}) })
}

func benchProxy(b *testing.B, tr http.RoundTripper) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`))
	}))
	defer origin.Close()
	f := &fakeOrigin{name: "o", srv: origin}
	e, err := New(testTopology(nil, f), Options{Transport: tr, Probe: func(ctx probeCtx, t probeTarget) probeResult {
		return probeResult{OK: true, Status: 200}
	}})
	if err != nil {
		b.Fatal(err)
	}
	e.ProbeStep(b.Context())
	h := e.Handler()
	body := []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}`)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer sk-bench")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}

// BenchmarkPlanOrder measures the routing decision of one request.
func BenchmarkPlanOrder(b *testing.B) {
	os := []*origin{po("a:1:100:10:s"), po("b:1:300:10:s"), po("c:2:100:10:s")}
	for i, o := range os {
		o.index = i
	}
	p := buildPlan("weighted", 0, os)
	var buf [4]*origin
	b.ReportAllocs()
	for b.Loop() {
		if len(p.order(false, buf[:0])) != 3 {
			b.Fatal("order")
		}
	}
}
