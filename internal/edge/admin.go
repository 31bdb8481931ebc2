package edge

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes wires the edge's own endpoints in front of the proxy.
func (e *Edge) routes() http.Handler {
	mux := http.NewServeMux()
	own := func(h http.HandlerFunc) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(HeaderEdge, "edge")
			h(w, r)
		})
	}
	mux.Handle("GET /healthz", own(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	}))
	mux.Handle("GET /readyz", own(e.serveReady))
	mux.Handle("GET /metrics", own(e.adminOnly(promhttp.HandlerFor(e.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP)))

	admin := http.NewServeMux()
	admin.HandleFunc("GET /admin/origins", e.listOrigins)
	admin.HandleFunc("GET /admin/origins/{name}", e.getOrigin)
	admin.HandleFunc("POST /admin/origins/{name}/enable", e.setEnabled(true))
	admin.HandleFunc("POST /admin/origins/{name}/disable", e.setEnabled(false))
	admin.HandleFunc("PATCH /admin/origins/{name}", e.patchOrigin)
	admin.HandleFunc("GET /admin/events", e.serveEvents)
	admin.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "invalid_request_error", "not_found", "no such admin endpoint")
	})
	// Browsers may not change the edge from another origin's page.
	mux.Handle("/admin/", own(e.adminOnly(http.NewCrossOriginProtection().Handler(admin).ServeHTTP)))
	mux.HandleFunc("/", e.serveProxy)
	return mux
}

// serveReady is the edge's own readiness: false while draining or when no
// origin is enabled.
func (e *Edge) serveReady(w http.ResponseWriter, r *http.Request) {
	p := e.plan.Load()
	draining := e.draining.Load()
	ready := !draining && p.enabled > 0
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{
		"ready": ready, "draining": draining, "component": "edge",
		"origins_serving": p.serving, "origins_enabled": p.enabled, "route": e.Route(),
	})
}

// adminOnly enforces the admin rules: loopback peers only unless
// admin.allow_remote, and the admin token as a Bearer token.
func (e *Edge) adminOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !e.cfg.allowRemote && !isLoopback(r.RemoteAddr) {
			writeError(w, http.StatusForbidden, "permission_error", "admin_remote", "the admin API answers loopback peers only (admin.allow_remote is false)")
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if e.cfg.adminToken == "" || !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(e.cfg.adminToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="understudy-admin"`)
			writeError(w, http.StatusUnauthorized, "authentication_error", "invalid_admin_token", "a valid admin token is required (Authorization: Bearer <admin.token>)")
			return
		}
		h(w, r)
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

// OriginView is an origin as the admin API shows it.
type OriginView struct {
	Name     string `json:"name"`
	URL      string `json:"url"`
	Enabled  bool   `json:"enabled"`
	Priority int    `json:"priority"`
	Weight   int    `json:"weight"`
	// Healthy is the probe window's verdict; Serving adds enabled and not
	// ejected: only serving origins take traffic (unless none does).
	Healthy bool `json:"healthy"`
	Serving bool `json:"serving"`
	// Passes of the last Samples probes.
	Passes  int `json:"passes"`
	Samples int `json:"samples"`
	// HealthSince is when Healthy last changed.
	HealthSince  time.Time  `json:"health_since"`
	Ejected      bool       `json:"ejected"`
	EjectedUntil *time.Time `json:"ejected_until,omitempty"`
	EjectReason  string     `json:"eject_reason,omitempty"`
	Ejections    int        `json:"ejections"`
	// Role, Epoch, Region and Draining come from the latest probe body.
	Role      string      `json:"role,omitempty"`
	Epoch     int64       `json:"epoch"`
	Region    string      `json:"region,omitempty"`
	Draining  bool        `json:"draining"`
	LatencyMS float64     `json:"latency_ms"`
	Probes    []ProbeView `json:"probes"`
}

// ProbeView is one recent probe result.
type ProbeView struct {
	Start     time.Time `json:"start"`
	OK        bool      `json:"ok"`
	Status    int       `json:"status"`
	LatencyMS float64   `json:"latency_ms"`
	Error     string    `json:"error,omitempty"`
	Role      string    `json:"role,omitempty"`
	Epoch     int64     `json:"epoch,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// viewLocked renders o; e.mu is held.
func (e *Edge) viewLocked(o *origin) OriginView {
	v := OriginView{
		Name: o.name, URL: o.url.String(), Enabled: o.enabled, Priority: o.priority, Weight: o.weight,
		Healthy: o.status.Healthy, Serving: o.serving, Passes: o.status.Passes, Samples: o.status.Samples,
		HealthSince: o.status.Since, Ejected: o.ejected, Ejections: o.ejections,
		Role: o.status.Readiness.Role, Epoch: o.status.Readiness.Epoch, Region: o.status.Readiness.Region,
		Draining: o.status.Readiness.Draining, LatencyMS: ms(o.status.Latency), Probes: []ProbeView{},
	}
	if o.ejected {
		until := o.ejectedUntil
		v.EjectedUntil, v.EjectReason = &until, o.ejectReason
	}
	for _, r := range o.status.Recent {
		v.Probes = append(v.Probes, ProbeView{Start: r.Start, OK: r.OK, Status: r.Status, LatencyMS: ms(r.Latency),
			Error: r.Err, Role: r.Role, Epoch: r.Epoch})
	}
	return v
}

// Origins returns every origin's state.
func (e *Edge) Origins() []OriginView {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]OriginView, 0, len(e.origins))
	for _, o := range e.origins {
		out = append(out, e.viewLocked(o))
	}
	return out
}

func (e *Edge) listOrigins(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"routing": e.cfg.routing, "route": e.Route(), "origins": e.Origins()})
}

func (e *Edge) getOrigin(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	o := e.byName[r.PathValue("name")]
	var v OriginView
	if o != nil {
		v = e.viewLocked(o)
	}
	e.mu.Unlock()
	if o == nil {
		writeError(w, http.StatusNotFound, "invalid_request_error", "origin_not_found", fmt.Sprintf("no origin named %q", r.PathValue("name")))
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// OriginChange is the body of PATCH /admin/origins/{name}; absent fields
// are left as they are.
type OriginChange struct {
	Enabled  *bool `json:"enabled"`
	Priority *int  `json:"priority"`
	Weight   *int  `json:"weight"`
}

// ErrLastEnabled is returned by Change when it would leave no origin
// enabled.
type ErrLastEnabled struct{ Origin string }

func (e ErrLastEnabled) Error() string {
	return fmt.Sprintf("refusing to disable %s: it is the last enabled origin, and the edge never leaves zero origins enabled; enable another origin first", e.Origin)
}

// Change applies an admin change to the origin named name. It refuses a
// change that leaves no origin enabled (ErrLastEnabled).
func (e *Edge) Change(name string, c OriginChange) (OriginView, error) {
	if c.Priority != nil && (*c.Priority < 1 || *c.Priority > 5) {
		return OriginView{}, fmt.Errorf("priority %d: must be 1..5", *c.Priority)
	}
	if c.Weight != nil && (*c.Weight < 1 || *c.Weight > 1000) {
		return OriginView{}, fmt.Errorf("weight %d: must be 1..1000", *c.Weight)
	}
	e.mu.Lock()
	o := e.byName[name]
	if o == nil {
		e.mu.Unlock()
		return OriginView{}, errNotFound{name}
	}
	if c.Enabled != nil && !*c.Enabled && o.enabled {
		others := 0
		for _, x := range e.origins {
			if x != o && x.enabled {
				others++
			}
		}
		if others == 0 {
			e.mu.Unlock()
			return OriginView{}, ErrLastEnabled{Origin: name}
		}
	}
	var what []string
	if c.Enabled != nil && *c.Enabled != o.enabled {
		o.enabled = *c.Enabled
		what = append(what, map[bool]string{true: "enabled", false: "disabled"}[o.enabled])
	}
	if c.Priority != nil && *c.Priority != o.priority {
		o.priority = *c.Priority
		what = append(what, "priority "+strconv.Itoa(o.priority))
	}
	if c.Weight != nil && *c.Weight != o.weight {
		o.weight = *c.Weight
		what = append(what, "weight "+strconv.Itoa(o.weight))
	}
	e.rebuildLocked()
	v := e.viewLocked(o)
	e.mu.Unlock()
	if len(what) > 0 {
		e.metrics.enabled.WithLabelValues(name).Set(b2f(v.Enabled))
		msg := name + ": " + strings.Join(what, ", ")
		e.events.publish(Event{Kind: "admin", Origin: name, Message: msg,
			Detail: map[string]any{"enabled": v.Enabled, "priority": v.Priority, "weight": v.Weight}})
		e.log.Info("origin changed by admin", "region", name, "change", strings.Join(what, ", "))
	}
	return v, nil
}

type errNotFound struct{ name string }

func (e errNotFound) Error() string { return fmt.Sprintf("no origin named %q", e.name) }

func (e *Edge) setEnabled(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		e.answerChange(w, r.PathValue("name"), OriginChange{Enabled: &on})
	}
}

func (e *Edge) patchOrigin(w http.ResponseWriter, r *http.Request) {
	var c OriginChange
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_body", "body must be JSON with enabled, priority and/or weight: "+err.Error())
		return
	}
	e.answerChange(w, r.PathValue("name"), c)
}

func (e *Edge) answerChange(w http.ResponseWriter, name string, c OriginChange) {
	v, err := e.Change(name, c)
	switch err.(type) {
	case nil:
		writeJSON(w, http.StatusOK, v)
	case ErrLastEnabled:
		writeError(w, http.StatusConflict, "invalid_request_error", "last_enabled_origin", err.Error())
	case errNotFound:
		writeError(w, http.StatusNotFound, "invalid_request_error", "origin_not_found", err.Error())
	default:
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_value", err.Error())
	}
}

// serveEvents streams events as SSE: first the recent ones (after
// Last-Event-ID when given), then live ones, with a comment every 15s to
// keep proxies from closing an idle stream.
func (e *Edge) serveEvents(w http.ResponseWriter, r *http.Request) {
	var after uint64
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		after, _ = strconv.ParseUint(id, 10, 64)
	}
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // this route streams for as long as the client stays
	backlog, ch, cancel := e.events.subscribe(after)
	defer cancel()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(ev Event) error {
		data, _ := json.Marshal(ev)
		_, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, ev.Kind, data)
		return err
	}
	for _, ev := range backlog {
		if write(ev) != nil {
			return
		}
	}
	if rc.Flush() != nil {
		return
	}
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-e.events.closed:
			return
		case <-ping.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return
			}
		case ev := <-ch:
			if write(ev) != nil {
				return
			}
		}
		if rc.Flush() != nil {
			return
		}
	}
}
