package edge

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"
)

// inline is the edge's transport to plain-HTTP origins: the request's own
// goroutine writes the request and reads the answer on a pooled keep-alive
// connection. http.Transport hands every round trip to a writer and a reader
// goroutine per connection; on a small VM each hand-off is a thread wake-up,
// and they were most of the edge's cost. HTTPS origins and protocol upgrades
// go to the standard transport.
type inline struct {
	std     *http.Transport
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle int           // idle connections kept per host
	idleFor time.Duration // an idle connection older than this is closed

	mu   sync.Mutex
	idle map[string][]*h1conn // by host:port, most recent last
}

func newInline(std *http.Transport, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *inline {
	return &inline{std: std, dial: dial, maxIdle: 256, idleFor: 90 * time.Second, idle: map[string][]*h1conn{}}
}

// h1conn is one keep-alive connection to an origin.
type h1conn struct {
	net.Conn
	host string
	br   *bufio.Reader
	bw   *bufio.Writer
	used time.Time // when it went idle
}

// RoundTrip sends req and returns the response with a body read straight
// from the connection.
func (t *inline) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" || req.Header.Get("Upgrade") != "" {
		return t.std.RoundTrip(req)
	}
	host := req.URL.Host
	if !strings.Contains(host, ":") {
		host += ":80"
	}
	for try := 0; ; try++ {
		c, reused, err := t.get(req.Context(), host)
		if err != nil {
			return nil, err
		}
		resp, err := t.roundTrip(c, req)
		if err == nil {
			return resp, nil
		}
		// A kept-alive connection the origin closed while idle fails before
		// a single byte comes back: send again once on a fresh connection,
		// when the body can be replayed.
		if !reused || try > 0 || !errors.Is(err, errNothingRead) || !isConnReset(err) || req.Context().Err() != nil {
			return nil, unwrapNothing(err)
		}
		if req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return nil, unwrapNothing(err)
			}
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, unwrapNothing(err)
			}
			r2 := *req
			r2.Body = body
			req = &r2
		}
	}
}

// errNothingRead marks a failure before any response byte arrived.
var errNothingRead = errors.New("connection failed before any response byte")

type nothingRead struct{ err error }

func (e nothingRead) Error() string { return e.err.Error() }
func (e nothingRead) Unwrap() []error {
	return []error{errNothingRead, e.err}
}

func unwrapNothing(err error) error {
	var n nothingRead
	if errors.As(err, &n) {
		return n.err
	}
	return err
}

func (t *inline) roundTrip(c *h1conn, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	// Cancelling the request unblocks a read or write in progress.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		c.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	if err := req.Write(c.bw); err != nil {
		return fail(nothingRead{err})
	}
	if err := c.bw.Flush(); err != nil {
		return fail(nothingRead{err})
	}
	if _, err := c.br.Peek(1); err != nil {
		return fail(nothingRead{err})
	}
	var resp *http.Response
	for {
		var err error
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			return fail(err)
		}
		// Skip informational answers (100 Continue, 103 Early Hints).
		if resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		break
	}
	keep := !resp.Close && !req.Close
	if resp.Body == http.NoBody || resp.ContentLength == 0 {
		resp.Body.Close()
		resp.Body = http.NoBody
		t.done(c, stop, keep)
		return resp, nil
	}
	resp.Body = &h1body{rc: resp.Body, c: c, t: t, stop: stop, keep: keep}
	return resp, nil
}

// h1body returns its connection to the pool once read to the end, and
// closes it otherwise.
type h1body struct {
	rc   io.ReadCloser
	c    *h1conn
	t    *inline
	stop func() bool
	keep bool
	once sync.Once
}

func (b *h1body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.once.Do(func() { b.t.done(b.c, b.stop, b.keep) })
	} else if err != nil {
		b.once.Do(func() { b.stop(); b.c.Close() })
	}
	return n, err
}

func (b *h1body) Close() error {
	b.once.Do(func() {
		// Not read to the end: the rest is still on the wire.
		b.stop()
		b.c.Close()
	})
	return nil
}

// done ends a round trip on c: back to the pool, or closed.
func (t *inline) done(c *h1conn, stop func() bool, keep bool) {
	if !stop() || !keep || c.br.Buffered() > 0 {
		// Cancelled (the deadline may be set), told to close, or the origin
		// sent more than the answer: not reusable.
		c.Close()
		return
	}
	t.put(c)
}

func (t *inline) get(ctx context.Context, host string) (*h1conn, bool, error) {
	now := time.Now()
	t.mu.Lock()
	for cs := t.idle[host]; len(cs) > 0; cs = t.idle[host] {
		c := cs[len(cs)-1]
		t.idle[host] = cs[:len(cs)-1]
		if now.Sub(c.used) < t.idleFor {
			t.mu.Unlock()
			return c, true, nil
		}
		c.Close()
	}
	t.mu.Unlock()
	nc, err := t.dial(ctx, "tcp", host)
	if err != nil {
		return nil, false, err
	}
	return &h1conn{Conn: nc, host: host, br: bufio.NewReaderSize(nc, 16<<10), bw: bufio.NewWriterSize(nc, 16<<10)}, false, nil
}

func (t *inline) put(c *h1conn) {
	c.used = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	cs := t.idle[c.host]
	if len(cs) >= t.maxIdle {
		c.Close()
		return
	}
	// Close connections idle for too long from the bottom of the stack.
	n := 0
	for n < len(cs) && c.used.Sub(cs[n].used) >= t.idleFor {
		cs[n].Close()
		n++
	}
	t.idle[c.host] = append(cs[n:], c)
}

// CloseIdleConnections closes every idle connection.
func (t *inline) CloseIdleConnections() {
	t.mu.Lock()
	for h, cs := range t.idle {
		for _, c := range cs {
			c.Close()
		}
		delete(t.idle, h)
	}
	t.mu.Unlock()
	t.std.CloseIdleConnections()
}

// isConnReset reports errors of a connection the peer closed.
func isConnReset(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
