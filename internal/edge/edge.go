package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/understudy/understudy/internal/h1"
	"github.com/understudy/understudy/internal/probe"
	"github.com/understudy/understudy/internal/topology"
)

// Options are what New needs besides the topology. Every field is optional.
type Options struct {
	// Logger records health changes, ejections and admin changes (never
	// per-request lines). Default: discard.
	Logger *slog.Logger
	// Now is the clock of health state: probe times, ejection backoff and
	// returns. Default time.Now. Attempt and request timeouts are real
	// timers.
	Now func() time.Time
	// Probe replaces the HTTP probe (tests script results with it).
	Probe probe.Func
	// Transport carries attempts to the origins. Default: an inline
	// HTTP/1.1 client on pooled keep-alive connections for http:// origins
	// (h1.Transport), a tuned http.Transport for https:// ones.
	Transport http.RoundTripper
	// Listener replaces listening on edge.listen (tests).
	Listener net.Listener
}

// settings are the topology values the edge uses, resolved once.
type settings struct {
	routing        string
	band           time.Duration
	attemptTimeout time.Duration
	requestTimeout time.Duration
	maxReplay      int64
	ejectBase      time.Duration
	ejectMax       time.Duration
	lameDuck       time.Duration
	writeTimeout   time.Duration
	adminToken     string
	allowRemote    bool
}

// Edge is the global router. New starts nothing; Start listens and probes;
// Close stops in stages.
type Edge struct {
	topo      *topology.Topology
	cfg       settings
	log       *slog.Logger
	now       func() time.Time
	transport http.RoundTripper

	mu      sync.Mutex // guards origins' mutable fields and plan rebuilds
	origins []*origin
	byName  map[string]*origin
	plan    atomic.Pointer[plan]
	route   string // plan.describe() of the current plan

	monitor  *probe.Monitor
	events   *bus
	metrics  *metrics
	proxy    *httputil.ReverseProxy
	handler  http.Handler
	draining atomic.Bool

	ln      net.Listener
	srv     *h1.Server
	wg      sync.WaitGroup
	started bool
	closed  chan struct{}
	listen  net.Listener
}

// New builds an edge for the topology's regions.
func New(t *topology.Topology, o Options) (*Edge, error) {
	if len(t.Regions) == 0 {
		return nil, errors.New("edge: topology has no regions")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	e := &Edge{
		topo: t,
		cfg: settings{
			routing:        t.Edge.Routing,
			band:           t.Edge.AdditionalLatency.D(),
			attemptTimeout: t.Edge.AttemptTimeout.D(),
			requestTimeout: t.Edge.RequestTimeout.D(),
			maxReplay:      t.Edge.MaxReplayBody,
			ejectBase:      t.Edge.EjectBase.D(),
			ejectMax:       t.Edge.EjectMax.D(),
			lameDuck:       t.Gateway.LameDuck.D(),
			adminToken:     t.Admin.Token.Value(),
			allowRemote:    t.Admin.AllowRemote,
		},
		log:       o.Logger.With("component", "edge"),
		now:       o.Now,
		transport: o.Transport,
		byName:    map[string]*origin{},
		events:    newBus(200, o.Now),
		metrics:   newMetrics(),
		closed:    make(chan struct{}),
		listen:    o.Listener,
	}
	if e.cfg.routing == "" {
		e.cfg.routing = topology.RoutePriority
	}
	if e.cfg.attemptTimeout <= 0 {
		e.cfg.attemptTimeout = 5 * time.Second
	}
	if e.cfg.requestTimeout <= 0 {
		e.cfg.requestTimeout = 30 * time.Second
	}
	if e.cfg.maxReplay <= 0 {
		e.cfg.maxReplay = 10 << 20
	}
	if e.cfg.ejectBase <= 0 {
		e.cfg.ejectBase = time.Second
	}
	e.cfg.ejectMax = max(e.cfg.ejectMax, e.cfg.ejectBase)
	// A proxied response lives at most as long as the slowest deployment's
	// total timeout, after the edge's own request timeout.
	longest := 120 * time.Second
	for _, d := range t.Deployments {
		longest = max(longest, d.Timeouts.Total.D())
	}
	e.cfg.writeTimeout = longest + e.cfg.requestTimeout

	if e.transport == nil {
		dial := (&net.Dialer{Timeout: e.cfg.attemptTimeout, KeepAlive: 30 * time.Second}).DialContext
		e.transport = h1.NewTransport(dial)
	}

	var targets []probe.Target
	for i, r := range t.Regions {
		u, err := url.Parse(r.URL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("edge: regions[%d].url %q: not an absolute URL", i, r.URL)
		}
		o := &origin{name: r.Name, url: u, index: i, enabled: true, priority: r.Priority, weight: max(r.Weight, 1)}
		o.down.Store(newDownSignal())
		e.origins = append(e.origins, o)
		e.byName[r.Name] = o
		targets = append(targets, probe.Target{Name: r.Name, URL: r.URL})
		e.metrics.enabled.WithLabelValues(r.Name).Set(1)
		e.metrics.healthy.WithLabelValues(r.Name).Set(0)
		e.metrics.serving.WithLabelValues(r.Name).Set(0)
	}
	e.monitor = probe.NewMonitor(probe.FromTopology(t.Probes), targets, probe.Options{
		Now: o.Now, Probe: o.Probe, OnResult: e.onProbe, Logger: e.log,
	})
	e.mu.Lock()
	e.rebuildLocked()
	e.mu.Unlock()

	e.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetXForwarded()
			pr.Out.Host = ""
		},
		Transport:      attempts{e},
		ModifyResponse: e.modifyResponse,
		ErrorHandler:   e.proxyError,
		ErrorLog:       slog.NewLogLogger(e.log.Handler(), slog.LevelDebug),
		BufferPool:     newBufferPool(),
	}
	e.handler = e.routes()
	return e, nil
}

// Handler returns the edge's HTTP handler: the proxy, /healthz, /readyz,
// /metrics and the admin API under /admin/.
func (e *Edge) Handler() http.Handler { return e.handler }

// ProbeStep probes every origin once and applies the results (the probe
// loop's step; tests and run-once tools call it).
func (e *Edge) ProbeStep(ctx context.Context) { e.monitor.Step(ctx) }

// Start listens on edge.listen, runs one probe round synchronously so the
// first requests are routed on real health, then probes every interval and
// serves until Close.
func (e *Edge) Start(ctx context.Context) error {
	ln := e.listen
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", e.topo.Edge.Listen)
		if err != nil {
			return fmt.Errorf("edge: listen %s: %w", e.topo.Edge.Listen, err)
		}
	}
	e.ln = ln
	e.monitor.Step(ctx)
	if err := e.monitor.Start(ctx); err != nil {
		ln.Close()
		return fmt.Errorf("edge: start probes: %w", err)
	}
	e.srv = &h1.Server{
		Handler:           e.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      e.cfg.writeTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
		Log:               e.log,
	}
	e.started = true
	e.wg.Go(func() {
		if err := e.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("serve", "err", err)
		}
	})
	e.log.Info("edge listening", "addr", ln.Addr().String(), "routing", e.cfg.routing, "route", e.Route())
	return nil
}

// URL is the edge's client URL once started.
func (e *Edge) URL() string { return "http://" + e.ln.Addr().String() }

// AdminURL is the base of the admin API once started.
func (e *Edge) AdminURL() string { return e.URL() + "/admin" }

// Close stops in stages: /readyz fails at once (lame duck) for
// gateway.lame_duck while requests are still served, then the event
// streams end, in-flight requests drain within ctx, and the probes stop.
func (e *Edge) Close(ctx context.Context) error {
	select {
	case <-e.closed:
		return nil
	default:
		close(e.closed)
	}
	e.draining.Store(true)
	e.events.publish(Event{Kind: "draining", Message: "edge is shutting down: /readyz fails, in-flight requests drain"})
	if e.cfg.lameDuck > 0 && e.started {
		t := time.NewTimer(e.cfg.lameDuck)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	e.events.close()
	var errs []error
	if e.srv != nil {
		if err := e.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("edge: drain: %w", err))
			e.srv.Close()
		}
	}
	if err := e.monitor.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("edge: stop probes: %w", err))
	}
	e.wg.Wait()
	if t, ok := e.transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
	return errors.Join(errs...)
}

// Route describes where traffic goes now.
func (e *Edge) Route() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.route
}

// rebuildLocked recomputes every origin's serving state and the plan, and
// publishes a route event when the destination changed. e.mu is held.
func (e *Edge) rebuildLocked() {
	now := e.now()
	for _, o := range e.origins {
		if o.updateServing(now) {
			e.events.publish(Event{Kind: "return", Origin: o.name,
				Message: o.name + " ejection over: backoff ended and a probe passed; it serves while its probe window is healthy",
				Detail:  map[string]any{"ejected_at": o.ejectedAt, "until": o.ejectedUntil}})
			e.log.Info("ejection over", "region", o.name, "healthy", o.status.Healthy)
		}
		e.metrics.serving.WithLabelValues(o.name).Set(b2f(o.serving))
	}
	p := buildPlan(e.cfg.routing, e.cfg.band, e.origins)
	e.plan.Store(p)
	if d := p.describe(); d != e.route {
		e.route = d
		e.events.publish(Event{Kind: "route", Message: d, Detail: map[string]any{"serving": p.serving, "enabled": p.enabled}})
		e.log.Info("route changed", "route", d)
	}
}

// onProbe applies one probe result (called by the monitor, one at a time).
func (e *Edge) onProbe(u probe.Update) {
	o := e.byName[u.Target.Name]
	if o == nil {
		return
	}
	result := "fail"
	if u.Result.OK {
		result = "pass"
	}
	e.metrics.probes.WithLabelValues(o.name, result).Inc()
	e.metrics.healthy.WithLabelValues(o.name).Set(b2f(u.Status.Healthy))
	e.metrics.probeLatency.WithLabelValues(o.name).Set(u.Status.Latency.Seconds())

	e.mu.Lock()
	prev, hadPrev := o.status.Readiness, o.probed
	o.status, o.probed = u.Status, true
	// Events in causal order: health and role first, then the route
	// change they cause (published by rebuildLocked).
	if u.Changed {
		state := "unhealthy"
		if u.Status.Healthy {
			state = "healthy"
		}
		msg := fmt.Sprintf("%s is %s: %d of the last %d probes passed", o.name, state, u.Status.Passes, u.Status.Samples)
		if u.Result.Err != "" {
			msg += " (last: " + u.Result.Err + ")"
		}
		e.events.publish(Event{Kind: "health", Origin: o.name, Message: msg,
			Detail: map[string]any{"healthy": u.Status.Healthy, "passes": u.Status.Passes, "samples": u.Status.Samples}})
	}
	rd := u.Status.Readiness
	if rd.Role != prev.Role || rd.Epoch != prev.Epoch || !hadPrev && rd.Role != "" {
		e.events.publish(Event{Kind: "role", Origin: o.name,
			Message: fmt.Sprintf("%s reports role %q at epoch %d", o.name, rd.Role, rd.Epoch),
			Detail:  map[string]any{"role": rd.Role, "epoch": rd.Epoch}})
	}
	e.rebuildLocked()
	e.mu.Unlock()

	if u.Changed && !u.Status.Healthy {
		o.signalDown(errUnhealthy)
	}
}

// eject takes o out of rotation after real traffic failed on it. A failure
// while o is already inside its backoff changes nothing, so a burst of
// failing requests counts as one ejection.
func (e *Edge) eject(o *origin, reason string) {
	now := e.now()
	e.mu.Lock()
	if o.ejected && now.Before(o.ejectedUntil) {
		e.mu.Unlock()
		return
	}
	// The streak decays: an origin that served for eject_max since its
	// last backoff ended starts again at eject_base.
	if !o.ejectedUntil.IsZero() && now.Sub(o.ejectedUntil) > e.cfg.ejectMax {
		o.streak = 0
	}
	o.streak++
	d := backoff(o.streak, e.cfg.ejectBase, e.cfg.ejectMax)
	o.ejected, o.ejectedAt, o.ejectedUntil, o.ejectReason = true, now, now.Add(d), reason
	o.ejections++
	e.events.publish(Event{Kind: "eject", Origin: o.name,
		Message: fmt.Sprintf("%s ejected for %s after %s; back at the first passing probe after that", o.name, d, reason),
		Detail:  map[string]any{"reason": reason, "backoff_ms": d.Milliseconds(), "until": o.ejectedUntil, "streak": o.streak}})
	e.rebuildLocked()
	e.mu.Unlock()

	o.signalDown(errOriginDown)
	e.metrics.ejections.WithLabelValues(o.name, reason).Inc()
	e.log.Warn("origin ejected", "region", o.name, "reason", reason, "backoff", d)
}

// noteRetry counts a failed attempt that moves on to the next origin.
func (e *Edge) noteRetry(o *origin, reason string, rs *reqState) {
	e.metrics.retries.WithLabelValues(o.name, reason).Inc()
	e.events.publish(Event{Kind: "retry", Origin: o.name,
		Message: fmt.Sprintf("attempt %d at %s failed (%s); trying the next origin", rs.attempts, o.name, reason),
		Detail:  map[string]any{"reason": reason, "attempt": rs.attempts}})
}

type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(p []byte) { b.p.Put(&p) }
