package modelsim

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/understudy/understudy/internal/oaierr"
)

// FuzzChatRequest feeds arbitrary bodies to the decoder and the whole chat
// handler: no panic, only 200 or 400, and a 200 is a well-formed answer
// whose length and usage agree with the decoded request.
func FuzzChatRequest(f *testing.F) {
	for _, seed := range []string{
		chatBody,
		`{"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`,
		`{"messages":[{"role":"system","content":null},{"role":"user","content":[{"type":"text","text":"a b"},{"type":"image_url","image_url":{"url":"x"}}]}]}`,
		`{"messages":[{"role":"user","content":"caf\u00e9 \"quoted\" \\ back"}],"max_completion_tokens":3}`,
		`{"messages":[{"role":"user","content":"x"}],"max_tokens":0}`,
		`{"messages":[{"role":"user","content":"x"}],"max_tokens":1e3}`,
		`{"messages":[{"role":"user","content":{}}]}`,
		`{"messages":[]}`,
		`{"messages":null}`,
		`[]`,
		`{`,
		``,
	} {
		f.Add([]byte(seed))
	}
	s := New(Config{MaxTokens: 4}, nil)
	h := s.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := decodeChat(body, 4)
		if err != nil {
			if _, ok := err.(*apiError); !ok {
				t.Fatalf("decode error %T %v is not an *apiError", err, err)
			}
		} else {
			if c.n < 1 || c.n > maxOutputTokens || c.promptTokens < 0 {
				t.Fatalf("decoded %+v", c)
			}
			again, _ := decodeChat(body, 4)
			if again != c {
				t.Fatalf("decoding is not deterministic: %+v then %+v", c, again)
			}
		}
		if err == nil && c.n > 64 {
			return // keep iterations fast; length handling is covered by seeds
		}
		w, _ := serve(context.Background(), h, "/v1/chat/completions", string(body))
		out := w.body()
		switch {
		case err != nil:
			if w.status != 400 {
				t.Fatalf("status %d for a body the decoder rejects: %s", w.status, out)
			}
			var e oaierr.Body
			if json.Unmarshal(out, &e) != nil || e.Error.Message == "" {
				t.Fatalf("bad error body %s", out)
			}
		case c.stream:
			events := sseEvents(t, out)
			if w.status != 200 || len(events) < c.n+3 || events[len(events)-1] != "[DONE]" {
				t.Fatalf("stream status %d events %q", w.status, events)
			}
			for _, e := range events[:len(events)-1] {
				if !json.Valid([]byte(e)) {
					t.Fatalf("invalid chunk %q", e)
				}
			}
		default:
			var got struct {
				Choices []struct {
					Message struct{ Content string } `json:"message"`
				} `json:"choices"`
				Usage struct {
					PromptTokens     int `json:"prompt_tokens"`
					CompletionTokens int `json:"completion_tokens"`
				} `json:"usage"`
			}
			if w.status != 200 || json.Unmarshal(bytes.TrimSpace(out), &got) != nil || len(got.Choices) != 1 {
				t.Fatalf("status %d body %s", w.status, out)
			}
			if n := len(strings.Fields(got.Choices[0].Message.Content)); n != c.n || got.Usage.CompletionTokens != c.n || got.Usage.PromptTokens != c.promptTokens {
				t.Fatalf("answer of %d words, usage %+v; decoded %+v", n, got.Usage, c)
			}
		}
	})
}

// FuzzEmbeddingsRequest: the embeddings decoder never panics, and what it
// accepts has 1..maxEmbedInputs inputs and a valid dimension.
func FuzzEmbeddingsRequest(f *testing.F) {
	for _, seed := range []string{
		`{"input":"a b"}`, `{"input":["a","b"],"dimensions":3}`, `{"input":[1,2,3]}`, `{"input":[[1],[2,3]]}`,
		`{"input":[[]]}`, `{"input":[]}`, `{"input":[1,"a"]}`, `{"input":"x","encoding_format":"base64"}`, `{"input":null}`, `{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := decodeEmbed(body)
		if err != nil {
			if _, ok := err.(*apiError); !ok {
				t.Fatalf("decode error %T %v is not an *apiError", err, err)
			}
			return
		}
		if len(e.seeds) < 1 || len(e.seeds) > maxEmbedInputs || e.dims < 1 || e.dims > maxDimensions || e.promptTokens < 0 {
			t.Fatalf("decoded %+v", e)
		}
	})
}
