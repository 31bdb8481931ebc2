package drill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeEdge answers the four request shapes the load sends, as a gateway
// behind the edge would, and fails the first failTurns agent turns with 503.
type fakeEdge struct {
	region    string
	failTurns int

	mu       sync.Mutex
	n        int
	keys     map[string]int // Idempotency-Key → attempts seen
	turnsRun map[string]string
}

func (f *fakeEdge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer sk-test" {
		http.Error(w, `{"error":{"message":"bad key"}}`, http.StatusUnauthorized)
		return
	}
	w.Header().Set("X-Understudy-Region", f.region)
	f.mu.Lock()
	f.n++
	n := f.n
	f.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	switch r.URL.Path {
	case "/v1/chat/completions":
		if strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("Content-Type", "text/event-stream")
			chunk := `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":%q},"finish_reason":%s}]}`
			fmt.Fprintf(w, "data: "+chunk+"\n\n", "hel", "null")
			fmt.Fprintf(w, "data: "+chunk+"\n\n", "lo", `"stop"`)
			fmt.Fprint(w, "data: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}]}`)
	case "/v1/conversations":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"conv_%d","object":"conversation","created_at":1,"metadata":{}}`, n)
	case "/v1/responses":
		key := r.Header.Get("Idempotency-Key")
		f.mu.Lock()
		f.keys[key]++
		fail := f.failTurns > 0
		if fail {
			f.failTurns--
		}
		f.mu.Unlock()
		if fail {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":{"message":"standby","type":"unavailable"}}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"resp_%d","object":"response","created_at":1,"status":"completed","model":"m","output":[{"type":"message","id":"msg_%d","role":"assistant","status":"completed","content":[{"type":"output_text","text":"hi","annotations":[]}]}]}`, n, n)
	default:
		http.NotFound(w, r)
	}
}

func TestLoadBoundedByCount(t *testing.T) {
	fe := &fakeEdge{region: "eastus2", keys: map[string]int{}}
	srv := httptest.NewServer(fe)
	defer srv.Close()
	l, err := NewLoad(LoadConfig{EdgeURL: srv.URL, Key: "sk-test", ChatRate: 100, StreamRate: 100, MaxRequests: 80})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	l.Stop()
	sn := l.Snapshot()
	if sn.Total.Requests != 80 || sn.Total.Errors != 0 {
		t.Fatalf("requests = %d errors %d, want exactly MaxRequests 80 without errors (snapshot %+v)", sn.Total.Requests, sn.Total.Errors, sn)
	}
	if sn.ByKind[KindChat].Requests == 0 || sn.ByKind[KindStream].Requests == 0 || sn.ByRegion["eastus2"].Requests != 80 {
		t.Errorf("by kind %+v by region %+v", sn.ByKind, sn.ByRegion)
	}
	if sn.Running {
		t.Error("snapshot says running after Stop")
	}
	var streams int
	for _, s := range l.Samples() {
		if s.Kind == KindStream {
			if !s.OK() || s.TTFT <= 0 || s.TTFT > s.Latency {
				t.Errorf("stream sample %+v", s)
			}
			streams++
		}
	}
	if streams == 0 {
		t.Error("no stream")
	}
}

// One worker is sequential, so its requests are exactly: create the
// conversation, three failed attempts and one acknowledged attempt of the
// first turn under one Idempotency-Key, then one request per turn.
func TestLoadRetriesTurnsUnderOneKey(t *testing.T) {
	fe := &fakeEdge{region: "eastus2", failTurns: 3, keys: map[string]int{}}
	srv := httptest.NewServer(fe)
	defer srv.Close()
	l, err := NewLoad(LoadConfig{EdgeURL: srv.URL, Key: "sk-test", AgentWorkers: 1,
		AgentInterval: time.Millisecond, RetryBackoff: time.Millisecond, MaxRequests: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	l.Stop()
	sn := l.Snapshot()
	if sn.Total.Requests != 10 || sn.Total.Errors != 3 || sn.ErrorKinds["http_503"] != 3 || sn.Retries != 3 || sn.Conversations != 1 {
		t.Fatalf("snapshot %+v, want 10 requests, 3 http_503, 3 retries, 1 conversation", sn)
	}
	var sent []int
	for _, n := range fe.keys {
		sent = append(sent, n)
	}
	slices.Sort(sent)
	if fmt.Sprint(sent) != "[1 1 1 1 1 4]" {
		t.Errorf("attempts per Idempotency-Key %v, want one key 4 times and five once", sent)
	}
	acks := l.Acks()
	if len(acks) != 6 || acks[0].Attempts != 4 || acks[1].Attempts != 1 || sn.Acked != 6 || sn.AckedItems != 6 {
		t.Fatalf("acks %+v", acks)
	}
	for _, a := range acks {
		if len(a.Items) != 1 || !strings.HasPrefix(a.Items[0], "msg_") || !strings.HasPrefix(a.Conversation, "conv_") || a.Region != "eastus2" {
			t.Errorf("ack %+v", a)
		}
	}
}

func TestLoadStopsOnCancel(t *testing.T) {
	srv := httptest.NewServer(&fakeEdge{region: "centralus", keys: map[string]int{}})
	defer srv.Close()
	l, err := NewLoad(LoadConfig{EdgeURL: srv.URL, Key: "sk-test", ChatRate: 50, AgentWorkers: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(ctx); err == nil {
		t.Error("second Start succeeded")
	}
	cancel()
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	l.Close(cctx)
	if cctx.Err() != nil {
		t.Fatal("Close waited for its deadline after the context was cancelled")
	}
}

func TestLoadConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  LoadConfig
		want string
	}{
		{"no edge", LoadConfig{Key: "k", ChatRate: 1}, "EdgeURL"},
		{"no key", LoadConfig{EdgeURL: "http://x", ChatRate: 1}, "Key"},
		{"nothing to do", LoadConfig{EdgeURL: "http://x", Key: "k"}, "set ChatRate"},
		{"negative", LoadConfig{EdgeURL: "http://x", Key: "k", ChatRate: -1}, "negative"},
		{"ok", LoadConfig{EdgeURL: "http://x", Key: "k", AgentWorkers: 1}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewLoad(tc.cfg)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSummarizeAndSeries(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var samples []Sample
	for i := range 100 {
		samples = append(samples, Sample{Kind: KindChat, Start: t0.Add(time.Duration(i) * 10 * time.Millisecond),
			Latency: time.Duration(i+1) * time.Millisecond, Region: "eastus2"})
	}
	samples = append(samples,
		Sample{Kind: KindStream, Start: t0.Add(1500 * time.Millisecond), Latency: 50 * time.Millisecond, TTFT: 20 * time.Millisecond, Region: "centralus"},
		Sample{Kind: KindAgent, Start: t0.Add(1600 * time.Millisecond), Err: "http_503", Region: "eastus2"},
		Sample{Kind: KindChat, Start: t0.Add(2500 * time.Millisecond), Err: ErrTimeout, Region: NoRegion},
	)
	w := Summarize(samples, t0, t0.Add(time.Second))
	if w.Requests != 100 || w.Errors != 0 {
		t.Fatalf("window counts %+v", w)
	}
	if got := w.Latency[KindChat]; got != (Percentiles{Count: 100, P50: 50, P99: 99, Max: 100}) {
		t.Errorf("chat percentiles %+v", got)
	}
	w = Summarize(samples, t0.Add(time.Second), t0.Add(3*time.Second))
	if w.Requests != 3 || w.Errors != 2 || w.ErrorKinds["http_503"] != 1 || w.ErrorKinds[ErrTimeout] != 1 || w.TTFT.P50 != 20 {
		t.Errorf("second window %+v", w)
	}
	s := Series(samples, t0, t0.Add(2500*time.Millisecond))
	if len(s) != 3 {
		t.Fatalf("series has %d seconds, want 3", len(s))
	}
	if s[0].Requests["eastus2"] != 100 || s[1].Requests["centralus"] != 1 || s[1].Errors["eastus2"] != 1 ||
		s[2].Errors[NoRegion] != 1 || s[1].ByKind[KindAgent] != (Counts{1, 1}) {
		t.Errorf("series %+v", s)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{context.DeadlineExceeded, ErrTimeout},
		{fmt.Errorf("post: %w", context.DeadlineExceeded), ErrTimeout},
		{errStreamCut, ErrStreamCut},
		{errors.New("read tcp: connection reset by peer"), ErrConnection},
		{errors.New("unexpected EOF"), ErrConnection},
		{errors.New("weird"), ErrOther},
	} {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestRing(t *testing.T) {
	r := ring[int]{max: 3}
	for i := range 5 {
		r.add(i)
	}
	got, _ := json.Marshal(r.list())
	if string(got) != "[2,3,4]" || r.dropped != 2 {
		t.Errorf("ring %s dropped %d", got, r.dropped)
	}
}
