package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// reqInfo wraps every ResponseWriter: it records the status for metrics
// and the access log, and what the handlers learned (key name, deployment,
// backend, attempts) without a context value on the hot path.
type reqInfo struct {
	http.ResponseWriter
	r          *http.Request
	start      time.Time
	status     int
	bytes      int64
	muxErr     int // 404 or 405 from the mux itself, answered in the OpenAI shape
	key        string
	deployment string
	served     string // the deployment that answered when a fallback did
	backend    string
	attempts   int
	stream     bool
	errCode    string
}

var infoPool = sync.Pool{New: func() any { return new(reqInfo) }}

// infoOf returns the reqInfo behind w, or nil.
func infoOf(w http.ResponseWriter) *reqInfo {
	ri, _ := w.(*reqInfo)
	return ri
}

func (ri *reqInfo) WriteHeader(code int) {
	if ri.status != 0 {
		return
	}
	if ri.r.Pattern == "" && (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) {
		ri.muxErr = code // the mux's own plain-text answer; replaced below
		return
	}
	ri.status = code
	ri.ResponseWriter.WriteHeader(code)
}

func (ri *reqInfo) Write(p []byte) (int, error) {
	if ri.muxErr != 0 {
		return len(p), nil
	}
	if ri.status == 0 {
		ri.status = http.StatusOK
	}
	n, err := ri.ResponseWriter.Write(p)
	ri.bytes += int64(n)
	return n, err
}

// Flush makes streams work through the wrapper.
func (ri *reqInfo) Flush() {
	if ri.status == 0 {
		ri.status = http.StatusOK
	}
	if f, ok := ri.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (ri *reqInfo) Unwrap() http.ResponseWriter { return ri.ResponseWriter }

// Hijack is not offered by the OpenAI surface, but handlers behind
// HandleRaw may need it.
func (ri *reqInfo) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(ri.ResponseWriter).Hijack()
}

func (g *Gateway) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w.Header()["X-Understudy-Region"] = g.regionHdr
	g.active.Add(1)
	defer g.active.Done()
	g.m.inflight.Inc()
	ri := infoPool.Get().(*reqInfo)
	*ri = reqInfo{ResponseWriter: w, r: r, start: start}
	g.mux.ServeHTTP(ri, r)
	if code := ri.muxErr; code != 0 {
		ri.muxErr = 0
		e := errNotFound(r)
		if code == http.StatusMethodNotAllowed {
			e = errMethod(r)
		}
		delete(w.Header(), "X-Content-Type-Options")
		ri.errCode = e.Code
		ri.status = e.Status
		writeError(w, e)
	}
	g.m.inflight.Dec()
	status := ri.status
	if status == 0 {
		status = http.StatusOK
	}
	route := r.Pattern
	if route == "" {
		route = "unmatched"
	}
	el := time.Since(start)
	g.m.requests.WithLabelValues(route, ri.deployment, codeLabel(status)).Inc()
	g.m.duration.WithLabelValues(route, ri.deployment).Observe(el.Seconds())
	if g.accessLog {
		g.logAccess(r, ri, route, status, el)
	}
	*ri = reqInfo{}
	infoPool.Put(ri)
}

// logAccess writes one line per request. It never logs a key, a header
// value or a body: the key's name is enough to find its owner.
func (g *Gateway) logAccess(r *http.Request, ri *reqInfo, route string, status int, el time.Duration) {
	attrs := make([]slog.Attr, 0, 14)
	attrs = append(attrs,
		slog.String("method", r.Method), slog.String("route", route), slog.Int("status", status),
		slog.Float64("duration_ms", float64(el.Microseconds())/1000), slog.Int64("bytes", ri.bytes),
		slog.String("remote", r.RemoteAddr))
	if ri.key != "" {
		attrs = append(attrs, slog.String("key", ri.key))
	}
	if ri.deployment != "" {
		attrs = append(attrs, slog.String("deployment", ri.deployment))
	}
	if ri.served != "" {
		attrs = append(attrs, slog.String("served_by", ri.served))
	}
	if ri.backend != "" {
		attrs = append(attrs, slog.String("backend", ri.backend), slog.Int("attempts", ri.attempts), slog.Bool("stream", ri.stream))
	}
	if ri.errCode != "" {
		attrs = append(attrs, slog.String("error", ri.errCode))
	}
	g.log.LogAttrs(r.Context(), slog.LevelInfo, "access", attrs...)
}

// streamable lifts the server's ReadTimeout once the request body is read:
// the server would otherwise cancel the request when that deadline passes
// during a long answer.
func streamable(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		http.NewResponseController(w).SetReadDeadline(time.Time{})
		return
	}
	r.Body = &liftOnEOF{ReadCloser: r.Body, w: w}
}

type liftOnEOF struct {
	io.ReadCloser
	w    http.ResponseWriter
	done bool
}

func (b *liftOnEOF) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		http.NewResponseController(b.w).SetReadDeadline(time.Time{})
	}
	return n, err
}

// readBody reads a model request body up to gateway.max_body, then lifts
// the read deadline (see streamable).
func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > g.maxBody {
		return nil, errTooLarge(g.maxBody)
	}
	var body []byte
	if n := r.ContentLength; n >= 0 {
		body = make([]byte, n)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, bodyErr(r, err)
		}
	} else {
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, g.maxBody))
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				return nil, errTooLarge(g.maxBody)
			}
			return nil, bodyErr(r, err)
		}
	}
	http.NewResponseController(w).SetReadDeadline(time.Time{})
	return body, nil
}

func bodyErr(r *http.Request, err error) error {
	if r.Context().Err() != nil {
		return errClientGone
	}
	return &Error{Status: http.StatusBadRequest, Code: "invalid_body", Message: "The request body could not be read completely."}
}

// serveModel serves chat completions or embeddings, on the OpenAI paths
// (deployment = body model) or the Azure deployment paths (deployment =
// path; the body's model is ignored).
func (g *Gateway) serveModel(ep endpoint, azurePath bool) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		ri := infoOf(w)
		k, err := g.authenticate(r)
		if err != nil {
			return err
		}
		ri.key = k.name
		body, err := g.readBody(w, r)
		if err != nil {
			return err
		}
		req, err := parseRequest(body, ep)
		if err != nil {
			return err
		}
		name := req.Model
		if azurePath {
			name = r.PathValue("deployment")
		}
		if name == "" {
			return errBadParam("model", "You must provide a model parameter.")
		}
		d := g.deps[name]
		if d == nil {
			return errUnknownDeployment(name)
		}
		ri.deployment = d.name
		est := estimateTokens(body, &req)
		if err := k.admit(g.now(), est); err != nil {
			g.m.limited.WithLabelValues(limitName(err)).Inc()
			return err
		}
		bufp := respBufs.Get().(*[]byte)
		defer putRespBuf(bufp)
		res, err := g.call(r.Context(), &call{ep: ep, dep: d, body: body, req: req, respBuf: bufp})
		if err != nil {
			k.settle(g.now(), -est)
			if errors.Is(err, errClientGone) {
				return nil
			}
			return err
		}
		ri.backend, ri.attempts, ri.stream = res.backend.name, res.attempts, res.stream != nil
		if res.dep != d {
			ri.served = res.dep.name
		}
		if res.stream != nil {
			u := g.writeStream(w, ri, res)
			if !u.known {
				u = usage{Prompt: (len(body) + 3) / 4, Completion: res.stream.chunks}
			}
			g.account(k, res.dep, est, u)
			return nil
		}
		h := w.Header()
		if ct := res.header["Content-Type"]; len(ct) > 0 {
			h["Content-Type"] = ct
		} else {
			h["Content-Type"] = hdrJSON
		}
		h["Content-Length"] = []string{strconv.Itoa(len(res.body))}
		copyPassHeaders(h, res.header)
		h["X-Understudy-Backend"] = res.backend.nameHdr
		w.WriteHeader(res.status)
		w.Write(res.body)
		if res.usage.known {
			g.account(k, res.dep, est, res.usage)
		}
		return nil
	}
}

func limitName(err error) string {
	if e, ok := errors.AsType[*Error](err); ok && e.Type == "tokens" {
		return "tpm"
	}
	return "rpm"
}

// account settles the key's TPM with the real usage and counts tokens.
func (g *Gateway) account(k *clientKey, d *deployment, est int, u usage) {
	k.settle(g.now(), u.sum()-est)
	if u.Prompt > 0 {
		d.promptTokens.Add(float64(u.Prompt))
	}
	if u.Completion > 0 {
		d.completionTokens.Add(float64(u.Completion))
	}
}

// passHeaders are backend response headers worth passing to clients.
var passHeaders = []string{"X-Request-Id", "Openai-Processing-Ms", "Apim-Request-Id", "Openai-Version"}

func copyPassHeaders(dst, src http.Header) {
	for _, k := range passHeaders {
		if v := src[k]; len(v) > 0 {
			dst[k] = v
		}
	}
}

var respBufs = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

func putRespBuf(b *[]byte) {
	if cap(*b) <= 1<<20 {
		*b = (*b)[:0]
		respBufs.Put(b)
	}
}

// writeStream sends a stream event by event, flushing each, and returns
// the usage it reported.
func (g *Gateway) writeStream(w http.ResponseWriter, ri *reqInfo, res *result) usage {
	s := res.stream
	defer s.close()
	h := w.Header()
	h["Content-Type"] = hdrSSE
	h["Cache-Control"] = hdrNoCache
	h["X-Accel-Buffering"] = hdrNo
	copyPassHeaders(h, res.header)
	h["X-Understudy-Backend"] = res.backend.nameHdr
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	first := true
	for {
		ev, err := s.next()
		if err != nil {
			break
		}
		// A client that stops reading must not hold the stream forever.
		rc.SetWriteDeadline(time.Now().Add(res.dep.idle))
		if _, err := w.Write(ev); err != nil {
			break
		}
		if err := rc.Flush(); err != nil {
			break
		}
		if first {
			first = false
			g.m.ttft.WithLabelValues(res.dep.name).Observe(time.Since(ri.start).Seconds())
		}
	}
	rc.SetWriteDeadline(time.Time{})
	if s.errCode != "" {
		ri.errCode = s.errCode
		g.m.streamErrors.WithLabelValues(res.dep.name, s.errCode).Inc()
		g.log.LogAttrs(context.Background(), slog.LevelWarn, "stream ended with an error event",
			slog.String("deployment", res.dep.name), slog.String("backend", res.backend.name), slog.String("code", s.errCode))
	}
	return s.usage
}

var (
	hdrNoCache = []string{"no-cache"}
	hdrNo      = []string{"no"}
)
