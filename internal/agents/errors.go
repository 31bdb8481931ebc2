package agents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/understudy/understudy/internal/oaierr"
	"github.com/understudy/understudy/internal/store"
)

// RefusalHeader marks a 503 that refuses a write because of this region's
// role (not_primary, write_refused), not because the region is failing.
const RefusalHeader = "X-Understudy-Refusal"

// apiError is an error answered in the OpenAI shape
// {"error":{"message","type","param","code"}}. Handlers return errors; adapt
// turns them into bodies. Message is safe to show to clients.
type apiError struct {
	Status  int
	Type    string // default from Status
	Code    string // "" is null
	Param   string // "" is null
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Message) }

func badRequest(param, format string, a ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "invalid_request", Param: param, Message: fmt.Sprintf(format, a...)}
}

// replicationError is an AfterWrite failure: the write is committed
// locally but may not be replicated.
type replicationError struct {
	err error
	pos store.Position
}

func (e *replicationError) Error() string {
	return fmt.Sprintf("write at seq %d not acknowledged by replication: %v", e.pos.Seq, e.err)
}

func (e *replicationError) Unwrap() error { return e.err }

// errAnswered: the handler already answered (a stream that ended with its
// own error event); adapt writes nothing more.
var errAnswered = errors.New("answer already started")

// httpStatuser is implemented by Completer errors that carry the status a
// client should see; their Error() text is client-safe.
type httpStatuser interface {
	error
	HTTPStatus() int
}

// toAPIError maps any handler error to what the client sees. Store errors
// become their HTTP meaning; anything unknown is a 500 whose detail stays
// in the log.
func toAPIError(err error) *apiError {
	if e, ok := errors.AsType[*apiError](err); ok {
		return e
	}
	if e, ok := errors.AsType[*replicationError](err); ok {
		return &apiError{Status: http.StatusServiceUnavailable, Code: "replication_failed",
			Message: fmt.Sprintf("the write was committed in this region (journal seq %d) but replication did not acknowledge it, so it may not be replicated; retry with the same Idempotency-Key", e.pos.Seq)}
	}
	if e, ok := errors.AsType[*store.NotPrimaryError](err); ok {
		return notPrimary(e.Role, e.Epoch, e.KnownPrimary, e.KnownEpoch)
	}
	switch {
	case errors.Is(err, store.ErrNotPrimary):
		return notPrimary("", 0, "", 0)
	case errors.Is(err, store.ErrStaleEpoch):
		return &apiError{Status: http.StatusServiceUnavailable, Code: "stale_epoch",
			Message: "this region's view of the primary epoch is out of date; writes are refused until it catches up. Retry, or send the request to the primary region."}
	case errors.Is(err, store.ErrGuard):
		return &apiError{Status: http.StatusServiceUnavailable, Code: "write_refused",
			Message: "this region does not hold the write lease; writes are refused. Retry, or send the request to the primary region."}
	case errors.Is(err, store.ErrNotFound):
		return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: clientText(err)}
	case errors.Is(err, store.ErrConflict):
		return &apiError{Status: http.StatusConflict, Code: "conflict", Message: clientText(err)}
	case errors.Is(err, store.ErrInvalid):
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_request", Message: clientText(err)}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &apiError{Status: http.StatusGatewayTimeout, Code: "timeout", Message: "the request was cancelled or timed out"}
	}
	return &apiError{Status: http.StatusInternalServerError, Code: "internal_error", Message: "internal error"}
}

// clientText is the text of a store error that describes the client's own
// objects (not found, conflict, invalid): those messages name IDs and keys
// the client sent, never internals.
func clientText(err error) string { return err.Error() }

func notPrimary(role store.Role, epoch int64, primary string, knownEpoch int64) *apiError {
	msg := "this region's store is not primary and refuses writes (reads are served)"
	if role != "" {
		msg = fmt.Sprintf("this region's store is %s at epoch %d and refuses writes (reads are served)", role, epoch)
	}
	if primary != "" {
		msg += fmt.Sprintf("; the primary is region %s (epoch %d): send writes there", primary, knownEpoch)
	} else {
		msg += "; the primary region is not known here"
	}
	return &apiError{Status: http.StatusServiceUnavailable, Code: "not_primary", Message: msg}
}

// adapt turns a handler returning an error into an http.Handler that
// answers the error in the OpenAI shape and logs server-side failures.
func (s *Service) adapt(fn func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := fn(w, r)
		if err == nil || errors.Is(err, errAnswered) {
			return
		}
		e := toAPIError(err)
		if e.Code == "not_primary" || e.Code == "write_refused" {
			// A refusal by role, not a failing region: the edge must not
			// eject the region for it.
			w.Header().Set(RefusalHeader, e.Code)
		}
		if e.Status >= 500 {
			s.log.LogAttrs(r.Context(), slog.LevelWarn, "agents request failed",
				slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Int("status", e.Status), slog.String("error", err.Error()))
		}
		oaierr.Write(w, e.Status, oaierr.Marshal(e.Status, e.Type, e.Code, e.Param, e.Message), 0)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode answer: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
	return nil
}

// readBody reads a request body within the size limit.
func (s *Service) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return nil, &apiError{Status: http.StatusRequestEntityTooLarge, Code: "request_too_large",
			Message: fmt.Sprintf("the request body is larger than %d bytes", s.maxBody)}
	}
	if err != nil {
		return nil, badRequest("", "could not read the request body")
	}
	return b, nil
}
