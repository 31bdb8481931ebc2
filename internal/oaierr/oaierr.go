package oaierr

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Body is an OpenAI error body; clients of OpenAI-shaped APIs decode into it.
type Body struct {
	Error Fields `json:"error"`
}

// Fields are the members of an OpenAI error object. Param and Code are
// null when nil.
type Fields struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// TypeFor is the OpenAI error type for an HTTP status: "requests" for 429,
// "server_error" for 5xx, "invalid_request_error" for everything else
// (OpenAI answers a bad API key with invalid_request_error too).
func TypeFor(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "requests"
	case status >= 500:
		return "server_error"
	default:
		return "invalid_request_error"
	}
}

// Marshal returns the error body for the given fields, ending in a newline.
// An empty typ is TypeFor(status); an empty code or param is sent as null.
func Marshal(status int, typ, code, param, msg string) []byte {
	if typ == "" {
		typ = TypeFor(status)
	}
	b, _ := json.Marshal(Body{Error: Fields{Message: msg, Type: typ, Param: nullable(param), Code: nullable(code)}})
	return append(b, '\n')
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Header sets the headers of an error answer whose body is n bytes long:
// Content-Type application/json, Content-Length and, when retryAfter is
// positive, Retry-After in whole seconds rounded up. Headers the caller set
// before are kept unless named here.
func Header(h http.Header, n int, retryAfter time.Duration) {
	h["Content-Type"] = hdrJSON
	h["Content-Length"] = []string{strconv.Itoa(n)}
	if retryAfter > 0 {
		h["Retry-After"] = []string{strconv.FormatInt(CeilSeconds(retryAfter), 10)}
	}
}

// Write answers status with body, its headers set by Header.
func Write(w http.ResponseWriter, status int, body []byte, retryAfter time.Duration) {
	Header(w.Header(), len(body), retryAfter)
	w.WriteHeader(status)
	w.Write(body)
}

// CeilSeconds rounds d up to whole seconds, the unit of Retry-After.
func CeilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// hdrJSON is shared by every answer; net/http only reads it.
var hdrJSON = []string{"application/json"}
