package modelsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/understudy/understudy/internal/oaierr"
)

// apiError is an error a handler returns to be answered in the OpenAI error
// shape: {"error":{"message","type","param","code"}}.
type apiError struct {
	Status     int
	Type       string // default from Status
	Code       string // "" is sent as null
	Param      string // "" is sent as null
	Message    string
	RetryAfter time.Duration // sent as Retry-After in whole seconds, rounded up, when > 0
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s", e.Status, e.Message)
}

// errClientGone is returned by handlers when the request context ended; the
// adapter answers nothing.
var errClientGone = errors.New("client went away")

// errAnswered is returned by handlers that already wrote (part of) an answer
// and stopped early; the adapter answers nothing more.
var errAnswered = errors.New("answer already started")

func badRequest(param, format string, a ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Param: param, Message: fmt.Sprintf(format, a...)}
}

// jsonError turns a request decoding error into a 400 that names the field
// but never a Go type.
func jsonError(err error) *apiError {
	if e, ok := errors.AsType[*apiError](err); ok {
		return e
	}
	if e, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && e.Field != "" {
		return badRequest(e.Field, "Invalid type for '%s'.", e.Field)
	}
	return badRequest("", "We could not parse the JSON body of your request. Send valid JSON.")
}

// errorType is the OpenAI error type for a status. modelsim, unlike the
// gateway, answers 401 as authentication_error.
func errorType(status int) string {
	if status == http.StatusUnauthorized {
		return "authentication_error"
	}
	return oaierr.TypeFor(status)
}

// writeError answers e in the OpenAI shape.
func writeError(w http.ResponseWriter, e *apiError) {
	typ := e.Type
	if typ == "" {
		typ = errorType(e.Status)
	}
	oaierr.Write(w, e.Status, oaierr.Marshal(e.Status, typ, e.Code, e.Param, e.Message), e.RetryAfter)
}

// handle adapts a handler that returns errors: an *apiError is answered in
// the OpenAI shape, a gone client gets nothing, anything else is logged and
// answered with a generic 500 that carries no internal detail.
func (s *Server) handle(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil || errors.Is(err, errAnswered) {
			return
		}
		if e, ok := errors.AsType[*apiError](err); ok {
			writeError(w, e)
			return
		}
		if errors.Is(err, errClientGone) || errors.Is(err, context.Canceled) {
			return
		}
		s.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
		writeError(w, &apiError{Status: http.StatusInternalServerError, Message: "The server had an error while processing your request."})
	}
}

// notFound answers unknown paths (and known paths with another method) the
// way OpenAI does.
func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, &apiError{
		Status:  http.StatusNotFound,
		Message: "Invalid URL (" + r.Method + " " + r.URL.Path + ")",
	})
}
