package modelsim

import (
	"context"
	"net/http"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
)

func weatherTools() []openai.ChatCompletionToolUnionParam {
	return []openai.ChatCompletionToolUnionParam{
		openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name: "get_weather",
			Parameters: shared.FunctionParameters{
				"type": "object",
				"properties": map[string]any{
					"city":  map[string]any{"type": "string"},
					"days":  map[string]any{"type": "integer"},
					"unit":  map[string]any{"type": "string", "enum": []string{"c", "f"}},
					"daily": map[string]any{"type": "boolean"},
					"note":  map[string]any{"type": "string"},
				},
				"required": []string{"city", "days", "unit", "daily"},
			},
		}),
		openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name:       "get_time",
			Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"zone": map[string]any{"type": "string"}}, "required": []string{"zone"}},
		}),
	}
}

// collectStream runs a streaming request and returns the accumulated
// completion and the finish reason.
func collectStream(t *testing.T, c openai.Client, p openai.ChatCompletionNewParams) openai.ChatCompletion {
	t.Helper()
	s := c.Chat.Completions.NewStreaming(context.Background(), p)
	var acc openai.ChatCompletionAccumulator
	for s.Next() {
		acc.AddChunk(s.Current())
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return acc.ChatCompletion
}

func TestToolCalls(t *testing.T) {
	_, ts := start(t, testConfig())
	c := client(ts.URL + "/v1")
	user := openai.UserMessage("What is the weather in Paris?")

	tests := []struct {
		name     string
		params   openai.ChatCompletionNewParams
		wantTool string
		wantArgs string
	}{
		{
			name:     "first tool",
			params:   openai.ChatCompletionNewParams{Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{user}, Tools: weatherTools()},
			wantTool: "get_weather",
			wantArgs: `{"city":"Paris","days":6,"unit":"c","daily":true}`,
		},
		{
			name: "named by tool_choice",
			params: openai.ChatCompletionNewParams{Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{user}, Tools: weatherTools(),
				ToolChoice: openai.ToolChoiceOptionFunctionToolChoice(openai.ChatCompletionNamedToolChoiceFunctionParam{Name: "get_time"})},
			wantTool: "get_time",
			wantArgs: `{"zone":"Paris"}`,
		},
		{
			name: "tool_choice none answers text",
			params: openai.ChatCompletionNewParams{Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{user}, Tools: weatherTools(),
				ToolChoice: openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("none")}},
		},
		{
			name:   "no tools answers text",
			params: openai.ChatCompletionNewParams{Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{user}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Chat.Completions.New(context.Background(), tt.params)
			if err != nil {
				t.Fatal(err)
			}
			streamed := collectStream(t, c, tt.params)
			for _, res := range []openai.ChatCompletion{*got, streamed} {
				ch := res.Choices[0]
				if tt.wantTool == "" {
					if len(ch.Message.ToolCalls) != 0 || ch.FinishReason == "tool_calls" || ch.Message.Content == "" {
						t.Fatalf("want a text answer, got %+v finish %q", ch.Message, ch.FinishReason)
					}
					continue
				}
				if ch.FinishReason != "tool_calls" {
					t.Errorf("finish_reason = %q, want tool_calls", ch.FinishReason)
				}
				if len(ch.Message.ToolCalls) != 1 {
					t.Fatalf("tool calls = %+v, want 1", ch.Message.ToolCalls)
				}
				call := ch.Message.ToolCalls[0]
				if call.Function.Name != tt.wantTool || call.Function.Arguments != tt.wantArgs {
					t.Errorf("call = %s(%s), want %s(%s)", call.Function.Name, call.Function.Arguments, tt.wantTool, tt.wantArgs)
				}
				if call.ID == "" || call.ID != got.Choices[0].Message.ToolCalls[0].ID {
					t.Errorf("call id %q differs from the non-stream one (deterministic ids expected)", call.ID)
				}
			}
		})
	}
}

func TestToolResultIsQuoted(t *testing.T) {
	_, ts := start(t, testConfig())
	c := client(ts.URL + "/v1")
	p := openai.ChatCompletionNewParams{Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{
		openai.UserMessage("What is the weather in Paris?"),
	}, Tools: weatherTools()}
	first, err := c.Chat.Completions.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	call := first.Choices[0].Message.ToolCalls[0]
	p.Messages = append(p.Messages, first.Choices[0].Message.ToParam(), openai.ToolMessage(`{"temp_c": 21,  "sky": "clear"}`, call.ID))
	got, err := c.Chat.Completions.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	want := `The tool returned: "{"temp_c": 21,  "sky": "clear"}".`
	if ch := got.Choices[0]; ch.Message.Content != want || ch.FinishReason != "stop" || len(ch.Message.ToolCalls) != 0 {
		t.Errorf("answer = %q (finish %q), want %q", ch.Message.Content, ch.FinishReason, want)
	}
	if s := collectStream(t, c, p); s.Choices[0].Message.Content != want {
		t.Errorf("streamed answer = %q, want %q", s.Choices[0].Message.Content, want)
	}
}

func TestToolChoiceErrors(t *testing.T) {
	_, ts := start(t, testConfig())
	tests := []struct {
		name, body, param string
	}{
		{"unknown named tool", `{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"a"}}],"tool_choice":{"type":"function","function":{"name":"b"}}}`, "tool_choice"},
		{"bad schema", `{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"a","parameters":[1]}}]}`, "tools[0].function.parameters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := post(t, ts.URL+"/v1/chat/completions", tt.body)
			if res.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			wantError(t, body, "", tt.param)
		})
	}
}
