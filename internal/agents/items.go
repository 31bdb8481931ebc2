package agents

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/understudy/understudy/internal/store"
)

// apiItem is a conversation or response item in the OpenAI shape: a
// message (content parts input_text / output_text / refusal), a
// function_call or a function_call_output. It is what store.Item.Data
// holds, and what the APIs return.
type apiItem struct {
	Type   string
	ID     string
	Status string
	// message
	Role    string
	Content []contentPart
	// function_call and function_call_output
	CallID    string
	Name      string
	Arguments string
	// Output is the function's result as the client sent it: a JSON
	// string or an array of content parts.
	Output json.RawMessage
}

// contentPart is one part of a message's content.
type contentPart struct {
	Type string // input_text, output_text or refusal
	Text string // the text, or the refusal
}

// Content part types.
const (
	partInputText  = "input_text"
	partOutputText = "output_text"
	partRefusal    = "refusal"
)

func (p contentPart) MarshalJSON() ([]byte, error) {
	switch p.Type {
	case partOutputText:
		return json.Marshal(struct {
			Type        string `json:"type"`
			Text        string `json:"text"`
			Annotations []any  `json:"annotations"`
			Logprobs    []any  `json:"logprobs"`
		}{p.Type, p.Text, []any{}, []any{}})
	case partRefusal:
		return json.Marshal(struct {
			Type    string `json:"type"`
			Refusal string `json:"refusal"`
		}{p.Type, p.Text})
	default:
		return json.Marshal(struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}{p.Type, p.Text})
	}
}

func (it apiItem) MarshalJSON() ([]byte, error) {
	switch it.Type {
	case store.ItemFunctionCall:
		return json.Marshal(struct {
			Type      string `json:"type"`
			ID        string `json:"id"`
			CallID    string `json:"call_id"`
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
			Status    string `json:"status"`
		}{it.Type, it.ID, it.CallID, it.Name, it.Arguments, it.Status})
	case store.ItemFunctionCallOutput:
		out := it.Output
		if len(out) == 0 {
			out = json.RawMessage(`""`)
		}
		return json.Marshal(struct {
			Type   string          `json:"type"`
			ID     string          `json:"id"`
			CallID string          `json:"call_id"`
			Output json.RawMessage `json:"output"`
			Status string          `json:"status"`
		}{it.Type, it.ID, it.CallID, out, it.Status})
	default:
		content := it.Content
		if content == nil {
			content = []contentPart{}
		}
		return json.Marshal(struct {
			Type    string        `json:"type"`
			ID      string        `json:"id"`
			Status  string        `json:"status"`
			Role    string        `json:"role"`
			Content []contentPart `json:"content"`
		}{it.Type, it.ID, it.Status, it.Role, content})
	}
}

// UnmarshalJSON decodes an item leniently as decodeItem does, for stored
// data; client input goes through decodeItem to get field-naming errors.
func (it *apiItem) UnmarshalJSON(b []byte) error {
	v, err := decodeItem(b, "item")
	if err != nil {
		return err
	}
	*it = v
	return nil
}

// rawItem is every field an input item may carry.
type rawItem struct {
	Type      string          `json:"type"`
	ID        string          `json:"id"`
	Status    string          `json:"status"`
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	CallID    string          `json:"call_id"`
	Name      string          `json:"name"`
	Arguments *string         `json:"arguments"`
	Output    json.RawMessage `json:"output"`
}

// decodeItem validates and normalises one input item: a message (type
// "message" or just a role; content a string or parts), a function_call or
// a function_call_output. param names the item in errors ("input[2]").
func decodeItem(b []byte, param string) (apiItem, error) {
	var r rawItem
	if err := json.Unmarshal(b, &r); err != nil {
		return apiItem{}, jsonParamError(param, err)
	}
	it := apiItem{Type: r.Type, ID: r.ID, Status: r.Status}
	if it.Status == "" {
		it.Status = "completed"
	}
	switch r.Type {
	case "", store.ItemMessage:
		it.Type = store.ItemMessage
		switch r.Role {
		case "user", "assistant", "system", "developer":
		case "":
			return apiItem{}, badRequest(param+".role", "a message needs a role: user, assistant, system or developer")
		default:
			return apiItem{}, badRequest(param+".role", "role %q is not one of user, assistant, system, developer", r.Role)
		}
		it.Role = r.Role
		parts, err := decodeContent(r.Content, r.Role, param+".content")
		if err != nil {
			return apiItem{}, err
		}
		it.Content = parts
	case store.ItemFunctionCall:
		if r.CallID == "" {
			return apiItem{}, badRequest(param+".call_id", "a function_call needs a call_id")
		}
		if r.Name == "" {
			return apiItem{}, badRequest(param+".name", "a function_call needs a name")
		}
		it.CallID, it.Name = r.CallID, r.Name
		if r.Arguments != nil {
			it.Arguments = *r.Arguments
		}
	case store.ItemFunctionCallOutput:
		if r.CallID == "" {
			return apiItem{}, badRequest(param+".call_id", "a function_call_output needs the call_id of the function_call it answers")
		}
		it.CallID = r.CallID
		out := bytes.TrimSpace(r.Output)
		switch {
		case len(out) == 0 || string(out) == "null":
			return apiItem{}, badRequest(param+".output", "a function_call_output needs an output: a string or an array of content parts")
		case out[0] == '"':
		case out[0] == '[':
			if _, err := outputText(out); err != nil {
				return apiItem{}, badRequest(param+".output", "%s", err.Error())
			}
		default:
			return apiItem{}, badRequest(param+".output", "output must be a string or an array of content parts")
		}
		var buf bytes.Buffer
		json.Compact(&buf, out)
		it.Output = buf.Bytes()
	case "item_reference":
		return apiItem{}, badRequest(param+".type", "item_reference items are not supported; send the item itself")
	default:
		return apiItem{}, badRequest(param+".type", "item type %q is not supported (message, function_call, function_call_output)", r.Type)
	}
	if !utf8.ValidString(it.ID) || len(it.ID) > 128 {
		return apiItem{}, badRequest(param+".id", "bad item id")
	}
	return it, nil
}

// decodeContent reads a message's content: a string, or an array of parts
// input_text, output_text, text or refusal.
func decodeContent(raw json.RawMessage, role, param string) ([]contentPart, error) {
	raw = bytes.TrimSpace(raw)
	textType := partInputText
	if role == "assistant" {
		textType = partOutputText
	}
	if len(raw) == 0 || string(raw) == "null" {
		return nil, badRequest(param, "a message needs content: a string or an array of content parts")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, badRequest(param, "content must be a string or an array of content parts")
		}
		return []contentPart{{Type: textType, Text: s}}, nil
	}
	var parts []struct {
		Type    string  `json:"type"`
		Text    *string `json:"text"`
		Refusal *string `json:"refusal"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, badRequest(param, "content must be a string or an array of content parts")
	}
	out := make([]contentPart, 0, len(parts))
	for i, p := range parts {
		pp := fmt.Sprintf("%s[%d]", param, i)
		switch p.Type {
		case partInputText, partOutputText, "text":
			if p.Text == nil {
				return nil, badRequest(pp+".text", "a %s part needs text", p.Type)
			}
			out = append(out, contentPart{Type: textType, Text: *p.Text})
		case partRefusal:
			if role != "assistant" || p.Refusal == nil {
				return nil, badRequest(pp, "a refusal part belongs to an assistant message and needs refusal text")
			}
			out = append(out, contentPart{Type: partRefusal, Text: *p.Refusal})
		default:
			return nil, badRequest(pp+".type", "content part type %q is not supported (input_text, output_text, refusal)", p.Type)
		}
	}
	return out, nil
}

// outputText is the text of a function_call_output's output: the string,
// or the text parts joined.
func outputText(out json.RawMessage) (string, error) {
	out = bytes.TrimSpace(out)
	if len(out) > 0 && out[0] == '"' {
		var s string
		if err := json.Unmarshal(out, &s); err != nil {
			return "", fmt.Errorf("output must be a string or an array of content parts")
		}
		return s, nil
	}
	var parts []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	}
	if err := json.Unmarshal(out, &parts); err != nil {
		return "", fmt.Errorf("output must be a string or an array of content parts")
	}
	var texts []string
	for i, p := range parts {
		if p.Type != partInputText && p.Type != "text" && p.Type != partOutputText {
			return "", fmt.Errorf("output[%d]: part type %q is not supported (input_text)", i, p.Type)
		}
		if p.Text != nil {
			texts = append(texts, *p.Text)
		}
	}
	return strings.Join(texts, "\n"), nil
}

// text is a message's text parts joined (refusals excluded).
func (it apiItem) text() string {
	var b strings.Builder
	for _, p := range it.Content {
		if p.Type != partRefusal {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// jsonParamError turns a JSON decoding error into a 400 naming param and,
// when known, the field; never a Go type.
func jsonParamError(param string, err error) *apiError {
	if e, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && e.Field != "" {
		p := e.Field
		if param != "" {
			p = param + "." + e.Field
		}
		return badRequest(p, "invalid type for %s", p)
	}
	if param == "" {
		return badRequest("", "the body is not valid JSON")
	}
	return badRequest(param, "%s is not a valid JSON object", param)
}

// newItemID is a fresh ID for an item of typ.
func newItemID(typ string) string {
	switch typ {
	case store.ItemFunctionCall:
		return store.NewID(store.PrefixFunctionCall)
	case store.ItemFunctionCallOutput:
		return store.NewID(store.PrefixFunctionCallOutput)
	}
	return store.NewID(store.PrefixMessage)
}

// toStoreItem is the store's view of it; its ID must be set.
func (it apiItem) toStoreItem() (store.Item, error) {
	data, err := json.Marshal(it)
	if err != nil {
		return store.Item{}, fmt.Errorf("encode item %s: %w", it.ID, err)
	}
	return store.Item{ID: it.ID, Type: it.Type, Role: it.Role, Data: data}, nil
}

// decodeInputList reads a JSON array of items (≤ max when max > 0), each
// with a fresh ID.
func decodeInputList(raw json.RawMessage, param string, max int) ([]apiItem, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, badRequest(param, "%s must be an array of items", param)
	}
	if max > 0 && len(list) > max {
		return nil, badRequest(param, "at most %d items per request, got %d", max, len(list))
	}
	out := make([]apiItem, 0, len(list))
	for i, b := range list {
		it, err := decodeItem(b, fmt.Sprintf("%s[%d]", param, i))
		if err != nil {
			return nil, err
		}
		it.ID = newItemID(it.Type)
		out = append(out, it)
	}
	return out, nil
}
