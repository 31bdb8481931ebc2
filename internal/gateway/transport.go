package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// transport is the default RoundTripper to backends. Plain-HTTP backends
// (vLLM, modelsim, anything on the same network) are served inline: the
// calling goroutine writes the request and reads the answer on a pooled
// keep-alive connection, so a round trip costs one network wake-up instead
// of the four goroutine hand-offs of http.Transport (writeLoop, readLoop,
// body EOF). HTTPS backends (Azure OpenAI) and proxied URLs go to the
// standard http.Transport, which brings TLS, HTTP/2 and proxies.
type transport struct {
	std  *http.Transport
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	maxIdle     int           // idle connections kept per host
	idleTimeout time.Duration // an idle connection older than this is closed

	mu   sync.Mutex
	idle map[string][]*h1Conn // host:port -> idle connections, most recent last
}

func newTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *transport {
	std := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dial,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
	return &transport{std: std, dial: dial, maxIdle: 256, idleTimeout: 90 * time.Second, idle: map[string][]*h1Conn{}}
}

// CloseIdleConnections closes every idle connection.
func (t *transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*h1Conn{}
	t.mu.Unlock()
	for _, cs := range idle {
		for _, c := range cs {
			c.conn.Close()
		}
	}
	t.std.CloseIdleConnections()
}

// h1Conn is one keep-alive connection to a plain-HTTP backend.
type h1Conn struct {
	conn   *countConn
	br     *bufio.Reader
	bw     *bufio.Writer
	reused bool
	idleAt time.Time
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" || req.Method != http.MethodPost {
		return t.std.RoundTrip(req)
	}
	if p, err := t.std.Proxy(req); err != nil || p != nil {
		return t.std.RoundTrip(req)
	}
	host := req.URL.Host
	if req.URL.Port() == "" {
		host = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	for {
		c, err := t.get(req.Context(), host)
		if err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
		resp, retry, err := t.roundTrip(c, host, req)
		if err == nil {
			return resp, nil
		}
		if !retry || req.GetBody == nil {
			return nil, err
		}
		// A kept-alive connection the backend had closed while it was idle:
		// nothing was answered, send again on a fresh one.
		body, berr := req.GetBody()
		if berr != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = body
	}
}

// roundTrip sends req on c and reads the answer's head. retry reports that
// the connection was a stale idle one that answered nothing.
func (t *transport) roundTrip(c *h1Conn, host string, req *http.Request) (resp *http.Response, retry bool, err error) {
	ctx := req.Context()
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(aLongTimeAgo) })
	read0 := c.conn.read
	fail := func(err error) (*http.Response, bool, error) {
		stopped := stop()
		c.conn.Close()
		if !stopped || ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		return nil, false, err
	}
	if err := writeRequest(c.bw, req); err != nil {
		if c.reused && ctx.Err() == nil {
			stop()
			c.conn.Close()
			return nil, true, err
		}
		return fail(err)
	}
	resp, err = http.ReadResponse(c.br, req)
	for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		resp, err = http.ReadResponse(c.br, req) // skip informational answers
	}
	if err != nil {
		if c.reused && ctx.Err() == nil && c.conn.read == read0 {
			stop()
			c.conn.Close()
			return nil, true, err
		}
		return fail(err)
	}
	resp.Body = &h1Body{t: t, c: c, host: host, rc: resp.Body, stop: stop, keep: !resp.Close}
	return resp, false, nil
}

var aLongTimeAgo = time.Unix(1, 0)

// writeRequest writes a POST with a known-length body.
func writeRequest(bw *bufio.Writer, req *http.Request) error {
	bw.WriteString("POST ")
	bw.WriteString(req.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	if req.Host != "" {
		bw.WriteString(req.Host)
	} else {
		bw.WriteString(req.URL.Host)
	}
	bw.WriteString("\r\n")
	for k, vs := range req.Header {
		for _, v := range vs {
			if !validHeader(k, v) {
				return fmt.Errorf("invalid header %q", k)
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	n := req.ContentLength
	var body []byte
	if bb, ok := req.Body.(*byteBody); ok && bb.off == 0 && int64(len(bb.b)) == n {
		body = bb.b
	} else if n < 0 || (n == 0 && req.Body != nil && req.Body != http.NoBody) {
		b, err := io.ReadAll(req.Body) // length unknown: read it first
		if err != nil {
			req.Body.Close()
			return err
		}
		body, n = b, int64(len(b))
	}
	bw.WriteString("Content-Length: ")
	var num [20]byte
	bw.Write(strconv.AppendInt(num[:0], n, 10))
	bw.WriteString("\r\n\r\n")
	switch {
	case body != nil:
		bw.Write(body)
	case n > 0:
		_, err := io.CopyN(bw, req.Body, n)
		if err != nil {
			req.Body.Close()
			return err
		}
	}
	if req.Body != nil {
		req.Body.Close()
	}
	return bw.Flush()
}

// validHeader refuses header names and values that would split the request.
func validHeader(k, v string) bool {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c <= ' ' || c == ':' || c >= 0x7f {
			return false
		}
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return k != "" && k != "Content-Length" && k != "Host" && k != "Transfer-Encoding" && k != "Connection"
}

// get returns an idle connection to host or dials a new one.
func (t *transport) get(ctx context.Context, host string) (*h1Conn, error) {
	now := time.Now()
	t.mu.Lock()
	for cs := t.idle[host]; len(cs) > 0; cs = t.idle[host] {
		c := cs[len(cs)-1]
		t.idle[host] = cs[:len(cs)-1]
		if now.Sub(c.idleAt) < t.idleTimeout {
			t.mu.Unlock()
			c.reused = true
			return c, nil
		}
		c.conn.Close()
	}
	t.mu.Unlock()
	conn, err := t.dial(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	cc := &countConn{Conn: conn}
	return &h1Conn{conn: cc, br: bufio.NewReaderSize(cc, 16<<10), bw: bufio.NewWriterSize(cc, 8<<10)}, nil
}

// countConn counts the bytes read, so a failed exchange on a reused
// connection is retried only when the backend answered nothing at all.
type countConn struct {
	net.Conn
	read int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read += int64(n)
	return n, err
}

// put keeps c for reuse, or closes it when the pool is full.
func (t *transport) put(host string, c *h1Conn) {
	c.idleAt = time.Now()
	t.mu.Lock()
	if cs := t.idle[host]; len(cs) < t.maxIdle {
		t.idle[host] = append(cs, c)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	c.conn.Close()
}

// h1Body is an answer's body; the connection goes back to the pool when
// the body was read to its end, and is closed when it is abandoned.
type h1Body struct {
	t    *transport
	c    *h1Conn
	host string
	rc   io.ReadCloser
	stop func() bool
	keep bool
	done bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.release(true)
	} else if err != nil {
		b.release(false)
	}
	return n, err
}

func (b *h1Body) Close() error {
	if !b.done {
		b.release(false)
	}
	return nil
}

func (b *h1Body) release(complete bool) {
	b.done = true
	stopped := b.stop()
	if complete && b.keep && stopped && b.c.br.Buffered() == 0 {
		b.t.put(b.host, b.c)
		return
	}
	b.c.conn.Close()
}
