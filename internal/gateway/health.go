package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/understudy/understudy/internal/topology"
)

func (g *Gateway) serveHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "region": g.region})
}

// readyzTimeout bounds the readiness contributors together.
const readyzTimeout = 2 * time.Second

type depReadiness struct {
	Backends int `json:"backends"`
	Serving  int `json:"serving"`
}

// serveReadyz is the deep readiness check: 200 only when the gateway is
// not draining, every deployment has a backend that is neither cooling nor
// ejected, and every contributor passes.
func (g *Gateway) serveReadyz(w http.ResponseWriter, r *http.Request) {
	body := map[string]any{}
	ready := true
	deps := make(map[string]depReadiness, len(g.depList))
	for _, d := range g.depList {
		total, serving := d.pool.serving()
		deps[d.name] = depReadiness{Backends: total, Serving: serving}
		if serving == 0 {
			ready = false
		}
	}
	g.readyMu.Lock()
	checks := append([]readinessCheck(nil), g.readiness...)
	g.readyMu.Unlock()
	var failing []string
	if len(checks) > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), readyzTimeout)
		for _, c := range checks {
			fields, err := c.check(ctx)
			maps.Copy(body, fields)
			if err != nil {
				ready = false
				failing = append(failing, c.name)
				g.log.LogAttrs(ctx, slog.LevelWarn, "readiness check failed", slog.String("check", c.name), slog.Any("err", err))
			}
		}
		cancel()
	}
	draining := g.draining.Load()
	if draining {
		ready = false
	}
	body["ready"] = ready
	body["region"] = g.region
	body["draining"] = draining
	body["deployments"] = deps
	if failing != nil {
		body["failing"] = failing
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, errInternal())
		return
	}
	b = append(b, '\n')
	w.Header()["Content-Type"] = hdrJSON
	w.WriteHeader(status)
	w.Write(b)
}

// adminAuth holds the admin token's hash and the loopback rule.
type adminAuth struct {
	hash        [32]byte
	set         bool
	allowRemote bool
}

func newAdminAuth(a topology.Admin) adminAuth {
	v := a.Token.Value()
	return adminAuth{hash: sha256.Sum256([]byte(v)), set: v != "", allowRemote: a.AllowRemote}
}

// adminOnly answers only loopback peers (unless admin.allow_remote) that
// present the admin token as a Bearer token.
func (g *Gateway) adminOnly(h http.Handler) http.Handler {
	return g.adapt(func(w http.ResponseWriter, r *http.Request) error {
		if !g.admin.allowRemote && !isLoopback(r.RemoteAddr) {
			return &Error{Status: http.StatusForbidden, Code: "admin_remote_forbidden",
				Message: "Admin endpoints answer loopback clients only."}
		}
		v := r.Header.Get("Authorization")
		tok, ok := "", false
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			tok, ok = strings.TrimSpace(v[7:]), true
		}
		sum := sha256.Sum256([]byte(tok))
		if !ok || !g.admin.set || subtle.ConstantTimeCompare(sum[:], g.admin.hash[:]) != 1 {
			return &Error{Status: http.StatusUnauthorized, Code: "invalid_admin_token",
				Message: "Admin endpoints need 'Authorization: Bearer <admin token>'."}
		}
		h.ServeHTTP(w, r)
		return nil
	})
}

func isLoopback(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	return ap.Addr().Unmap().IsLoopback()
}

// AdminBackends is the body of GET /admin/backends.
type AdminBackends struct {
	Region      string                     `json:"region"`
	Draining    bool                       `json:"draining"`
	Deployments map[string][]BackendStatus `json:"deployments"`
}

func (g *Gateway) serveAdminBackends(w http.ResponseWriter, r *http.Request) error {
	out := AdminBackends{Region: g.region, Draining: g.draining.Load(), Deployments: map[string][]BackendStatus{}}
	for _, d := range g.depList {
		out.Deployments[d.name] = d.pool.status()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// serveAdminDrain starts (POST) or ends (DELETE) the lame duck. A gateway
// that is shutting down stays draining.
func (g *Gateway) serveAdminDrain(on bool) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if on {
			g.Drain()
			g.log.Info("drain requested through the admin API: /readyz fails from now on")
		} else {
			g.srvMu.Lock()
			closing := g.closing
			g.srvMu.Unlock()
			if closing {
				return &Error{Status: http.StatusConflict, Code: "shutting_down", Message: "The gateway is shutting down."}
			}
			g.draining.Store(false)
			g.log.Info("drain ended through the admin API")
		}
		writeJSON(w, http.StatusOK, map[string]any{"region": g.region, "draining": g.draining.Load()})
		return nil
	}
}
