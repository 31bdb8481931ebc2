package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// The gateway reads only what it needs of a request body: the model, the
// stream flag and the token hints of a chat completion. Everything else
// passes through byte for byte. One pass over the body validates it as JSON
// (what encoding/json's Valid accepts) and records where the model value is,
// so it can be rewritten for a backend without re-encoding the body.

// endpoint is the kind of model call.
type endpoint uint8

const (
	chatEndpoint endpoint = iota
	embeddingsEndpoint
)

func (e endpoint) String() string {
	if e == embeddingsEndpoint {
		return "embeddings"
	}
	return "chat"
}

// request is what the gateway knows of a model request body.
type request struct {
	// Model is the "model" member, "" when absent.
	Model string
	// modelStart and modelEnd delimit the model value (quotes included);
	// modelStart is -1 when the body has no model member.
	modelStart, modelEnd int
	// open is the offset just after the body's opening brace; members is
	// how many top-level members the body has.
	open, members int
	// Stream is the "stream" member (chat only).
	Stream bool
	// IncludeUsage is stream_options.include_usage.
	IncludeUsage bool
	// MaxTokens is max_completion_tokens, else max_tokens, else 0.
	MaxTokens int
}

// maxDepth bounds nesting, as encoding/json does.
const maxDepth = 10000

var errSyntax = errors.New("invalid JSON")

// parseRequest validates body and reads the members the gateway uses. It
// returns an *Error (400) for anything a client should fix: invalid JSON, a
// body that is not an object, a model that is not a string, a stream flag
// that is not a boolean, or a model or stream member given twice (a second
// "model" could otherwise reach a backend unrewritten).
func parseRequest(body []byte, kind endpoint) (request, error) {
	req := request{modelStart: -1, modelEnd: -1}
	s := scanner{data: body}
	s.ws()
	if s.i >= len(s.data) || s.data[s.i] != '{' {
		if s.i < len(s.data) && s.value() == nil && s.end() {
			return req, errBadParam("", "The request body must be a JSON object.")
		}
		return req, errBadJSON()
	}
	s.i++
	req.open = s.i
	var maxTokens, maxCompletion = -1, -1
	var seenModel, seenStream bool
	s.ws()
	if s.i < len(s.data) && s.data[s.i] == '}' {
		s.i++
		if !s.end() {
			return req, errBadJSON()
		}
		return req, nil
	}
	for {
		s.ws()
		ks, ke, kesc, err := s.str()
		if err != nil {
			return req, errBadJSON()
		}
		key := keyBytes(s.data[ks:ke], kesc)
		s.ws()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			return req, errBadJSON()
		}
		s.i++
		s.ws()
		vs := s.i
		if err := s.value(); err != nil {
			return req, errBadJSON()
		}
		v := s.data[vs:s.i]
		req.members++
		switch string(key) { // no allocation: the compiler compares in place
		case "model":
			if seenModel {
				return req, errBadParam("model", "'model' is given more than once.")
			}
			seenModel = true
			m, ok := jsonString(v)
			if !ok {
				return req, errBadParam("model", "'model' must be a string.")
			}
			req.Model, req.modelStart, req.modelEnd = m, vs, s.i
		case "stream":
			if kind != chatEndpoint {
				break
			}
			if seenStream {
				return req, errBadParam("stream", "'stream' is given more than once.")
			}
			seenStream = true
			switch string(v) {
			case "true":
				req.Stream = true
			case "false", "null":
			default:
				return req, errBadParam("stream", "'stream' must be a boolean.")
			}
		case "max_tokens":
			maxTokens = jsonInt(v)
		case "max_completion_tokens":
			maxCompletion = jsonInt(v)
		case "stream_options":
			req.IncludeUsage = includeUsage(v)
		}
		s.ws()
		if s.i >= len(s.data) {
			return req, errBadJSON()
		}
		c := s.data[s.i]
		s.i++
		if c == '}' {
			break
		}
		if c != ',' {
			return req, errBadJSON()
		}
	}
	if !s.end() {
		return req, errBadJSON()
	}
	switch {
	case maxCompletion >= 0:
		req.MaxTokens = maxCompletion
	case maxTokens >= 0:
		req.MaxTokens = maxTokens
	}
	return req, nil
}

// withModel returns body with its model member set to enc (a JSON string),
// appending to dst. It returns body itself when the model already is enc.
func withModel(dst, body []byte, req *request, enc []byte) []byte {
	if req.modelStart >= 0 {
		if string(body[req.modelStart:req.modelEnd]) == string(enc) {
			return body
		}
		dst = append(dst, body[:req.modelStart]...)
		dst = append(dst, enc...)
		return append(dst, body[req.modelEnd:]...)
	}
	dst = append(dst, body[:req.open]...)
	dst = append(dst, `"model":`...)
	dst = append(dst, enc...)
	if req.members > 0 {
		dst = append(dst, ',')
	}
	return append(dst, body[req.open:]...)
}

// keyBytes returns a member name given its string token; escaped names
// and invalid UTF-8 (rare) are decoded as encoding/json does.
func keyBytes(raw []byte, escaped bool) []byte {
	if !escaped && utf8.Valid(raw) {
		return raw[1 : len(raw)-1]
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil
	}
	return []byte(s)
}

// jsonString decodes a JSON string token.
func jsonString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	// Escapes or invalid UTF-8: decode exactly as encoding/json does.
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

// jsonInt returns a non-negative integer JSON number, or -1.
func jsonInt(v []byte) int {
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// includeUsage reads include_usage from a stream_options object.
func includeUsage(v []byte) bool {
	if len(v) == 0 || v[0] != '{' {
		return false
	}
	// Case-sensitive lookup, as backends do: a map, not a struct.
	var m map[string]json.RawMessage
	if json.Unmarshal(v, &m) != nil {
		return false
	}
	var on bool
	if raw, ok := m["include_usage"]; !ok || json.Unmarshal(raw, &on) != nil {
		return false
	}
	return on
}

// scanner is a validating JSON scanner that skips values without building
// them. It accepts exactly what encoding/json's Valid accepts.
type scanner struct {
	data  []byte
	i     int
	depth int
}

func (s *scanner) ws() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// end reports whether only whitespace is left.
func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.data)
}

// str scans a string at s.i and returns its span (quotes included) and
// whether it has escapes.
func (s *scanner) str() (start, end int, escaped bool, err error) {
	if s.i >= len(s.data) || s.data[s.i] != '"' {
		return 0, 0, false, errSyntax
	}
	start = s.i
	i := s.i + 1
	d := s.data
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			s.i = i + 1
			return start, s.i, escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(d) {
				return 0, 0, false, errSyntax
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) {
					return 0, 0, false, errSyntax
				}
				for _, h := range d[i+2 : i+6] {
					if !isHex(h) {
						return 0, 0, false, errSyntax
					}
				}
				i += 6
			default:
				return 0, 0, false, errSyntax
			}
		case c < 0x20:
			return 0, 0, false, errSyntax
		default:
			i++
		}
	}
	return 0, 0, false, errSyntax
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// value skips one JSON value at s.i.
func (s *scanner) value() error {
	if s.i >= len(s.data) {
		return errSyntax
	}
	switch c := s.data[s.i]; {
	case c == '"':
		_, _, _, err := s.str()
		return err
	case c == '{':
		return s.object()
	case c == '[':
		return s.array()
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	}
	return errSyntax
}

func (s *scanner) lit(l string) error {
	if len(s.data)-s.i < len(l) || string(s.data[s.i:s.i+len(l)]) != l {
		return errSyntax
	}
	s.i += len(l)
	return nil
}

func (s *scanner) number() error {
	d := s.data
	i := s.i
	if d[i] == '-' {
		i++
	}
	if i >= len(d) {
		return errSyntax
	}
	switch {
	case d[i] == '0':
		i++
	case '1' <= d[i] && d[i] <= '9':
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	default:
		return errSyntax
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return errSyntax
		}
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return errSyntax
		}
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	}
	s.i = i
	return nil
}

func (s *scanner) object() error {
	s.depth++
	if s.depth > maxDepth {
		return errSyntax
	}
	s.i++ // {
	s.ws()
	if s.i < len(s.data) && s.data[s.i] == '}' {
		s.i++
		s.depth--
		return nil
	}
	for {
		s.ws()
		if _, _, _, err := s.str(); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			return errSyntax
		}
		s.i++
		s.ws()
		if err := s.value(); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.data) {
			return errSyntax
		}
		c := s.data[s.i]
		s.i++
		if c == '}' {
			s.depth--
			return nil
		}
		if c != ',' {
			return errSyntax
		}
	}
}

func (s *scanner) array() error {
	s.depth++
	if s.depth > maxDepth {
		return errSyntax
	}
	s.i++ // [
	s.ws()
	if s.i < len(s.data) && s.data[s.i] == ']' {
		s.i++
		s.depth--
		return nil
	}
	for {
		s.ws()
		if err := s.value(); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.data) {
			return errSyntax
		}
		c := s.data[s.i]
		s.i++
		if c == ']' {
			s.depth--
			return nil
		}
		if c != ',' {
			return errSyntax
		}
	}
}

// estimateTokens is the token estimate charged to a key's TPM before the
// call: about four bytes of body per prompt token, plus the completion
// budget the request asks for.
func estimateTokens(body []byte, req *request) int {
	return (len(body)+3)/4 + req.MaxTokens
}
