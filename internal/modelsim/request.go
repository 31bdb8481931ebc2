package modelsim

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// chatRequest is the part of a chat completion request modelsim reads; other
// fields are accepted and ignored.
type chatRequest struct {
	Messages      []chatMessage `json:"messages"`
	Stream        bool          `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *int `json:"max_tokens"`
	MaxCompletionTokens *int `json:"max_completion_tokens"`
}

type chatMessage struct {
	Role string `json:"role"`
	// Content is kept raw: the server only hashes and counts it, and
	// reading it in place avoids copies on the hot path.
	Content json.RawMessage `json:"content"`
}

var errContent = badRequest("messages.content", "Invalid content: want a string, an array of content parts or null.")

// contentText returns the text of a message content: a string, an array of
// content parts (the "text" of each part, joined with "\n"; parts without
// text are skipped), or null. An unescaped string is returned in place.
func contentText(raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, nil
	}
	switch raw[0] {
	case 'n': // null; encoding/json checked the syntax
		return nil, nil
	case '"':
		if s := raw[1 : len(raw)-1]; bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
			return s, nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, errContent
		}
		return []byte(s), nil
	case '[':
		var parts []struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(raw, &parts); err != nil {
			return nil, errContent
		}
		var b []byte
		for _, p := range parts {
			if p.Text == "" {
				continue
			}
			if len(b) > 0 {
				b = append(b, '\n')
			}
			b = append(b, p.Text...)
		}
		return b, nil
	}
	return nil, errContent
}

// chat is a decoded and validated chat completion request.
type chat struct {
	seed         uint64 // hash of the roles and contents of the messages
	promptTokens int
	n            int  // answer tokens to produce
	limited      bool // n is the request's max tokens: finish_reason "length"
	stream       bool
	includeUsage bool
}

// decodeChat decodes and validates a chat completion request body.
// defaultMax is the answer length when the request sets no max tokens.
func decodeChat(body []byte, defaultMax int) (chat, error) {
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return chat{}, jsonError(err)
	}
	if len(req.Messages) == 0 {
		return chat{}, badRequest("messages", "'messages' must be a non-empty array.")
	}
	c := chat{n: defaultMax, stream: req.Stream}
	c.includeUsage = req.Stream && req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	h := newHasher()
	for _, m := range req.Messages {
		text, err := contentText(m.Content)
		if err != nil {
			return chat{}, err
		}
		h.str(m.Role)
		h.byte(0x1f)
		h.bytes(text)
		h.byte(0x1e)
		c.promptTokens += countWords(text)
	}
	c.seed = uint64(h)
	for _, lim := range []struct {
		name string
		v    *int
	}{{"max_completion_tokens", req.MaxCompletionTokens}, {"max_tokens", req.MaxTokens}} {
		if lim.v == nil {
			continue
		}
		if *lim.v < 1 || *lim.v > maxOutputTokens {
			return chat{}, badRequest(lim.name, "'%s' must be between 1 and %d.", lim.name, maxOutputTokens)
		}
		c.n, c.limited = *lim.v, true
		break
	}
	return c, nil
}

// embedRequest is the part of an embeddings request modelsim reads.
type embedRequest struct {
	Input          json.RawMessage `json:"input"`
	Dimensions     *int            `json:"dimensions"`
	EncodingFormat string          `json:"encoding_format"`
}

// embed is a decoded and validated embeddings request.
type embed struct {
	seeds        []uint64 // one per input
	promptTokens int
	dims         int
	base64       bool
}

const (
	defaultDimensions = 8
	maxDimensions     = 4096
	maxEmbedInputs    = 2048
)

// decodeEmbed decodes and validates an embeddings request body. input is a
// string, an array of strings, an array of token ids or an array of arrays of
// token ids; a string counts its words as tokens, a token array its length.
func decodeEmbed(body []byte) (embed, error) {
	var req embedRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return embed{}, jsonError(err)
	}
	e := embed{dims: defaultDimensions}
	if req.Dimensions != nil {
		if *req.Dimensions < 1 || *req.Dimensions > maxDimensions {
			return embed{}, badRequest("dimensions", "'dimensions' must be between 1 and %d.", maxDimensions)
		}
		e.dims = *req.Dimensions
	}
	switch req.EncodingFormat {
	case "", "float":
	case "base64":
		e.base64 = true
	default:
		return embed{}, badRequest("encoding_format", "'encoding_format' must be 'float' or 'base64'.")
	}
	invalid := badRequest("input", "'input' must be a string, an array of strings, an array of token ids or an array of arrays of token ids, with 1 to %d entries.", maxEmbedInputs)
	in := bytes.TrimSpace(req.Input)
	if len(in) == 0 {
		return embed{}, badRequest("input", "'input' is required.")
	}
	addText := func(s string) {
		h := newHasher()
		h.byte('s')
		h.str(s)
		e.seeds = append(e.seeds, uint64(h))
		e.promptTokens += countWords(s)
	}
	addTokens := func(ts []int64) {
		h := newHasher()
		h.byte('t')
		for _, t := range ts {
			h.u64(uint64(t))
		}
		e.seeds = append(e.seeds, uint64(h))
		e.promptTokens += len(ts)
	}
	switch in[0] {
	case '"':
		var s string
		if err := json.Unmarshal(in, &s); err != nil {
			return embed{}, invalid
		}
		addText(s)
		return e, nil
	case '[':
	default:
		return embed{}, invalid
	}
	var items []json.RawMessage
	if err := json.Unmarshal(in, &items); err != nil || len(items) == 0 || len(items) > maxEmbedInputs {
		return embed{}, invalid
	}
	switch first := bytes.TrimSpace(items[0]); {
	case len(first) > 0 && first[0] == '"':
		var ss []string
		if err := json.Unmarshal(in, &ss); err != nil {
			return embed{}, invalid
		}
		for _, s := range ss {
			addText(s)
		}
	case len(first) > 0 && first[0] == '[':
		var tss [][]int64
		if err := json.Unmarshal(in, &tss); err != nil {
			return embed{}, invalid
		}
		for _, ts := range tss {
			if len(ts) == 0 {
				return embed{}, invalid
			}
			addTokens(ts)
		}
	default:
		var ts []int64
		if err := json.Unmarshal(in, &ts); err != nil {
			return embed{}, invalid
		}
		addTokens(ts)
	}
	return e, nil
}
