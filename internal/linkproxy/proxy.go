package linkproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes one link.
type Config struct {
	// Name identifies the link in logs and in the admin API. Default: Listen.
	Name string
	// Listen is the address clients connect to, host:port. Port 0 picks a
	// free port; Addr reports it. Default "127.0.0.1:0".
	Listen string
	// Upstream is the address every connection is forwarded to. Required
	// unless Upstreams is set.
	Upstream string
	// Upstreams, when set, replaces Upstream with several addresses: the
	// proxy balances connections over them round robin, and a connection
	// whose turn falls on an upstream that cannot be dialled (refused:
	// the process is gone) goes to the next one. So a region's gateway
	// replicas can sit behind one address. Default none.
	Upstreams []string
	// Latency is the one-way delay added to every chunk in each direction.
	// Default 0.
	Latency time.Duration
	// Jitter varies each chunk's delay uniformly within ±Jitter (never below
	// zero, never reordering). Default 0.
	Jitter time.Duration
	// DialTimeout bounds connecting to Upstream. Default 5s.
	DialTimeout time.Duration
	// MaxInflight bounds the bytes queued in one direction of one
	// connection (read, not yet delivered); a full queue stops reading, so
	// the sender sees backpressure. Default 4 MiB.
	MaxInflight int
}

// Validate reports the first problem with c, naming the field.
func (c Config) Validate() error {
	switch {
	case c.Upstream == "" && len(c.Upstreams) == 0:
		return errors.New("linkproxy: upstream is required")
	case c.Latency < 0:
		return errors.New("linkproxy: latency must not be negative")
	case c.Jitter < 0:
		return errors.New("linkproxy: jitter must not be negative")
	case c.DialTimeout < 0:
		return errors.New("linkproxy: dial timeout must not be negative")
	case c.MaxInflight < 0:
		return errors.New("linkproxy: max inflight must not be negative")
	}
	for _, u := range c.upstreams() {
		if _, _, err := net.SplitHostPort(u); err != nil {
			return fmt.Errorf("linkproxy: upstream %q is not host:port", u)
		}
	}
	return nil
}

// upstreams returns Upstreams, or Upstream alone.
func (c Config) upstreams() []string {
	if len(c.Upstreams) > 0 {
		return c.Upstreams
	}
	return []string{c.Upstream}
}

func (c *Config) defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	if c.Name == "" {
		c.Name = c.Listen
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = 4 << 20
	}
}

// State is what a link does with traffic.
type State string

// The states of a link.
const (
	StateUp        State = "up"        // forwarding
	StateCut       State = "cut"       // every connection reset, new ones closed at once
	StateBlackhole State = "blackhole" // connections held open, nothing delivered
)

// Status is a snapshot of a link.
type Status struct {
	Name     string
	Listen   string // the real listen address once started
	Upstream string
	State    State
	Latency  time.Duration
	Jitter   time.Duration
	// Active is the number of open client connections.
	Active int
	// Accepted counts connections accepted and forwarded (or held) since Start.
	Accepted int64
	// Refused counts connections closed at accept because the link was cut.
	Refused int64
	// BytesUp counts bytes delivered client → upstream; BytesDown upstream → client.
	BytesUp   int64
	BytesDown int64
}

// Proxy is one link. Its methods are safe for concurrent use.
type Proxy struct {
	cfg Config
	log *slog.Logger

	// dial connects to the upstream; tests replace it with in-memory pipes.
	dial func(ctx context.Context) (net.Conn, error)
	// randN returns a uniform value in [0, n); tests replace it.
	randN func(n int64) int64

	upstreams atomic.Pointer[[]string] // the balanced addresses
	next      atomic.Uint64            // round-robin counter

	latency atomic.Int64 // time.Duration
	jitter  atomic.Int64 // time.Duration

	accepted  atomic.Int64
	refused   atomic.Int64
	bytesUp   atomic.Int64
	bytesDown atomic.Int64

	// blackholed is true while state is StateBlackhole: the fast check
	// before every write. flow is the channel to wait on when it is true.
	blackholed atomic.Bool

	mu     sync.Mutex
	ln     net.Listener
	state  State
	flow   chan struct{} // closed unless blackholed
	links  map[*link]struct{}
	closed bool
	ctx    context.Context // cancelled by Close; parent of every dial
	cancel context.CancelFunc

	wg sync.WaitGroup
}

// New returns a link proxy for cfg; it starts nothing. log may be nil.
func New(cfg Config, log *slog.Logger) *Proxy {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{
		cfg:   cfg,
		log:   log.With("link", cfg.Name),
		randN: rand.Int64N,
		state: StateUp,
		flow:  make(chan struct{}),
		links: map[*link]struct{}{},
	}
	close(p.flow)
	p.latency.Store(int64(max(cfg.Latency, 0)))
	p.jitter.Store(int64(max(cfg.Jitter, 0)))
	p.ctx, p.cancel = context.WithCancel(context.Background())
	ups := slices.Clone(cfg.upstreams())
	p.upstreams.Store(&ups)
	d := net.Dialer{Timeout: cfg.DialTimeout}
	p.dial = func(ctx context.Context) (net.Conn, error) {
		return p.dialNext(ctx, func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		})
	}
	return p
}

// dialNext dials the upstream whose turn it is, and on failure each of the
// others once, in order.
func (p *Proxy) dialNext(ctx context.Context, dial func(context.Context, string) (net.Conn, error)) (net.Conn, error) {
	ups := *p.upstreams.Load()
	if len(ups) == 0 {
		return nil, errors.New("no upstream")
	}
	first := p.next.Add(1) - 1
	var errs []error
	for i := range uint64(len(ups)) {
		addr := ups[(first+i)%uint64(len(ups))]
		c, err := dial(ctx, addr)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// SetUpstreams replaces the addresses new connections are balanced over;
// open connections stay where they are.
func (p *Proxy) SetUpstreams(addrs []string) error {
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("linkproxy: upstream %q is not host:port", a)
		}
	}
	ups := slices.Clone(addrs)
	p.upstreams.Store(&ups)
	p.log.Info("linkproxy upstreams set", "upstreams", strings.Join(ups, ","))
	return nil
}

// Upstreams returns the addresses new connections are balanced over.
func (p *Proxy) Upstreams() []string { return slices.Clone(*p.upstreams.Load()) }

// Start listens on Config.Listen and accepts connections until Close. ctx
// bounds only the start.
func (p *Proxy) Start(ctx context.Context) error {
	if err := p.cfg.Validate(); err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", p.cfg.Listen)
	if err != nil {
		return fmt.Errorf("linkproxy %s: listen: %w", p.cfg.Name, err)
	}
	p.mu.Lock()
	if p.closed || p.ln != nil {
		p.mu.Unlock()
		ln.Close()
		return fmt.Errorf("linkproxy %s: already started or closed", p.cfg.Name)
	}
	p.ln = ln
	p.mu.Unlock()
	p.log.Info("linkproxy listening", "listen", ln.Addr().String(), "upstream", strings.Join(p.Upstreams(), ","),
		"latency", p.Latency().String())
	p.wg.Go(func() { p.accept(ln) })
	return nil
}

// Addr returns the address the proxy listens on, or nil before Start.
func (p *Proxy) Addr() net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return nil
	}
	return p.ln.Addr()
}

// Close stops accepting, closes every connection and waits, within ctx, for
// every goroutine to end.
func (p *Proxy) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	ln := p.ln
	links := p.snapshot()
	p.mu.Unlock()
	p.cancel()
	if ln != nil {
		ln.Close()
	}
	for _, l := range links {
		l.close(false)
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("linkproxy %s: close: %w", p.cfg.Name, ctx.Err())
	}
}

// SetLatency sets the one-way delay added in each direction and its
// jitter. It applies to chunks read from now on.
func (p *Proxy) SetLatency(latency, jitter time.Duration) error {
	if latency < 0 || jitter < 0 {
		return errors.New("latency and jitter must not be negative")
	}
	p.latency.Store(int64(latency))
	p.jitter.Store(int64(jitter))
	p.log.Info("linkproxy latency set", "latency", latency.String(), "jitter", jitter.String())
	return nil
}

// Latency returns the one-way latency currently added.
func (p *Proxy) Latency() time.Duration { return time.Duration(p.latency.Load()) }

// Cut resets every open connection and closes new ones as soon as they are
// accepted, until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.state = StateCut
	p.openFlow()
	links := p.snapshot()
	p.mu.Unlock()
	for _, l := range links {
		l.close(true)
	}
	p.log.Info("linkproxy cut", "state", StateCut, "connections_reset", len(links))
}

// Blackhole keeps connections open and accepts new ones but delivers
// nothing in either direction, until Restore delivers what was held.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	p.state = StateBlackhole
	p.blackholed.Store(true)
	select {
	case <-p.flow:
		p.flow = make(chan struct{})
	default: // already blackholed
	}
	p.mu.Unlock()
	p.log.Info("linkproxy blackhole", "state", StateBlackhole)
}

// Restore ends a cut or a blackhole.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.state = StateUp
	p.openFlow()
	p.mu.Unlock()
	p.log.Info("linkproxy restored", "state", StateUp)
}

// openFlow closes p.flow if it is open. p.mu is held.
func (p *Proxy) openFlow() {
	p.blackholed.Store(false)
	select {
	case <-p.flow:
	default:
		close(p.flow)
	}
}

// flowing returns a channel that is closed while the link is not blackholed.
func (p *Proxy) flowing() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flow
}

// Status returns a snapshot of the link.
func (p *Proxy) Status() Status {
	p.mu.Lock()
	s := Status{
		Name:     p.cfg.Name,
		Listen:   p.cfg.Listen,
		Upstream: strings.Join(p.Upstreams(), ","),
		State:    p.state,
		Active:   len(p.links),
	}
	if p.ln != nil {
		s.Listen = p.ln.Addr().String()
	}
	p.mu.Unlock()
	s.Latency = time.Duration(p.latency.Load())
	s.Jitter = time.Duration(p.jitter.Load())
	s.Accepted = p.accepted.Load()
	s.Refused = p.refused.Load()
	s.BytesUp = p.bytesUp.Load()
	s.BytesDown = p.bytesDown.Load()
	return s
}

// snapshot returns the open links. p.mu is held.
func (p *Proxy) snapshot() []*link {
	ls := make([]*link, 0, len(p.links))
	for l := range p.links {
		ls = append(ls, l)
	}
	return ls
}

// delay returns the delay for a chunk read now: latency ± jitter, at least 0.
func (p *Proxy) delay() time.Duration {
	d := time.Duration(p.latency.Load())
	if j := p.jitter.Load(); j > 0 {
		d += time.Duration(p.randN(2*j+1) - j)
	}
	return max(d, 0)
}

func (p *Proxy) accept(ln net.Listener) {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			p.log.Warn("linkproxy accept", "err", err, "retry_in", backoff.String())
			select {
			case <-time.After(backoff):
			case <-p.ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		p.serve(c)
	}
}

// serve takes ownership of an accepted client connection.
func (p *Proxy) serve(c net.Conn) {
	p.mu.Lock()
	if p.closed || p.state == StateCut {
		p.mu.Unlock()
		p.refused.Add(1)
		reset(c)
		return
	}
	l := newLink(p, c)
	p.links[l] = struct{}{}
	p.mu.Unlock()
	p.accepted.Add(1)
	p.wg.Go(l.run)
}

// forget removes a finished link.
func (p *Proxy) forget(l *link) {
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// reset closes c so that the peer sees a reset rather than an orderly end.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
