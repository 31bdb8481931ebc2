package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves HTTP/1.1 on listeners. The zero value is not usable:
// Handler is required; zero timeouts mean none.
type Server struct {
	Handler http.Handler
	// ReadHeaderTimeout bounds reading a request's header, from its first
	// byte (the first request of a connection: from the accept).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, header and body; a
	// handler lifts it with http.ResponseController.SetReadDeadline.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response, from the end of its
	// request's header.
	WriteTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a kept-alive
	// connection. Zero: ReadTimeout.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header. Default 1 MiB.
	MaxHeaderBytes int
	// WatchAfter is how long a handler runs, its request body read, before
	// the connection is watched for the client going away (which cancels
	// the request's context). Default 20ms.
	WatchAfter time.Duration
	// BaseContext returns the base context of requests from ln. Default
	// context.Background().
	BaseContext func(ln net.Listener) context.Context
	// Log receives handler panics and accept errors. Default slog.Default().
	Log *slog.Logger

	shutting atomic.Bool
	mu       sync.Mutex
	lns      map[net.Listener]struct{}
	conns    map[*conn]struct{}
	gone     chan struct{} // closed when shutting and the last conn ends
}

const (
	bufSize         = 4 << 10
	maxDiscard      = 256 << 10 // unread request body drained to keep a connection
	closeLinger     = time.Second
	defaultMaxHead  = 1 << 20
	defaultWatchDur = 20 * time.Millisecond
)

// aLongTimeAgo is a deadline that makes a pending read return at once.
var aLongTimeAgo = time.Unix(1, 0)

// Serve accepts connections on ln and serves each in its own goroutine,
// until Shutdown or Close, when it returns http.ErrServerClosed. It closes
// ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	defer ln.Close()
	base := context.Background()
	if s.BaseContext != nil {
		base = s.BaseContext(ln)
	}
	if !s.track(ln, true) {
		return http.ErrServerClosed
	}
	defer s.track(ln, false)
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return http.ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: back off, as net/http.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log().Warn("accept", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c := newConn(s, fast(nc))
		if !s.trackConn(c, true) {
			nc.Close()
			return http.ErrServerClosed
		}
		go c.serve(base)
	}
}

// Shutdown stops accepting, closes idle connections, lets requests in
// flight finish (their responses say Connection: close) and returns when
// every connection has ended, or with ctx's error when ctx ends first.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutting.Store(true)
	s.mu.Lock()
	for ln := range s.lns {
		ln.Close()
	}
	if s.gone == nil {
		s.gone = make(chan struct{})
		if len(s.conns) == 0 {
			close(s.gone)
		}
	}
	gone := s.gone
	for c := range s.conns {
		c.closeIfIdle()
	}
	s.mu.Unlock()
	select {
	case <-gone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.shutting.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	return nil
}

func (s *Server) track(ln net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.lns, ln)
		return true
	}
	if s.shutting.Load() {
		return false
	}
	if s.lns == nil {
		s.lns = map[net.Listener]struct{}{}
	}
	s.lns[ln] = struct{}{}
	return true
}

func (s *Server) trackConn(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, c)
		if s.gone != nil && len(s.conns) == 0 {
			select {
			case <-s.gone:
			default:
				close(s.gone)
			}
		}
		return true
	}
	if s.shutting.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// conn is one client connection.
type conn struct {
	s      *Server
	nc     net.Conn
	r      connReader
	br     *bufio.Reader
	bw     *bufio.Writer
	remote string

	mu      sync.Mutex
	idle    bool // waiting for a request: Shutdown may close it
	closing bool // Shutdown closed it while idle
	// The client-gone watch (see doc.go). gen counts requests; armed is
	// the request whose body was read when the watch timer was set.
	gen, armed int64
	watch      *time.Timer
	watching   bool
	aborting   bool
	watchDone  chan struct{}
	cancel     context.CancelFunc
	broken     bool // the watch read failed: the connection is unusable
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, remote: nc.RemoteAddr().String(), idle: true}
	c.r.nc = nc
	c.br = bufio.NewReaderSize(&c.r, bufSize)
	c.bw = bufio.NewWriterSize(nc, bufSize)
	return c
}

// connReader reads the connection for the bufio.Reader, within a limit
// while a header is read, and returns first the byte the watch read, if
// any.
type connReader struct {
	nc         net.Conn
	remain     int64
	hasPending bool
	pending    byte
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.remain <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remain {
		p = p[:r.remain]
	}
	if r.hasPending && len(p) > 0 {
		p[0], r.hasPending = r.pending, false
		r.remain--
		return 1, nil
	}
	n, err := r.nc.Read(p)
	r.remain -= int64(n)
	return n, err
}

const unlimited = 1<<63 - 1

func (c *conn) serve(base context.Context) {
	defer c.s.trackConn(c, false)
	defer c.nc.Close()
	s := c.s
	maxHead := int64(s.MaxHeaderBytes)
	if maxHead <= 0 {
		maxHead = defaultMaxHead
	}
	first := true
	for {
		// Wait for the first byte of a request.
		wait := s.IdleTimeout
		if wait == 0 || first {
			wait = s.ReadTimeout
		}
		if first && s.ReadHeaderTimeout > 0 {
			wait = s.ReadHeaderTimeout
		}
		first = false
		c.nc.SetReadDeadline(deadline(wait))
		c.r.remain = maxHead + bufSize
		if _, err := c.br.Peek(1); err != nil {
			return
		}
		c.mu.Lock()
		if c.closing {
			c.mu.Unlock()
			return
		}
		c.idle = false
		c.mu.Unlock()

		start := time.Now()
		if s.ReadHeaderTimeout > 0 {
			c.nc.SetReadDeadline(start.Add(s.ReadHeaderTimeout))
		}
		req, err := http.ReadRequest(c.br)
		if err != nil {
			switch {
			case c.r.remain <= 0:
				c.fail(http.StatusRequestHeaderFieldsTooLarge, "request header too large")
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), isTimeout(err):
			default:
				c.fail(http.StatusBadRequest, err.Error())
			}
			c.closeGracefully()
			return
		}
		c.r.remain = unlimited
		if s.ReadTimeout > 0 {
			c.nc.SetReadDeadline(start.Add(s.ReadTimeout))
		} else if s.ReadHeaderTimeout > 0 {
			c.nc.SetReadDeadline(time.Time{})
		}
		if s.WriteTimeout > 0 {
			c.nc.SetWriteDeadline(time.Now().Add(s.WriteTimeout))
		}
		if !c.serveRequest(base, req) {
			c.closeGracefully()
			return
		}
		if s.shutting.Load() {
			return
		}
		c.mu.Lock()
		c.idle = true
		c.mu.Unlock()
		if s.WriteTimeout > 0 {
			c.nc.SetWriteDeadline(time.Time{})
		}
	}
}

// serveRequest runs the handler for req and finishes its response. It
// reports whether the connection can carry another request.
func (c *conn) serveRequest(base context.Context, req *http.Request) (keep bool) {
	if req.ProtoMajor != 1 {
		c.fail(http.StatusHTTPVersionNotSupported, "unsupported protocol version")
		return false
	}
	if msg := checkRequest(req); msg != "" {
		c.fail(http.StatusBadRequest, msg)
		return false
	}
	ctx, cancel := context.WithCancel(base)
	defer cancel()
	req = req.WithContext(ctx)
	req.RemoteAddr = c.remote
	b := &body{ReadCloser: req.Body, c: c}
	if e := req.Header.Get("Expect"); e != "" {
		if !strings.EqualFold(e, "100-continue") {
			c.fail(http.StatusExpectationFailed, "unsupported Expect")
			return false
		}
		// As net/http: HTTP/1.0 clients and empty bodies get no 100.
		b.cont = req.ProtoAtLeast(1, 1) && req.ContentLength != 0
		req.Header.Del("Expect")
	}
	req.Body = b

	c.mu.Lock()
	c.gen++
	c.cancel = cancel
	c.mu.Unlock()
	if req.ContentLength == 0 && req.TransferEncoding == nil {
		b.sawEOF = true
		c.armWatch()
	}
	w := &response{c: c, req: req, header: make(http.Header), contentLength: -1}
	if !c.runHandler(w, req) {
		c.stopWatch()
		return false
	}
	c.stopWatch()
	// Drain a small unread body so the connection can be reused.
	if !b.sawEOF && (req.ContentLength > maxDiscard || !b.drain()) {
		w.closeAfter = true
	}
	if err := w.finish(); err != nil {
		return false
	}
	c.mu.Lock()
	broken := c.broken
	c.mu.Unlock()
	return !w.closeAfter && !broken
}

// runHandler calls the handler; false when it panicked.
func (c *conn) runHandler(w *response, req *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				c.s.log().Error("handler panic", "remote", c.remote, "method", req.Method, "path", req.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			}
			ok = false
		}
	}()
	c.s.Handler.ServeHTTP(w, req)
	return true
}

// checkRequest returns why req is malformed, as net/http's server checks.
func checkRequest(req *http.Request) string {
	// http.ReadRequest moved Host to req.Host (and refused two of them).
	if req.Host == "" && req.ProtoAtLeast(1, 1) {
		return "missing required Host header"
	}
	if req.Method == http.MethodConnect {
		return "CONNECT not supported"
	}
	return ""
}

// fail answers a request that cannot be served; the caller closes the
// connection.
func (c *conn) fail(status int, msg string) {
	c.nc.SetWriteDeadline(time.Now().Add(closeLinger))
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		status, http.StatusText(status), len(msg)+1, msg+"\n")
	c.bw.Flush()
}

// closeGracefully half-closes and reads what the client still sends for a
// moment, so that a reset does not destroy the response it has not read.
func (c *conn) closeGracefully() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		c.nc.SetReadDeadline(time.Now().Add(closeLinger))
		io.Copy(io.Discard, c.nc)
	}
}

// closeIfIdle closes the connection if it waits for a request (Shutdown).
func (c *conn) closeIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.idle {
		c.closing = true
		c.nc.SetReadDeadline(aLongTimeAgo)
	}
}

// armWatch starts the client-gone watch timer once the request body has
// been read.
func (c *conn) armWatch() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel == nil {
		return // the handler has returned (a drain after it)
	}
	c.armed = c.gen
	after := c.s.WatchAfter
	if after <= 0 {
		after = defaultWatchDur
	}
	if c.watch == nil {
		c.watch = time.AfterFunc(after, c.watchClient)
		return
	}
	c.watch.Reset(after)
}

// watchClient reads one byte to learn whether the client went away while
// the handler runs. A byte is kept for the next request (pipelining); an
// error cancels the request's context.
func (c *conn) watchClient() {
	c.mu.Lock()
	if c.armed != c.gen || c.watching || c.cancel == nil || c.br.Buffered() > 0 || c.r.hasPending {
		c.mu.Unlock()
		return
	}
	c.watching = true
	cancel := c.cancel // stopWatch clears c.cancel while this reads
	done := make(chan struct{})
	c.watchDone = done
	c.mu.Unlock()
	if testHookWatch != nil {
		testHookWatch()
	}

	var b [1]byte
	n, err := c.nc.Read(b[:])

	c.mu.Lock()
	defer c.mu.Unlock()
	if n == 1 {
		c.r.pending, c.r.hasPending = b[0], true
	}
	if err != nil && !(c.aborting && isTimeout(err)) {
		c.broken = true
		cancel()
	}
	c.watching = false
	close(done)
}

// testHookWatch, when set by a test, runs as a watch begins to read.
var testHookWatch func()

// stopWatch ends the watch of the request that just finished.
func (c *conn) stopWatch() {
	c.mu.Lock()
	c.cancel = nil
	c.armed = -1
	if c.watch != nil {
		c.watch.Stop()
	}
	if !c.watching {
		c.mu.Unlock()
		return
	}
	c.aborting = true
	done := c.watchDone
	c.mu.Unlock()
	c.nc.SetReadDeadline(aLongTimeAgo)
	<-done
	c.mu.Lock()
	c.aborting = false
	c.mu.Unlock()
	c.nc.SetReadDeadline(time.Time{})
}

// body is a request body: it answers Expect: 100-continue on the first
// read and arms the watch when the body has been read.
type body struct {
	io.ReadCloser
	c      *conn
	cont   bool // 100 Continue still to send
	sawEOF bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.sawEOF {
		return 0, io.EOF
	}
	if b.cont {
		b.cont = false
		b.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if err := b.c.bw.Flush(); err != nil {
			return 0, err
		}
	}
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF { // http's body reader returns it with the last bytes
		b.sawEOF = true
		b.c.armWatch()
	}
	return n, err
}

// drain reads what is left of a small body; false if it could not.
func (b *body) drain() bool {
	if b.cont {
		// The client waits for 100 Continue that will not come: it may
		// still send the body, or not; the connection cannot be reused.
		return false
	}
	_, err := io.CopyN(io.Discard, b, maxDiscard+1)
	return err == io.EOF
}

func deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
