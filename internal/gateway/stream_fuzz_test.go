package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/understudy/understudy/internal/topology"
)

// relay runs a backend's stream bytes through the relay and returns what a
// client would receive, or the failure before the first event.
func relay(g *Gateway, data []byte) (string, *failure) {
	d := g.deps["m"]
	t, ok, _ := d.pool.pick(nil)
	if !ok {
		panic("no backend")
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	wd := &watchdog{cancel: cancel}
	wd.arm(phaseFirstToken, d.firstToken)
	resp := &http.Response{Body: io.NopCloser(bytes.NewReader(data))}
	s := newSSEStream(g, d, t, ctx, cancel, wd, resp)
	if f := s.readFirst(context.Background()); f != nil {
		return "", f
	}
	var out strings.Builder
	for {
		ev, err := s.next()
		if err != nil {
			break
		}
		out.Write(ev)
	}
	s.close()
	return out.String(), nil
}

func fuzzGateway(tb testing.TB) *Gateway {
	tp := topo(tb, []string{"m"}, map[string][]topology.Backend{"m": {openaiBackend("a", "http://127.0.0.1:9", 1)}}, nil)
	g, err := New(tp, testRegion, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

// FuzzSSERelay feeds arbitrary backend bytes to the stream relay: whatever
// comes in, the client gets only well-formed events whose data is JSON,
// [DONE] only as the very last event, and a stream that is not complete
// ends with an error event instead.
func FuzzSSERelay(f *testing.F) {
	chunk := `data: {"choices":[{"delta":{"content":"hi"},"finish_reason":null}]}` + "\n\n"
	finish := `data: {"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}` + "\n\n"
	for _, s := range []string{
		chunk + finish + "data: [DONE]\n\n",
		chunk + chunk,
		chunk + finish,
		": comment\n\nid: 4\nretry: 10\nevent: delta\n" + chunk + "data: {not json\n\n",
		"data: {\"a\":\ndata: 1}\n\n" + "data: [DONE]\r\n\r\n",
		"data:[DONE]\n\n",
		"garbage\n" + chunk,
		"data: " + strings.Repeat("x", 20000) + "\n\n",
		"",
	} {
		f.Add([]byte(s))
	}
	g := fuzzGateway(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		d := g.deps["m"]
		b := d.pool.backends[0]
		reported := func() (n float64) {
			for _, c := range b.results {
				n += testutil.ToFloat64(c)
			}
			return n
		}
		before := reported()
		out, fail := relay(g, data)
		d.pool.mu.Lock()
		b.st = backendState{} // the next input starts healthy
		d.pool.mu.Unlock()
		if n := reported() - before; n != 1 {
			t.Fatalf("the stream reported %v outcomes to the pool, want 1", n)
		}
		if fail != nil {
			if fail.next != nextBackend {
				t.Fatalf("a broken stream before its first event must move to the next backend, got %v", fail.next)
			}
			return
		}
		if !strings.HasSuffix(out, "\n\n") {
			t.Fatalf("output does not end with an event: %q", out)
		}
		events := strings.Split(strings.TrimSuffix(out, "\n\n"), "\n\n")
		for i, ev := range events {
			var payload []string
			for _, line := range strings.Split(ev, "\n") {
				switch {
				case strings.HasPrefix(line, "data: "):
					payload = append(payload, line[len("data: "):])
				case strings.HasPrefix(line, "event: "):
				default:
					t.Fatalf("event %d has a line %q: %q", i, line, out)
				}
			}
			p := strings.Join(payload, "\n")
			last := i == len(events)-1
			switch {
			case len(payload) == 0:
				t.Fatalf("event %d has no data: %q", i, out)
			case strings.TrimSpace(p) == "[DONE]":
				if !last {
					t.Fatalf("[DONE] before the end: %q", out)
				}
			case !json.Valid([]byte(p)):
				t.Fatalf("event %d is not JSON: %q", i, p)
			case last && strings.HasPrefix(p, `{"error":`):
				// the explicit end of a broken stream
			case last:
				t.Fatalf("stream ended without [DONE] or an error event: %q", out)
			}
		}
	})
}
