package modelsim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openai/openai-go/v3"
)

const chatBody = `{"model":"m","messages":[{"role":"user","content":"hello there world"}],"max_tokens":5}`

func TestHit(t *testing.T) {
	tests := []struct {
		rate float64
		n    int
		want []int // failing request numbers among 1..n
	}{
		{0, 6, nil},
		{1, 4, []int{1, 2, 3, 4}},
		{0.5, 8, []int{2, 4, 6, 8}},
		{0.25, 9, []int{4, 8}},
		{0.3, 10, []int{4, 7, 10}},
		{1.0 / 3, 9, []int{3, 6, 9}},
	}
	for _, tt := range tests {
		var got []int
		for n := 1; n <= tt.n; n++ {
			if hit(uint64(n), tt.rate) {
				got = append(got, n)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("rate %v: fails %v, want %v", tt.rate, got, tt.want)
		}
	}
	// Over 100 requests exactly rate*100 fail, also for rates that are not
	// exact in binary.
	for _, rate := range []float64{0.01, 0.07, 0.1, 0.29, 0.33, 0.57, 0.99} {
		fails := 0
		for n := 1; n <= 100; n++ {
			if hit(uint64(n), rate) {
				fails++
			}
		}
		if want := int(rate*100 + 0.5); fails != want {
			t.Errorf("rate %v: %d of 100 failed, want %d", rate, fails, want)
		}
	}
}

func TestFaultRates(t *testing.T) {
	tests := []struct {
		name       string
		f          Faults
		want       []int // status of requests 1..len(want), alternating chat and embeddings
		wantCode   string
		wantRetry  string // Retry-After on failures
		wantType   string
		failStatus int
	}{
		{name: "error rate half", f: Faults{ErrorRate: 0.5}, want: []int{200, 500, 200, 500, 200, 500},
			wantType: "server_error"},
		{name: "error rate all with status and code", f: Faults{ErrorRate: 1, ErrorStatus: 400, ErrorCode: "content_filter"},
			want: []int{400, 400, 400}, wantCode: "content_filter", wantType: "invalid_request_error"},
		{name: "error code on 5xx", f: Faults{ErrorRate: 1, ErrorStatus: 503, ErrorCode: "overloaded"},
			want: []int{503}, wantCode: "overloaded", wantType: "server_error"},
		{name: "rate limit with retry after rounded up", f: Faults{RateLimitRate: 0.5, RetryAfter: Duration(1500 * time.Millisecond)},
			want: []int{200, 429, 200, 429}, wantCode: "rate_limit_exceeded", wantRetry: "2", wantType: "requests"},
		{name: "rate limit without retry after", f: Faults{RateLimitRate: 1},
			want: []int{429, 429}, wantCode: "rate_limit_exceeded", wantType: "requests"},
		// Each fractional fault counts only the requests that reach it:
		// 429 takes requests 2, 4, 6; the error check sees 1, 3, 5 and fails its 2nd.
		{name: "rate limit then error", f: Faults{RateLimitRate: 0.5, ErrorRate: 0.5},
			want: []int{200, 429, 500, 429, 200, 429}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := start(t, testConfig())
			s.SetFaults(tt.f)
			var got []int
			for i := range tt.want {
				url, body := ts.URL+"/v1/chat/completions", chatBody
				if i%2 == 1 {
					url, body = ts.URL+"/v1/embeddings", `{"input":"x"}`
				}
				resp, b := post(t, url, body)
				got = append(got, resp.StatusCode)
				if resp.StatusCode == 200 || tt.wantType == "" {
					continue
				}
				e := wantError(t, b, tt.wantCode, "")
				if e.Type != tt.wantType {
					t.Errorf("error type %q, want %q", e.Type, tt.wantType)
				}
				if ra := resp.Header.Get("Retry-After"); ra != tt.wantRetry {
					t.Errorf("Retry-After %q, want %q", ra, tt.wantRetry)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("statuses %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSetFaultsRestartsCounters(t *testing.T) {
	s, ts := start(t, testConfig())
	status := func() int {
		resp, _ := post(t, ts.URL+"/v1/chat/completions", chatBody)
		return resp.StatusCode
	}
	s.SetFaults(Faults{ErrorRate: 0.5})
	first := status()
	s.SetFaults(Faults{ErrorRate: 0.5})
	got := []int{first, status(), status()}
	if want := []int{200, 200, 500}; !slices.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
}

func TestFaultRateLimitOfficialClient(t *testing.T) {
	s, ts := start(t, testConfig())
	s.SetFaults(Faults{RateLimitRate: 1, RetryAfter: Duration(3 * time.Second)})
	c := client(ts.URL + "/v1/")
	_, err := c.Chat.Completions.New(t.Context(), userMsg("x"))
	apiErr, ok := errors.AsType[*openai.Error](err)
	if !ok || apiErr.StatusCode != 429 || apiErr.Code != "rate_limit_exceeded" || apiErr.Response.Header.Get("Retry-After") != "3" {
		t.Fatalf("err = %v", err)
	}
}

func TestFaultHangEndsWhenClientLeaves(t *testing.T) {
	s := New(testConfig(), nil)
	s.SetFaults(Faults{Hang: true})
	entered := make(chan struct{}, 1)
	done := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		s.Handler().ServeHTTP(w, r)
		close(done)
	}))
	defer ts.Close()

	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		c := client(ts.URL + "/v1/")
		_, err := c.Chat.Completions.New(ctx, userMsg("x"))
		errc <- err
	}()
	<-entered
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client error = %v, want context.Canceled", err)
	}
	<-done // the handler returned once the client left
	if s.Requests() != 1 {
		t.Errorf("Requests() = %d", s.Requests())
	}
}

func TestFaultHangNeverAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(testConfig(), nil)
		s.SetFaults(Faults{Hang: true})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		var (
			w    *timedWriter
			took time.Duration
		)
		go func() {
			w, took = serve(ctx, s.Handler(), "/v1/embeddings", `{"input":"x"}`)
			close(done)
		}()
		time.Sleep(24 * time.Hour)
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("a hung request was answered")
		default:
		}
		cancel()
		<-done
		if took != 24*time.Hour || w.status != 0 || len(w.body()) != 0 {
			t.Errorf("took %v, status %d, body %q; want 24h and nothing", took, w.status, w.body())
		}
	})
}

func TestFaultStallAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Config{Version: testVersion, TokensPerSecond: 10}, nil)
		s.SetFaults(Faults{StallAfter: 2})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		var w *timedWriter
		go func() {
			w, _ = serve(ctx, s.Handler(), "/v1/chat/completions",
				`{"messages":[{"role":"user","content":"x"}],"max_tokens":5,"stream":true}`)
			close(done)
		}()
		time.Sleep(time.Hour)
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("a stalled stream ended")
		default:
		}
		cancel()
		<-done
		events := sseEvents(t, w.body())
		if len(events) != 3 || !strings.Contains(events[0], `"role":"assistant"`) {
			t.Fatalf("got %d events, want role + 2 content chunks: %q", len(events), events)
		}
		if got := w.flushTimes(); !slices.Equal(got, []time.Duration{0, 100 * time.Millisecond}) {
			t.Errorf("flushes at %v, want [0 100ms]", got)
		}
	})
}

func TestFaultCutAfterStream(t *testing.T) {
	s, ts := start(t, testConfig())
	s.SetFaults(Faults{CutAfter: 3})
	c := client(ts.URL + "/v1/")
	p := userMsg("cut me")
	p.MaxTokens = openai.Int(6)
	st := c.Chat.Completions.NewStreaming(t.Context(), p)
	var contents int
	for st.Next() {
		if ch := st.Current(); len(ch.Choices) > 0 && ch.Choices[0].Delta.Content != "" {
			contents++
		}
	}
	if st.Err() == nil || contents != 3 {
		t.Fatalf("stream ended with err %v after %d content chunks; want an error after 3", st.Err(), contents)
	}

	// On the wire: a 200 whose body breaks off without [DONE].
	resp, err := http.Post(ts.URL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"messages":[{"role":"user","content":"cut me"}],"max_tokens":6,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(string(b), "[DONE]") {
		t.Errorf("status %d, read error %v, body %q", resp.StatusCode, err, b)
	}
}

func TestFaultCutAfterNonStream(t *testing.T) {
	s, ts := start(t, testConfig())
	s.SetFaults(Faults{CutAfter: 1})
	c := client(ts.URL + "/v1/")
	if _, err := c.Chat.Completions.New(t.Context(), userMsg("x")); err == nil {
		t.Error("chat: no error from a cut answer")
	}
	for _, tc := range []struct{ path, body string }{
		{"/v1/chat/completions", chatBody},
		{"/v1/embeddings", `{"input":"x"}`},
	} {
		resp, err := http.Post(ts.URL+tc.path, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ContentLength <= 0 || !errors.Is(err, io.ErrUnexpectedEOF) || len(b) != 0 {
			t.Errorf("%s: status %d, length %d, read error %v, body %q; want headers then nothing", tc.path, resp.StatusCode, resp.ContentLength, err, b)
		}
	}
}

func TestFaultNoDone(t *testing.T) {
	s, ts := start(t, testConfig())
	s.SetFaults(Faults{NoDone: true})
	resp, b := post(t, ts.URL+"/v1/chat/completions",
		`{"messages":[{"role":"user","content":"x"}],"max_tokens":2,"stream":true,"stream_options":{"include_usage":true}}`)
	events := sseEvents(t, b)
	if resp.StatusCode != 200 || len(events) != 5 || !strings.Contains(events[4], `"usage":{`) || strings.Contains(string(b), "[DONE]") {
		t.Fatalf("status %d, events %q; want role, 2 content, finish, usage and no [DONE]", resp.StatusCode, events)
	}
	// The official client takes the clean end as the end of the stream:
	// detecting the missing [DONE] is the gateway's job.
	c := client(ts.URL + "/v1/")
	st := c.Chat.Completions.NewStreaming(t.Context(), userMsg("x"))
	n := 0
	for st.Next() {
		n++
	}
	if st.Err() != nil || n != 1+DefaultMaxTokens+1 {
		t.Errorf("client: err %v after %d chunks", st.Err(), n)
	}
}

func TestFaultMalformed(t *testing.T) {
	s, ts := start(t, testConfig())
	s.SetFaults(Faults{Malformed: true})
	_, b := post(t, ts.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"max_tokens":2,"stream":true}`)
	events := sseEvents(t, b)
	want := []bool{true, false, true, true, true} // valid JSON?
	if len(events) != 6 || events[5] != "[DONE]" {
		t.Fatalf("events %q", events)
	}
	for i, ok := range want {
		if json.Valid([]byte(events[i])) != ok {
			t.Errorf("event %d %q: valid JSON = %v, want %v", i, events[i], !ok, ok)
		}
	}
	if events[1] != "{not json" {
		t.Errorf("garbage event = %q", events[1])
	}
	c := client(ts.URL + "/v1/")
	st := c.Chat.Completions.NewStreaming(t.Context(), userMsg("x"))
	n := 0
	for st.Next() {
		n++
	}
	if st.Err() == nil || n != 1 {
		t.Errorf("client: err %v after %d chunks; want an error after the role chunk", st.Err(), n)
	}
}

func TestFaultVersion(t *testing.T) {
	s, ts := start(t, testConfig())
	c := client(ts.URL + "/v1/")
	ctx := t.Context()
	check := func(version string) {
		t.Helper()
		wantModel := "gpt-4.1-mini-" + version
		got, err := c.Chat.Completions.New(ctx, userMsg("x"))
		if err != nil || got.Model != wantModel {
			t.Errorf("chat model %q (%v), want %q", got.Model, err, wantModel)
		}
		st := c.Chat.Completions.NewStreaming(ctx, userMsg("x"))
		for st.Next() {
			if m := st.Current().Model; m != wantModel {
				t.Errorf("chunk model %q, want %q", m, wantModel)
			}
		}
		emb, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "e", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("x")}})
		if err != nil || emb.Model != wantModel {
			t.Errorf("embeddings model %q (%v), want %q", emb.Model, err, wantModel)
		}
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/models", nil)
		resp, b := do(t, req)
		var list struct {
			Data []modelEntry `json:"data"`
		}
		if err := json.Unmarshal(b, &list); err != nil || len(list.Data) != 1 || list.Data[0].Version != version ||
			list.Data[0].ID != "gpt-4.1-mini" || resp.Header.Get("x-modelsim-version") != version {
			t.Errorf("models %s (%v), header %q; want version %q", b, err, resp.Header.Get("x-modelsim-version"), version)
		}
		resp, _ = post(t, ts.URL+"/v1/chat/completions", chatBody)
		if h := resp.Header.Get("x-modelsim-version"); h != version {
			t.Errorf("x-modelsim-version %q, want %q", h, version)
		}
	}
	check(testVersion)
	s.SetFaults(Faults{Version: "2024-07-18"})
	check("2024-07-18")
	s.SetFaults(Faults{})
	check(testVersion)
}

// readLines is used by tests that read a live stream line by line.
func readLines(r io.Reader, n int) ([]string, error) {
	br := bufio.NewReader(r)
	var out []string
	for len(out) < n {
		line, err := br.ReadString('\n')
		if err != nil {
			return out, err
		}
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out, nil
}
