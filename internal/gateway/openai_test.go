package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"

	"github.com/understudy/understudy/internal/modelsim"
	"github.com/understudy/understudy/internal/topology"
)

// seen is what a backend received: method, path and query, credentials
// and the model of the body.
type seen struct {
	Path, Auth, APIKey, Model string
}

// recorder wraps a backend handler and records every request.
type recorder struct {
	h  http.Handler
	mu sync.Mutex
	rs []seen
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var m struct {
		Model string `json:"model"`
	}
	json.Unmarshal(body, &m)
	rec.mu.Lock()
	rec.rs = append(rec.rs, seen{Path: r.URL.RequestURI(), Auth: r.Header.Get("Authorization"), APIKey: r.Header.Get("Api-Key"), Model: m.Model})
	rec.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec.h.ServeHTTP(w, r)
}

func (rec *recorder) seen() []seen {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.rs)
}

func newRecordedSim(t *testing.T, model string) (*modelsim.Server, *recorder, string) {
	s := modelsim.New(modelsim.Config{Model: model, Version: "2024-07-18", MaxTokens: 5}, nil)
	rec := &recorder{h: s.Handler()}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return s, rec, srv.URL
}

func client(base string, opts ...option.RequestOption) openai.Client {
	return openai.NewClient(append([]option.RequestOption{
		option.WithBaseURL(base), option.WithAPIKey(keyAlice), option.WithMaxRetries(0),
	}, opts...)...)
}

func userMsg(model, text string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)},
	}
}

// TestOfficialClient drives a running gateway with openai-go: chat (plain
// and streamed), embeddings and models, on the OpenAI and Azure surfaces,
// with a backend that serves the deployment under another model name.
func TestOfficialClient(t *testing.T) {
	_, chatRec, chatURL := newRecordedSim(t, "gpt-4o")
	_, azRec, azURL := newRecordedSim(t, "text-embedding-3-small")
	tp := topo(t, []string{"chat", "embed"}, map[string][]topology.Backend{
		"chat": {{Name: "oai", Kind: topology.KindOpenAI, URL: chatURL, Model: "gpt-4o", APIKey: topology.NewSecret("backend-secret")}},
		"embed": {{Name: "aoai", Kind: topology.KindAzureOpenAI, URL: azURL, Model: "emb-deploy",
			APIKey: topology.NewSecret("azure-secret"), APIVersion: "2024-10-21"}},
	}, nil)
	g := startGateway(t, tp)
	ctx := t.Context()
	const answeredBy = "gpt-4o-2024-07-18" // the model that answered, not the deployment name

	for _, base := range []string{g.url + "/v1/", g.url + "/openai/v1/"} {
		c := client(base)
		t.Run("chat "+base[len(g.url):], func(t *testing.T) {
			p := userMsg("chat", "hello there world")
			p.MaxTokens = openai.Int(4)
			got, err := c.Chat.Completions.New(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if got.Model != answeredBy || got.Usage.PromptTokens != 3 || got.Usage.CompletionTokens != 4 || got.Usage.TotalTokens != 7 {
				t.Errorf("model %q usage %+v, want %s 3+4=7", got.Model, got.Usage, answeredBy)
			}
			if n := len(strings.Fields(got.Choices[0].Message.Content)); n != 4 || got.Choices[0].FinishReason != "length" {
				t.Errorf("content %q finish %q", got.Choices[0].Message.Content, got.Choices[0].FinishReason)
			}
		})
		t.Run("stream "+base[len(g.url):], func(t *testing.T) {
			p := userMsg("chat", "hello there world")
			p.MaxTokens = openai.Int(3)
			p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			s := c.Chat.Completions.NewStreaming(ctx, p)
			var acc openai.ChatCompletionAccumulator
			chunks := 0
			for s.Next() {
				acc.AddChunk(s.Current())
				chunks++
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			// role chunk, 3 tokens, finish chunk, usage chunk
			if chunks != 6 || len(strings.Fields(acc.Choices[0].Message.Content)) != 3 {
				t.Errorf("%d chunks, content %q", chunks, acc.Choices[0].Message.Content)
			}
			if acc.Model != answeredBy || acc.Usage.TotalTokens != 6 {
				t.Errorf("model %q usage %+v", acc.Model, acc.Usage)
			}
		})
		t.Run("embeddings "+base[len(g.url):], func(t *testing.T) {
			got, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "embed",
				Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a b", "c"}}})
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Data) != 2 || len(got.Data[0].Embedding) == 0 || got.Model != "text-embedding-3-small-2024-07-18" || got.Usage.PromptTokens != 3 {
				t.Errorf("embeddings: %d vectors, model %q usage %+v", len(got.Data), got.Model, got.Usage)
			}
		})
		t.Run("models "+base[len(g.url):], func(t *testing.T) {
			page, err := c.Models.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, m := range page.Data {
				ids = append(ids, m.ID)
			}
			if !slices.Equal(ids, []string{"chat", "embed"}) || page.Data[0].JSON.ExtraFields["version"].Raw() != `"2024-07-18"` {
				t.Errorf("models %v %+v", ids, page.Data[0])
			}
			m, err := c.Models.Get(ctx, "embed")
			if err != nil || m.ID != "embed" {
				t.Errorf("get model: %v %+v", err, m)
			}
		})
	}

	t.Run("azure client", func(t *testing.T) {
		var paths []string
		record := option.WithMiddleware(func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
			paths = append(paths, r.URL.Path)
			return next(r)
		})
		az := openai.NewClient(azure.WithEndpoint(g.url, "2024-10-21"), azure.WithAPIKey(keyAlice),
			azure.WithUnsafeAllowHTTP(), option.WithMaxRetries(0), record)
		got, err := az.Chat.Completions.New(ctx, userMsg("chat", "hello there world"))
		if err != nil {
			t.Fatal(err)
		}
		if got.Model != answeredBy || got.Usage.TotalTokens != 3+5 {
			t.Errorf("model %q usage %+v", got.Model, got.Usage)
		}
		s := az.Chat.Completions.NewStreaming(ctx, userMsg("chat", "hi"))
		n := 0
		for s.Next() {
			n++
		}
		if s.Err() != nil || n != 7 {
			t.Errorf("azure stream: %d chunks, %v", n, s.Err())
		}
		emb, err := az.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "embed",
			Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("a b")}})
		if err != nil || len(emb.Data) != 1 {
			t.Fatalf("azure embeddings: %v", err)
		}
		want := []string{"/openai/deployments/chat/chat/completions", "/openai/deployments/chat/chat/completions", "/openai/deployments/embed/embeddings"}
		if !slices.Equal(paths, want) {
			t.Errorf("azure client used %q, want %q", paths, want)
		}
	})

	// What the backends saw: the openai backend gets its own model name and
	// bearer key, the azure backend its deployment path, api-version and
	// api-key; no client key ever reaches a backend.
	for _, s := range chatRec.seen() {
		if s.Path != "/v1/chat/completions" || s.Model != "gpt-4o" || s.Auth != "Bearer backend-secret" || s.APIKey != "" {
			t.Errorf("openai backend saw %+v", s)
		}
	}
	for _, s := range azRec.seen() {
		if s.Path != "/openai/deployments/emb-deploy/embeddings?api-version=2024-10-21" || s.APIKey != "azure-secret" || s.Auth != "" {
			t.Errorf("azure backend saw %+v", s)
		}
	}
	if len(chatRec.seen()) != 6 || len(azRec.seen()) != 3 {
		t.Errorf("backends saw %d chat and %d embeddings requests, want 6 and 3", len(chatRec.seen()), len(azRec.seen()))
	}
}
