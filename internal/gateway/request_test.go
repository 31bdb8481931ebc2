package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name string
		body string
		kind endpoint
		want request // only Model, Stream, IncludeUsage, MaxTokens compared
		code string  // error code, "" for success
	}{
		{"minimal", `{"model":"m"}`, chatEndpoint, request{Model: "m"}, ""},
		{"stream", `{"stream":true,"model":"m"}`, chatEndpoint, request{Model: "m", Stream: true}, ""},
		{"stream null", `{"stream":null,"model":"m"}`, chatEndpoint, request{Model: "m"}, ""},
		{"usage", ` {"model":"m","stream":true,"stream_options":{"include_usage":true}} `, chatEndpoint, request{Model: "m", Stream: true, IncludeUsage: true}, ""},
		{"usage false", `{"model":"m","stream_options":{"include_usage":false}}`, chatEndpoint, request{Model: "m"}, ""},
		{"max_tokens", `{"model":"m","max_tokens":42}`, chatEndpoint, request{Model: "m", MaxTokens: 42}, ""},
		{"max_completion_tokens wins", `{"max_completion_tokens":7,"model":"m","max_tokens":42}`, chatEndpoint, request{Model: "m", MaxTokens: 7}, ""},
		{"max_tokens not an integer", `{"model":"m","max_tokens":1.5}`, chatEndpoint, request{Model: "m"}, ""},
		{"escaped model", `{"model":"gpt\u002d4o","mod\u0065l2":1}`, chatEndpoint, request{Model: "gpt-4o"}, ""},
		{"escaped key", `{"mod\u0065l":"m"}`, chatEndpoint, request{Model: "m"}, ""},
		{"nested model ignored", `{"messages":[{"model":"x"}],"model":"m"}`, chatEndpoint, request{Model: "m"}, ""},
		{"no model", `{"messages":[]}`, chatEndpoint, request{}, ""},
		{"empty object", `{}`, chatEndpoint, request{}, ""},
		{"embeddings ignore stream", `{"model":"e","stream":"x","input":"a"}`, embeddingsEndpoint, request{Model: "e"}, ""},
		{"bad json", `{"model":"m"`, chatEndpoint, request{}, "invalid_json"},
		{"trailing data", `{"model":"m"} {}`, chatEndpoint, request{}, "invalid_json"},
		{"trailing comma", `{"model":"m",}`, chatEndpoint, request{}, "invalid_json"},
		{"control char in string", "{\"model\":\"a\x01\"}", chatEndpoint, request{}, "invalid_json"},
		{"bad escape", `{"model":"\x"}`, chatEndpoint, request{}, "invalid_json"},
		{"leading zero", `{"n":01}`, chatEndpoint, request{}, "invalid_json"},
		{"empty", ``, chatEndpoint, request{}, "invalid_json"},
		{"array", `[1]`, chatEndpoint, request{}, "invalid_value"},
		{"string", `"m"`, chatEndpoint, request{}, "invalid_value"},
		{"model number", `{"model":4}`, chatEndpoint, request{}, "invalid_value"},
		{"model null", `{"model":null}`, chatEndpoint, request{}, "invalid_value"},
		{"model twice", `{"model":"a","model":"b"}`, chatEndpoint, request{}, "invalid_value"},
		{"model twice, one escaped", `{"model":"a","mod\u0065l":"b"}`, chatEndpoint, request{}, "invalid_value"},
		{"stream twice", `{"stream":false,"stream":true}`, chatEndpoint, request{}, "invalid_value"},
		{"stream string", `{"stream":"true"}`, chatEndpoint, request{}, "invalid_value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRequest([]byte(tt.body), tt.kind)
			if tt.code != "" {
				e, ok := errors.AsType[*Error](err)
				if !ok || e.Code != tt.code || e.Status != 400 {
					t.Fatalf("err %v, want 400 %s", err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Model != tt.want.Model || got.Stream != tt.want.Stream || got.IncludeUsage != tt.want.IncludeUsage || got.MaxTokens != tt.want.MaxTokens {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestWithModel(t *testing.T) {
	tests := []struct{ body, model, want string }{
		{`{"model":"a","x":1}`, "b", `{"model":"b","x":1}`},
		{`{"x":1, "model" : "a" }`, "gpt-4o", `{"x":1, "model" : "gpt-4o" }`},
		{`{"x":1}`, "b", `{"model":"b","x":1}`},
		{` { } `, "b", ` {"model":"b" } `},
		{`{"model":"same"}`, "same", `{"model":"same"}`},
		{`{"model":"a"}`, `we"ird`, `{"model":"we\"ird"}`},
	}
	for _, tt := range tests {
		req, err := parseRequest([]byte(tt.body), chatEndpoint)
		if err != nil {
			t.Fatal(err)
		}
		enc, _ := json.Marshal(tt.model)
		if got := withModel(nil, []byte(tt.body), &req, enc); string(got) != tt.want {
			t.Errorf("withModel(%s, %s) = %s, want %s", tt.body, tt.model, got, tt.want)
		}
	}
}

func TestCooldownHint(t *testing.T) {
	now := mustTime("2026-01-02T03:04:05Z")
	tests := []struct {
		hdr  map[string]string
		want string
	}{
		{map[string]string{}, "-1ns"},
		{map[string]string{"Retry-After": "7"}, "7s"},
		{map[string]string{"Retry-After": "7", "Retry-After-Ms": "1500"}, "1.5s"},
		{map[string]string{"Retry-After": "Fri, 02 Jan 2026 03:04:35 GMT"}, "30s"},
		{map[string]string{"Retry-After": "soon"}, "-1ns"},
		{map[string]string{"X-Ratelimit-Reset-Requests": "1s", "X-Ratelimit-Reset-Tokens": "6m0s"}, "6m0s"},
		{map[string]string{"X-Ratelimit-Reset-Tokens": "20ms"}, "20ms"},
		{map[string]string{"X-Ratelimit-Reset-Requests": "12"}, "12s"},
	}
	for _, tt := range tests {
		h := make(map[string][]string)
		for k, v := range tt.hdr {
			h[k] = []string{v}
		}
		if got := cooldownHint(h, now).String(); got != tt.want {
			t.Errorf("cooldownHint(%v) = %s, want %s", tt.hdr, got, tt.want)
		}
	}
}

var seeds = []string{
	`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`,
	`{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":5}`,
	`{"mod\u0065l":"m","messages":[{"role":"user","content":"\ud83d\ude00 \u00e9"}],"n":-1.5e+3}`,
	`{"model":"a","model":"b"}`,
	`{"input":["a","b"],"model":"text-embedding-3-small","dimensions":256}`,
	`[{"model":"m"}]`,
	`{"model":"m"`,
	`{"a":[[[{}]]],"b":null,"c":true,"d":false,"model":""}`,
	"{\"model\":\"\xff\"}",
	``,
}

// FuzzParseChat checks the chat decoder against encoding/json: it accepts
// exactly the JSON objects whose model is a string (once) and whose stream
// is a boolean (once), reads the same model, and rewrites the model into a
// body that differs in nothing else.
func FuzzParseChat(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkDecoder(t, body, chatEndpoint) })
}

// FuzzParseEmbeddings is FuzzParseChat for embeddings bodies (no stream flag).
func FuzzParseEmbeddings(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkDecoder(t, body, embeddingsEndpoint) })
}

func checkDecoder(t *testing.T, body []byte, kind endpoint) {
	req, err := parseRequest(body, kind)
	members, oracleErr := oracle(body, kind)
	if (err == nil) != (oracleErr == nil) {
		t.Fatalf("parseRequest err=%v, encoding/json says %v, body %q", err, oracleErr, body)
	}
	if err != nil {
		if _, ok := errors.AsType[*Error](err); !ok {
			t.Fatalf("error is not an *Error: %v", err)
		}
		return
	}
	var wantModel string
	if raw, ok := members["model"]; ok {
		json.Unmarshal(raw, &wantModel)
	}
	if req.Model != wantModel {
		t.Fatalf("model %q, encoding/json %q", req.Model, wantModel)
	}
	if kind == chatEndpoint {
		if raw, ok := members["stream"]; ok && (string(raw) == "true") != req.Stream {
			t.Fatalf("stream %v, raw %s", req.Stream, raw)
		}
	}
	out := withModel(nil, body, &req, []byte(`"rewritten"`))
	got, err := oracle(out, kind)
	if err != nil {
		t.Fatalf("rewritten body %q is invalid: %v", out, err)
	}
	if string(got["model"]) != `"rewritten"` {
		t.Fatalf("rewritten model %s", got["model"])
	}
	delete(got, "model")
	delete(members, "model")
	if len(got) != len(members) {
		t.Fatalf("rewrite changed the members: %q -> %q", body, out)
	}
	for k, v := range members {
		if !bytes.Equal(got[k], v) {
			t.Fatalf("member %q changed: %s -> %s", k, v, got[k])
		}
	}
}

// oracle decodes a body with encoding/json and applies the rules the
// gateway enforces; it returns the top-level members.
func oracle(body []byte, kind endpoint) (map[string]json.RawMessage, error) {
	if !json.Valid(body) {
		return nil, errors.New("invalid JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, _ := dec.Token()
	if tok != json.Delim('{') {
		return nil, errors.New("not an object")
	}
	members := map[string]json.RawMessage{}
	for dec.More() {
		k, _ := dec.Token()
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		key := k.(string)
		_, dup := members[key]
		switch {
		case key == "model" && dup:
			return nil, errors.New("model twice")
		case key == "model" && raw[0] != '"':
			return nil, errors.New("model not a string")
		case key == "stream" && kind == chatEndpoint && dup:
			return nil, errors.New("stream twice")
		case key == "stream" && kind == chatEndpoint && string(raw) != "true" && string(raw) != "false" && string(raw) != "null":
			return nil, errors.New("stream not a boolean")
		}
		members[key] = raw
	}
	if _, err := dec.Token(); err != nil && err != io.EOF {
		return nil, err
	}
	return members, nil
}

func mustTime(s string) (t time.Time) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}
