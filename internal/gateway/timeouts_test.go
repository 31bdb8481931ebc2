package gateway

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/understudy/understudy/internal/modelsim"
	"github.com/understudy/understudy/internal/topology"
)

// bubble is a gateway and its backends on an in-memory network inside a
// testing/synctest bubble, so every timeout is measured on the fake clock
// and asserted exactly.
type bubble struct {
	t      *testing.T
	net    *memNet
	g      *Gateway
	client *http.Client
	gwc    *http.Client
	stops  []func()
}

// Timeouts of the bubble's deployment "m".
const (
	tHeaders    = 5 * time.Second
	tFirstToken = 3 * time.Second
	tIdle       = 2 * time.Second
	tTotal      = 7 * time.Second
)

// useStdTransport makes newBubble give the gateway a plain http.Transport,
// the path HTTPS backends take.
var useStdTransport bool

// bothTransports runs f with the gateway's inline transport and with the
// standard one.
func bothTransports(t *testing.T, f func(t *testing.T)) {
	for _, std := range []bool{false, true} {
		t.Run(map[bool]string{false: "inline", true: "std"}[std], func(t *testing.T) {
			useStdTransport = std
			defer func() { useStdTransport = false }()
			f(t)
		})
	}
}

// newBubble serves handlers (a, b, ...) as backends of deployment "m", in
// that priority order, and the gateway on gw.test.
func newBubble(t *testing.T, mutate func(*topology.Topology), handlers ...http.Handler) *bubble {
	bb := &bubble{t: t, net: newMemNet()}
	var bs []topology.Backend
	for i, h := range handlers {
		name := string(rune('a' + i))
		bb.stops = append(bb.stops, bb.net.Serve(name+".test:80", h))
		bs = append(bs, openaiBackend(name, "http://"+name+".test:80", i+1))
	}
	tp := topo(t, []string{"m"}, map[string][]topology.Backend{"m": bs}, func(tp *topology.Topology) {
		tp.Deployments[0].Timeouts = topology.Timeouts{
			Headers: topology.Duration(tHeaders), FirstToken: topology.Duration(tFirstToken),
			Idle: topology.Duration(tIdle), Total: topology.Duration(tTotal),
		}
		if mutate != nil {
			mutate(tp)
		}
	})
	// The gateway's own transport (inline HTTP/1.1 for http:// backends),
	// or the standard one when a test asks for it.
	bb.gwc = newHTTPClient(bb.net.Dial)
	if useStdTransport {
		bb.gwc = bb.net.Client()
	}
	g, err := New(tp, testRegion, Options{HTTPClient: bb.gwc})
	if err != nil {
		t.Fatal(err)
	}
	bb.g = g
	bb.client = bb.net.Client()
	return bb
}

// serve serves the gateway's handler on gw.test (tests of Start use their
// own listener instead).
func (bb *bubble) serve() {
	bb.stops = append(bb.stops, bb.net.Serve("gw.test:80", bb.g.Handler()))
}

// close stops everything so the bubble's goroutines end.
func (bb *bubble) close() {
	bb.client.CloseIdleConnections()
	for _, s := range bb.stops {
		s()
	}
	bb.gwc.CloseIdleConnections()
}

// post sends a chat request and returns the answer with its body read,
// and how long that took on the bubble's clock.
func (bb *bubble) post(body string) (*http.Response, string, time.Duration) {
	bb.t.Helper()
	resp, b, el, err := bb.send(body)
	if err != nil {
		bb.t.Fatal(err)
	}
	return resp, b, el
}

func (bb *bubble) send(body string) (*http.Response, string, time.Duration, error) {
	start := time.Now()
	req, _ := http.NewRequest(http.MethodPost, "http://gw.test:80"+chatPath, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+keyAlice)
	resp, err := bb.client.Do(req)
	if err != nil {
		return nil, "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), time.Since(start), err
}

func (bb *bubble) status(name string) BackendStatus {
	for _, s := range bb.g.deps["m"].pool.status() {
		if s.Name == name {
			return s
		}
	}
	bb.t.Fatalf("no backend %s", name)
	return BackendStatus{}
}

func newModelsim(model string) *modelsim.Server {
	return modelsim.New(modelsim.Config{Model: model, Version: "2024-07-18", MaxTokens: 5}, nil)
}

// TestHeadersTimeoutMovesOn: a backend that sends no headers within
// timeouts.headers is abandoned at exactly that moment and the next one
// answers.
func TestHeadersTimeoutMovesOn(t *testing.T) { bothTransports(t, testHeadersTimeout) }

func testHeadersTimeout(t *testing.T) {
	for _, stream := range []bool{false, true} {
		name := "plain"
		if stream {
			name = "stream"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a, b := newModelsim("gpt-4o-mini"), newModelsim("gpt-4o-mini")
				a.SetFaults(modelsim.Faults{Hang: true})
				bb := newBubble(t, nil, a.Handler(), b.Handler())
				defer bb.close()
				bb.serve()
				resp, body, el := bb.post(chatBody("m", stream))
				if resp.StatusCode != 200 || resp.Header.Get("X-Understudy-Backend") != "b" || el != tHeaders {
					t.Fatalf("got %d from %q after %s, want 200 from b after exactly %s: %s",
						resp.StatusCode, resp.Header.Get("X-Understudy-Backend"), el, tHeaders, body)
				}
				if st := bb.status("a"); st.State != stateEjected || st.LastError != errHeadersTimeout.Error() {
					t.Errorf("a: %+v", st)
				}
			})
		})
	}
}

// TestFirstTokenTimeoutMovesOn: headers arrived but no event within
// timeouts.first_token: nothing reached the client yet, so the next
// backend answers.
func TestFirstTokenTimeoutMovesOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		silent := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		})
		bb := newBubble(t, nil, silent, newModelsim("gpt-4o-mini").Handler())
		defer bb.close()
		bb.serve()
		resp, body, el := bb.post(chatBody("m", true))
		if resp.Header.Get("X-Understudy-Backend") != "b" || el != tFirstToken || !strings.HasSuffix(body, "data: [DONE]\n\n") {
			t.Fatalf("got %q after %s, want b after exactly %s:\n%s", resp.Header.Get("X-Understudy-Backend"), el, tFirstToken, body)
		}
		if st := bb.status("a"); st.State != stateEjected || st.LastError != errFirstTokenTimeout.Error() {
			t.Errorf("a: %+v", st)
		}
	})
}

// TestStallEndsWithErrorEvent: a stream that stalls after bytes reached the
// client ends with an error event exactly one idle timeout after its last
// chunk; a slow stream whose gaps stay under the idle timeout completes.
func TestStallEndsWithErrorEvent(t *testing.T) { bothTransports(t, testStall) }

func testStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newModelsim("gpt-4o-mini")
		a.SetFaults(modelsim.Faults{StallAfter: 2})
		b := newModelsim("gpt-4o-mini")
		bb := newBubble(t, nil, a.Handler(), b.Handler())
		defer bb.close()
		bb.serve()
		resp, body, el := bb.post(chatBody("m", true))
		evs := sseEvents(body)
		if resp.StatusCode != 200 || el != tIdle || len(evs) != 4 || strings.Contains(body, "[DONE]") {
			t.Fatalf("got %d after %s, want the error within exactly %s:\n%s", resp.StatusCode, el, tIdle, body)
		}
		if e := apiErr(t, evs[3]); e.code() != "stream_idle_timeout" {
			t.Errorf("last event %s", evs[3])
		}
		if b.Requests() != 0 {
			t.Error("a stream was retried after bytes reached the client")
		}
	})
	synctest.Test(t, func(t *testing.T) {
		// 5 tokens 1.5s apart (under the 2s idle timeout), first after 1s.
		slow := modelsim.New(modelsim.Config{Model: "m", MaxTokens: 5, TTFT: time.Second, TokensPerSecond: 1 / 1.5}, nil)
		bb := newBubble(t, func(tp *topology.Topology) {
			tp.Deployments[0].Timeouts.Total = topology.Duration(time.Minute)
		}, slow.Handler())
		defer bb.close()
		bb.serve()
		_, body, el := bb.post(chatBody("m", true))
		if want := time.Second + 4*1500*time.Millisecond; el != want || !strings.HasSuffix(body, "data: [DONE]\n\n") {
			t.Fatalf("slow stream took %s (want %s):\n%s", el, want, body)
		}
	})
}

// TestTotalDeadline: attempts share one deadline; the attempt running when
// it passes is abandoned then, and that backend is not blamed.
func TestTotalDeadline(t *testing.T) { bothTransports(t, testTotalDeadline) }

func testTotalDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var sims []*modelsim.Server
		var hs []http.Handler
		for range 3 {
			s := newModelsim("gpt-4o-mini")
			s.SetFaults(modelsim.Faults{Hang: true})
			sims = append(sims, s)
			hs = append(hs, s.Handler())
		}
		bb := newBubble(t, nil, hs...)
		defer bb.close()
		bb.serve()
		resp, body, el := bb.post(chatBody("m", false))
		if resp.StatusCode != http.StatusGatewayTimeout || el != tTotal || apiErr(t, body).code() != "timeout" {
			t.Fatalf("got %d after %s, want 504 timeout after exactly %s: %s", resp.StatusCode, el, tTotal, body)
		}
		if sims[0].Requests() != 1 || sims[1].Requests() != 1 || sims[2].Requests() != 0 {
			t.Errorf("requests %d %d %d, want 1 1 0", sims[0].Requests(), sims[1].Requests(), sims[2].Requests())
		}
		// a failed (ejected at 5s for 1s, so awaiting its trial at 7s); b
		// is not blamed for the request's own deadline.
		if a, b := bb.status("a"), bb.status("b"); a.Failures != 1 || a.State != stateProbing || b.Failures != 0 || b.State != stateHealthy {
			t.Errorf("a %+v\nb %+v", a, b)
		}
	})
}

// TestStagedShutdown: Close fails /readyz at once while requests are still
// served for lame_duck, then drains for at most drain_timeout; a stream
// still open then ends with an error event, and Close returns.
func TestStagedShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const lameDuck, drain = 5 * time.Second, 3 * time.Second
		long := modelsim.New(modelsim.Config{Model: "m", MaxTokens: 100, TokensPerSecond: 1}, nil)
		bb := newBubble(t, func(tp *topology.Topology) {
			tp.Gateway.LameDuck = topology.Duration(lameDuck)
			tp.Gateway.DrainTimeout = topology.Duration(drain)
			tp.Deployments[0].Timeouts.Total = topology.Duration(time.Hour)
		}, long.Handler())
		defer bb.close()
		ln := bb.net.Listen("gw.test:80")
		if err := bb.g.Start(context.Background(), ln); err != nil {
			t.Fatal(err)
		}
		get := func(path string) int {
			resp, err := bb.client.Get("http://gw.test:80" + path)
			if err != nil {
				return -1
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
		if st := get("/readyz"); st != 200 {
			t.Fatalf("readyz before shutdown: %d", st)
		}

		// A long stream is in flight when the shutdown starts.
		type streamResult struct {
			body string
			end  time.Time
			err  error
		}
		streamDone := make(chan streamResult, 1)
		go func() {
			_, body, _, err := bb.send(chatBody("m", true))
			streamDone <- streamResult{body, time.Now(), err}
		}()
		synctest.Wait()

		start := time.Now()
		closed := make(chan error)
		go func() { closed <- bb.g.Close(context.Background()) }()
		synctest.Wait()
		if st := get("/readyz"); st != 503 {
			t.Errorf("readyz in lame duck: %d, want 503", st)
		}
		if st := get("/healthz"); st != 200 {
			t.Errorf("healthz in lame duck: %d, want 200", st)
		}
		if resp, _, _ := bb.post(`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`); resp.StatusCode != 200 {
			t.Errorf("request in lame duck: %d", resp.StatusCode)
		}
		sr := <-streamDone
		err := <-closed
		// The stream ends exactly when the drain runs out; Close returns
		// once the server has finished that response (net/http polls).
		if el := sr.end.Sub(start); el != lameDuck+drain || sr.err != nil {
			t.Errorf("stream ended %s after Close began (%v), want lame duck + drain = %s", el, sr.err, lameDuck+drain)
		}
		if el := time.Since(start); el < lameDuck+drain || el > lameDuck+drain+time.Second {
			t.Errorf("Close took %s, want lame duck + drain = %s and at most 1s to close", el, lameDuck+drain)
		}
		if err == nil {
			t.Error("Close reported a clean drain although a stream was cut")
		}
		body := sr.body
		evs := sseEvents(body)
		if len(evs) < 2 || apiErr(t, evs[len(evs)-1]).code() != "shutting_down" || strings.Contains(body, "[DONE]") {
			t.Fatalf("stream at shutdown:\n%s", body)
		}
		if st := get("/healthz"); st != -1 {
			t.Errorf("still serving after Close: %d", st)
		}
	})
}

// TestDoSlowReader: a Do caller that reads a stream slowly (gaps longer
// than the idle timeout between its reads) gets the whole stream, and the
// backend is not blamed: idle measures the backend, not the reader.
func TestDoSlowReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bb := newBubble(t, func(tp *topology.Topology) {
			tp.Deployments[0].Timeouts.Total = topology.Duration(time.Hour)
		}, newModelsim("gpt-4o-mini").Handler())
		defer bb.close()
		resp, err := bb.g.Do(context.Background(), "m", []byte(chatBody("m", true)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got []byte
		buf := make([]byte, 64)
		for {
			n, err := resp.Body.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
			<-time.After(3 * tIdle) // a slow consumer, on the bubble's clock
		}
		if !strings.HasSuffix(string(got), "data: [DONE]\n\n") {
			t.Fatalf("slow reader got:\n%s", got)
		}
		if st := bb.status("a"); st.State != stateHealthy {
			t.Errorf("backend blamed for a slow reader: %+v", st)
		}
	})
}
