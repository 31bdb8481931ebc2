package modelsim

import (
	"testing"
	"testing/synctest"
	"time"
)

// The synctest clock starts at midnight UTC, so minute windows start at 0.

func TestRPM(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Config{RPM: 2}, nil)
		h := s.Handler()
		type answer struct {
			status              int
			limit, rem, retry   string
			hasTokenLimitHeader bool
		}
		call := func(body string) answer {
			w, _ := serve(t.Context(), h, "/v1/chat/completions", body)
			return answer{w.status, w.h.Get("x-ratelimit-limit-requests"), w.h.Get("x-ratelimit-remaining-requests"),
				w.h.Get("Retry-After"), w.h.Get("x-ratelimit-limit-tokens") != ""}
		}
		steps := []struct {
			wait time.Duration
			body string
			want answer
		}{
			{0, chatBody, answer{200, "2", "1", "", false}},
			{0, `{"messages":`, answer{400, "2", "1", "", false}}, // bad requests carry the headers and consume nothing
			{0, chatBody, answer{200, "2", "0", "", false}},
			{0, chatBody, answer{429, "2", "0", "60", false}},
			{15 * time.Second, chatBody, answer{429, "2", "0", "45", false}},
			{44*time.Second + 500*time.Millisecond, chatBody, answer{429, "2", "0", "1", false}},
			{500 * time.Millisecond, chatBody, answer{200, "2", "1", "", false}}, // a new minute
		}
		for i, st := range steps {
			time.Sleep(st.wait)
			if got := call(st.body); got != st.want {
				t.Errorf("step %d: %+v, want %+v", i, got, st.want)
			}
		}
		// The 429 is in the OpenAI shape.
		serve(t.Context(), h, "/v1/chat/completions", chatBody) // the last of the minute
		w, _ := serve(t.Context(), h, "/v1/chat/completions", chatBody)
		if w.status != 429 {
			t.Fatalf("status %d", w.status)
		}
		wantError(t, w.body(), "rate_limit_exceeded", "")
		if s.Requests() != 9 {
			t.Errorf("Requests() = %d, want 9 (rejected requests count as received)", s.Requests())
		}
	})
}

func TestTPM(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Config{TPM: 30}, nil)
		h := s.Handler()
		// Cost of a chat request: prompt words + answer tokens = 4 + 10.
		chat := `{"messages":[{"role":"user","content":"a b c d"}],"max_tokens":10}`
		steps := []struct {
			path, body string
			status     int
			remaining  string
		}{
			{"/v1/chat/completions", chat, 200, "16"},
			{"/v1/chat/completions", chat, 200, "2"},
			{"/v1/chat/completions", chat, 429, "2"},
			{"/v1/embeddings", `{"input":"x y z"}`, 429, "2"},
			{"/v1/embeddings", `{"input":["x","y"]}`, 200, "0"},
		}
		for i, st := range steps {
			w, _ := serve(t.Context(), h, st.path, st.body)
			got := []string{w.h.Get("x-ratelimit-limit-tokens"), w.h.Get("x-ratelimit-remaining-tokens")}
			if w.status != st.status || got[0] != "30" || got[1] != st.remaining || w.h.Get("x-ratelimit-limit-requests") != "" {
				t.Errorf("step %d: status %d, tokens limit/remaining %v; want %d, [30 %s]", i, w.status, got, st.status, st.remaining)
			}
		}
	})
}

func TestNoLimitHeadersWithoutLimits(t *testing.T) {
	s := New(Config{}, nil)
	w, _ := serve(t.Context(), s.Handler(), "/v1/chat/completions", chatBody)
	for k := range w.h {
		if len(k) > 12 && k[:12] == "X-Ratelimit-" {
			t.Errorf("header %s sent without limits", k)
		}
	}
	if w.status != 200 {
		t.Errorf("status %d", w.status)
	}
}
