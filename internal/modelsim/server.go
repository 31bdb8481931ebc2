package modelsim

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Server is an OpenAI-compatible model server. Create it with New; serve
// Handler on any http.Server, or use Start and Close.
type Server struct {
	cfg      Config
	log      *slog.Logger
	handler  http.Handler
	interval time.Duration // between tokens; 0 when TokensPerSecond is 0
	idPrefix string
	lim      limiter

	requests atomic.Int64
	ids      atomic.Uint64

	mu     sync.Mutex // serialises SetFaults
	faults atomic.Pointer[faultView]

	srv   *http.Server
	wg    sync.WaitGroup
	serve chan error // result of srv.Serve
}

// faultView is an immutable snapshot of the faults with what the hot path
// derives from them, plus the per-kind request counters of the fractional
// faults, which restart whenever faults are set.
type faultView struct {
	f             Faults
	version       string
	versionHeader []string
	model         string // "<Model>-<version>"
	modelJSON     []byte // model as a JSON string
	nRateLimit    atomic.Uint64
	nError        atomic.Uint64
}

var (
	hdrJSON        = []string{"application/json"}
	hdrEventStream = []string{"text/event-stream"}
	hdrNoCache     = []string{"no-cache"}
	hdrNo          = []string{"no"}
)

// New returns a Server for cfg; invalid fields of cfg are replaced by their
// defaults (use Config.Validate to report them). It starts nothing. A nil
// log discards.
func New(cfg Config, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:      cfg,
		log:      log,
		idPrefix: "chatcmpl-" + strconv.FormatUint(uint64(time.Now().UnixNano())&0xffffffffff, 36) + "x",
		lim:      limiter{rpm: cfg.RPM, tpm: cfg.TPM},
	}
	if cfg.TokensPerSecond > 0 {
		s.interval = time.Duration(float64(time.Second) / cfg.TokensPerSecond)
	}
	s.faults.Store(s.newView(Faults{}))
	s.handler = s.routes()
	return s
}

func (s *Server) newView(f Faults) *faultView {
	v := &faultView{f: f, version: s.cfg.Version}
	if f.Version != "" {
		v.version = f.Version
	}
	v.versionHeader = []string{v.version}
	v.model = s.cfg.Model
	if v.version != "" {
		v.model += "-" + v.version
	}
	v.modelJSON, _ = json.Marshal(v.model)
	return v
}

// Handler returns the HTTP handler of every endpoint.
func (s *Server) Handler() http.Handler { return s.handler }

// SetFaults replaces the injected faults and restarts the counters of the
// fractional faults. It does not validate f (see Faults.Validate); rates
// outside 0..1 behave like the nearest bound.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.Store(s.newView(f))
	b, _ := json.Marshal(f)
	s.log.Info("faults set", slog.String("faults", string(b)))
}

// Faults returns the injected faults.
func (s *Server) Faults() Faults { return s.faults.Load().f }

// Requests returns the number of requests received on the model endpoints
// (chat completions and embeddings, every path), whatever their outcome.
// /v1/models, health and admin requests are not counted.
func (s *Server) Requests() int64 { return s.requests.Load() }

func (s *Server) routes() http.Handler {
	m := http.NewServeMux()
	for _, p := range []string{"/v1", "/openai/v1", "/openai/deployments/{deployment}"} {
		m.HandleFunc("POST "+p+"/chat/completions", s.handle(s.serveChat))
		m.HandleFunc("POST "+p+"/embeddings", s.handle(s.serveEmbeddings))
	}
	for _, p := range []string{"/v1", "/openai/v1"} {
		m.HandleFunc("GET "+p+"/models", s.handle(s.serveModels))
		m.HandleFunc("GET "+p+"/models/{model}", s.handle(s.serveModel))
	}
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"text/plain; charset=utf-8"}
		io.WriteString(w, "ok\n")
	})
	csrf := http.NewCrossOriginProtection()
	m.Handle("GET /admin/faults", s.admin(s.handle(s.getFaults)))
	m.Handle("PUT /admin/faults", csrf.Handler(s.admin(s.handle(s.putFaults))))
	m.Handle("DELETE /admin/faults", csrf.Handler(s.admin(s.handle(s.deleteFaults))))
	m.HandleFunc("/", notFound)
	return m
}

// admin requires the admin token when one is configured.
func (s *Server) admin(h http.Handler) http.Handler {
	if s.cfg.AdminToken == "" {
		return h
	}
	want := []byte("Bearer " + s.cfg.AdminToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			writeError(w, &apiError{Status: http.StatusUnauthorized, Code: "invalid_api_key",
				Message: "Admin endpoints need 'Authorization: Bearer <admin token>'."})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode answer: %w", err)
	}
	b = append(b, '\n')
	w.Header()["Content-Type"] = hdrJSON
	w.Header()["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.Write(b)
	return nil
}

func (s *Server) getFaults(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, s.Faults())
}

func (s *Server) putFaults(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		return badRequest("", "Could not read the request body.")
	}
	f, err := ParseFaults(body)
	if err != nil {
		return badRequest("", "%v", err)
	}
	s.SetFaults(f)
	return writeJSON(w, f)
}

func (s *Server) deleteFaults(w http.ResponseWriter, r *http.Request) error {
	s.SetFaults(Faults{})
	return writeJSON(w, Faults{})
}

// modelEntry is one entry of the model list.
type modelEntry struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	Version string `json:"version"`
}

func (s *Server) modelEntry(v *faultView) modelEntry {
	// created is the version's date when it is one (OpenAI snapshots are
	// named by date), so the list is the same on every run.
	var created int64
	if t, err := time.Parse(time.DateOnly, v.version); err == nil {
		created = t.Unix()
	}
	return modelEntry{ID: s.cfg.Model, Object: "model", Created: created, OwnedBy: "modelsim", Version: v.version}
}

func (s *Server) serveModels(w http.ResponseWriter, r *http.Request) error {
	v := s.faults.Load()
	w.Header()["X-Modelsim-Version"] = v.versionHeader
	return writeJSON(w, struct {
		Object string       `json:"object"`
		Data   []modelEntry `json:"data"`
	}{"list", []modelEntry{s.modelEntry(v)}})
}

func (s *Server) serveModel(w http.ResponseWriter, r *http.Request) error {
	v := s.faults.Load()
	w.Header()["X-Modelsim-Version"] = v.versionHeader
	if id := r.PathValue("model"); id != s.cfg.Model && id != v.model {
		return &apiError{Status: http.StatusNotFound, Code: "model_not_found", Param: "model",
			Message: fmt.Sprintf("The model '%s' does not exist.", id)}
	}
	return writeJSON(w, s.modelEntry(v))
}

// bufPool holds buffers for request bodies and answers.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuf() *bytes.Buffer { return bufPool.Get().(*bytes.Buffer) }

func putBuf(b *bytes.Buffer) {
	if b.Cap() > 1<<20 {
		return
	}
	b.Reset()
	bufPool.Put(b)
}

// keep makes buf own b's storage when b outgrew it, so the pool keeps the
// larger buffer. b must not be used after buf is put back.
func keep(buf *bytes.Buffer, b []byte) {
	if cap(b) > buf.Cap() {
		*buf = *bytes.NewBuffer(b[:0])
	}
}

// maxBody bounds request bodies of the model endpoints.
const maxBody = 8 << 20

// readBody reads the request body into buf.
func readBody(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer) ([]byte, error) {
	if r.ContentLength > 0 && r.ContentLength <= maxBody {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, maxBody)); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, &apiError{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("The request body is larger than %d bytes.", maxBody)}
		}
		if r.Context().Err() != nil {
			return nil, errClientGone
		}
		return nil, badRequest("", "Could not read the request body.")
	}
	return buf.Bytes(), nil
}

// sleep waits d or until ctx ends; it starts no timer when d <= 0.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return errClientGone
	}
}

// before runs the checks shared by the model endpoints after the body was
// read and before it is decoded: Hang, then Latency.
func (s *Server) before(ctx context.Context, v *faultView) error {
	if v.f.Hang {
		<-ctx.Done()
		return errClientGone
	}
	return sleep(ctx, time.Duration(v.f.Latency))
}

// admit runs the checks after decoding, in order: the RPM/TPM limits, then
// the fractional faults RateLimitRate and ErrorRate. Each fractional fault
// counts only the requests that reach its check.
func (s *Server) admit(w http.ResponseWriter, v *faultView, cost int) error {
	if s.lim.enabled() {
		now := time.Now()
		st, ok := s.lim.take(now, cost)
		s.lim.setHeaders(w.Header(), st)
		if !ok {
			return &apiError{Status: http.StatusTooManyRequests, Code: "rate_limit_exceeded", RetryAfter: max(st.reset, time.Second),
				Message: "Requests to this deployment have exceeded the rate limit of the current minute. Retry after the time in Retry-After."}
		}
	}
	if v.f.RateLimitRate > 0 && hit(v.nRateLimit.Add(1), v.f.RateLimitRate) {
		return &apiError{Status: http.StatusTooManyRequests, Code: "rate_limit_exceeded", RetryAfter: time.Duration(v.f.RetryAfter),
			Message: "Rate limit reached (modelsim fault rate_limit_rate)."}
	}
	if v.f.ErrorRate > 0 && hit(v.nError.Add(1), v.f.ErrorRate) {
		e := &apiError{Status: v.f.ErrorStatus, Code: v.f.ErrorCode}
		if e.Status == 0 {
			e.Status = http.StatusInternalServerError
		}
		if e.Status >= 500 {
			e.Message = "The server had an error while processing your request. Sorry about that! (modelsim fault error_rate)"
		} else {
			e.Message = "The request was rejected (modelsim fault error_rate)."
		}
		return e
	}
	return nil
}

// peekLimits sets the x-ratelimit-* headers on answers given before
// admission (bad requests).
func (s *Server) peekLimits(w http.ResponseWriter) {
	if s.lim.enabled() {
		s.lim.setHeaders(w.Header(), s.lim.peek(time.Now()))
	}
}

// ShutdownGrace is how long Close waits for requests in flight when its
// context has no deadline.
const ShutdownGrace = 5 * time.Second

// Start serves Handler on ln in a tracked goroutine until Close. The
// http.Server has header and idle timeouts but no write timeout, because
// streams last as long as they need.
func (s *Server) Start(ctx context.Context, ln net.Listener) error {
	if s.srv != nil {
		return errors.New("modelsim: already started")
	}
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.serve = make(chan error, 1)
	s.wg.Go(func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.serve <- err
	})
	s.log.Info("serving", slog.String("addr", ln.Addr().String()), slog.String("model", s.cfg.Model), slog.String("version", s.cfg.Version))
	return nil
}

// Close stops serving: it stops accepting, lets requests in flight finish
// within ctx (or ShutdownGrace when ctx has no deadline), then closes the
// connections that remain (hung requests, endless stalls). It returns the
// error that ended serving, if any.
func (s *Server) Close(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ShutdownGrace)
		defer cancel()
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.log.Warn("drain incomplete, closing connections", slog.Any("err", err))
		s.srv.Close()
		err = nil
	}
	s.wg.Wait()
	if serr := <-s.serve; serr != nil {
		return fmt.Errorf("serve: %w", serr)
	}
	return err
}
