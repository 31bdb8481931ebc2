package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// sseStream relays a backend's server-sent events. Every event is checked
// before it is passed on: each data payload must be JSON or [DONE], event
// names must be plain tokens, other fields (id, retry, comments, unknown
// lines) are dropped. A stream that cannot go on (cut, stalled beyond the
// idle timeout, garbage, ended without [DONE] and without a finish_reason)
// ends with one explicit error event, `data: {"error":{...}}`, and no
// [DONE], so no client mistakes a truncated answer for a complete one.
type sseStream struct {
	g           *Gateway
	d           *deployment
	t           ticket
	ctx         context.Context // the attempt's
	cancel      context.CancelCauseFunc
	cancelTotal context.CancelFunc // the request's deadline; set by call
	wd          *watchdog
	body        io.ReadCloser
	br          *bufio.Reader

	ev      []byte // the event being built, as it will be sent
	payload []byte // its data lines joined, for validation
	line    []byte // a line longer than the reader's buffer

	pending   []byte // the first event, read before the answer was committed
	finished  bool   // the last event ([DONE] or an error) was returned
	sawFinish bool   // some chunk carried a finish_reason
	chunks    int
	usage     usage
	errCode   string // the code of the error event that ended the stream

	closeOnce sync.Once
	outcome   outcome
	result    attemptResult
	reason    string
}

// maxEvent bounds one SSE event from a backend.
const maxEvent = 4 << 20

var (
	doneEvent    = []byte("data: [DONE]\n\n")
	errMalformed = errors.New("malformed SSE event")
)

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}

func newSSEStream(g *Gateway, d *deployment, t ticket, ctx context.Context, cancel context.CancelCauseFunc, wd *watchdog, resp *http.Response) *sseStream {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(resp.Body)
	return &sseStream{g: g, d: d, t: t, ctx: ctx, cancel: cancel, wd: wd, body: resp.Body, br: br,
		outcome: outcomeNeutral, result: resultAborted}
}

// readFirst reads the first event before anything is committed to the
// client; a failure here lets the request move to another backend.
func (s *sseStream) readFirst(reqCtx context.Context) *failure {
	ev, done, err := s.readEvent()
	if err == nil {
		// Not waiting for the backend until next asks: a slow reader of
		// the stream is not the backend's fault.
		s.wd.stop()
	}
	switch {
	case err == nil && done:
		s.pending = doneEvent
		s.finished = true
		s.outcome, s.result = outcomeOK, resultOK
		return nil
	case err == nil:
		s.pending = ev
		return nil
	}
	cause := context.Cause(s.ctx)
	var f *failure
	switch {
	case reqCtx.Err() != nil:
		s.outcome, s.result = outcomeNeutral, resultAborted
		f = &failure{err: deadlineErr(reqCtx, s.d), next: stop}
	case cause == errFirstTokenTimeout || cause == errHeadersTimeout:
		s.outcome, s.result, s.reason = outcomeFailed, resultTimeout, cause.Error()
		f = &failure{next: nextBackend, err: &Error{Status: http.StatusGatewayTimeout, Code: "upstream_timeout",
			Message: "The model backend did not start streaming in time."}}
	default:
		s.outcome, s.result, s.reason = outcomeFailed, resultError, truncate(err.Error(), 200)
		switch {
		case errors.Is(err, errMalformed):
			s.reason = "malformed SSE event"
		case err == io.EOF:
			s.reason = "stream ended before its first event"
		}
		f = &failure{next: nextBackend, err: &Error{Status: http.StatusBadGateway, Code: "upstream_error",
			Message: "The model backend failed to answer."}}
	}
	s.close()
	return f
}

// next returns the next event to send, or io.EOF after the last one. The
// returned slice is valid until the next call.
func (s *sseStream) next() ([]byte, error) {
	if s.pending != nil {
		ev := s.pending
		s.pending = nil
		return ev, nil
	}
	if s.finished {
		if s.outcome == outcomeOK && s.br != nil {
			// [DONE] is normally followed at once by the end of the body;
			// reading it lets the connection be reused.
			s.wd.arm(phaseIdle, min(s.d.idle, drainWait))
			io.CopyN(io.Discard, s.br, 64<<10)
		}
		s.close()
		return nil, io.EOF
	}
	s.wd.arm(phaseIdle, s.d.idle)
	ev, done, err := s.readEvent()
	if err == nil {
		s.wd.stop() // see readFirst
	}
	switch {
	case err == nil && done:
		s.finished = true
		s.outcome, s.result = outcomeOK, resultOK
		return doneEvent, nil
	case err == nil:
		return ev, nil
	case err == io.EOF && s.sawFinish:
		// The backend omitted [DONE] after a complete answer: the client
		// gets a well-formed end.
		s.finished = true
		s.outcome, s.result = outcomeOK, resultOK
		return doneEvent, nil
	case err == io.EOF:
		return s.fail(outcomeFailed, resultError, "stream ended without [DONE] or a finish_reason",
			"stream_truncated", "The model backend ended the stream before the answer was complete.")
	case errors.Is(err, errMalformed):
		return s.fail(outcomeFailed, resultError, "malformed SSE event",
			"malformed_upstream_event", "The model backend sent a malformed stream event; the stream was ended.")
	}
	switch context.Cause(s.ctx) {
	case errIdleTimeout:
		return s.fail(outcomeFailed, resultTimeout, errIdleTimeout.Error(),
			"stream_idle_timeout", "The model backend stopped sending for longer than the idle timeout ("+s.d.idle.String()+").")
	case errTotalTimeout:
		return s.fail(outcomeNeutral, resultAborted, "",
			"timeout", "The request did not complete within the deployment's deadline of "+s.d.total.String()+".")
	case errShutdown:
		return s.fail(outcomeNeutral, resultAborted, "",
			"shutting_down", "The gateway is shutting down; the stream was ended.")
	}
	if s.ctx.Err() != nil { // the client went away: nobody to tell
		s.finished = true
		s.outcome, s.result = outcomeNeutral, resultAborted
		s.close()
		return nil, io.EOF
	}
	return s.fail(outcomeFailed, resultError, truncate(err.Error(), 200),
		"stream_interrupted", "The connection to the model backend broke during the stream.")
}

// drainWait bounds the wait for the end of a body after [DONE].
const drainWait = time.Second

// fail ends the stream with an error event.
func (s *sseStream) fail(o outcome, r attemptResult, reason, code, msg string) ([]byte, error) {
	s.finished = true
	s.errCode = code
	s.outcome, s.result, s.reason = o, r, reason
	s.close()
	e := &Error{Status: http.StatusBadGateway, Code: code, Message: msg}
	return e.sseEvent(), nil
}

// close releases the backend connection and the deadline and reports the
// outcome to the pool (neutral if the stream was abandoned). Idempotent.
func (s *sseStream) close() {
	s.closeOnce.Do(func() {
		s.wd.stop()
		s.cancel(nil)
		s.body.Close()
		s.br.Reset(nil)
		readerPool.Put(s.br)
		s.br = nil
		if s.cancelTotal != nil {
			s.cancelTotal()
		}
		s.g.report(s.d, s.t, s.outcome, s.result, 0, s.reason)
	})
}

// readEvent reads one event: lines up to a blank line. It returns the event
// as it will be sent, whether it is [DONE], io.EOF when the stream ended
// at an event boundary, errMalformed, or the read error.
func (s *sseStream) readEvent() (ev []byte, done bool, err error) {
	s.ev = s.ev[:0]
	s.payload = s.payload[:0]
	dataLines := 0
	partial := false
	for {
		line, err := s.readLine()
		if err != nil {
			if err == io.EOF && (partial || len(line) > 0) {
				return nil, false, io.ErrUnexpectedEOF
			}
			return nil, false, err
		}
		if len(line) == 0 { // end of event
			if dataLines == 0 {
				s.ev = s.ev[:0]
				partial = false
				continue // comments or ids only: nothing to send
			}
			if string(bytes.TrimSpace(s.payload)) == "[DONE]" {
				return nil, true, nil
			}
			// Validate what is sent, untrimmed: JSON has its own whitespace.
			if !s.inspect(s.payload) {
				return nil, false, errMalformed
			}
			s.chunks++
			s.ev = append(s.ev, '\n')
			return s.ev, false, nil
		}
		partial = true
		name, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			name, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(name) {
		case "data":
			if dataLines > 0 {
				s.payload = append(s.payload, '\n')
			}
			dataLines++
			s.payload = append(s.payload, value...)
			s.ev = append(s.ev, "data: "...)
			s.ev = append(s.ev, value...)
			s.ev = append(s.ev, '\n')
		case "event":
			if !isToken(value) {
				return nil, false, errMalformed
			}
			s.ev = append(s.ev, "event: "...)
			s.ev = append(s.ev, value...)
			s.ev = append(s.ev, '\n')
		default:
			// Comments (empty name), id, retry and unknown fields are
			// dropped, as the SSE specification ignores unknown fields.
		}
		if len(s.ev) > maxEvent {
			return nil, false, errMalformed
		}
	}
}

// readLine returns the next line without its line ending.
func (s *sseStream) readLine() ([]byte, error) {
	line, err := s.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		s.line = append(s.line[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(s.line) > maxEvent {
				return nil, errMalformed
			}
			line, err = s.br.ReadSlice('\n')
			s.line = append(s.line, line...)
		}
		line = s.line
	}
	if err != nil {
		return line, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// inspect validates a data payload as JSON and notes finish reasons and
// usage.
func (s *sseStream) inspect(p []byte) bool {
	sc := scanner{data: p}
	sc.ws()
	if sc.value() != nil || !sc.end() {
		return false
	}
	if !s.sawFinish && hasFinishReason(p) {
		s.sawFinish = true
	}
	if bytes.Contains(p, []byte(`"usage"`)) {
		if u := findUsage(p); u.known {
			s.usage = u
		}
	}
	return true
}

// hasFinishReason reports whether a chunk has a non-null finish_reason.
// A quoted "finish_reason" cannot occur inside a JSON string (its quotes
// would be escaped), so a byte search is exact.
func hasFinishReason(p []byte) bool {
	const key = `"finish_reason"`
	for {
		i := bytes.Index(p, []byte(key))
		if i < 0 {
			return false
		}
		p = p[i+len(key):]
		j := 0
		for j < len(p) && (p[j] == ' ' || p[j] == '\t' || p[j] == '\n' || p[j] == '\r' || p[j] == ':') {
			j++
		}
		if j < len(p) && p[j] == '"' {
			return true
		}
	}
}

func isToken(v []byte) bool {
	if len(v) == 0 || len(v) > 128 {
		return false
	}
	for _, c := range v {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// streamBody is a stream as an io.ReadCloser, for Do: it yields exactly
// the bytes the gateway would send to a client. Close may be called from
// another goroutine to abort a Read.
type streamBody struct {
	s   *sseStream
	mu  sync.Mutex
	cur []byte
	err error
}

func (r *streamBody) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.cur, r.err = r.s.next()
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

func (r *streamBody) Close() error {
	r.s.cancel(errClientGone) // unblocks a Read in progress
	r.mu.Lock()
	defer r.mu.Unlock()
	r.s.close()
	r.cur, r.err = nil, errors.New("gateway: read on a closed stream")
	return nil
}
