package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Transport is an http.RoundTripper for plain-HTTP upstreams: the calling
// goroutine writes the request and reads the answer on a pooled keep-alive
// connection, so a round trip costs one network wake-up instead of the
// goroutine hand-offs of http.Transport (its writer and reader goroutines
// per connection, and the body's EOF). https:// URLs, URLs that Std.Proxy
// sends to a proxy, and requests with an Upgrade header go to Std, which
// brings TLS, HTTP/2, proxies and protocol switches.
//
// Cancelling a request's context ends a write or read in progress, also
// of the answer's body. A failed round trip on a kept-alive connection
// that the upstream had closed while idle is sent again, once, on a fresh
// connection: only when nothing at all was read from the connection, the
// context is alive and the body can be replayed (none, or GetBody).
type Transport struct {
	// Std serves what is not plain HTTP/1.1 (see above). Default
	// http.DefaultTransport.
	Std *http.Transport
	// Dial opens connections to plain-HTTP upstreams. Default a
	// net.Dialer with a 30s timeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxIdlePerHost bounds the idle connections kept per host:port.
	// Default 256.
	MaxIdlePerHost int
	// IdleTimeout is how long an idle connection is kept. Default 90s.
	IdleTimeout time.Duration

	mu   sync.Mutex
	idle map[string][]*pconn // host:port -> idle connections, most recent last
}

// NewTransport returns a Transport tuned for a proxy's upstreams: plain
// HTTP on dial (nil: a net.Dialer with a 30s timeout), 256 idle
// connections per host kept 90s; Std with the same dial, the proxy from
// the environment (HTTPS_PROXY, NO_PROXY: never for loopback), HTTP/2,
// 1,024 idle connections and no compression, so bodies pass as they are.
func NewTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *Transport {
	return &Transport{
		Std: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           dial,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
			DisableCompression:    true,
		},
		Dial:           dial,
		MaxIdlePerHost: 256,
		IdleTimeout:    90 * time.Second,
	}
}

// BytesBody is a request body held in memory. Transport writes it to the
// connection without a copy when it is unread and req.ContentLength is its
// length.
type BytesBody struct {
	b   []byte
	off int
}

// NewBytesBody returns a body that reads b. b must not change until the
// round trip ends.
func NewBytesBody(b []byte) *BytesBody { return &BytesBody{b: b} }

// Read reads the rest of the body.
func (r *BytesBody) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

// Close does nothing.
func (r *BytesBody) Close() error { return nil }

const (
	defaultMaxIdle     = 256
	defaultIdleTimeout = 90 * time.Second
	clientReadBuf      = 16 << 10
	clientWriteBuf     = 8 << 10
)

var (
	defaultDial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext

	// errInvalidRequest marks a request that cannot be written; it is
	// never retried.
	errInvalidRequest = errors.New("h1: invalid request")
	errBodyClosed     = errors.New("h1: read on closed response body")
)

// RoundTrip sends req and returns the answer, whose body is read straight
// from the connection: the connection goes back to the pool when the body
// is read to its end, and is closed when the body is closed before.
// When req's context ends, the error matches both ctx.Err() and
// context.Cause(ctx) with errors.Is, and its message is the cause's.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		closeBody(req)
		return nil, errors.New("h1: nil Request.URL")
	}
	if req.URL.Scheme != "http" || req.Header.Get("Upgrade") != "" {
		return t.std().RoundTrip(req)
	}
	if p := t.std().Proxy; p != nil {
		if u, err := p(req); err != nil || u != nil {
			return t.std().RoundTrip(req)
		}
	}
	ctx := req.Context()
	if ctx.Err() != nil {
		closeBody(req)
		return nil, ctxErr(ctx)
	}
	host := req.URL.Host
	if req.URL.Port() == "" {
		host = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	for fresh := false; ; fresh = true {
		c, err := t.get(ctx, host, fresh)
		if err != nil {
			closeBody(req)
			if ctx.Err() != nil {
				return nil, ctxErr(ctx)
			}
			return nil, err
		}
		resp, retry, err := t.roundTrip(c, host, req)
		if err == nil {
			return resp, nil
		}
		if !retry || fresh {
			return nil, err
		}
		// A kept-alive connection the upstream closed while it was idle:
		// nothing was answered, send again on a fresh one.
		if req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return nil, err
			}
			body, berr := req.GetBody()
			if berr != nil {
				return nil, err
			}
			r2 := *req
			r2.Body = body
			req = &r2
		}
	}
}

// CloseIdleConnections closes every idle connection, and Std's.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, cs := range idle {
		for _, c := range cs {
			c.conn.Close()
		}
	}
	t.std().CloseIdleConnections()
}

func (t *Transport) std() *http.Transport {
	if t.Std == nil {
		return http.DefaultTransport.(*http.Transport)
	}
	return t.Std
}

// pconn is one keep-alive connection to an upstream.
type pconn struct {
	conn   *countConn
	br     *bufio.Reader
	bw     *bufio.Writer
	reused bool
	idleAt time.Time
	body   bodyReader // the request body being written
	chunk  []byte     // buffer of chunked request bodies, made on first use
}

// countConn counts the bytes read, so a failed exchange on a reused
// connection is retried only when the upstream answered nothing at all.
type countConn struct {
	net.Conn
	read int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read += int64(n)
	return n, err
}

// roundTrip sends req on c and reads the answer's head. retry reports that
// the exchange failed in a way that allows sending req again on a fresh
// connection.
func (t *Transport) roundTrip(c *pconn, host string, req *http.Request) (resp *http.Response, retry bool, err error) {
	ctx := req.Context()
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(aLongTimeAgo) })
	read0 := c.conn.read
	fail := func(err error) (*http.Response, bool, error) {
		stopped := stop()
		c.conn.Close()
		if !stopped || ctx.Err() != nil {
			return nil, false, ctxErr(ctx)
		}
		retry := c.reused && c.conn.read == read0 && !errors.Is(err, errInvalidRequest)
		return nil, retry, err
	}
	if err := c.writeRequest(req); err != nil {
		return fail(err)
	}
	for {
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			return fail(err)
		}
		// Skip informational answers (100 Continue, 103 Early Hints).
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	keep := !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols
	if resp.Body == http.NoBody || resp.ContentLength == 0 {
		resp.Body = http.NoBody
		t.release(c, host, stop, keep)
		return resp, false, nil
	}
	resp.Body = &respBody{t: t, c: c, host: host, rc: resp.Body, stop: stop, keep: keep}
	return resp, false, nil
}

// release ends an exchange on c whose answer was read to its end: c goes
// back to the pool, or is closed when it was told to close, when the
// context ended (its deadline may be set) or when the upstream sent more
// than the answer.
func (t *Transport) release(c *pconn, host string, stop func() bool, keep bool) {
	if !stop() || !keep || c.br.Buffered() > 0 {
		c.conn.Close()
		return
	}
	t.put(host, c)
}

// get returns an idle connection to host, or dials a new one (always when
// fresh).
func (t *Transport) get(ctx context.Context, host string, fresh bool) (*pconn, error) {
	if !fresh {
		now := time.Now()
		t.mu.Lock()
		for cs := t.idle[host]; len(cs) > 0; cs = t.idle[host] {
			c := cs[len(cs)-1]
			cs[len(cs)-1] = nil
			t.idle[host] = cs[:len(cs)-1]
			if now.Sub(c.idleAt) < t.idleTimeout() {
				t.mu.Unlock()
				c.reused = true
				return c, nil
			}
			c.conn.Close()
		}
		t.mu.Unlock()
	}
	dial := t.Dial
	if dial == nil {
		dial = defaultDial
	}
	nc, err := dial(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	cc := &countConn{Conn: fast(nc)}
	return &pconn{conn: cc, br: bufio.NewReaderSize(cc, clientReadBuf), bw: bufio.NewWriterSize(cc, clientWriteBuf)}, nil
}

// put keeps c for reuse, or closes it when the pool is full. Connections
// idle for longer than IdleTimeout are closed from the bottom of the stack.
func (t *Transport) put(host string, c *pconn) {
	c.idleAt = time.Now()
	limit := t.MaxIdlePerHost
	if limit <= 0 {
		limit = defaultMaxIdle
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	cs := t.idle[host]
	n := 0
	for n < len(cs) && c.idleAt.Sub(cs[n].idleAt) >= t.idleTimeout() {
		cs[n].conn.Close()
		n++
	}
	if n > 0 {
		cs = append(cs[:0], cs[n:]...)
	}
	if len(cs) >= limit {
		t.idle[host] = cs
		c.conn.Close()
		return
	}
	if t.idle == nil {
		t.idle = map[string][]*pconn{}
	}
	t.idle[host] = append(cs, c)
}

func (t *Transport) idleTimeout() time.Duration {
	if t.IdleTimeout <= 0 {
		return defaultIdleTimeout
	}
	return t.IdleTimeout
}

// respBody is an answer's body. The connection goes back to the pool when the
// body was read to its end, and is closed when it is abandoned or fails.
type respBody struct {
	t    *Transport
	c    *pconn
	host string
	rc   io.ReadCloser
	stop func() bool
	keep bool
	done atomic.Bool // released
	eof  atomic.Bool // released at the end of the body
}

func (b *respBody) Read(p []byte) (int, error) {
	if b.done.Load() {
		if b.eof.Load() {
			return 0, io.EOF
		}
		return 0, errBodyClosed
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		if b.done.CompareAndSwap(false, true) {
			b.eof.Store(true)
			b.t.release(b.c, b.host, b.stop, b.keep)
		}
	} else if err != nil {
		b.abandon()
	}
	return n, err
}

// Close closes the connection unless the body was read to its end: the
// rest of it is still on the wire.
func (b *respBody) Close() error {
	b.abandon()
	return nil
}

func (b *respBody) abandon() {
	if b.done.CompareAndSwap(false, true) {
		b.stop()
		b.c.conn.Close()
	}
}

// writeRequest writes req's head and body and flushes them. It writes
// req.Header as it is, in map order, without the fields it sets itself
// (Host, Content-Length, Transfer-Encoding, Connection); a body of known
// length goes with a Content-Length, one of unknown length chunked. It
// closes req.Body.
func (c *pconn) writeRequest(req *http.Request) error {
	bw := c.bw
	rb := req.Body
	if rb == http.NoBody {
		rb = nil
	}
	if rb != nil {
		defer rb.Close()
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	uri := req.URL.RequestURI()
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	switch {
	case !validName(method):
		return fmt.Errorf("%w: method %q", errInvalidRequest, method)
	case !validValue(uri) || strings.IndexByte(uri, ' ') >= 0:
		return fmt.Errorf("%w: request target %q", errInvalidRequest, uri)
	case !validValue(host):
		return fmt.Errorf("%w: host %q", errInvalidRequest, host)
	}
	n := req.ContentLength
	if rb == nil && n > 0 {
		return fmt.Errorf("%w: ContentLength %d with no body", errInvalidRequest, n)
	}
	bw.WriteString(method)
	bw.WriteByte(' ')
	bw.WriteString(uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vs := range req.Header {
		if ownHeader(k) {
			continue
		}
		if !validName(k) {
			return fmt.Errorf("%w: header field name %q", errInvalidRequest, k)
		}
		for _, v := range vs {
			if !validValue(v) {
				return fmt.Errorf("%w: header field %q has a control character", errInvalidRequest, k)
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if req.Close {
		bw.WriteString("Connection: close\r\n")
	}
	var m int // bytes of the body read ahead into c.chunk
	var rerr error
	if rb != nil && n <= 0 {
		// Length unknown: an empty body is sent as none, else chunked.
		if c.chunk == nil {
			c.chunk = make([]byte, 16<<10)
		}
		for m == 0 && rerr == nil {
			m, rerr = rb.Read(c.chunk)
		}
		if m == 0 && rerr == io.EOF {
			rb = nil
		}
	}
	switch {
	case rb == nil:
		if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
			bw.WriteString("Content-Length: 0\r\n")
		}
		bw.WriteString("\r\n")
	case n > 0:
		bw.WriteString("Content-Length: ")
		var num [20]byte
		bw.Write(strconv.AppendInt(num[:0], n, 10))
		bw.WriteString("\r\n\r\n")
		if bb, ok := rb.(*BytesBody); ok && bb.off == 0 && int64(len(bb.b)) == n {
			bw.Write(bb.b)
			break
		}
		c.body = bodyReader{r: rb}
		_, err := io.CopyN(bw, &c.body, n)
		if c.body.err != nil {
			return fmt.Errorf("%w: read body: %w", errInvalidRequest, c.body.err)
		}
		c.body = bodyReader{}
		if err != nil {
			return err
		}
	default:
		bw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		for {
			if m > 0 {
				bw.WriteString(strconv.FormatInt(int64(m), 16))
				bw.WriteString("\r\n")
				bw.Write(c.chunk[:m])
				bw.WriteString("\r\n")
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				return fmt.Errorf("%w: read body: %w", errInvalidRequest, rerr)
			}
			m, rerr = rb.Read(c.chunk)
		}
		bw.WriteString("0\r\n\r\n")
	}
	return bw.Flush()
}

// bodyReader tells the request body's read errors from the connection's
// write errors.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// ownHeader reports the fields writeRequest sets itself, whatever their
// case in req.Header.
func ownHeader(k string) bool {
	switch len(k) {
	case 4:
		return strings.EqualFold(k, "Host")
	case 10:
		return strings.EqualFold(k, "Connection")
	case 14:
		return strings.EqualFold(k, "Content-Length")
	case 17:
		return strings.EqualFold(k, "Transfer-Encoding")
	}
	return false
}

// validValue refuses what would split the request: CR, LF, NUL.
func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}

// ctxErr is the error of a round trip whose context ended: it matches both
// ctx.Err() and context.Cause(ctx), and reads as the cause.
func ctxErr(ctx context.Context) error {
	err, cause := ctx.Err(), context.Cause(ctx)
	if cause == nil || cause == err {
		return err
	}
	return &canceled{cause: cause, err: err}
}

type canceled struct{ cause, err error }

func (e *canceled) Error() string   { return e.cause.Error() }
func (e *canceled) Unwrap() []error { return []error{e.cause, e.err} }

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
