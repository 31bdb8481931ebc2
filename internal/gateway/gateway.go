package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/understudy/understudy/internal/h1"
	"github.com/understudy/understudy/internal/topology"
)

// Options are a gateway's dependencies. The zero value is usable.
type Options struct {
	// Logger receives the access log (when gateway.access_log) and errors.
	// Default: discard.
	Logger *slog.Logger
	// Now is the clock of cooldowns, ejections and key limits. Default
	// time.Now. Timeouts use timers (testing/synctest controls those).
	Now func() time.Time
	// Registry receives the gateway's metrics and is served on /metrics.
	// Default: a new registry with the Go and process collectors.
	Registry *prometheus.Registry
	// HTTPClient sends requests to backends; only its Transport is used
	// (called directly: no redirects are followed, no client Timeout
	// applies, since streams outlive any fixed timeout). Default:
	// DefaultHTTPClient.
	HTTPClient *http.Client
	// TokenCredential authenticates azure-openai backends with auth entra.
	// Default: azidentity.NewDefaultAzureCredential, created by New only
	// when such a backend exists.
	TokenCredential azcore.TokenCredential
}

// Gateway is one region's AI gateway. New builds it without starting
// anything; Start serves a listener; Close shuts it down in stages.
type Gateway struct {
	topo      *topology.Topology
	region    string
	log       *slog.Logger
	now       func() time.Time
	client    *http.Client
	rt        http.RoundTripper // client's Transport, called directly
	reg       *prometheus.Registry
	m         *metrics
	deps      map[string]*deployment
	depList   []*deployment
	keys      map[[32]byte]*clientKey
	admin     adminAuth
	maxBody   int64
	accessLog bool
	regionHdr []string
	models    []byte // GET /v1/models body

	mux      *http.ServeMux
	draining atomic.Bool

	readyMu   sync.Mutex
	readiness []readinessCheck

	// hardStop is every request's base context; it is cancelled with
	// errShutdown when the drain runs out of time, so streams still open
	// end with an explicit error event.
	hardStop     context.Context
	stopRequests context.CancelCauseFunc

	srvMu     sync.Mutex
	srv       *h1.Server
	closing   bool
	serveDone chan struct{}
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
	active    sync.WaitGroup // requests being served
}

type readinessCheck struct {
	name  string
	check func(ctx context.Context) (map[string]any, error)
}

// New builds the gateway of region from a loaded (defaulted and
// validated) topology. It starts nothing.
func New(t *topology.Topology, region string, opts Options) (*Gateway, error) {
	r := t.Region(region)
	if r == nil {
		return nil, fmt.Errorf("gateway: region %q is not in the topology", region)
	}
	g := &Gateway{
		topo: t, region: region, log: opts.Logger, now: opts.Now, client: opts.HTTPClient, reg: opts.Registry,
		deps: map[string]*deployment{}, keys: newKeys(t.Keys),
		admin:     newAdminAuth(t.Admin),
		maxBody:   t.Gateway.MaxBody,
		accessLog: t.Gateway.AccessLog == nil || *t.Gateway.AccessLog,
		regionHdr: []string{region},
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.client == nil {
		g.client = DefaultHTTPClient()
	}
	g.rt = g.client.Transport
	if g.rt == nil {
		g.rt = http.DefaultTransport
	}
	if g.reg == nil {
		g.reg = prometheus.NewRegistry()
		g.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if g.maxBody <= 0 {
		g.maxBody = 10 << 20
	}
	g.m = newMetrics(g.reg, g)
	g.hardStop, g.stopRequests = context.WithCancelCause(context.Background())

	var credErr error
	var cred azcore.TokenCredential
	var credOnce sync.Once
	getCred := func() (azcore.TokenCredential, error) {
		credOnce.Do(func() {
			if opts.TokenCredential != nil {
				cred = opts.TokenCredential
				return
			}
			cred, credErr = azidentity.NewDefaultAzureCredential(nil)
		})
		return cred, credErr
	}
	gw := t.Gateway
	cfg := poolConfig{cooldownDefault: gw.CooldownDefault.D(), cooldownMax: gw.CooldownMax.D(),
		ejectBase: gw.EjectBase.D(), ejectMax: gw.EjectMax.D()}
	for _, dc := range t.Deployments {
		d := &deployment{
			name: dc.Name, cfg: dc, maxAttempts: max(dc.MaxAttempts, 1),
			headers: dc.Timeouts.Headers.D(), firstToken: dc.Timeouts.FirstToken.D(),
			idle: dc.Timeouts.Idle.D(), total: dc.Timeouts.Total.D(),
			retries:          g.m.retries.WithLabelValues(dc.Name),
			promptTokens:     g.m.tokens.WithLabelValues(dc.Name, "prompt"),
			completionTokens: g.m.tokens.WithLabelValues(dc.Name, "completion"),
		}
		var bs []*backend
		for _, bc := range r.Backends[dc.Name] {
			b, err := newBackend(dc.Name, bc, getCred)
			if err != nil {
				return nil, fmt.Errorf("gateway: deployment %s: %w", dc.Name, err)
			}
			for i := range b.results {
				b.results[i] = g.m.attempts.WithLabelValues(dc.Name, b.name, attemptResults[i])
			}
			bs = append(bs, b)
		}
		if len(bs) == 0 {
			return nil, fmt.Errorf("gateway: deployment %s has no backend in region %s", dc.Name, region)
		}
		d.pool = newPool(dc.Name, bs, g.now, cfg, poolEvents{
			cooldown: func(b *backend) { g.m.cooldowns.WithLabelValues(b.deployment, b.name).Inc() },
			eject: func(b *backend) {
				g.m.ejections.WithLabelValues(b.deployment, b.name).Inc()
				g.log.LogAttrs(context.Background(), slog.LevelWarn, "backend ejected",
					slog.String("deployment", b.deployment), slog.String("backend", b.name), slog.String("reason", b.lastError()))
			},
			recover: func(b *backend) {
				g.m.recoveries.WithLabelValues(b.deployment, b.name).Inc()
				g.log.LogAttrs(context.Background(), slog.LevelInfo, "backend recovered",
					slog.String("deployment", b.deployment), slog.String("backend", b.name))
			},
		})
		g.deps[dc.Name] = d
		g.depList = append(g.depList, d)
	}
	for _, d := range g.depList {
		for _, fb := range d.cfg.Fallbacks {
			f, ok := g.deps[fb]
			if !ok {
				return nil, fmt.Errorf("gateway: deployment %s: unknown fallback %q", d.name, fb)
			}
			d.fallbacks = append(d.fallbacks, f)
		}
	}
	g.models = modelList(t.Deployments)
	g.routes()
	return g, nil
}

// DefaultHTTPClient returns the client New uses to reach backends: plain
// HTTP backends are served inline on pooled keep-alive connections, HTTPS
// and proxied ones by a tuned http.Transport (HTTP/2, many idle
// connections); no compression (bodies pass as they are), no redirects
// (credentials never follow one).
func DefaultHTTPClient() *http.Client {
	return newHTTPClient((&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext)
}

func newHTTPClient(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	return &http.Client{Transport: h1.NewTransport(dial), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (b *backend) lastError() string { return b.st.lastErr }

// Handler returns the gateway's HTTP handler: every route, with the
// region header, metrics and the access log.
func (g *Gateway) Handler() http.Handler { return http.HandlerFunc(g.serveHTTP) }

// Registry returns the registry /metrics serves.
func (g *Gateway) Registry() *prometheus.Registry { return g.reg }

func (g *Gateway) routes() {
	mux := http.NewServeMux()
	g.mux = mux
	chat := g.adapt(g.serveModel(chatEndpoint, false))
	emb := g.adapt(g.serveModel(embeddingsEndpoint, false))
	models := g.adapt(g.serveModels)
	model := g.adapt(g.serveModelByName)
	mux.Handle("POST /v1/chat/completions", chat)
	mux.Handle("POST /v1/embeddings", emb)
	mux.Handle("GET /v1/models", models)
	mux.Handle("GET /v1/models/{model}", model)
	mux.Handle("POST /openai/deployments/{deployment}/chat/completions", g.adapt(g.serveModel(chatEndpoint, true)))
	mux.Handle("POST /openai/deployments/{deployment}/embeddings", g.adapt(g.serveModel(embeddingsEndpoint, true)))
	mux.Handle("POST /openai/v1/chat/completions", chat)
	mux.Handle("POST /openai/v1/embeddings", emb)
	mux.Handle("GET /openai/v1/models", models)
	mux.Handle("GET /openai/v1/models/{model}", model)

	mux.Handle("GET /healthz", http.HandlerFunc(g.serveHealthz))
	mux.Handle("GET /readyz", http.HandlerFunc(g.serveReadyz))
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{Registry: g.reg}))

	g.HandleAdmin("GET /admin/backends", g.adapt(g.serveAdminBackends))
	g.HandleAdmin("POST /admin/drain", g.adapt(g.serveAdminDrain(true)))
	g.HandleAdmin("DELETE /admin/drain", g.adapt(g.serveAdminDrain(false)))
	g.mountInventory() // GET /admin/inventory (inventory.go)
}

// HandleClient registers h behind client-key authentication and the key's
// RPM limit (the agents API: /v1/responses, /v1/conversations, /v1/agents).
// KeyName(r.Context()) names the key inside h. Give patterns a method.
func (g *Gateway) HandleClient(pattern string, h http.Handler) {
	g.mux.Handle(pattern, g.adapt(func(w http.ResponseWriter, r *http.Request) error {
		if err := g.clientGate(w, r); err != nil {
			return err
		}
		streamable(w, r)
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyNameCtx{}, infoOf(w).key)))
		return nil
	}))
}

// HandleAdmin registers h behind the admin token and the loopback rule
// (admin.allow_remote), with cross-origin protection.
func (g *Gateway) HandleAdmin(pattern string, h http.Handler) {
	g.mux.Handle(pattern, g.adminOnly(http.NewCrossOriginProtection().Handler(h)))
}

// HandleRaw registers h as is, for routes with their own authentication
// (replication traffic). The region header, metrics and access log apply.
func (g *Gateway) HandleRaw(pattern string, h http.Handler) { g.mux.Handle(pattern, h) }

// AddReadiness adds a check to /readyz: its fields are merged into the JSON
// body, and an error makes /readyz answer 503 (the error is logged, and
// only the check's name is shown, under "failing").
func (g *Gateway) AddReadiness(name string, check func(ctx context.Context) (fields map[string]any, err error)) {
	g.readyMu.Lock()
	defer g.readyMu.Unlock()
	g.readiness = append(g.readiness, readinessCheck{name: name, check: check})
}

// Drain starts the lame duck: /readyz fails so routers move traffic away,
// while every request is still served. Close calls it first.
func (g *Gateway) Drain() { g.draining.Store(true) }

// Draining reports whether the gateway is in lame duck or shutting down.
func (g *Gateway) Draining() bool { return g.draining.Load() }

// Server timeouts. Streams clear the read deadline once the request body
// is read (see streamable); there is no write timeout, since streams last.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second
	idleTimeout       = 120 * time.Second
)

// Start serves ln until Close. It returns once the server runs; ctx is
// used only while starting.
func (g *Gateway) Start(ctx context.Context, ln net.Listener) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g.srvMu.Lock()
	defer g.srvMu.Unlock()
	if g.srv != nil {
		return errors.New("gateway: already started")
	}
	g.srv = &h1.Server{
		Handler:           g.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		Log:               g.log,
		BaseContext:       func(net.Listener) context.Context { return g.hardStop },
	}
	g.serveDone = make(chan struct{})
	srv := g.srv
	g.wg.Go(func() {
		defer close(g.serveDone)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("serve", slog.Any("err", err))
		}
	})
	return nil
}

// Close shuts the gateway down in stages: /readyz fails at once (lame
// duck) for gateway.lame_duck so routers notice, then the server stops
// accepting and in-flight requests get gateway.drain_timeout to finish;
// streams still open then end with an explicit error event and the rest
// is closed. ctx bounds the whole of it. Close is idempotent.
func (g *Gateway) Close(ctx context.Context) error {
	g.closeOnce.Do(func() { g.closeErr = g.shutdown(ctx) })
	return g.closeErr
}

func (g *Gateway) shutdown(ctx context.Context) error {
	g.Drain()
	g.srvMu.Lock()
	srv := g.srv
	g.closing = true
	g.srvMu.Unlock()
	if ld := g.topo.Gateway.LameDuck.D(); ld > 0 && srv != nil {
		g.log.Info("lame duck: /readyz fails while requests are still served", slog.Duration("for", ld))
		t := time.NewTimer(ld)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	if srv == nil {
		g.stopRequests(errShutdown)
		return nil
	}
	dctx, cancel := context.WithTimeout(ctx, g.topo.Gateway.DrainTimeout.D())
	defer cancel()
	err := srv.Shutdown(dctx)
	if err != nil {
		// Out of time: end open streams with an error event, give their
		// handlers a moment to write it and the server to finish their
		// responses, then close what is left.
		g.stopRequests(errShutdown)
		done := make(chan struct{})
		go func() {
			g.active.Wait()
			close(done)
		}()
		t := time.NewTimer(time.Second)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		if srv.Shutdown(fctx) != nil {
			srv.Close()
		}
		fcancel()
		err = fmt.Errorf("gateway: drain: %w", err)
	}
	g.stopRequests(errShutdown)
	g.wg.Wait()
	return err
}

// Run serves ln until ctx is cancelled, then shuts down in stages with a
// fresh context (see Close). It is what `understudy gateway` runs.
func (g *Gateway) Run(ctx context.Context, ln net.Listener) error {
	if err := g.Start(context.Background(), ln); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-g.serveDone:
	}
	return g.Close(context.Background())
}
