package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/understudy/understudy/internal/topology"
)

// deployment is a topology deployment as this region serves it.
type deployment struct {
	name        string
	cfg         topology.Deployment
	pool        *pool
	fallbacks   []*deployment
	maxAttempts int
	headers     time.Duration
	firstToken  time.Duration
	idle        time.Duration
	total       time.Duration

	retries          prometheus.Counter
	promptTokens     prometheus.Counter
	completionTokens prometheus.Counter
}

// call is one model request on its way through pools and fallbacks.
type call struct {
	ep   endpoint
	dep  *deployment // as requested
	body []byte      // the client's body, never modified
	req  request
	// respBuf, when set, is a reusable buffer for a non-streamed answer.
	respBuf *[]byte
}

// result is the answer of the attempt that succeeded.
type result struct {
	status   int
	header   http.Header // the backend's response headers
	body     []byte      // non-streamed answer
	stream   *sseStream  // streamed answer; its first event has arrived
	backend  *backend
	dep      *deployment // the deployment that answered (maybe a fallback)
	attempts int
	usage    usage
}

// usage is a backend's token count for one request.
type usage struct {
	Prompt     int `json:"prompt_tokens"`
	Completion int `json:"completion_tokens"`
	Total      int `json:"total_tokens"`
	known      bool
}

func (u usage) sum() int {
	if u.Total > 0 {
		return u.Total
	}
	return u.Prompt + u.Completion
}

// Causes of cancelled attempts and requests.
var (
	errHeadersTimeout    = errors.New("timed out waiting for response headers")
	errFirstTokenTimeout = errors.New("timed out waiting for the first streamed chunk")
	errIdleTimeout       = errors.New("stream idle timeout")
	errTotalTimeout      = errors.New("request deadline exceeded")
	errShutdown          = errors.New("gateway shutting down")
	errClientGone        = errors.New("client went away")
)

// next says where a request goes after a failed attempt.
type next uint8

const (
	nextBackend    next = iota // retry on another backend of the pool
	nextDeployment             // skip to the next fallback deployment
	stop                       // answer the client with err now
)

type failure struct {
	err  error // an *Error, or errClientGone
	next next
}

// call runs c through its deployment's pool and fallbacks within the
// deployment's total timeout. For a stream, the returned result owns the
// deadline until its stream is closed.
func (g *Gateway) call(ctx context.Context, c *call) (*result, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, c.dep.total, errTotalTimeout)
	res, err := g.try(ctx, c)
	if err != nil || res.stream == nil {
		cancel()
	} else {
		res.stream.cancelTotal = cancel
	}
	return res, err
}

func (g *Gateway) try(ctx context.Context, c *call) (*result, error) {
	var last *Error
	attempts := 0
	var triedBuf [10]*backend
	chain := len(c.dep.fallbacks) + 1
deployments:
	for i := 0; i < chain && attempts < c.dep.maxAttempts; i++ {
		d := c.dep
		if i > 0 {
			d = c.dep.fallbacks[i-1]
			g.m.fallbacks.WithLabelValues(c.dep.name, d.name).Inc()
		}
		tried := triedBuf[:0]
		for attempts < c.dep.maxAttempts {
			if ctx.Err() != nil {
				return nil, deadlineErr(ctx, c.dep)
			}
			t, ok, why := d.pool.pick(tried)
			if !ok {
				last = poolErr(last, why)
				continue deployments
			}
			tried = append(tried, t.b)
			attempts++
			if attempts > 1 {
				c.dep.retries.Inc()
			}
			res, f := g.attempt(ctx, c, d, t)
			if f == nil {
				res.attempts = attempts
				return res, nil
			}
			switch f.next {
			case stop:
				return nil, f.err
			case nextDeployment:
				last = f.err.(*Error)
				continue deployments
			default:
				last = f.err.(*Error)
			}
		}
	}
	if last == nil {
		last = &Error{Status: http.StatusServiceUnavailable, Code: "no_backend_available",
			Message: "No model backend is available for this deployment; try again later."}
	}
	return nil, last
}

// poolErr is the answer when a pool has nothing left to try: a 429 when
// every backend left is cooling after a 429, else a 503; Retry-After is
// when the first one is back. An attempt's own error is kept, but its
// Retry-After is shortened when another backend frees up sooner.
func poolErr(last *Error, why noBackend) *Error {
	if last != nil {
		if last.Status == http.StatusTooManyRequests && why.rateLimited && why.wait > 0 && why.wait < last.RetryAfter {
			last.RetryAfter = why.wait
		}
		return last
	}
	if why.rateLimited {
		return &Error{Status: http.StatusTooManyRequests, Code: "rate_limit_exceeded", RetryAfter: why.wait,
			Message: "Every model backend of this deployment is rate limited; retry after the indicated time."}
	}
	return &Error{Status: http.StatusServiceUnavailable, Code: "no_backend_available", RetryAfter: why.wait,
		Message: "No model backend is available for this deployment; try again later."}
}

// deadlineErr is the answer once the request's context ended.
func deadlineErr(ctx context.Context, d *deployment) error {
	switch context.Cause(ctx) {
	case errTotalTimeout:
		return &Error{Status: http.StatusGatewayTimeout, Code: "timeout",
			Message: fmt.Sprintf("The request did not complete within the deployment's deadline of %s.", d.total)}
	case errShutdown:
		return &Error{Status: http.StatusServiceUnavailable, Code: "shutting_down",
			Message: "The gateway is shutting down; retry the request."}
	}
	return errClientGone
}

// attempt sends c to the backend t claimed and waits for its headers, and
// for streams its first event, within the deployment's timeouts.
func (g *Gateway) attempt(ctx context.Context, c *call, d *deployment, t ticket) (*result, *failure) {
	b := t.b
	body := c.body
	if b.rewrite {
		// A fresh buffer per attempt: the transport may still read the
		// previous attempt's body after its response arrived.
		body = withModel(nil, c.body, &c.req, b.modelJSON)
	}
	actx, acancel := context.WithCancelCause(ctx)
	wd := &watchdog{cancel: acancel}
	wd.arm(phaseHeaders, d.headers)
	req, err := b.newRequest(actx, c.ep, body)
	if err != nil {
		wd.stop()
		acancel(nil)
		return nil, g.transportFailure(ctx, d, t, nil, fmt.Errorf("authorize: %w", err))
	}
	resp, err := g.rt.RoundTrip(req)
	if err != nil {
		wd.stop()
		cause := context.Cause(actx)
		acancel(nil)
		return nil, g.transportFailure(ctx, d, t, cause, err)
	}
	if resp.StatusCode/100 == 2 {
		if isSSE(resp.Header) {
			s := newSSEStream(g, d, t, actx, acancel, wd, resp)
			wd.arm(phaseFirstToken, d.firstToken)
			if f := s.readFirst(ctx); f != nil {
				return nil, f
			}
			return &result{status: resp.StatusCode, header: resp.Header, stream: s, backend: b, dep: d}, nil
		}
		wd.arm(phaseIdle, d.idle)
		data, err := readAll(resp.Body, wd, d.idle, c.respBuf)
		resp.Body.Close()
		wd.stop()
		cause := context.Cause(actx)
		acancel(nil)
		if err != nil {
			return nil, g.transportFailure(ctx, d, t, cause, err)
		}
		g.report(d, t, outcomeOK, resultOK, 0, "")
		return &result{status: resp.StatusCode, header: resp.Header, body: data, backend: b, dep: d,
			usage: findUsage(data)}, nil
	}
	wd.arm(phaseIdle, d.idle)
	var small []byte
	data, _ := readAll(io.LimitReader(resp.Body, 64<<10), wd, d.idle, &small)
	resp.Body.Close()
	wd.stop()
	acancel(nil)
	return nil, g.statusFailure(d, t, resp, data)
}

// report tells the pool and the metrics how an attempt went.
func (g *Gateway) report(d *deployment, t ticket, o outcome, r attemptResult, cooldown time.Duration, reason string) time.Duration {
	t.b.results[r].Inc()
	return d.pool.report(t, o, cooldown, reason)
}

// transportFailure classifies an attempt that got no usable answer: the
// request's own end (deadline, client gone, shutdown) stops everything and
// says nothing about the backend; a timeout or connection error ejects the
// backend and moves on.
func (g *Gateway) transportFailure(ctx context.Context, d *deployment, t ticket, cause, err error) *failure {
	if ctx.Err() != nil {
		g.report(d, t, outcomeNeutral, resultAborted, 0, "")
		return &failure{err: deadlineErr(ctx, d), next: stop}
	}
	switch cause {
	case errHeadersTimeout, errFirstTokenTimeout, errIdleTimeout:
		g.report(d, t, outcomeFailed, resultTimeout, 0, cause.Error())
		return &failure{next: nextBackend, err: &Error{Status: http.StatusGatewayTimeout, Code: "upstream_timeout",
			Message: "The model backend did not answer in time."}}
	}
	g.report(d, t, outcomeFailed, resultError, 0, truncate(err.Error(), 200))
	return &failure{next: nextBackend, err: &Error{Status: http.StatusBadGateway, Code: "upstream_error",
		Message: "The model backend failed to answer."}}
}

// statusFailure classifies a non-2xx answer.
func (g *Gateway) statusFailure(d *deployment, t ticket, resp *http.Response, data []byte) *failure {
	st := resp.StatusCode
	reason := "HTTP " + strconv.Itoa(st)
	switch {
	case st == http.StatusTooManyRequests:
		cd := g.report(d, t, outcomeRateLimited, resultRateLimited, cooldownHint(resp.Header, g.now()), reason)
		return &failure{next: nextBackend, err: &Error{Status: http.StatusTooManyRequests, Code: "rate_limit_exceeded",
			RetryAfter: cd,
			Message:    "The model backends of this deployment are rate limited; retry after the indicated time."}}
	case st == http.StatusRequestTimeout || st >= 500 || st < 400:
		// 5xx and 408, and 1xx/3xx that no model API sends (a redirect is
		// a misconfigured URL, and credentials never follow one).
		g.report(d, t, outcomeFailed, resultError, 0, reason)
		e := &Error{Status: http.StatusBadGateway, Code: "upstream_error", Message: "The model backend failed to answer."}
		if st == http.StatusGatewayTimeout || st == http.StatusRequestTimeout {
			e = &Error{Status: http.StatusGatewayTimeout, Code: "upstream_timeout", Message: "The model backend did not answer in time."}
		}
		return &failure{next: nextBackend, err: e}
	}
	pe := providerError(st, resp.Header, data)
	switch {
	case isContentPolicy(pe):
		g.report(d, t, outcomeOK, resultRejected, 0, "")
		return &failure{next: stop, err: pe}
	case st == http.StatusUnauthorized || st == http.StatusForbidden || st == http.StatusNotFound:
		// The backend refused the gateway's credentials or does not know
		// the deployment: a fault of this backend's configuration, not of
		// the client's request. Another backend may well serve it, and the
		// client must not be told its own key is wrong.
		g.report(d, t, outcomeFailed, resultError, 0, reason+": backend refused the gateway's request (credentials or deployment name)")
		return &failure{next: nextBackend, err: &Error{Status: http.StatusBadGateway, Code: "upstream_error",
			Message: "The model backend failed to answer."}}
	case isContextLength(pe):
		g.report(d, t, outcomeOK, resultRejected, 0, "")
		return &failure{next: nextDeployment, err: pe}
	}
	g.report(d, t, outcomeOK, resultRejected, 0, "")
	return &failure{next: stop, err: pe}
}

// providerError wraps a backend's 4xx answer: its body is passed through
// verbatim when it is an OpenAI-shaped error, and its fields are read so
// the gateway can classify it.
func providerError(status int, h http.Header, data []byte) *Error {
	var body struct {
		Error struct {
			Message    string          `json:"message"`
			Type       string          `json:"type"`
			Param      json.RawMessage `json:"param"`
			Code       json.RawMessage `json:"code"`
			InnerError struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	e := &Error{Status: status}
	if json.Unmarshal(data, &body) == nil && (body.Error.Message != "" || len(body.Error.Code) > 0) {
		e.raw = bytes.Clone(data)
		e.rawType = "application/json"
		e.Message = body.Error.Message
		e.Type = body.Error.Type
		e.Code = rawString(body.Error.Code)
		e.Param = rawString(body.Error.Param)
		if body.Error.InnerError.Code == "ResponsibleAIPolicyViolation" && e.Code == "" {
			e.Code = "content_filter"
		}
		return e
	}
	e.Code = "upstream_rejected"
	e.Message = "The model backend rejected the request (HTTP " + strconv.Itoa(status) + ")."
	return e
}

// rawString reads a JSON string or number as a string ("" for null).
func rawString(r json.RawMessage) string {
	var s string
	if json.Unmarshal(r, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(r, &n) == nil {
		return n.String()
	}
	return ""
}

func isContentPolicy(e *Error) bool {
	switch e.Code {
	case "content_filter", "content_policy_violation", "ResponsibleAIPolicyViolation":
		return true
	}
	return e.Type == "content_filter"
}

func isContextLength(e *Error) bool {
	if e.Code == "context_length_exceeded" {
		return true
	}
	m := strings.ToLower(e.Message)
	return e.Status == http.StatusBadRequest && strings.Contains(m, "maximum context length")
}

// Watchdog phases.
const (
	phaseHeaders int32 = iota
	phaseFirstToken
	phaseIdle
)

var phaseErrs = [...]error{errHeadersTimeout, errFirstTokenTimeout, errIdleTimeout}

// watchdog cancels an attempt when its current phase (headers, first
// token, idle gap) outlasts its timeout, with the phase as the cause.
type watchdog struct {
	t      *time.Timer
	phase  atomic.Int32
	cancel context.CancelCauseFunc
}

func (w *watchdog) arm(phase int32, d time.Duration) {
	w.phase.Store(phase)
	if w.t == nil {
		w.t = time.AfterFunc(d, w.fire)
		return
	}
	w.t.Reset(d)
}

func (w *watchdog) fire() { w.cancel(phaseErrs[w.phase.Load()]) }

func (w *watchdog) stop() {
	if w.t != nil {
		w.t.Stop()
	}
}

// readAll reads r to the end into *buf (reused when large enough), giving
// the watchdog idle more time after every read.
func readAll(r io.Reader, wd *watchdog, idle time.Duration, buf *[]byte) ([]byte, error) {
	var b []byte
	if buf != nil {
		b = (*buf)[:0]
	}
	if cap(b) == 0 {
		b = make([]byte, 0, 4096)
	}
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if n > 0 {
			wd.arm(phaseIdle, idle)
		}
		if err != nil {
			if buf != nil {
				*buf = b
			}
			if err == io.EOF {
				return b, nil
			}
			return b, err
		}
	}
}

func isSSE(h http.Header) bool {
	ct := h.Get("Content-Type")
	return strings.HasPrefix(ct, "text/event-stream")
}

// findUsage reads the top-level "usage" object of a JSON answer.
func findUsage(data []byte) usage {
	v := member(data, "usage")
	if len(v) == 0 || v[0] != '{' {
		return usage{}
	}
	u := usage{known: true}
	eachMember(v, func(k, raw []byte) {
		switch string(k) {
		case "prompt_tokens":
			u.Prompt = max(jsonInt(raw), 0)
		case "completion_tokens":
			u.Completion = max(jsonInt(raw), 0)
		case "total_tokens":
			u.Total = max(jsonInt(raw), 0)
		}
	})
	return u
}

// member returns the raw value of a top-level member of a JSON object, or
// nil.
func member(data []byte, name string) []byte {
	if !bytes.Contains(data, []byte(`"`+name+`"`)) {
		return nil
	}
	var out []byte
	eachMember(data, func(k, raw []byte) {
		if out == nil && string(k) == name {
			out = raw
		}
	})
	return out
}

// eachMember calls fn for each member of a JSON object, stopping silently
// at the first syntax error.
func eachMember(data []byte, fn func(key, raw []byte)) {
	s := scanner{data: data}
	s.ws()
	if s.i >= len(s.data) || s.data[s.i] != '{' {
		return
	}
	s.i++
	s.ws()
	if s.i < len(s.data) && s.data[s.i] == '}' {
		return
	}
	for {
		s.ws()
		ks, ke, esc, err := s.str()
		if err != nil {
			return
		}
		s.ws()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			return
		}
		s.i++
		s.ws()
		vs := s.i
		if s.value() != nil {
			return
		}
		fn(keyBytes(s.data[ks:ke], esc), s.data[vs:s.i])
		s.ws()
		if s.i >= len(s.data) || s.data[s.i] != ',' {
			return
		}
		s.i++
	}
}
