package dashboard

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/understudy/understudy/internal/edge"
	"github.com/understudy/understudy/internal/oaierr"
	"github.com/understudy/understudy/internal/topology"
	"github.com/understudy/understudy/internal/up"
)

//go:embed assets
var assets embed.FS

// Options are what New needs besides the topology.
type Options struct {
	// Status returns the controller's status; it is sent to the page as is
	// under "controller". Required.
	Status func() any
	// Drift returns each region's latest drift verdict (READY, NOT_READY,
	// UNKNOWN), nil before the first check. Default nil: the page shows
	// "n/a".
	Drift func() map[string]string
	// Ready explains a NOT_READY verdict: the controller's failover hook
	// (ok, reason). Default nil: verdicts without reasons.
	Ready func(ctx context.Context, region string) (ok bool, reason string)
	// Binary is the understudy executable that runs drills. Default: this
	// process's executable.
	Binary string
	// TopologyPath is the topology file drills are started with. Default
	// "": the page's drill button answers that drills need it.
	TopologyPath string
	// Logger records drills and failed actions. Default: discard.
	Logger *slog.Logger
	// Interval is how often the background loop gathers the edge's state
	// while someone watches. Default 500ms.
	Interval time.Duration
	// Idle is how long after the last state request the loop keeps
	// gathering. Default 30s.
	Idle time.Duration
	// DriftEvery is how often drift verdicts are read again. Default 2s.
	DriftEvery time.Duration
	// Client sends the dashboard's requests to the edge and to up's
	// control API. Default: a client of its own.
	Client *http.Client
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Server serves the dashboard of one topology. New starts nothing; Start
// starts the background loop and the edge event follower; Close stops them
// and any running drill.
type Server struct {
	t      *topology.Topology
	opts   Options
	log    *slog.Logger
	client *http.Client
	stream *http.Client // no timeout: the edge's event stream
	now    func() time.Time
	codes  *codes
	wake   chan struct{}

	mu         sync.Mutex
	lastView   time.Time
	samples    []sample
	series     []Point
	trafficErr string
	origins    *originsView
	originsErr string
	components Components
	drift      Drift
	driftAt    time.Time
	driftBusy  bool
	events     []Event
	eventsErr  string
	drill      *drillRun

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a dashboard for t; it starts nothing.
func New(t *topology.Topology, opts Options) (*Server, error) {
	if opts.Status == nil {
		return nil, errors.New("dashboard: Options.Status is required")
	}
	if opts.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		opts.Binary = exe
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Interval == 0 {
		opts.Interval = 500 * time.Millisecond
	}
	if opts.Idle == 0 {
		opts.Idle = 30 * time.Second
	}
	if opts.DriftEvery == 0 {
		opts.DriftEvery = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}
	if opts.Client == nil {
		opts.Client = &http.Client{Transport: tr, Timeout: 2 * time.Second}
	}
	return &Server{
		t: t, opts: opts, log: opts.Logger, client: opts.Client, now: opts.Now,
		stream: &http.Client{Transport: tr},
		codes:  newCodes(opts.Now),
		wake:   make(chan struct{}, 1),
		drift:  Drift{Regions: map[string]Verdict{}},
	}, nil
}

// Start starts the background loop (it gathers only while someone
// watches) and follows the edge's events until ctx ends or Close.
func (s *Server) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Go(func() { s.loop(ctx) })
	s.wg.Go(func() { s.followEvents(ctx) })
}

// Close stops the loops and a running drill (SIGINT, then SIGKILL when
// ctx ends), and waits for them.
func (s *Server) Close(ctx context.Context) error {
	if s.cancel != nil {
		s.cancel()
	}
	grace := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		grace = max(time.Until(d), 0)
	}
	s.stopDrill(grace)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) loop(ctx context.Context) {
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
		s.mu.Lock()
		watched := !s.lastView.IsZero() && s.now().Sub(s.lastView) < s.opts.Idle
		s.mu.Unlock()
		if watched {
			s.step(ctx)
		}
	}
}

// step gathers the edge's origins and request counters and up's
// components once, and refreshes drift verdicts when they are due.
func (s *Server) step(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { s.stepTraffic(ctx) })
	wg.Go(func() { s.stepOrigins(ctx) })
	wg.Go(func() { s.stepComponents(ctx) })
	wg.Wait()
	s.mu.Lock()
	due := s.opts.Drift != nil && !s.driftBusy && s.now().Sub(s.driftAt) >= s.opts.DriftEvery
	if due {
		s.driftBusy = true
	}
	s.mu.Unlock()
	if due {
		s.wg.Go(func() { s.stepDrift(ctx) })
	}
}

// trafficWindow is the span request rates are computed over.
const (
	trafficWindow = 5 * time.Second
	seriesLen     = 180 // seconds of chart
)

func (s *Server) stepTraffic(ctx context.Context) {
	var by map[string]counter
	err := s.get(ctx, s.t.Edge.URL+"/metrics", func(r io.Reader) error {
		var err error
		by, err = parseRequests(r)
		return err
	})
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.trafficErr = "edge metrics: " + err.Error()
		return
	}
	s.trafficErr = ""
	s.samples = append(s.samples, sample{at: now, by: by})
	cut := 0
	for cut < len(s.samples)-1 && now.Sub(s.samples[cut].at) > trafficWindow+2*s.opts.Interval {
		cut++
	}
	s.samples = s.samples[cut:]
	if n := len(s.series); n > 0 && now.UnixMilli()-s.series[n-1].At < 1000 {
		return
	}
	r, ok := s.ratesLocked()
	if !ok {
		return
	}
	p := Point{At: now.UnixMilli(), RPS: map[string]float64{}}
	for origin, v := range r {
		p.RPS[origin] = v.RPS
	}
	s.series = append(s.series, p)
	if len(s.series) > seriesLen {
		s.series = s.series[len(s.series)-seriesLen:]
	}
}

// ratesLocked returns the request rates of every region (zero when the
// edge counted none) and of the edge itself; s.mu is held.
func (s *Server) ratesLocked() (map[string]Rate, bool) {
	r, ok := rates(s.samples, trafficWindow, s.opts.Interval)
	if ok {
		for _, name := range s.t.RegionNames() {
			if _, seen := r[name]; !seen {
				r[name] = Rate{Available: true}
			}
		}
	}
	return r, ok
}

// originsView is what the edge's GET /admin/origins answers.
type originsView struct {
	Routing string            `json:"routing"`
	Route   string            `json:"route"`
	Origins []edge.OriginView `json:"origins"`
}

func (s *Server) stepOrigins(ctx context.Context) {
	var v originsView
	err := s.get(ctx, s.t.Edge.URL+"/admin/origins", func(r io.Reader) error {
		return json.NewDecoder(r).Decode(&v)
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.originsErr = "edge: " + err.Error()
		return
	}
	for i := range v.Origins {
		v.Origins[i].Probes = nil // the page shows the window's verdict
	}
	s.origins, s.originsErr = &v, ""
}

// Components are the processes `up` runs, from its control API.
type Components struct {
	// Available is true when up.json names a control API that answered.
	Available bool                 `json:"available"`
	Error     string               `json:"error,omitempty"`
	Data      []up.ComponentStatus `json:"data"`
}

func (s *Server) stepComponents(ctx context.Context) {
	var c Components
	control, err := s.controlURL()
	if err == nil {
		var ans struct {
			Data []up.ComponentStatus `json:"data"`
		}
		err = s.get(ctx, control+"/v1/components", func(r io.Reader) error { return json.NewDecoder(r).Decode(&ans) })
		c.Data = ans.Data
	}
	c.Available = err == nil
	if err != nil {
		c.Error = err.Error()
	}
	s.mu.Lock()
	s.components = c
	s.mu.Unlock()
}

// Drift holds the drift verdicts of the regions.
type Drift struct {
	// Available is false when the controller runs no drift checks, or
	// before the first: the page shows "n/a".
	Available bool               `json:"available"`
	Regions   map[string]Verdict `json:"regions"`
}

// Verdict is one region's drift verdict: READY, NOT_READY or UNKNOWN,
// with the reasons of a NOT_READY.
type Verdict struct {
	Verdict string    `json:"verdict"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

func (s *Server) stepDrift(ctx context.Context) {
	verdicts := s.opts.Drift()
	got := map[string]Verdict{}
	for _, name := range s.t.RegionNames() {
		v, ok := verdicts[name]
		if !ok {
			continue
		}
		vd := Verdict{Verdict: v, At: s.now()}
		if v == "NOT_READY" && s.opts.Ready != nil {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, vd.Reason = s.opts.Ready(cctx, name)
			cancel()
		}
		got[name] = vd
	}
	s.mu.Lock()
	s.drift = Drift{Available: verdicts != nil, Regions: got}
	s.driftAt, s.driftBusy = s.now(), false
	s.mu.Unlock()
}

// get GETs url with the admin token and hands a 200 body to decode.
func (s *Server) get(ctx context.Context, url string, decode func(io.Reader) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.t.Admin.Token.Value())
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return decode(io.LimitReader(resp.Body, 8<<20))
}

// controlURL reads up's control API address from up.json in the data
// directory.
func (s *Server) controlURL() (string, error) {
	data, err := os.ReadFile(filepath.Join(s.t.Path(s.t.DataDir), "up.json"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", errors.New("not started by `understudy up` (no up.json in the data directory)")
		}
		return "", err
	}
	var st up.State
	if err := json.Unmarshal(data, &st); err != nil {
		return "", fmt.Errorf("up.json: %w", err)
	}
	if st.Control == "" {
		return "", errors.New("up.json names no control API")
	}
	return st.Control, nil
}

// RegionInfo is a region as the topology declares it.
type RegionInfo struct {
	Name     string `json:"name"`
	Priority int    `json:"priority"`
}

// State is what GET /v1/dashboard/state answers.
type State struct {
	Time    time.Time    `json:"time"`
	Name    string       `json:"name"`
	Pattern string       `json:"pattern"`
	Regions []RegionInfo `json:"regions"` // by priority
	Targets struct {
		RTOMS int64 `json:"rto_ms"`
		RPOMS int64 `json:"rpo_ms"`
	} `json:"targets"`
	Controller any  `json:"controller"`
	Edge       Edge `json:"edge"`
	Traffic    struct {
		WindowS float64         `json:"window_s"`
		Origins map[string]Rate `json:"origins"`
		Series  []Point         `json:"series"`
		Error   string          `json:"error,omitempty"`
	} `json:"traffic"`
	Events     []Event    `json:"events"`
	EventsErr  string     `json:"events_error,omitempty"`
	Components Components `json:"components"`
	Drift      Drift      `json:"drift"`
	Drill      *DrillView `json:"drill"`
	Scenarios  []string   `json:"scenarios"`
}

// Edge is the edge's routing as the page shows it.
type Edge struct {
	URL     string            `json:"url"`
	Routing string            `json:"routing"`
	Route   string            `json:"route"`
	Origins []edge.OriginView `json:"origins"`
	Error   string            `json:"error,omitempty"`
}

// State returns the current aggregate and marks the dashboard watched.
func (s *Server) State() State {
	status := s.opts.Status()
	var st State
	st.Time, st.Name, st.Pattern = s.now(), s.t.Name, string(s.t.Pattern)
	for _, n := range s.t.RegionNames() {
		st.Regions = append(st.Regions, RegionInfo{Name: n, Priority: s.t.Region(n).Priority})
	}
	st.Targets.RTOMS, st.Targets.RPOMS = s.t.Targets.RTO.D().Milliseconds(), s.t.Targets.RPO.D().Milliseconds()
	st.Controller = status
	st.Scenarios = Scenarios
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.lastView.IsZero() || s.now().Sub(s.lastView) >= s.opts.Idle
	s.lastView = s.now()
	if first {
		select { // gather now rather than at the next tick
		case s.wake <- struct{}{}:
		default:
		}
	}
	st.Edge = Edge{URL: s.t.Edge.URL, Error: s.originsErr}
	if s.origins != nil {
		st.Edge.Routing, st.Edge.Route, st.Edge.Origins = s.origins.Routing, s.origins.Route, s.origins.Origins
	}
	st.Traffic.WindowS = trafficWindow.Seconds()
	st.Traffic.Origins, _ = s.ratesLocked()
	st.Traffic.Series = append([]Point(nil), s.series...)
	st.Traffic.Error = s.trafficErr
	st.Events = append([]Event(nil), s.events...)
	st.EventsErr = s.eventsErr
	st.Components = s.components
	st.Drift = s.drift
	st.Drill = s.drillViewLocked()
	return st
}

// Mount adds the dashboard's routes to mux. admin wraps the routes that
// need the admin token; the caller wraps mux in http.CrossOriginProtection.
//
//	GET  /                                  the page (no secrets in it)
//	GET  /assets/…                          its script and style
//	POST /v1/dashboard/session              {"code"} → {"token"}: redeem a one-time code (loopback)
//	POST /v1/dashboard/codes                {"purpose"}: mint a one-time code (admin)
//	GET  /v1/dashboard/state                the aggregate the page polls (admin)
//	POST /v1/dashboard/regions/{r}/down|up  kill or restart a region's processes through up (admin)
//	POST /v1/dashboard/drill                {"scenario"}: start `understudy drill` (admin)
//	POST /v1/dashboard/drill/stop           stop it (admin)
//	GET  /v1/dashboard/drill/report?code=   the latest drill's report.html (one-time report code)
func (s *Server) Mount(mux *http.ServeMux, admin func(http.HandlerFunc) http.HandlerFunc) {
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		pageHeaders(w)
		http.ServeFileFS(w, r, static, "index.html")
	})
	mux.Handle("GET /assets/", http.StripPrefix("/assets", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pageHeaders(w)
		files.ServeHTTP(w, r)
	})))
	mux.HandleFunc("POST /v1/dashboard/session", s.serveSession)
	mux.HandleFunc("POST /v1/dashboard/codes", admin(s.serveMintCode))
	mux.HandleFunc("GET /v1/dashboard/state", admin(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, s.State())
	}))
	mux.HandleFunc("POST /v1/dashboard/regions/{region}/{action}", admin(s.serveRegionAction))
	mux.HandleFunc("POST /v1/dashboard/drill", admin(s.serveDrill))
	mux.HandleFunc("POST /v1/dashboard/drill/stop", admin(func(w http.ResponseWriter, r *http.Request) {
		if err := s.stopDrill(30 * time.Second); err != nil {
			writeErr(w, http.StatusConflict, err.Error())
			return
		}
		s.mu.Lock()
		v := s.drillViewLocked()
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, v)
	}))
	mux.HandleFunc("GET /v1/dashboard/drill/report", s.serveReport)
}

// serveMintCode mints a one-time code: {"purpose": "session"} (the
// default) for a dashboard link, {"purpose": "report"} to open the latest
// drill report in a new window.
func (s *Server) serveMintCode(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Purpose string `json:"purpose"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1024)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		writeErr(w, http.StatusBadRequest, `body must be {"purpose": "session"|"report"} or empty`)
		return
	}
	switch body.Purpose {
	case "":
		body.Purpose = PurposeSession
	case PurposeSession, PurposeReport:
	default:
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("unknown purpose %q (session or report)", body.Purpose))
		return
	}
	code := s.codes.mint(body.Purpose)
	ans := map[string]any{"code": code, "purpose": body.Purpose, "expires_in_s": int(CodeTTL.Seconds())}
	if body.Purpose == PurposeSession {
		ans["url"] = s.t.Controller.URL + "/#code=" + code
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, ans)
}

// serveReport serves the latest drill's report.html to a window opened
// with a one-time report code (a new window cannot send the Authorization
// header). The report runs sandboxed in an opaque origin, so its scripts
// cannot reach the dashboard's storage or API.
func (s *Server) serveReport(w http.ResponseWriter, r *http.Request) {
	if !s.t.Admin.AllowRemote && !isLoopback(r.RemoteAddr) {
		writeErr(w, http.StatusForbidden, "the dashboard answers loopback peers only (admin.allow_remote)")
		return
	}
	if !s.codes.redeem(r.URL.Query().Get("code"), PurposeReport) {
		writeErr(w, http.StatusUnauthorized, "a one-time report code is required (the dashboard's Open report button mints one)")
		return
	}
	s.mu.Lock()
	v := s.drillViewLocked()
	s.mu.Unlock()
	if v == nil || !v.HasHTML {
		writeErr(w, http.StatusNotFound, "no drill report yet")
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	http.ServeFile(w, r, filepath.Join(v.Report, "report.html"))
}

// pageHeaders keep the page to its own assets and out of other sites'
// frames.
func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}

// serveSession exchanges a one-time code for the admin token. It answers
// loopback peers only, unless admin.allow_remote.
func (s *Server) serveSession(w http.ResponseWriter, r *http.Request) {
	if !s.t.Admin.AllowRemote && !isLoopback(r.RemoteAddr) {
		writeErr(w, http.StatusForbidden, "the dashboard answers loopback peers only (admin.allow_remote)")
		return
	}
	var body struct {
		Code string `json:"code"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1024)).Decode(&body); err != nil || body.Code == "" {
		writeErr(w, http.StatusBadRequest, `body must be {"code": "..."}`)
		return
	}
	if !s.codes.redeem(body.Code, PurposeSession) {
		writeErr(w, http.StatusUnauthorized, "this dashboard link was already used or has expired; duplicate an open dashboard tab, or paste the admin token")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]string{"token": s.t.Admin.Token.Value()})
}

// serveRegionAction kills (down) or restarts (up) every process of a
// region through up's control API.
func (s *Server) serveRegionAction(w http.ResponseWriter, r *http.Request) {
	region, action := r.PathValue("region"), r.PathValue("action")
	if s.t.Region(region) == nil {
		writeErr(w, http.StatusNotFound, fmt.Sprintf("unknown region %q", region))
		return
	}
	if action != "down" && action != "up" {
		writeErr(w, http.StatusNotFound, fmt.Sprintf("unknown action %q (down or up)", action))
		return
	}
	control, err := s.controlURL()
	if err != nil {
		writeErr(w, http.StatusConflict, "region actions need up's control API: "+err.Error())
		return
	}
	// Bringing a region up waits for each of its processes to be ready.
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, control+"/v1/regions/"+region+"/"+action, nil)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err.Error())
		return
	}
	req.Header.Set("Authorization", "Bearer "+s.t.Admin.Token.Value())
	resp, err := s.stream.Do(req)
	if err != nil {
		writeErr(w, http.StatusBadGateway, "up's control API: "+err.Error())
		return
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	s.log.Warn("region action from the dashboard", "region", region, "action", action, "status", resp.StatusCode)
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		json.Unmarshal(data, &e)
		writeErr(w, resp.StatusCode, fmt.Sprintf("up: %s %s: %s", action, region, e.Error.Message))
		return
	}
	s.stepComponents(r.Context())
	w.Header().Set("Content-Type", "application/json")
	w.Write(bytes.TrimSpace(data))
}

func (s *Server) serveDrill(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Scenario string `json:"scenario"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1024))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeErr(w, http.StatusBadRequest, `body must be {"scenario": NAME}`)
		return
	}
	v, err := s.startDrill(body.Scenario)
	switch {
	case errors.Is(err, ErrDrillRunning):
		writeErr(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrUnknownScenario):
		writeErr(w, http.StatusBadRequest, err.Error())
	case err != nil:
		s.log.Error("start drill", "err", err)
		writeErr(w, http.StatusInternalServerError, err.Error())
	default:
		writeJSON(w, http.StatusAccepted, v)
	}
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeErr answers an OpenAI-shaped error (oaierr) with a null code.
func writeErr(w http.ResponseWriter, status int, msg string) {
	oaierr.Write(w, status, oaierr.Marshal(status, "", "", "", msg), 0)
}
