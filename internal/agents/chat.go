package agents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/understudy/understudy/internal/oaierr"
	"github.com/understudy/understudy/internal/store"
)

// The translation between the Responses API and chat completions: items
// become messages (consecutive function_call items one assistant message
// with tool_calls, function_call_output a tool message), function tools
// become chat function tools, and the completion becomes output items.

type chatMessage struct {
	Role       string         `json:"role"`
	Content    any            `json:"content"` // string, []chatPart or nil
	Refusal    string         `json:"refusal,omitempty"`
	ToolCalls  []chatToolCall `json:"tool_calls,omitempty"`
	ToolCallID string         `json:"tool_call_id,omitempty"`
}

type chatPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type chatToolCall struct {
	Index    *int   `json:"index,omitempty"` // streaming deltas only
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type chatTool struct {
	Type     string           `json:"type"`
	Function chatToolFunction `json:"function"`
}

type chatToolFunction struct {
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	Parameters  map[string]any `json:"parameters"`
	Strict      *bool          `json:"strict,omitempty"`
}

type chatRequest struct {
	Model               string         `json:"model"`
	Messages            []chatMessage  `json:"messages"`
	Tools               []chatTool     `json:"tools,omitempty"`
	ToolChoice          any            `json:"tool_choice,omitempty"`
	ParallelToolCalls   *bool          `json:"parallel_tool_calls,omitempty"`
	Temperature         *float64       `json:"temperature,omitempty"`
	TopP                *float64       `json:"top_p,omitempty"`
	MaxCompletionTokens *int64         `json:"max_completion_tokens,omitempty"`
	User                string         `json:"user,omitempty"`
	Stream              bool           `json:"stream,omitempty"`
	StreamOptions       *streamOptions `json:"stream_options,omitempty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

// usage is the Responses usage object.
type usage struct {
	InputTokens        int64 `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int64 `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int64 `json:"total_tokens"`
}

func (u *chatUsage) responses() *usage {
	if u == nil {
		return nil
	}
	r := &usage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
	if u.PromptTokensDetails != nil {
		r.InputTokensDetails.CachedTokens = u.PromptTokensDetails.CachedTokens
	}
	if u.CompletionTokensDetails != nil {
		r.OutputTokensDetails.ReasoningTokens = u.CompletionTokensDetails.ReasoningTokens
	}
	return r
}

// chatMessages translates instructions and items into chat messages.
func chatMessages(instructions string, items []apiItem) []chatMessage {
	msgs := make([]chatMessage, 0, len(items)+1)
	if instructions != "" {
		msgs = append(msgs, chatMessage{Role: "system", Content: instructions})
	}
	for _, it := range items {
		switch it.Type {
		case store.ItemFunctionCall:
			var tc chatToolCall
			tc.ID, tc.Type = it.CallID, "function"
			tc.Function.Name, tc.Function.Arguments = it.Name, it.Arguments
			// Calls join the assistant message right before them.
			if n := len(msgs); n > 0 && msgs[n-1].Role == "assistant" {
				msgs[n-1].ToolCalls = append(msgs[n-1].ToolCalls, tc)
				continue
			}
			msgs = append(msgs, chatMessage{Role: "assistant", ToolCalls: []chatToolCall{tc}})
		case store.ItemFunctionCallOutput:
			text, _ := outputText(it.Output)
			msgs = append(msgs, chatMessage{Role: "tool", ToolCallID: it.CallID, Content: text})
		default:
			m := chatMessage{Role: it.Role}
			var parts []chatPart
			for _, p := range it.Content {
				if p.Type == partRefusal {
					m.Refusal += p.Text
					continue
				}
				parts = append(parts, chatPart{Type: "text", Text: p.Text})
			}
			switch {
			case len(parts) == 1:
				m.Content = parts[0].Text
			case len(parts) > 1:
				m.Content = parts
			case it.Role != "assistant":
				m.Content = ""
			}
			msgs = append(msgs, m)
		}
	}
	return msgs
}

// checkCallOutputs makes sure every function_call_output in input answers
// a function_call that comes before it (in history or input): a chat
// backend rejects a tool message without its call.
func checkCallOutputs(history, input []apiItem) error {
	calls := map[string]bool{}
	for _, it := range history {
		if it.Type == store.ItemFunctionCall {
			calls[it.CallID] = true
		}
	}
	for i, it := range input {
		switch it.Type {
		case store.ItemFunctionCall:
			calls[it.CallID] = true
		case store.ItemFunctionCallOutput:
			if !calls[it.CallID] {
				return badRequest(fmt.Sprintf("input[%d].call_id", i), "no function_call with call_id %q precedes this function_call_output", it.CallID)
			}
		}
	}
	return nil
}

// chatTools translates function tools.
func chatTools(tools []Tool) []chatTool {
	out := make([]chatTool, 0, len(tools))
	for _, t := range tools {
		params := t.Parameters
		if params == nil {
			params = map[string]any{"type": "object", "properties": map[string]any{}}
		}
		out = append(out, chatTool{Type: "function", Function: chatToolFunction{Name: t.Name, Description: t.Description, Parameters: params, Strict: t.Strict}})
	}
	return out
}

// chatToolChoice translates a Responses tool_choice (validated).
func chatToolChoice(tc json.RawMessage) any {
	if len(tc) == 0 {
		return nil
	}
	if tc[0] == '"' {
		return tc
	}
	var named struct {
		Name string `json:"name"`
	}
	json.Unmarshal(tc, &named)
	return map[string]any{"type": "function", "function": map[string]string{"name": named.Name}}
}

// chatCompletion is the part of a chat completion the runtime reads.
type chatCompletion struct {
	Choices []struct {
		Message struct {
			Content   *string        `json:"content"`
			Refusal   *string        `json:"refusal"`
			ToolCalls []chatToolCall `json:"tool_calls"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *chatUsage `json:"usage"`
}

// modelResult is what a completion produced, as Responses output.
type modelResult struct {
	output []apiItem
	usage  *usage
	finish string
}

func messageItem(id, text, refusal string) apiItem {
	it := apiItem{Type: store.ItemMessage, ID: id, Status: "completed", Role: "assistant"}
	if text != "" || refusal == "" {
		it.Content = append(it.Content, contentPart{Type: partOutputText, Text: text})
	}
	if refusal != "" {
		it.Content = append(it.Content, contentPart{Type: partRefusal, Text: refusal})
	}
	return it
}

func callItem(id, callID, name, args string) apiItem {
	if callID == "" {
		callID = store.NewID("call_")
	}
	return apiItem{Type: store.ItemFunctionCall, ID: id, Status: "completed", CallID: callID, Name: name, Arguments: args}
}

// cutShort reports whether a finish_reason left the answer incomplete.
func cutShort(finish string) bool { return finish == "length" || finish == "content_filter" }

// parseCompletion turns a non-streaming chat completion into output items.
func parseCompletion(body []byte) (modelResult, error) {
	var c chatCompletion
	if err := json.Unmarshal(body, &c); err != nil || len(c.Choices) == 0 {
		return modelResult{}, errors.New("the model answered something that is not a chat completion")
	}
	ch := c.Choices[0]
	res := modelResult{usage: c.Usage.responses(), finish: ch.FinishReason}
	text, refusal := "", ""
	if ch.Message.Content != nil {
		text = *ch.Message.Content
	}
	if ch.Message.Refusal != nil {
		refusal = *ch.Message.Refusal
	}
	if text != "" || refusal != "" || len(ch.Message.ToolCalls) == 0 {
		m := messageItem(store.NewID(store.PrefixMessage), text, refusal)
		if cutShort(res.finish) {
			m.Status = "incomplete"
		}
		res.output = append(res.output, m)
	}
	for _, tc := range ch.Message.ToolCalls {
		res.output = append(res.output, callItem(store.NewID(store.PrefixFunctionCall), tc.ID, tc.Function.Name, tc.Function.Arguments))
	}
	return res, nil
}

// backendError maps a model backend's non-2xx answer to the client's
// error: the provider's own message for a 4xx it will repeat, a 429 as
// such, anything else a 502.
func backendError(deployment string, status int, body []byte) *apiError {
	var e oaierr.Body
	json.Unmarshal(body, &e)
	switch {
	case status == http.StatusTooManyRequests:
		return &apiError{Status: http.StatusTooManyRequests, Code: "rate_limit_exceeded",
			Message: fmt.Sprintf("deployment %s is rate limited; retry later", deployment)}
	case status >= 400 && status < 500 && e.Error.Message != "":
		code := ""
		if e.Error.Code != nil {
			code = *e.Error.Code
		}
		return &apiError{Status: http.StatusBadRequest, Code: code, Message: "the model rejected the request: " + e.Error.Message}
	}
	return &apiError{Status: http.StatusBadGateway, Code: "upstream_error",
		Message: fmt.Sprintf("deployment %s answered %d", deployment, status)}
}

// completerError maps an error of Completer.Do.
func completerError(deployment string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if e, ok := errors.AsType[httpStatuser](err); ok {
		st := e.HTTPStatus()
		if st < 400 {
			st = http.StatusBadGateway
		}
		return &apiError{Status: st, Code: "upstream_error", Message: fmt.Sprintf("deployment %s: %s", deployment, err.Error())}
	}
	return &apiError{Status: http.StatusBadGateway, Code: "upstream_error",
		Message: fmt.Sprintf("deployment %s did not answer", deployment)}
}
