package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/understudy/understudy/internal/oaierr"
)

// Error is an error answered to clients in the OpenAI shape
// {"error":{"message","type","param","code"}}. Handlers return it; one
// adapter (writeError) writes it. Do returns it for requests that failed.
type Error struct {
	// Status is the HTTP status.
	Status int
	// Type is the OpenAI error type; default derived from Status.
	Type string
	// Code is the OpenAI error code, e.g. rate_limit_exceeded; "" is null.
	Code string
	// Param names the offending request field; "" is null.
	Param string
	// Message is safe to show to clients: it never carries internal detail.
	Message string
	// RetryAfter, when positive, is sent as Retry-After (whole seconds,
	// rounded up) and retry-after-ms.
	RetryAfter time.Duration

	// raw is a provider's own error body (content-policy rejections and other
	// 4xx a retry cannot fix), answered verbatim with rawType.
	raw     []byte
	rawType string
}

func (e *Error) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("%d %s", e.Status, e.Message)
}

// Provider reports whether the error is a model provider's own answer
// passed through unchanged (for example a content-policy rejection), and
// returns its body.
func (e *Error) Provider() ([]byte, bool) { return e.raw, e.raw != nil }

// Body returns the JSON body answered for e.
func (e *Error) Body() []byte {
	if e.raw != nil {
		return e.raw
	}
	return oaierr.Marshal(e.Status, e.Type, e.Code, e.Param, e.Message)
}

// sseEvent returns e as one SSE event, the way a stream that cannot go on
// ends: `data: {"error":{...}}` and a blank line, with no [DONE] after it.
func (e *Error) sseEvent() []byte {
	b := e.Body()
	out := make([]byte, 0, len(b)+8)
	out = append(out, "data: "...)
	out = append(out, b[:len(b)-1]...) // Body ends with a newline
	return append(out, "\n\n"...)
}

// writeError answers e in the OpenAI shape (or a provider's own body with
// its content type); a positive RetryAfter also goes out as Retry-After-Ms.
func writeError(w http.ResponseWriter, e *Error) {
	body := e.Body()
	h := w.Header()
	oaierr.Header(h, len(body), e.RetryAfter)
	if e.raw != nil && e.rawType != "" {
		h["Content-Type"] = []string{e.rawType}
	}
	if e.RetryAfter > 0 {
		h["Retry-After-Ms"] = []string{strconv.FormatInt(e.RetryAfter.Milliseconds(), 10)}
	}
	w.WriteHeader(e.Status)
	w.Write(body)
}

// errAnswered is returned by handlers that already wrote (part of) an
// answer; the adapter writes nothing more.
var errAnswered = errors.New("answer already started")

// adapt turns a handler that returns errors into an http.Handler: an *Error
// is answered in the OpenAI shape; a gone client gets nothing; anything
// else is logged and answered with a generic 500 that carries no detail.
func (g *Gateway) adapt(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil || errors.Is(err, errAnswered) {
			return
		}
		if e, ok := errors.AsType[*Error](err); ok {
			if ri := infoOf(w); ri != nil && ri.errCode == "" {
				ri.errCode = e.Code
			}
			writeError(w, e)
			return
		}
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			return // the client went away; nobody is listening
		}
		g.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
		writeError(w, errInternal())
	})
}

func errInternal() *Error {
	return &Error{Status: http.StatusInternalServerError, Code: "internal_error",
		Message: "The gateway had an error while processing your request."}
}

func errBadJSON() *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_json",
		Message: "We could not parse the JSON body of your request. Send a valid JSON object."}
}

func errBadParam(param, format string, a ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Param: param, Code: "invalid_value", Message: fmt.Sprintf(format, a...)}
}

func errUnauthorized() *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "invalid_api_key",
		Message: "Incorrect or missing API key. Send it as 'Authorization: Bearer <key>' or in the 'api-key' header."}
}

func errUnknownDeployment(name string) *Error {
	return &Error{Status: http.StatusNotFound, Param: "model", Code: "model_not_found",
		Message: fmt.Sprintf("The model or deployment %q does not exist in this gateway.", truncate(name, 128))}
}

func errNotFound(r *http.Request) *Error {
	return &Error{Status: http.StatusNotFound, Code: "unknown_url",
		Message: "Invalid URL (" + r.Method + " " + truncate(r.URL.Path, 256) + ")"}
}

func errMethod(r *http.Request) *Error {
	return &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
		Message: "Method " + truncate(r.Method, 16) + " is not allowed on " + truncate(r.URL.Path, 256) + "."}
}

func errTooLarge(limit int64) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: "request_too_large",
		Message: fmt.Sprintf("The request body is larger than %d bytes.", limit)}
}

// truncate bounds s for echoing in a message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

var (
	hdrJSON = []string{"application/json"}
	hdrSSE  = []string{"text/event-stream"}
)
