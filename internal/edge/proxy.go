package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/understudy/understudy/internal/h1"
	"github.com/understudy/understudy/internal/oaierr"
)

// HeaderEdge is set on every response: which origin served and after how
// many attempts ("origin=centralus attempts=2"), or "edge" for the edge's
// own endpoints.
const HeaderEdge = "X-Understudy-Edge"

// maxHeldBody bounds the body of a 429 or 5xx kept while other origins are
// tried.
const maxHeldBody = 64 << 10

// refusalHeader marks a region's 503 that refuses a write by its role
// (agents.RefusalHeader; the edge does not import the region's packages).
const refusalHeader = "X-Understudy-Refusal"

type stateKey struct{}

// reqState travels with a proxied request through the ReverseProxy to the
// attempt transport.
type reqState struct {
	start      time.Time
	body       []byte // the buffered body; nil when there is none or it is too large
	replayable bool
	stateful   bool
	order      []*origin
	buf        [4]*origin
	served     *origin
	attempts   int
	failures   []string // "eastus2: timeout", for the final error message
}

func stateFrom(ctx context.Context) *reqState {
	rs, _ := ctx.Value(stateKey{}).(*reqState)
	return rs
}

// serveProxy routes one client request.
func (e *Edge) serveProxy(w http.ResponseWriter, r *http.Request) {
	rs := &reqState{start: time.Now(), replayable: true}
	if r.Body != nil && r.Body != http.NoBody {
		if err := rs.readBody(r, e.cfg.maxReplay); err != nil {
			w.Header().Set(HeaderEdge, "edge")
			writeError(w, http.StatusBadRequest, "invalid_request_error", "body_read_failed", "could not read the request body")
			return
		}
	}
	rs.stateful = isStateful(r.URL.Path, rs.body)
	rs.order = e.plan.Load().order(rs.stateful, rs.buf[:0])
	if len(rs.order) == 0 {
		w.Header().Set(HeaderEdge, "edge")
		writeError(w, http.StatusServiceUnavailable, "server_error", "no_origin", "no region is enabled at the edge")
		return
	}
	e.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), stateKey{}, rs)))
}

// readBody buffers up to limit bytes of r's body for replay. A larger body
// is streamed to a single origin: r.Body is replaced by what was read
// followed by the rest.
func (rs *reqState) readBody(r *http.Request, limit int64) error {
	if r.ContentLength > limit {
		rs.replayable = false
		return nil
	}
	var body []byte
	if r.ContentLength >= 0 {
		// The server already bounds the body to its Content-Length.
		body = make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return err
		}
	} else {
		var err error
		if body, err = io.ReadAll(io.LimitReader(r.Body, limit+1)); err != nil {
			return err
		}
		if int64(len(body)) > limit {
			rs.replayable = false
			r.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
			return nil
		}
	}
	n := int64(len(body))
	rs.body = body
	r.Body = http.NoBody
	r.ContentLength = n
	if n > 0 {
		// ReverseProxy drops the body of a request with ContentLength 0;
		// the transport sets the real one on each attempt.
		r.Body = io.NopCloser(bytes.NewReader(rs.body))
	}
	return nil
}

// namesState reports whether a JSON body has a conversation or
// previous_response_id field that is set.
func namesState(body []byte) bool {
	if len(body) == 0 || (!bytes.Contains(body, []byte(`"conversation"`)) && !bytes.Contains(body, []byte(`"previous_response_id"`))) {
		return false
	}
	var v struct {
		Conversation       json.RawMessage `json:"conversation"`
		PreviousResponseID json.RawMessage `json:"previous_response_id"`
	}
	if json.Unmarshal(body, &v) != nil {
		return false
	}
	set := func(m json.RawMessage) bool {
		s := string(bytes.TrimSpace(m))
		return s != "" && s != "null" && s != `""`
	}
	return set(v.Conversation) || set(v.PreviousResponseID)
}

// attempts is the ReverseProxy's transport: it tries the request's origins
// in order until one answers with something worth passing on.
type attempts struct{ e *Edge }

func (t attempts) RoundTrip(out *http.Request) (*http.Response, error) {
	e := t.e
	rs := stateFrom(out.Context())
	if rs == nil {
		return nil, errors.New("edge: request without routing state")
	}
	deadline := rs.start.Add(e.cfg.requestTimeout)
	var held *http.Response // a 429 or 5xx kept in case nothing better comes
	var heldFrom *origin
	var lastErr error = errNoAttempt
	for i, o := range rs.order {
		if i > 0 && !rs.replayable {
			break
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			lastErr = errRequestTimeout
			break
		}
		// Only an attempt with somewhere else to go gives up early when its
		// origin is ejected or turns unhealthy: the last one waits it out.
		moveOn := rs.replayable && i < len(rs.order)-1
		resp, reason, err := e.try(out, rs, o, min(e.cfg.attemptTimeout, remaining), remaining >= e.cfg.attemptTimeout, moveOn)
		rs.attempts++
		if cerr := out.Context().Err(); cerr != nil {
			if resp != nil {
				resp.Body.Close()
			}
			return nil, cerr // the client went away
		}
		last := i == len(rs.order)-1 || !rs.replayable
		if err == nil {
			if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500 {
				closeHeld(held)
				rs.served = o
				return resp, nil
			}
			reason = "status " + strconv.Itoa(resp.StatusCode)
			// Keep a 429 over a 5xx (its Retry-After tells the client when
			// to come back); otherwise the latest answer wins.
			switch {
			case held != nil && held.StatusCode == http.StatusTooManyRequests:
				resp.Body.Close()
			case last:
				// Nothing left to try: hand it back as it streams.
				closeHeld(held)
				rs.served = o
				rs.failures = append(rs.failures, o.name+": "+reason)
				return resp, nil
			default:
				closeHeld(held)
				held, heldFrom = hold(resp), o
			}
		} else {
			lastErr = err
		}
		rs.failures = append(rs.failures, o.name+": "+reason)
		if !last {
			e.noteRetry(o, reason, rs)
		}
	}
	if held != nil {
		rs.served = heldFrom
		return held, nil
	}
	if !time.Now().Before(deadline) {
		return nil, errRequestTimeout
	}
	return nil, lastErr
}

var (
	errNoAttempt      = errors.New("no origin was tried")
	errRequestTimeout = errors.New("request timeout")
)

// try makes one attempt at o. It returns the response (any status), or the
// reason the attempt failed and the error. full says the timeout is the
// whole attempt timeout: only then does a timeout eject the origin (an
// attempt cut short by the request's deadline says little about it).
// moveOn lets the attempt give up as soon as o is ejected or turns
// unhealthy, because another origin is left to try.
func (e *Edge) try(out *http.Request, rs *reqState, o *origin, timeout time.Duration, full, moveOn bool) (*http.Response, string, error) {
	actx, cancel := context.WithCancelCause(out.Context())
	timer := time.AfterFunc(timeout, func() { cancel(errAttemptTimeout) })
	stopDown := func() bool { return true }
	if moveOn {
		stopDown = context.AfterFunc(o.down.Load().ctx, func() { cancel(errOriginDown) })
	}

	req := out.WithContext(actx)
	u := *out.URL
	u.Scheme, u.Host = o.url.Scheme, o.url.Host
	if o.url.Path != "" && o.url.Path != "/" {
		u.Path = strings.TrimSuffix(o.url.Path, "/") + out.URL.Path
		u.RawPath = ""
	}
	req.URL, req.Host = &u, ""
	if rs.body != nil {
		body := rs.body
		req.Body = h1.NewBytesBody(body)
		req.GetBody = func() (io.ReadCloser, error) { return h1.NewBytesBody(body), nil }
		req.ContentLength = int64(len(body))
	}

	resp, err := e.transport.RoundTrip(req)
	fired := !timer.Stop()
	downed := !stopDown()
	if err == nil && (fired || downed) {
		// The deadline hit just as the headers arrived: the body is cut.
		resp.Body.Close()
		err = context.Cause(actx)
	}
	if err != nil {
		cause := context.Cause(actx)
		cancel(nil)
		switch {
		case out.Context().Err() != nil:
			return nil, "client gone", err
		case errors.Is(cause, errAttemptTimeout):
			if full {
				e.eject(o, "timeout")
			}
			return nil, "timeout", errAttemptTimeout
		case errors.Is(cause, errOriginDown):
			return nil, "origin down", errOriginDown
		default:
			e.eject(o, "connection")
			return nil, "connection failed", err
		}
	}
	// A region refusing a write by its role (a standby, or a primary
	// between promotion and its first lease) is not failing: no ejection.
	if resp.StatusCode >= 500 && resp.Header.Get(refusalHeader) == "" {
		e.eject(o, "status "+strconv.Itoa(resp.StatusCode))
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body = &attemptBody{
			rc: resp.Body, cancel: cancel, e: e, o: o, client: out.Context(),
			sse: strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"),
		}
	}
	return resp, "", nil
}

func closeHeld(r *http.Response) {
	if r != nil {
		r.Body.Close()
	}
}

// hold buffers a response's body (bounded) so its connection is freed while
// other origins are tried.
func hold(resp *http.Response) *http.Response {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxHeldBody))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Del("Transfer-Encoding")
	resp.TransferEncoding = nil
	return resp
}

// attemptBody ends an attempt when its body is closed, ejects the origin
// when the body breaks (unless the client left), and ends a broken event
// stream with an explicit error event instead of a silent truncation.
type attemptBody struct {
	rc      io.ReadCloser
	cancel  context.CancelCauseFunc
	e       *Edge
	o       *origin
	client  context.Context
	sse     bool
	pending []byte
	done    bool
}

func (b *attemptBody) Read(p []byte) (int, error) {
	if b.pending != nil {
		n := copy(p, b.pending)
		b.pending = b.pending[n:]
		if len(b.pending) == 0 {
			b.pending = nil
			b.done = true
		}
		return n, nil
	}
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == nil || err == io.EOF || b.client.Err() != nil {
		return n, err
	}
	b.e.eject(b.o, "stream broken")
	b.e.metrics.streamErrors.WithLabelValues(b.o.name).Inc()
	if !b.sse {
		return n, err // ReverseProxy aborts the response: the client sees a cut
	}
	b.pending = streamErrorEvent(b.o.name)
	return n, nil
}

func (b *attemptBody) Close() error {
	err := b.rc.Close()
	b.cancel(nil)
	return err
}

// streamErrorEvent is what a client reads when a stream breaks: an SSE
// event whose data is an OpenAI error object (the OpenAI SDKs raise it).
func streamErrorEvent(region string) []byte {
	body := oaierr.Marshal(http.StatusBadGateway, "server_error", "stream_interrupted", "",
		"the stream from region "+region+" broke after it started; the response is incomplete")
	body = body[:len(body)-1] // the event ends in a blank line instead
	return append(append([]byte("\n\nevent: error\ndata: "), body...), "\n\n"...)
}

// modifyResponse stamps the edge header and counts the request.
func (e *Edge) modifyResponse(resp *http.Response) error {
	rs := stateFrom(resp.Request.Context())
	if rs == nil || rs.served == nil {
		return nil
	}
	resp.Header.Set(HeaderEdge, "origin="+rs.served.name+" attempts="+strconv.Itoa(rs.attempts))
	e.metrics.request(rs.served.name, resp.StatusCode)
	return nil
}

// proxyError answers a request no origin served.
func (e *Edge) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client went away; nobody reads an answer
	}
	rs := stateFrom(r.Context())
	attemptsN := 0
	detail := ""
	if rs != nil {
		attemptsN = rs.attempts
		detail = strings.Join(rs.failures, "; ")
	}
	w.Header().Set(HeaderEdge, "origin=none attempts="+strconv.Itoa(attemptsN))
	status, code := http.StatusBadGateway, "origin_unavailable"
	msg := "no region could serve the request"
	if errors.Is(err, errRequestTimeout) {
		status, code = http.StatusGatewayTimeout, "timeout"
		msg = "no region answered within the edge's request timeout"
	}
	if detail != "" {
		msg += " (" + detail + ")"
	}
	e.metrics.request("none", status)
	e.log.Warn("request failed at every origin", "path", r.URL.Path, "attempts", attemptsN, "detail", detail, "err", err)
	writeError(w, status, "server_error", code, msg)
}
