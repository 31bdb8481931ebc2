package controller

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/understudy/understudy/internal/lease"
	"github.com/understudy/understudy/internal/oaierr"
)

// Handler serves the controller's API:
//
//	/v1/lease/…          the primary's write lease (renewals use the replication secret)
//	GET  /v1/status      regions, roles, epoch, runbook progress, last RTO/RPO
//	POST /v1/failover    {"to": R, "dry_run": bool}
//	POST /v1/failback    {"dry_run": bool}
//	POST /v1/approve     start the failover waiting for approval
//	GET  /v1/runs, /v1/runs/{id}
//	GET  /, /v1/dashboard/…  the dashboard (dashboard.go; its page and one-time login need no token)
//
// Everything but lease renewals needs the admin token, from loopback peers
// unless admin.allow_remote.
func (c *Controller) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/lease/", lease.Handler(c.grantorOrNil(), "/v1/lease", c.t.Replication.Secret.Value(), c.admin()))
	mux.HandleFunc("GET /v1/status", c.adminOnly(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.Status())
	}))
	mux.HandleFunc("POST /v1/failover", c.adminOnly(c.serveFailover))
	mux.HandleFunc("POST /v1/failback", c.adminOnly(c.serveFailback))
	mux.HandleFunc("POST /v1/approve", c.adminOnly(c.serveApprove))
	mux.HandleFunc("GET /v1/runs", c.adminOnly(func(w http.ResponseWriter, r *http.Request) {
		runs, err := c.journal.List()
		if err != nil {
			writeErr(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": runs})
	}))
	mux.HandleFunc("GET /v1/runs/{id}", c.adminOnly(func(w http.ResponseWriter, r *http.Request) {
		runs, err := c.journal.List()
		if err != nil {
			writeErr(w, http.StatusInternalServerError, err.Error())
			return
		}
		for _, run := range runs {
			if run.ID == r.PathValue("id") {
				writeJSON(w, http.StatusOK, run)
				return
			}
		}
		writeErr(w, http.StatusNotFound, "no run "+r.PathValue("id"))
	}))
	c.mountDashboard(mux)
	return http.NewCrossOriginProtection().Handler(mux)
}

// grantorOrNil exists because Handler may be built before Run creates the
// grantor in tests; Run always creates it first.
func (c *Controller) grantorOrNil() *lease.Grantor { return c.grantor }

func (c *Controller) adminOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !c.t.Admin.AllowRemote {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				writeErr(w, http.StatusForbidden, "admin API answers loopback peers only (admin.allow_remote)")
				return
			}
		}
		got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(c.admin())) != 1 {
			writeErr(w, http.StatusUnauthorized, "admin token required")
			return
		}
		h(w, r)
	}
}

type moveRequest struct {
	To     string `json:"to"`
	DryRun bool   `json:"dry_run"`
}

func decodeMove(r *http.Request) (moveRequest, error) {
	var m moveRequest
	data, err := io.ReadAll(io.LimitReader(r.Body, 4096))
	if err != nil || len(data) == 0 {
		return m, err
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("body must be {\"to\": region, \"dry_run\": bool}: %w", err)
	}
	return m, nil
}

func (c *Controller) serveFailover(w http.ResponseWriter, r *http.Request) {
	m, err := decodeMove(r)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	c.move(w, "failover", m)
}

func (c *Controller) serveFailback(w http.ResponseWriter, r *http.Request) {
	m, err := decodeMove(r)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	m.To = c.t.Primary().Name
	c.move(w, "failback", m)
}

// move starts a failover or failback to m.To: planned (zero-loss) when the
// current primary answers, unplanned otherwise.
func (c *Controller) move(w http.ResponseWriter, kind string, m moveRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.To == "" {
		// The best-priority region that is not the primary.
		for _, n := range c.t.RegionNames() {
			if n != c.state.Primary {
				m.To = n
				break
			}
		}
	}
	switch {
	case c.t.Region(m.To) == nil:
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("unknown region %q", m.To))
		return
	case m.To == c.state.Primary:
		writeErr(w, http.StatusConflict, fmt.Sprintf("%s is already the primary (epoch %d)", m.To, c.state.Epoch))
		return
	case c.active != nil:
		writeErr(w, http.StatusConflict, "a runbook is running: "+c.active.ID)
		return
	}
	from := c.state.Primary
	v := c.views[from]
	planned := v.Up && v.LastOK
	if m.DryRun {
		writeJSON(w, http.StatusOK, map[string]any{"planned": planned, "plan": Plan(kind, from, m.To, c.steps(planned))})
		return
	}
	reason := "requested by an operator"
	run := c.newRunLocked(kind, from, m.To, reason, planned)
	if !planned {
		first, ev := c.det.Evidence(from)
		if first.IsZero() {
			first = run.Created
		}
		run.FaultAt, run.Evidence = first, ev
	}
	c.startLocked(c.runCtx, run)
	writeJSON(w, http.StatusAccepted, run.Snapshot())
}

func (c *Controller) serveApprove(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		writeErr(w, http.StatusConflict, "no failover is waiting for approval")
		return
	}
	run := c.pending
	c.startLocked(c.runCtx, run)
	writeJSON(w, http.StatusAccepted, run.Snapshot())
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
