package modelsim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Tool calls. A chat request whose last message is a user message, that
// offers function tools and whose tool_choice is not "none", is answered
// with one call to the tool tool_choice names, or else the first tool, with
// arguments built from the schema's required properties: a string is the
// last word of the user's text (an enum's first value), a number or integer
// the count of words in it, a boolean true, an array [] and an object {}.
// A request whose last message is a tool result is answered with text that
// quotes the result. Both are deterministic, stream or not, and carry no
// pacing beyond TTFT.

// toolRequest is the part of a chat request tool turns read.
type toolRequest struct {
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Tools []struct {
		Type     string `json:"type"`
		Function struct {
			Name       string          `json:"name"`
			Parameters json.RawMessage `json:"parameters"`
		} `json:"function"`
	} `json:"tools"`
	ToolChoice json.RawMessage `json:"tool_choice"`
}

// toolTurn is how modelsim answers a tool turn: a call (Name, Arguments,
// CallID) or, when Name is empty, the text Quote.
type toolTurn struct {
	Name, Arguments, CallID string
	Quote                   string
}

var keyTool = []byte(`"tool`)

// decodeToolTurn returns the tool turn a request asks for, or nil when it
// is an ordinary chat request. Requests that mention no tool skip the second
// decode, so the hot path is unchanged.
func decodeToolTurn(body []byte, seed uint64) (*toolTurn, error) {
	if !bytes.Contains(body, keyTool) {
		return nil, nil
	}
	var req toolRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, jsonError(err)
	}
	if len(req.Messages) == 0 {
		return nil, nil
	}
	last := req.Messages[len(req.Messages)-1]
	text, err := contentText(last.Content)
	if err != nil {
		return nil, err
	}
	switch last.Role {
	case "tool":
		return &toolTurn{Quote: `The tool returned: "` + string(text) + `".`}, nil
	case "user":
	default:
		return nil, nil
	}
	if len(req.Tools) == 0 {
		return nil, nil
	}
	want := ""
	switch choice := bytes.TrimSpace(req.ToolChoice); {
	case len(choice) == 0, string(choice) == "null":
	case choice[0] == '"':
		var s string
		json.Unmarshal(choice, &s)
		if s == "none" {
			return nil, nil
		}
	default:
		var named struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if err := json.Unmarshal(choice, &named); err != nil {
			return nil, badRequest("tool_choice", "Invalid value for 'tool_choice'.")
		}
		want = named.Function.Name
	}
	for i, t := range req.Tools {
		if t.Type != "function" || (want != "" && t.Function.Name != want) {
			continue
		}
		args, err := toolArguments(t.Function.Parameters, string(text))
		if err != nil {
			return nil, badRequest("tools["+strconv.Itoa(i)+"].function.parameters", "Invalid schema for function '%s': %s", t.Function.Name, err.Error())
		}
		return &toolTurn{Name: t.Function.Name, Arguments: args, CallID: "call_" + strconv.FormatUint(seed, 36)}, nil
	}
	if want != "" {
		return nil, badRequest("tool_choice", "Tool choice '%s' not found in 'tools' parameter.", want)
	}
	return nil, nil
}

type schemaError string

func (e schemaError) Error() string { return string(e) }

// toolArguments builds the JSON arguments of a call from the schema's
// required properties, in the order "required" lists them.
func toolArguments(schema json.RawMessage, userText string) (string, error) {
	var s struct {
		Properties map[string]struct {
			Type any   `json:"type"`
			Enum []any `json:"enum"`
		} `json:"properties"`
		Required []string `json:"required"`
	}
	if len(bytes.TrimSpace(schema)) > 0 {
		if err := json.Unmarshal(schema, &s); err != nil {
			return "", schemaError("want an object schema")
		}
	}
	words := strings.FieldsFunc(userText, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	lastWord := ""
	if len(words) > 0 {
		lastWord = words[len(words)-1]
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, name := range s.Required {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		b.Write(k)
		b.WriteByte(':')
		p := s.Properties[name]
		if len(p.Enum) > 0 {
			v, err := json.Marshal(p.Enum[0])
			if err != nil {
				return "", schemaError("bad enum of " + name)
			}
			b.Write(v)
			continue
		}
		typ, _ := p.Type.(string)
		if list, ok := p.Type.([]any); ok && len(list) > 0 {
			typ, _ = list[0].(string)
		}
		switch typ {
		case "number", "integer":
			b.WriteString(strconv.Itoa(len(words)))
		case "boolean":
			b.WriteString("true")
		case "array":
			b.WriteString("[]")
		case "object":
			b.WriteString("{}")
		case "null":
			b.WriteString("null")
		default: // string or unspecified
			v, _ := json.Marshal(lastWord)
			b.Write(v)
		}
	}
	b.WriteByte('}')
	return b.String(), nil
}

// serveToolTurn answers a tool turn, as one JSON body or as a stream.
func (s *Server) serveToolTurn(w http.ResponseWriter, r *http.Request, v *faultView, c chat, t *toolTurn, id uint64) error {
	ctx := r.Context()
	if err := sleep(ctx, s.cfg.TTFT); err != nil {
		return err
	}
	completion := countWords(t.Quote)
	if t.Name != "" {
		completion = max(1, countWords(t.Arguments))
	}
	finish := "stop"
	if t.Name != "" {
		finish = "tool_calls"
	}
	model := string(v.modelJSON)
	idJSON := `"` + string(s.appendID(nil, id)) + `"`
	created := strconv.FormatInt(time.Now().Unix(), 10)
	usage := string(appendUsage(nil, c.promptTokens, completion))
	callJSON := func(args string) string {
		name, _ := json.Marshal(t.Name)
		a, _ := json.Marshal(args)
		return `{"id":"` + t.CallID + `","type":"function","function":{"name":` + string(name) + `,"arguments":` + string(a) + `}}`
	}

	if !c.stream {
		var msg string
		if t.Name != "" {
			msg = `{"role":"assistant","content":null,"tool_calls":[` + callJSON(t.Arguments) + `],"refusal":null,"annotations":[]}`
		} else {
			q, _ := json.Marshal(t.Quote)
			msg = `{"role":"assistant","content":` + string(q) + `,"refusal":null,"annotations":[]}`
		}
		body := `{"id":` + idJSON + `,"object":"chat.completion","created":` + created + `,"model":` + model +
			`,"choices":[{"index":0,"message":` + msg + `,"logprobs":null,"finish_reason":"` + finish + `"}],"usage":` + usage +
			`,"system_fingerprint":"` + systemFingerprint + `"}` + "\n"
		return s.writeBody(w, v, []byte(body))
	}

	h := w.Header()
	h["Content-Type"] = hdrEventStream
	h["Cache-Control"] = hdrNoCache
	h["X-Accel-Buffering"] = hdrNo
	w.WriteHeader(http.StatusOK)
	prefix := `data: {"id":` + idJSON + `,"object":"chat.completion.chunk","created":` + created + `,"model":` + model +
		`,"system_fingerprint":"` + systemFingerprint + `","choices":[`
	var out strings.Builder
	chunk := func(delta, finish string) {
		out.WriteString(prefix + `{"index":0,"delta":` + delta + `,"logprobs":null,"finish_reason":` + finish + `}]}` + "\n\n")
	}
	if t.Name != "" {
		// The call's id and name first, then its arguments in pieces of
		// at most 8 bytes, as providers split them.
		chunk(`{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"`+t.CallID+`","type":"function","function":{"name":`+jsonString(t.Name)+`,"arguments":""}}]}`, "null")
		for rest := t.Arguments; rest != ""; {
			n := min(8, len(rest))
			chunk(`{"tool_calls":[{"index":0,"function":{"arguments":`+jsonString(rest[:n])+`}}]}`, "null")
			rest = rest[n:]
		}
	} else {
		chunk(`{"role":"assistant","content":"","refusal":null}`, "null")
		for _, piece := range strings.SplitAfter(t.Quote, " ") {
			if piece != "" {
				chunk(`{"content":`+jsonString(piece)+`}`, "null")
			}
		}
	}
	chunk(`{}`, `"`+finish+`"`)
	if c.includeUsage {
		out.WriteString(prefix + `],"usage":` + usage + "}\n\n")
	}
	out.WriteString("data: [DONE]\n\n")
	if _, err := w.Write([]byte(out.String())); err != nil {
		return errAnswered
	}
	http.NewResponseController(w).Flush()
	return nil
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
