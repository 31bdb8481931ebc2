package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/modelsim"
	"github.com/understudy/understudy/internal/topology"
)

const chatPath = "/v1/chat/completions"

// twoBackends is a deployment "m" served by a (priority 1) and b (priority 2).
func twoBackends(t *testing.T, mutate func(*topology.Topology)) (*gw, *sim, *sim) {
	a, b := newSim(t, "gpt-4o-mini"), newSim(t, "gpt-4o-mini")
	tp := topo(t, []string{"m"}, map[string][]topology.Backend{
		"m": {openaiBackend("a", a.URL(), 1), openaiBackend("b", b.URL(), 2)},
	}, mutate)
	return startGateway(t, tp), a, b
}

func servedBy(t *testing.T, g *gw, want string) {
	t.Helper()
	st, h, body := g.post(t, chatPath, chatBody("m", false))
	if st != http.StatusOK || h.Get("X-Understudy-Backend") != want {
		t.Fatalf("served by %q with %d %s, want %q", h.Get("X-Understudy-Backend"), st, body, want)
	}
}

// TestRateLimitedBackend: a 429 with Retry-After moves the request to the
// next backend at once, and the backend serves again after exactly its
// Retry-After.
func TestRateLimitedBackend(t *testing.T) {
	g, a, b := twoBackends(t, nil)
	a.SetFaults(modelsim.Faults{RateLimitRate: 1, RetryAfter: modelsim.Duration(3 * time.Second)})
	servedBy(t, g, "b")
	if a.Requests() != 1 || b.Requests() != 1 {
		t.Fatalf("requests a=%d b=%d, want 1 and 1", a.Requests(), b.Requests())
	}
	a.SetFaults(modelsim.Faults{})
	g.clock.Advance(3*time.Second - time.Nanosecond)
	servedBy(t, g, "b")
	if a.Requests() != 1 {
		t.Fatalf("cooling backend got a request %s into its 3s cooldown", 3*time.Second-time.Nanosecond)
	}
	g.clock.Advance(time.Nanosecond)
	servedBy(t, g, "a")
	if got := metricValue(t, g, `understudy_gateway_backend_cooldowns_total{backend="a",deployment="m"}`); got != "1" {
		t.Errorf("cooldowns metric = %q", got)
	}
}

// TestAllRateLimited: when every backend is cooling, the client gets an
// OpenAI 429 with the Retry-After of the first backend to come back, and
// no backend is hammered.
func TestAllRateLimited(t *testing.T) {
	g, a, b := twoBackends(t, nil)
	a.SetFaults(modelsim.Faults{RateLimitRate: 1, RetryAfter: modelsim.Duration(20 * time.Second)})
	b.SetFaults(modelsim.Faults{RateLimitRate: 1, RetryAfter: modelsim.Duration(5 * time.Second)})
	st, h, body := g.post(t, chatPath, chatBody("m", false))
	if st != http.StatusTooManyRequests || h.Get("Retry-After") != "5" || apiErr(t, body).code() != "rate_limit_exceeded" {
		t.Fatalf("got %d Retry-After %q %s", st, h.Get("Retry-After"), body)
	}
	g.clock.Advance(2 * time.Second)
	st, h, _ = g.post(t, chatPath, chatBody("m", false))
	if st != http.StatusTooManyRequests || h.Get("Retry-After") != "3" {
		t.Fatalf("second request: %d Retry-After %q, want 429 after 3s", st, h.Get("Retry-After"))
	}
	if a.Requests() != 1 || b.Requests() != 1 {
		t.Errorf("cooling backends were sent requests: a=%d b=%d", a.Requests(), b.Requests())
	}
}

// TestKilledBackend: a backend whose server is gone is ejected, the request
// succeeds on the next one, and the backend is tried again after exactly
// eject_base and brought back when it answers.
func TestKilledBackend(t *testing.T) {
	a := modelsim.New(modelsim.Config{Model: "gpt-4o-mini", MaxTokens: 3}, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	srvA := &http.Server{Handler: a.Handler()}
	go srvA.Serve(ln)
	b := newSim(t, "gpt-4o-mini")
	tp := topo(t, []string{"m"}, map[string][]topology.Backend{
		"m": {openaiBackend("a", "http://"+addr, 1), openaiBackend("b", b.URL(), 2)},
	}, nil)
	g := startGateway(t, tp)
	servedBy(t, g, "a")

	srvA.Close() // killed
	servedBy(t, g, "b")
	st := backendStatus(t, g, "m", "a")
	if st.State != stateEjected || st.Failures != 1 || !st.EjectedUntil.Equal(g.clock.Now().Add(time.Second)) || st.LastError == "" {
		t.Fatalf("killed backend: %+v", st)
	}
	servedBy(t, g, "b") // still ejected: no new attempt at a

	// It comes back on the same address.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	srvA = &http.Server{Handler: a.Handler()}
	go srvA.Serve(ln)
	t.Cleanup(func() { srvA.Close() })
	g.clock.Advance(time.Second - time.Nanosecond)
	servedBy(t, g, "b")
	if a.Requests() != 1 {
		t.Fatalf("ejected backend got a request before its ejection ended")
	}
	g.clock.Advance(time.Nanosecond)
	servedBy(t, g, "a") // the trial request
	if st := backendStatus(t, g, "m", "a"); st.State != stateHealthy || st.Failures != 0 {
		t.Fatalf("after a successful trial: %+v", st)
	}
	if got := metricValue(t, g, `understudy_gateway_backend_recoveries_total{backend="a",deployment="m"}`); got != "1" {
		t.Errorf("recoveries metric = %q", got)
	}
}

// TestServerErrorsEject: 5xx ejects like a dead backend; the client never
// sees the 5xx while another backend can answer.
func TestServerErrorsEject(t *testing.T) {
	for _, status := range []int{500, 502, 503, 408} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			g, a, _ := twoBackends(t, nil)
			a.SetFaults(modelsim.Faults{ErrorRate: 1, ErrorStatus: status})
			servedBy(t, g, "b")
			if st := backendStatus(t, g, "m", "a"); st.State != stateEjected || st.LastError != "HTTP "+strconv.Itoa(status) {
				t.Fatalf("%+v", st)
			}
		})
	}
}

// TestAttemptsBounded: attempts stop at max_attempts even with more
// backends, and the client gets one OpenAI-shaped 502 with no detail.
func TestAttemptsBounded(t *testing.T) {
	var sims []*sim
	var bs []topology.Backend
	for i := range 4 {
		s := newSim(t, "gpt-4o-mini")
		s.SetFaults(modelsim.Faults{ErrorRate: 1, ErrorStatus: 500})
		sims = append(sims, s)
		bs = append(bs, openaiBackend(fmt.Sprintf("b%d", i), s.URL(), 1))
	}
	tp := topo(t, []string{"m"}, map[string][]topology.Backend{"m": bs}, func(tp *topology.Topology) {
		tp.Deployments[0].MaxAttempts = 2
	})
	g := startGateway(t, tp)
	st, _, body := g.post(t, chatPath, chatBody("m", false))
	e := apiErr(t, body)
	if st != http.StatusBadGateway || e.code() != "upstream_error" || strings.Contains(body, "modelsim") {
		t.Fatalf("got %d %s", st, body)
	}
	var total int64
	for _, s := range sims {
		total += s.Requests()
	}
	if total != 2 {
		t.Errorf("%d backend requests, want max_attempts = 2", total)
	}
	if got := metricValue(t, g, `understudy_gateway_retries_total{deployment="m"}`); got != "1" {
		t.Errorf("retries metric = %q, want 1", got)
	}
	// Two backends are now ejected; the next request uses the other two.
	st, _, _ = g.post(t, chatPath, chatBody("m", false))
	total = 0
	for _, s := range sims {
		if s.Requests() > 1 {
			t.Errorf("an ejected backend was retried")
		}
		total += s.Requests()
	}
	if st != http.StatusBadGateway || total != 4 {
		t.Errorf("second request: %d, %d backend requests in all", st, total)
	}
	// Now every backend is ejected: 503 at once, with Retry-After.
	st, h, body := g.post(t, chatPath, chatBody("m", false))
	if st != http.StatusServiceUnavailable || h.Get("Retry-After") != "1" || apiErr(t, body).code() != "no_backend_available" {
		t.Errorf("all ejected: %d Retry-After %q %s", st, h.Get("Retry-After"), body)
	}
}

// fallbackWorld: deployment "small" (backends a, b) falls back to "big" (c).
func fallbackWorld(t *testing.T) (*gw, *sim, *sim, *sim) {
	a, b, c := newSim(t, "small"), newSim(t, "small"), newSim(t, "big")
	tp := topo(t, []string{"small", "big"}, map[string][]topology.Backend{
		"small": {openaiBackend("a", a.URL(), 1), openaiBackend("b", b.URL(), 2)},
		"big":   {openaiBackend("c", c.URL(), 1)},
	}, func(tp *topology.Topology) { tp.Deployments[0].Fallbacks = []string{"big"} })
	return startGateway(t, tp), a, b, c
}

// TestContextLengthFallback: 400 context_length_exceeded is never retried
// on the same model; the fallback deployment answers, and says so.
func TestContextLengthFallback(t *testing.T) {
	g, a, b, c := fallbackWorld(t)
	a.SetFaults(modelsim.Faults{ErrorRate: 1, ErrorStatus: 400, ErrorCode: "context_length_exceeded"})
	st, h, body := g.post(t, chatPath, chatBody("small", false))
	if st != http.StatusOK || h.Get("X-Understudy-Backend") != "c" || !strings.Contains(body, `"model":"big-2024-07-18"`) {
		t.Fatalf("got %d from %q: %s", st, h.Get("X-Understudy-Backend"), body)
	}
	if a.Requests() != 1 || b.Requests() != 0 || c.Requests() != 1 {
		t.Errorf("requests a=%d b=%d c=%d, want 1 0 1", a.Requests(), b.Requests(), c.Requests())
	}
	if s := backendStatus(t, g, "small", "a"); s.State != stateHealthy {
		t.Errorf("a backend that rejected a request was penalised: %+v", s)
	}
	// Without a usable fallback the provider's own error comes back.
	c.SetFaults(modelsim.Faults{ErrorRate: 1, ErrorStatus: 400, ErrorCode: "context_length_exceeded"})
	st, _, body = g.post(t, chatPath, chatBody("small", false))
	if st != http.StatusBadRequest || apiErr(t, body).code() != "context_length_exceeded" {
		t.Fatalf("got %d %s", st, body)
	}
}

// TestPoolExhaustedFallback: when the pool is out of backends the fallback
// deployment serves.
func TestPoolExhaustedFallback(t *testing.T) {
	g, a, b, _ := fallbackWorld(t)
	a.SetFaults(modelsim.Faults{ErrorRate: 1, ErrorStatus: 503})
	b.SetFaults(modelsim.Faults{RateLimitRate: 1})
	st, h, _ := g.post(t, chatPath, chatBody("small", false))
	if st != http.StatusOK || h.Get("X-Understudy-Backend") != "c" {
		t.Fatalf("got %d from %q", st, h.Get("X-Understudy-Backend"))
	}
	// Next request: a ejected, b cooling: straight to the fallback.
	st, h, _ = g.post(t, chatPath, chatBody("small", false))
	if st != http.StatusOK || h.Get("X-Understudy-Backend") != "c" || a.Requests() != 1 || b.Requests() != 1 {
		t.Fatalf("got %d from %q, a=%d b=%d", st, h.Get("X-Understudy-Backend"), a.Requests(), b.Requests())
	}
}

// TestContentFilter: content-policy rejections come back as the provider
// sent them, never retried and never routed to a fallback.
func TestContentFilter(t *testing.T) {
	for _, code := range []string{"content_filter", "content_policy_violation"} {
		t.Run(code, func(t *testing.T) {
			g, a, b, c := fallbackWorld(t)
			a.SetFaults(modelsim.Faults{ErrorRate: 1, ErrorStatus: 400, ErrorCode: code})
			st, _, body := g.post(t, chatPath, chatBody("small", false))
			e := apiErr(t, body)
			if st != http.StatusBadRequest || e.code() != code || !strings.Contains(e.Message, "modelsim fault") {
				t.Fatalf("got %d %s, want the provider's own 400", st, body)
			}
			if a.Requests() != 1 || b.Requests() != 0 || c.Requests() != 0 {
				t.Errorf("requests a=%d b=%d c=%d, want 1 0 0", a.Requests(), b.Requests(), c.Requests())
			}
		})
	}
}

// TestClientErrorsNotRetried: other 4xx are the request's fault: returned
// as is, not retried, backend not penalised; a backend that refuses the
// gateway's own credentials is a backend fault and is routed around.
func TestClientErrorsNotRetried(t *testing.T) {
	tests := []struct {
		status     int
		wantStatus int
		wantB      int64
	}{
		{400, 400, 0},
		{413, 413, 0},
		{422, 422, 0},
		{401, 200, 1},
		{403, 200, 1},
		{404, 200, 1},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			g, a, b := twoBackends(t, nil)
			a.SetFaults(modelsim.Faults{ErrorRate: 1, ErrorStatus: tt.status, ErrorCode: "some_code"})
			st, _, body := g.post(t, chatPath, chatBody("m", false))
			if st != tt.wantStatus || b.Requests() != tt.wantB {
				t.Fatalf("got %d (b saw %d) %s, want %d (b %d)", st, b.Requests(), body, tt.wantStatus, tt.wantB)
			}
			if st != 200 && apiErr(t, body).code() != "some_code" {
				t.Errorf("provider error not passed through: %s", body)
			}
		})
	}
}

func streamChat(t *testing.T, g *gw, model string) (int, string) {
	t.Helper()
	st, _, body := g.post(t, chatPath, chatBody(model, true))
	return st, body
}

// TestStreamFaults: a stream that breaks after bytes reached the client
// ends with one explicit error event and no [DONE]; no garbage passes.
func TestStreamFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults modelsim.Faults
		code   string // "" = complete stream
		chunks int    // data events before the end
	}{
		{"complete", modelsim.Faults{}, "", 7},
		{"cut mid-way", modelsim.Faults{CutAfter: 2}, "stream_interrupted", 3},
		{"malformed", modelsim.Faults{Malformed: true}, "malformed_upstream_event", 1},
		// modelsim sends the finish chunk before omitting [DONE]: the
		// answer is complete, so the gateway ends it properly.
		{"no [DONE] after finish_reason", modelsim.Faults{NoDone: true}, "", 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, a, b := twoBackends(t, nil)
			a.SetFaults(tt.faults)
			st, body := streamChat(t, g, "m")
			if st != http.StatusOK {
				t.Fatalf("status %d", st)
			}
			evs := sseEvents(body)
			last := evs[len(evs)-1]
			if tt.code == "" {
				if last != "[DONE]" || len(evs) != tt.chunks+1 {
					t.Fatalf("complete stream: %d events, last %q:\n%s", len(evs), last, body)
				}
				return
			}
			if strings.Contains(body, "[DONE]") || strings.Contains(body, "{not json") {
				t.Fatalf("broken stream presented as complete or with garbage:\n%s", body)
			}
			if len(evs) != tt.chunks+1 || apiErr(t, last).code() != tt.code {
				t.Fatalf("want %d chunks then error %s, got %d events:\n%s", tt.chunks, tt.code, len(evs), body)
			}
			if b.Requests() != 0 {
				t.Errorf("a stream was retried after bytes reached the client")
			}
			if s := backendStatus(t, g, "m", "a"); s.State != stateEjected {
				t.Errorf("backend that broke a stream: %+v", s)
			}
			if got := metricValue(t, g, `understudy_gateway_stream_errors_total{code="`+tt.code+`",deployment="m"}`); got != "1" {
				t.Errorf("stream_errors metric = %q", got)
			}
		})
	}
}

// TestStreamEndsEarly uses small handlers for stream endings modelsim does
// not produce: EOF with no finish_reason, garbage or EOF before the first
// event (retried on the next backend: nothing reached the client yet).
func TestStreamEndsEarly(t *testing.T) {
	chunk := `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}` + "\n\n"
	tests := []struct {
		name    string
		body    string
		wantB   bool   // served by the next backend
		errCode string // error event after the client got bytes
	}{
		{"eof without finish", chunk + chunk, false, "stream_truncated"},
		{"garbage first", "data: {oops\n\n" + chunk, true, ""},
		{"empty stream", "", true, ""},
		{"comments only then eof", ": keep-alive\n\n", true, ""},
		{"bad event name", "event: a b\n" + chunk, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				w.Write([]byte(tt.body))
			}))
			t.Cleanup(a.Close)
			b := newSim(t, "gpt-4o-mini")
			tp := topo(t, []string{"m"}, map[string][]topology.Backend{
				"m": {openaiBackend("a", a.URL, 1), openaiBackend("b", b.URL(), 2)},
			}, nil)
			g := startGateway(t, tp)
			st, h, body := g.post(t, chatPath, chatBody("m", true))
			if st != http.StatusOK {
				t.Fatalf("status %d %s", st, body)
			}
			if tt.wantB {
				if h.Get("X-Understudy-Backend") != "b" || !strings.HasSuffix(body, "data: [DONE]\n\n") || strings.Contains(body, "oops") {
					t.Fatalf("not retried on b: %q\n%s", h.Get("X-Understudy-Backend"), body)
				}
				return
			}
			evs := sseEvents(body)
			if strings.Contains(body, "[DONE]") || len(evs) != 3 || apiErr(t, evs[2]).code() != tt.errCode {
				t.Fatalf("want 2 chunks and error %s:\n%s", tt.errCode, body)
			}
		})
	}
}

// TestAuth: keys by Bearer or api-key; anything else is a 401 that echoes
// nothing.
func TestAuth(t *testing.T) {
	g, _, _ := twoBackends(t, nil)
	tests := []struct {
		name string
		hdr  []string
		want int
	}{
		{"bearer", []string{"Authorization", "Bearer " + keyAlice}, 200},
		{"bearer lower case", []string{"Authorization", "bearer " + keyAlice}, 200},
		{"api-key", []string{"Authorization", "", "api-key", keyAlice}, 200},
		{"none", []string{"Authorization", ""}, 401},
		{"wrong", []string{"Authorization", "Bearer sk-wrong-key-000000000000"}, 401},
		{"basic", []string{"Authorization", "Basic " + keyAlice}, 401},
		{"wrong api-key", []string{"Authorization", "", "api-key", "nope"}, 401},
		{"key prefix", []string{"Authorization", "Bearer " + keyAlice[:10]}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, h, body := g.post(t, chatPath, chatBody("m", false), tt.hdr...)
			if st != tt.want || h.Get("X-Understudy-Region") != testRegion {
				t.Fatalf("got %d (region %q) %s, want %d", st, h.Get("X-Understudy-Region"), body, tt.want)
			}
			if st == 401 {
				if e := apiErr(t, body); e.code() != "invalid_api_key" || strings.Contains(body, "sk-") {
					t.Errorf("401 body %s", body)
				}
			}
		})
	}
	// Every route needs a key, models included.
	req, _ := http.NewRequest(http.MethodGet, g.url+"/v1/models", nil)
	if st, _, _ := do(t, req); st != 401 {
		t.Errorf("GET /v1/models without a key: %d", st)
	}
}

// TestRequestErrors: every error a client can cause is OpenAI-shaped and
// carries the region header.
func TestRequestErrors(t *testing.T) {
	g, a, _ := twoBackends(t, func(tp *topology.Topology) { tp.Gateway.MaxBody = 1024 })
	big := `{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("x", 1100) + `"}]}`
	tests := []struct {
		name, method, path, body string
		chunked                  bool
		want                     int
		code                     string
	}{
		{"bad json", "POST", chatPath, `{"model":`, false, 400, "invalid_json"},
		{"not an object", "POST", chatPath, `["m"]`, false, 400, "invalid_value"},
		{"model not a string", "POST", chatPath, `{"model":1}`, false, 400, "invalid_value"},
		{"model twice", "POST", chatPath, `{"model":"m","model":"other"}`, false, 400, "invalid_value"},
		{"no model", "POST", chatPath, `{"messages":[]}`, false, 400, "invalid_value"},
		{"stream not a bool", "POST", chatPath, `{"model":"m","stream":"yes"}`, false, 400, "invalid_value"},
		{"unknown deployment", "POST", chatPath, chatBody("gpt-5", false), false, 404, "model_not_found"},
		{"unknown azure deployment", "POST", "/openai/deployments/nope/chat/completions?api-version=2024-10-21", chatBody("m", false), false, 404, "model_not_found"},
		{"unknown route", "POST", "/v1/nothing", "{}", false, 404, "unknown_url"},
		{"wrong method", "GET", chatPath, "", false, 405, "method_not_allowed"},
		{"too large", "POST", chatPath, big, false, 413, "request_too_large"},
		{"too large chunked", "POST", chatPath, big, true, 413, "request_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body *strings.Reader = strings.NewReader(tt.body)
			req, _ := http.NewRequest(tt.method, g.url+tt.path, body)
			if tt.chunked {
				req, _ = http.NewRequest(tt.method, g.url+tt.path, struct{ *strings.Reader }{body})
			}
			req.Header.Set("Authorization", "Bearer "+keyAlice)
			st, h, out := do(t, req)
			e := apiErr(t, out)
			if st != tt.want || e.code() != tt.code || h.Get("X-Understudy-Region") != testRegion || h.Get("Content-Type") != "application/json" {
				t.Fatalf("got %d %q (region %q, type %q) %s, want %d %s", st, e.code(), h.Get("X-Understudy-Region"), h.Get("Content-Type"), out, tt.want, tt.code)
			}
			if tt.want == 405 && h.Get("Allow") == "" {
				t.Errorf("405 without Allow")
			}
		})
	}
	if a.Requests() != 0 {
		t.Errorf("a bad request reached a backend")
	}
}

// TestKeyLimits: per-key RPM and TPM answer an OpenAI 429 with the exact
// Retry-After; the TPM estimate is corrected with the real usage.
func TestKeyLimits(t *testing.T) {
	g, _, _ := twoBackends(t, nil) // key "limited": rpm 2, tpm 1000
	post := func() (int, http.Header, string) {
		return g.post(t, chatPath, chatBody("m", false), "Authorization", "Bearer "+keyLimited)
	}
	for i := range 2 {
		if st, _, body := post(); st != 200 {
			t.Fatalf("request %d: %d %s", i, st, body)
		}
	}
	st, h, body := post()
	e := apiErr(t, body)
	// 2 per minute: one comes back every 30s.
	if st != 429 || h.Get("Retry-After") != "30" || h.Get("Retry-After-Ms") != "30000" || e.code() != "rate_limit_exceeded" || e.Type != "requests" || !strings.Contains(e.Message, `"limited"`) {
		t.Fatalf("got %d Retry-After %q %s", st, h.Get("Retry-After"), body)
	}
	g.clock.Advance(30*time.Second - time.Millisecond)
	if st, _, _ := post(); st != 429 {
		t.Fatalf("request admitted before its Retry-After")
	}
	g.clock.Advance(time.Millisecond)
	if st, _, body := post(); st != 200 {
		t.Fatalf("request refused after its Retry-After: %s", body)
	}

	// TPM (1000 a minute): the estimate (body/4 + max_tokens) is charged
	// first, then corrected with the usage the backend reports.
	g.clock.Advance(time.Hour) // full buckets
	body1 := `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	st, _, body = g.post(t, chatPath, body1, "Authorization", "Bearer "+keyLimited)
	var res struct {
		Usage struct {
			TotalTokens int `json:"total_tokens"`
		} `json:"usage"`
	}
	if st != 200 || json.Unmarshal([]byte(body), &res) != nil || res.Usage.TotalTokens == 0 {
		t.Fatalf("first request: %d %s", st, body)
	}
	left := 1000 - res.Usage.TotalTokens // not 1000 - the estimate
	body2 := `{"model":"m","max_tokens":980,"messages":[{"role":"user","content":"hi"}]}`
	est2 := (len(body2)+3)/4 + 980
	wantMs := (est2 - left) * 60000 / 1000
	st, h, body = g.post(t, chatPath, body2, "Authorization", "Bearer "+keyLimited)
	if e := apiErr(t, body); st != 429 || e.Type != "tokens" || h.Get("Retry-After-Ms") != strconv.Itoa(wantMs) ||
		h.Get("Retry-After") != strconv.Itoa((wantMs+999)/1000) {
		t.Fatalf("TPM: got %d Retry-After %q / %q ms, want %d ms: %s", st, h.Get("Retry-After"), h.Get("Retry-After-Ms"), wantMs, body)
	}
	g.clock.Advance(time.Duration(wantMs) * time.Millisecond)
	if st, _, body := g.post(t, chatPath, body2, "Authorization", "Bearer "+keyLimited); st != 200 {
		t.Fatalf("TPM: refused after its Retry-After: %s", body)
	}
	if got := metricValue(t, g, `understudy_gateway_key_rate_limited_total{limit="tpm"}`); got != "1" {
		t.Errorf("tpm limited metric = %q", got)
	}
}

// TestConcurrentTraffic: many clients at once, streams and not, while one
// backend fails a third of its requests: every client gets a complete
// answer (run with -race).
func TestConcurrentTraffic(t *testing.T) {
	g, a, b := twoBackends(t, nil)
	a.SetFaults(modelsim.Faults{ErrorRate: 0.3, ErrorStatus: 503})
	errs := make(chan error, 200)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			for j := range 10 {
				stream := (i+j)%2 == 0
				req, _ := http.NewRequest(http.MethodPost, g.url+chatPath, strings.NewReader(chatBody("m", stream)))
				req.Header.Set("Authorization", "Bearer "+keyAlice)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case err != nil:
					errs <- err
				case resp.StatusCode != 200:
					errs <- fmt.Errorf("status %d: %s", resp.StatusCode, body)
				case stream && !strings.HasSuffix(string(body), "data: [DONE]\n\n"):
					errs <- fmt.Errorf("incomplete stream: %s", body)
				case !stream && !strings.Contains(string(body), `"finish_reason":"stop"`):
					errs <- fmt.Errorf("incomplete answer: %s", body)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if a.Requests()+b.Requests() < 200 {
		t.Errorf("backends saw %d requests for 200", a.Requests()+b.Requests())
	}
}

// TestRedirectIsBackendFault: a redirect from a backend is a misconfigured
// URL: not followed (credentials never follow one), routed around.
func TestRedirectIsBackendFault(t *testing.T) {
	var hits atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(evil.Close)
	a := httptest.NewServer(http.RedirectHandler(evil.URL+"/steal", http.StatusTemporaryRedirect))
	t.Cleanup(a.Close)
	b := newSim(t, "m")
	tp := topo(t, []string{"m"}, map[string][]topology.Backend{
		"m": {{Name: "a", Kind: topology.KindOpenAI, URL: a.URL, APIKey: topology.NewSecret("secret-key"), Priority: 1}, openaiBackend("b", b.URL(), 2)},
	}, nil)
	g := startGateway(t, tp)
	servedBy(t, g, "b")
	if hits.Load() != 0 {
		t.Error("the redirect was followed")
	}
	if st := backendStatus(t, g, "m", "a"); st.State != stateEjected || st.LastError != "HTTP 307" {
		t.Errorf("a: %+v", st)
	}
}
