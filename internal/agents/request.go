package agents

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"

	"github.com/understudy/understudy/internal/store"
)

// AgentRef names an applied agent: agent_reference (or agent) in a
// Responses request. An empty Version means the version applied last.
type AgentRef struct {
	Type    string `json:"type"`
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// responseRequest is a decoded, validated POST /v1/responses body.
type responseRequest struct {
	Model              string
	Agent              *AgentRef
	Input              []apiItem // fresh IDs
	Conversation       string
	PreviousResponseID string
	Instructions       string
	Tools              []Tool
	ToolChoice         json.RawMessage // Responses shape, validated; nil when absent
	Stream             bool
	Store              bool
	Metadata           map[string]string
	Temperature        *float64
	TopP               *float64
	MaxOutputTokens    *int64
	ParallelToolCalls  *bool
	User               string
	// Hash identifies the request body (canonical JSON) for idempotency.
	Hash string
}

// rawResponseRequest is the wire form. Fields Understudy does not use
// (include, text, reasoning, truncation…) are accepted and ignored.
type rawResponseRequest struct {
	Model              string            `json:"model"`
	Agent              json.RawMessage   `json:"agent"`
	AgentReference     json.RawMessage   `json:"agent_reference"`
	Input              json.RawMessage   `json:"input"`
	Conversation       json.RawMessage   `json:"conversation"`
	PreviousResponseID *string           `json:"previous_response_id"`
	Instructions       *string           `json:"instructions"`
	Tools              []json.RawMessage `json:"tools"`
	ToolChoice         json.RawMessage   `json:"tool_choice"`
	Stream             *bool             `json:"stream"`
	Store              *bool             `json:"store"`
	Background         *bool             `json:"background"`
	Metadata           map[string]string `json:"metadata"`
	Temperature        *float64          `json:"temperature"`
	TopP               *float64          `json:"top_p"`
	MaxOutputTokens    *int64            `json:"max_output_tokens"`
	ParallelToolCalls  *bool             `json:"parallel_tool_calls"`
	User               *string           `json:"user"`
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// decodeResponseRequest decodes and validates a POST /v1/responses body.
// Errors are 400s that name the offending param.
func decodeResponseRequest(body []byte) (*responseRequest, error) {
	var raw rawResponseRequest
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, jsonParamError("", err)
	}
	req := &responseRequest{Model: raw.Model, Store: true, Metadata: raw.Metadata,
		Temperature: raw.Temperature, TopP: raw.TopP, MaxOutputTokens: raw.MaxOutputTokens,
		ParallelToolCalls: raw.ParallelToolCalls}
	if raw.Stream != nil {
		req.Stream = *raw.Stream
	}
	if raw.Store != nil {
		req.Store = *raw.Store
	}
	if raw.Background != nil && *raw.Background {
		return nil, badRequest("background", "background responses are not supported")
	}
	if raw.Instructions != nil {
		req.Instructions = *raw.Instructions
	}
	if raw.User != nil {
		req.User = *raw.User
	}

	// Agent reference: agent_reference, or the older agent key.
	for _, a := range []struct {
		param string
		raw   json.RawMessage
	}{{"agent_reference", raw.AgentReference}, {"agent", raw.Agent}} {
		if isNull(a.raw) {
			continue
		}
		var ref AgentRef
		if err := json.Unmarshal(a.raw, &ref); err != nil {
			return nil, badRequest(a.param, "%s must be an object {\"type\": \"agent_reference\", \"name\": …, \"version\"?: …}", a.param)
		}
		if ref.Type != "" && ref.Type != "agent_reference" {
			return nil, badRequest(a.param+".type", "type must be agent_reference, got %q", ref.Type)
		}
		if !agentNameRE.MatchString(ref.Name) {
			return nil, badRequest(a.param+".name", "an agent name is required (letters, digits, '.', '_', '-')")
		}
		ref.Type = "agent_reference"
		if req.Agent != nil && *req.Agent != ref {
			return nil, badRequest("agent", "agent and agent_reference name different agents")
		}
		req.Agent = &ref
	}
	if req.Model == "" && req.Agent == nil {
		return nil, badRequest("model", "model (a deployment) or agent_reference is required")
	}

	// Input: a string (one user message) or items.
	in := bytes.TrimSpace(raw.Input)
	switch {
	case isNull(in):
		return nil, badRequest("input", "input is required: a string or an array of items")
	case in[0] == '"':
		var text string
		if err := json.Unmarshal(in, &text); err != nil {
			return nil, badRequest("input", "input must be a string or an array of items")
		}
		req.Input = []apiItem{{Type: store.ItemMessage, ID: newItemID(store.ItemMessage), Status: "completed", Role: "user",
			Content: []contentPart{{Type: partInputText, Text: text}}}}
	case in[0] == '[':
		items, err := decodeInputList(in, "input", 0)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return nil, badRequest("input", "input must not be empty")
		}
		req.Input = items
	default:
		return nil, badRequest("input", "input must be a string or an array of items")
	}

	// Conversation (an ID or {"id"}) or previous_response_id, not both.
	if c := bytes.TrimSpace(raw.Conversation); !isNull(c) {
		if c[0] == '"' {
			json.Unmarshal(c, &req.Conversation)
		} else {
			var obj struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(c, &obj); err != nil {
				return nil, badRequest("conversation", "conversation must be an ID or {\"id\": …}")
			}
			req.Conversation = obj.ID
		}
		if req.Conversation == "" {
			return nil, badRequest("conversation", "conversation must be an ID or {\"id\": …}")
		}
	}
	if raw.PreviousResponseID != nil {
		req.PreviousResponseID = *raw.PreviousResponseID
		if req.PreviousResponseID == "" {
			return nil, badRequest("previous_response_id", "previous_response_id must not be empty")
		}
	}
	if req.Conversation != "" && req.PreviousResponseID != "" {
		return nil, badRequest("conversation", "conversation and previous_response_id cannot be used together")
	}
	if req.Conversation != "" && !req.Store {
		return nil, badRequest("store", "a turn in a conversation is stored: store cannot be false with conversation")
	}

	// Tools: function tools only.
	seen := map[string]bool{}
	for i, b := range raw.Tools {
		p := fmt.Sprintf("tools[%d]", i)
		var t Tool
		dec := json.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&t); err != nil {
			return nil, badRequest(p, "a tool must be an object {\"type\": \"function\", \"name\", \"parameters\"…}")
		}
		if t.Type != "function" {
			return nil, badRequest(p+".type", "tool type %q is not supported: only function tools (the client runs them)", t.Type)
		}
		if !toolNameRE.MatchString(t.Name) {
			return nil, badRequest(p+".name", "a tool name is 1-64 letters, digits, '_' or '-'")
		}
		if seen[t.Name] {
			return nil, badRequest(p+".name", "duplicate tool %q", t.Name)
		}
		seen[t.Name] = true
		if t.Parameters != nil {
			if msg := checkSchema(t.Parameters); msg != "" {
				return nil, badRequest(p+".parameters", "%s", msg)
			}
		}
		req.Tools = append(req.Tools, t)
	}
	if !isNull(raw.ToolChoice) {
		tc, err := checkToolChoice(raw.ToolChoice)
		if err != nil {
			return nil, err
		}
		req.ToolChoice = tc
	}

	if err := checkMetadata(req.Metadata, "metadata"); err != nil {
		return nil, err
	}
	if t := req.Temperature; t != nil && (*t < 0 || *t > 2 || math.IsNaN(*t)) {
		return nil, badRequest("temperature", "temperature must be between 0 and 2")
	}
	if p := req.TopP; p != nil && (*p < 0 || *p > 1 || math.IsNaN(*p)) {
		return nil, badRequest("top_p", "top_p must be between 0 and 1")
	}
	if m := req.MaxOutputTokens; m != nil && *m < 1 {
		return nil, badRequest("max_output_tokens", "max_output_tokens must be at least 1")
	}
	req.Hash = requestHash(body)
	return req, nil
}

// checkToolChoice accepts "auto", "none", "required" or
// {"type": "function", "name": …} and returns it compacted.
func checkToolChoice(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if raw[0] == '"' {
		var s string
		json.Unmarshal(raw, &s)
		switch s {
		case "auto", "none", "required":
			return raw, nil
		}
		return nil, badRequest("tool_choice", "tool_choice must be auto, none, required or {\"type\": \"function\", \"name\": …}")
	}
	var named struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(raw, &named); err != nil || named.Type != "function" || named.Name == "" {
		return nil, badRequest("tool_choice", "tool_choice must be auto, none, required or {\"type\": \"function\", \"name\": …}")
	}
	b, _ := json.Marshal(named)
	return b, nil
}

// requestHash is the SHA-256 of the body's canonical JSON (object keys
// sorted, no insignificant space), so a retry that re-encodes the same
// request matches. stream and stream_options are left out: a turn retried
// as a stream (or not) is the same turn, and is replayed in the form asked.
func requestHash(body []byte) string {
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err == nil {
		if m, ok := v.(map[string]any); ok {
			delete(m, "stream")
			delete(m, "stream_options")
		}
		if canon, err := json.Marshal(v); err == nil {
			body = canon
		}
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}
