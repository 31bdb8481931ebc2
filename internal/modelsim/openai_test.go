package modelsim

import (
	"context"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
)

func inVocab(w string) bool { return slices.Contains(vocab[:], w) }

func TestChatCompletionOfficialClient(t *testing.T) {
	_, ts := start(t, testConfig())
	c := client(ts.URL + "/v1/")
	ctx := t.Context()

	tests := []struct {
		name       string
		params     openai.ChatCompletionNewParams
		wantPrompt int64
		wantN      int64
		wantFinish string
	}{
		{"default length", userMsg("hello there world"), 3, DefaultMaxTokens, "stop"},
		{"max_tokens", func() openai.ChatCompletionNewParams {
			p := userMsg("hello there world")
			p.MaxTokens = openai.Int(5)
			return p
		}(), 3, 5, "length"},
		{"max_completion_tokens wins over max_tokens", func() openai.ChatCompletionNewParams {
			p := userMsg("hello there world")
			p.MaxTokens = openai.Int(9)
			p.MaxCompletionTokens = openai.Int(2)
			return p
		}(), 3, 2, "length"},
		{"words of every message count", openai.ChatCompletionNewParams{
			Model: "gpt-4.1-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{
				openai.SystemMessage("You are  terse.\n"),
				openai.UserMessage("what\tis a region?"),
				openai.AssistantMessage("a failure domain"),
				openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
					openai.TextContentPart("and a"), openai.TextContentPart("deployment?"),
				}),
			},
		}, 3 + 4 + 3 + 3, DefaultMaxTokens, "stop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Chat.Completions.New(ctx, tt.params)
			if err != nil {
				t.Fatal(err)
			}
			if got.Model != "gpt-4.1-mini-"+testVersion {
				t.Errorf("model = %q", got.Model)
			}
			if got.Object != "chat.completion" || !strings.HasPrefix(got.ID, "chatcmpl-") {
				t.Errorf("object %q id %q", got.Object, got.ID)
			}
			if len(got.Choices) != 1 {
				t.Fatalf("choices = %d", len(got.Choices))
			}
			ch := got.Choices[0]
			words := strings.Split(ch.Message.Content, " ")
			if int64(len(words)) != tt.wantN {
				t.Errorf("content %q has %d words, want %d", ch.Message.Content, len(words), tt.wantN)
			}
			for _, w := range words {
				if !inVocab(w) {
					t.Errorf("word %q not in the vocabulary", w)
				}
			}
			if string(ch.Message.Role) != "assistant" || ch.FinishReason != tt.wantFinish {
				t.Errorf("role %q finish %q, want assistant %q", ch.Message.Role, ch.FinishReason, tt.wantFinish)
			}
			u := got.Usage
			if u.PromptTokens != tt.wantPrompt || u.CompletionTokens != tt.wantN || u.TotalTokens != tt.wantPrompt+tt.wantN {
				t.Errorf("usage = %d/%d/%d, want %d/%d/%d", u.PromptTokens, u.CompletionTokens, u.TotalTokens,
					tt.wantPrompt, tt.wantN, tt.wantPrompt+tt.wantN)
			}
			// Determinism: the same request gives the same text.
			again, err := c.Chat.Completions.New(ctx, tt.params)
			if err != nil {
				t.Fatal(err)
			}
			if again.Choices[0].Message.Content != ch.Message.Content {
				t.Errorf("not deterministic: %q then %q", ch.Message.Content, again.Choices[0].Message.Content)
			}
			if again.ID == got.ID {
				t.Errorf("two answers share id %q", got.ID)
			}
		})
	}
}

func TestChatDeterminismRules(t *testing.T) {
	_, ts := start(t, testConfig())
	c := client(ts.URL + "/v1/")
	ctx := t.Context()
	text := func(msg string, n int64, mods ...func(*openai.ChatCompletionNewParams)) string {
		t.Helper()
		p := userMsg(msg)
		p.MaxTokens = openai.Int(n)
		for _, m := range mods {
			m(&p)
		}
		got, err := c.Chat.Completions.New(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return got.Choices[0].Message.Content
	}
	// Golden: the rule (FNV-1a of roles and contents, splitmix64 over the
	// vocabulary) is part of the contract; other tests and demos may pin
	// answers, so a change here must be deliberate.
	if got, want := text("hello there world", 5), "swift model south limit model"; got != want {
		t.Errorf("golden answer = %q, want %q", got, want)
	}
	long := text("hello there world", 40)
	if short := text("hello there world", 7); !strings.HasPrefix(long, short+" ") {
		t.Errorf("answer of 7 tokens %q is not a prefix of 40 tokens %q", short, long)
	}
	if other := text("hello there world!", 40); other == long {
		t.Errorf("different prompts gave the same 40-token answer %q", long)
	}
	if other := text("hello there world", 40, func(p *openai.ChatCompletionNewParams) {
		p.Model = "something-else"
		p.Temperature = openai.Float(1.5)
	}); other != long {
		t.Errorf("model and temperature changed the answer: %q vs %q", other, long)
	}
	asSystem := text("", 40, func(p *openai.ChatCompletionNewParams) {
		p.Messages = []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("hello there world")}
	})
	if asSystem == long {
		t.Errorf("the role does not change the answer")
	}
}

func TestChatStreamOfficialClient(t *testing.T) {
	_, ts := start(t, testConfig())
	c := client(ts.URL + "/v1/")
	ctx := t.Context()

	for _, includeUsage := range []bool{false, true} {
		p := userMsg("stream me a few words")
		p.MaxTokens = openai.Int(6)
		want, err := c.Chat.Completions.New(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if includeUsage {
			p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		}
		st := c.Chat.Completions.NewStreaming(ctx, p)
		var (
			content  strings.Builder
			chunks   int
			roles    int
			finishes []string
			usage    *openai.CompletionUsage
		)
		for st.Next() {
			ch := st.Current()
			chunks++
			if ch.Object != "chat.completion.chunk" || ch.Model != "gpt-4.1-mini-"+testVersion {
				t.Errorf("chunk object %q model %q", ch.Object, ch.Model)
			}
			if len(ch.Choices) == 0 {
				u := ch.Usage
				usage = &u
				continue
			}
			d := ch.Choices[0]
			if d.Delta.Role != "" {
				roles++
			}
			content.WriteString(d.Delta.Content)
			if d.FinishReason != "" {
				finishes = append(finishes, d.FinishReason)
			}
		}
		if err := st.Err(); err != nil {
			t.Fatalf("stream: %v", err)
		}
		if got := content.String(); got != want.Choices[0].Message.Content {
			t.Errorf("stream content %q, non-stream %q", got, want.Choices[0].Message.Content)
		}
		wantChunks := 1 + 6 + 1
		if includeUsage {
			wantChunks++
		}
		if chunks != wantChunks || roles != 1 || !slices.Equal(finishes, []string{"length"}) {
			t.Errorf("include_usage=%v: %d chunks, %d role chunks, finishes %v; want %d, 1, [length]", includeUsage, chunks, roles, finishes, wantChunks)
		}
		switch {
		case includeUsage && usage == nil:
			t.Error("no usage chunk")
		case includeUsage && (usage.PromptTokens != 5 || usage.CompletionTokens != 6 || usage.TotalTokens != 11):
			t.Errorf("usage %+v, want 5/6/11", usage)
		case !includeUsage && usage != nil:
			t.Error("usage chunk without include_usage")
		}
	}
}

func TestEmbeddingsOfficialClient(t *testing.T) {
	_, ts := start(t, testConfig())
	c := client(ts.URL + "/v1/")
	ctx := t.Context()

	norm := func(v []float64) float64 {
		var s float64
		for _, x := range v {
			s += x * x
		}
		return math.Sqrt(s)
	}
	tests := []struct {
		name       string
		params     openai.EmbeddingNewParams
		wantN      int
		wantDims   int
		wantTokens int64
	}{
		{"string", openai.EmbeddingNewParams{Model: "e", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("one two three")}}, 1, 8, 3},
		{"strings with dimensions", openai.EmbeddingNewParams{Model: "e", Dimensions: openai.Int(64),
			Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"one two three", "four", "one two three"}}}, 3, 64, 7},
		{"base64", openai.EmbeddingNewParams{Model: "e", Dimensions: openai.Int(16), EncodingFormat: openai.EmbeddingNewParamsEncodingFormatBase64,
			Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"one two three", "four"}}}, 2, 16, 4},
		{"tokens", openai.EmbeddingNewParams{Model: "e", Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfTokens: []int64{1, 2, 3, 4}}}, 1, 8, 4},
		{"token arrays", openai.EmbeddingNewParams{Model: "e", Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfTokenArrays: [][]int64{{1, 2}, {3}}}}, 2, 8, 3},
	}
	// Vectors are float32 on the wire: compare them at that precision.
	f32 := func(v []float64) []float32 {
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(x)
		}
		return out
	}
	vectors := map[string][]float32{} // by dims and input
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Embeddings.New(ctx, tt.params)
			if err != nil {
				t.Fatal(err)
			}
			if got.Model != "gpt-4.1-mini-"+testVersion || len(got.Data) != tt.wantN {
				t.Fatalf("model %q, %d embeddings; want %d", got.Model, len(got.Data), tt.wantN)
			}
			if got.Usage.PromptTokens != tt.wantTokens || got.Usage.TotalTokens != tt.wantTokens {
				t.Errorf("usage %d/%d, want %d", got.Usage.PromptTokens, got.Usage.TotalTokens, tt.wantTokens)
			}
			for i, e := range got.Data {
				if e.Index != int64(i) || len(e.Embedding) != tt.wantDims {
					t.Errorf("embedding %d: index %d, %d dims, want %d", i, e.Index, len(e.Embedding), tt.wantDims)
				}
				if n := norm(e.Embedding); math.Abs(n-1) > 1e-6 {
					t.Errorf("embedding %d: norm %v, want 1", i, n)
				}
			}
			if tt.name == "strings with dimensions" && !slices.Equal(got.Data[0].Embedding, got.Data[2].Embedding) {
				t.Error("the same input gave different vectors")
			}
			if tt.name == "strings with dimensions" && slices.Equal(got.Data[0].Embedding, got.Data[1].Embedding) {
				t.Error("different inputs gave the same vector")
			}
			// The same input at the same dimension gives the same vector,
			// whatever the encoding and the request.
			if ss := tt.params.Input.OfArrayOfStrings; ss != nil {
				key := strings.Repeat("x", tt.wantDims) + ss[0]
				if prev, ok := vectors[key]; ok && !slices.Equal(prev, f32(got.Data[0].Embedding)) {
					t.Errorf("vector changed between requests: %v vs %v", prev, got.Data[0].Embedding)
				}
				vectors[key] = f32(got.Data[0].Embedding)
			}
		})
	}
	// base64 and float encode the same vectors.
	for _, f := range []openai.EmbeddingNewParamsEncodingFormat{openai.EmbeddingNewParamsEncodingFormatFloat, openai.EmbeddingNewParamsEncodingFormatBase64} {
		got, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "e", Dimensions: openai.Int(16), EncodingFormat: f,
			Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"one two three"}}})
		if err != nil {
			t.Fatal(err)
		}
		key := strings.Repeat("x", 16) + "one two three"
		prev, ok := vectors[key]
		if !ok {
			t.Fatal("no earlier vector to compare with")
		}
		if !slices.Equal(prev, f32(got.Data[0].Embedding)) {
			t.Errorf("%s: vector %v differs from %v", f, got.Data[0].Embedding, prev)
		}
	}
}

func TestAzurePaths(t *testing.T) {
	s, ts := start(t, testConfig())
	ctx := t.Context()

	// The Azure flavour of the official client: /openai/deployments/{model}/...?api-version=..., api-key header.
	var paths []string
	record := option.WithMiddleware(func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		paths = append(paths, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery+" api-key="+r.Header.Get("Api-Key"))
		return next(r)
	})
	az := openai.NewClient(azure.WithEndpoint(ts.URL, "2024-10-21"), azure.WithAPIKey("azure-key"),
		azure.WithUnsafeAllowHTTP(), option.WithMaxRetries(0), record)
	p := userMsg("hello there world")
	p.Model = "my-deployment"
	p.MaxTokens = openai.Int(5)
	got, err := az.Chat.Completions.New(ctx, p)
	if err != nil {
		t.Fatalf("azure chat: %v", err)
	}
	if got.Choices[0].Message.Content != "swift model south limit model" || got.Model != "gpt-4.1-mini-"+testVersion {
		t.Errorf("azure chat answered %q with model %q", got.Choices[0].Message.Content, got.Model)
	}
	emb, err := az.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "my-embeddings",
		Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("a b")}})
	if err != nil || len(emb.Data) != 1 {
		t.Fatalf("azure embeddings: %v", err)
	}
	want := []string{
		"POST /openai/deployments/my-deployment/chat/completions?api-version=2024-10-21 api-key=azure-key",
		"POST /openai/deployments/my-embeddings/embeddings?api-version=2024-10-21 api-key=azure-key",
	}
	if !slices.Equal(paths, want) {
		t.Errorf("azure client used %q, want %q", paths, want)
	}

	// The Azure v1 surface with the plain client.
	v1 := client(ts.URL + "/openai/v1/")
	if _, err := v1.Chat.Completions.New(ctx, userMsg("x")); err != nil {
		t.Errorf("/openai/v1 chat: %v", err)
	}
	if _, err := v1.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "e", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("x")}}); err != nil {
		t.Errorf("/openai/v1 embeddings: %v", err)
	}
	for _, base := range []string{ts.URL + "/v1/", ts.URL + "/openai/v1/"} {
		bc := client(base)
		page, err := bc.Models.List(ctx)
		if err != nil {
			t.Fatalf("%s models: %v", base, err)
		}
		if len(page.Data) != 1 || page.Data[0].ID != "gpt-4.1-mini" || page.Data[0].OwnedBy != "modelsim" ||
			page.Data[0].JSON.ExtraFields["version"].Raw() != `"`+testVersion+`"` || page.Data[0].Created != 1744588800 {
			t.Errorf("%s models: %+v", base, page.Data)
		}
		m, err := bc.Models.Get(ctx, "gpt-4.1-mini")
		if err != nil || m.ID != "gpt-4.1-mini" {
			t.Errorf("%s model get: %v %+v", base, err, m)
		}
	}

	// Raw requests: any api-version, with or without credentials.
	for _, hdr := range [][]string{nil, {"api-key", "k"}, {"Authorization", "Bearer k"}} {
		resp, body := post(t, ts.URL+"/openai/deployments/d/chat/completions?api-version=2099-01-01-preview",
			`{"messages":[{"role":"user","content":"hi"}]}`, hdr...)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("x-modelsim-version") != testVersion {
			t.Errorf("headers %v: %d %s", hdr, resp.StatusCode, body)
		}
	}
	// Every chat and embeddings request above was counted, models were not.
	if got := s.Requests(); got != 2+2+3 {
		t.Errorf("Requests() = %d, want 7", got)
	}
}

func TestErrorsInOpenAIShape(t *testing.T) {
	_, ts := start(t, testConfig())
	tests := []struct {
		name, method, path, body string
		wantStatus               int
		wantParam                string
	}{
		{"bad json", "POST", "/v1/chat/completions", `{"messages":`, 400, ""},
		{"wrong type", "POST", "/v1/chat/completions", `{"messages":"hi"}`, 400, "messages"},
		{"bad content", "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":7}]}`, 400, "messages.content"},
		{"no messages", "POST", "/v1/chat/completions", `{"messages":[]}`, 400, "messages"},
		{"max_tokens 0", "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"max_tokens":0}`, 400, "max_tokens"},
		{"embeddings no input", "POST", "/v1/embeddings", `{"model":"e"}`, 400, "input"},
		{"embeddings empty array", "POST", "/v1/embeddings", `{"input":[]}`, 400, "input"},
		{"embeddings mixed", "POST", "/v1/embeddings", `{"input":["a",1]}`, 400, "input"},
		{"embeddings dimensions", "POST", "/v1/embeddings", `{"input":"a","dimensions":0}`, 400, "dimensions"},
		{"embeddings format", "POST", "/v1/embeddings", `{"input":"a","encoding_format":"hex"}`, 400, "encoding_format"},
		{"unknown path", "POST", "/v1/completions", `{}`, 404, ""},
		{"wrong method", "GET", "/v1/chat/completions", ``, 404, ""},
		{"unknown model", "GET", "/v1/models/gpt-5", ``, 404, "model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, ts.URL+tt.path, strings.NewReader(tt.body))
			resp, body := do(t, req)
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d %q, want %d: %s", resp.StatusCode, resp.Header.Get("Content-Type"), tt.wantStatus, body)
			}
			wantCode := ""
			if tt.name == "unknown model" {
				wantCode = "model_not_found"
			}
			wantError(t, body, wantCode, tt.wantParam)
		})
	}
	// The official client surfaces them as *openai.Error.
	c := client(ts.URL + "/v1/")
	_, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "m"})
	apiErr, ok := err.(*openai.Error)
	if !ok || apiErr.StatusCode != 400 || apiErr.Param != "messages" {
		t.Errorf("client error = %#v", err)
	}
}
