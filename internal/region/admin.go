package region

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/understudy/understudy/internal/store"
)

func (s *Server) serveState(w http.ResponseWriter, r *http.Request) {
	st, err := s.State(r.Context())
	if err != nil {
		s.log.Error("state", "err", err)
		writeErr(w, http.StatusInternalServerError, "store_error", "cannot read the store's state")
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// epochBody reads {"epoch": N}; an empty body is epoch 0.
func epochBody(r *http.Request) (int64, error) {
	var body struct {
		Epoch int64 `json:"epoch"`
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, 4096))
	if err != nil {
		return 0, err
	}
	if len(data) == 0 {
		return 0, nil
	}
	if err := json.Unmarshal(data, &body); err != nil || body.Epoch < 0 {
		return 0, errors.New(`body must be {"epoch": N} with N >= 0, or empty`)
	}
	return body.Epoch, nil
}

// servePromote makes this standby the primary of a new epoch: it stops
// vouching for the old primary, waits until its last vouch can no longer
// be in force, then promotes the store. The controller also waits out its
// own grants before it calls this. Promoting to the epoch already held is
// a no-op, so the runbook step can be retried.
func (s *Server) servePromote(w http.ResponseWriter, r *http.Request) {
	epoch, err := epochBody(r)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	ctx := r.Context()
	m, err := s.st.Meta(ctx)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "store_error", "cannot read the store's state")
		return
	}
	if epoch == 0 {
		epoch = max(m.Epoch, m.KnownEpoch) + 1
	}
	if m.Role == store.RolePrimary && m.Epoch == epoch {
		writeJSON(w, http.StatusOK, map[string]any{"region": s.name, "epoch": epoch, "position": m.Position, "already": true})
		return
	}
	inForce := s.grantor.Stop()
	start := time.Now()
	if inForce > 0 {
		t := time.NewTimer(inForce)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			writeErr(w, http.StatusServiceUnavailable, "cancelled", "promotion cancelled while waiting out the old primary's lease; nothing changed")
			return
		}
	}
	s.mu.Lock()
	s.promoted = true
	s.mu.Unlock()
	if err := s.st.Promote(ctx, epoch); err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, store.ErrStaleEpoch) || errors.Is(err, store.ErrConflict) {
			status = http.StatusConflict
		}
		writeErr(w, status, "promote_failed", err.Error())
		return
	}
	if s.engine != nil {
		// Standbys copy the meta row: it tells them who the primary is.
		if err := s.st.NotePrimary(ctx, s.name, epoch); err != nil {
			s.log.Error("record the primary's name", "err", err)
		}
	}
	s.reconcile(ctx)
	m, _ = s.st.Meta(ctx)
	s.log.Warn("promoted", "region", s.name, "epoch", epoch, "position", m.Position.Seq, "waited", time.Since(start))
	writeJSON(w, http.StatusOK, map[string]any{"region": s.name, "epoch": epoch, "position": m.Position,
		"waited_ms": time.Since(start).Milliseconds()})
}

// serveFence stops a primary from writing at once ({"epoch": N} is the
// epoch being fenced or the newer one replacing it; default its own).
func (s *Server) serveFence(w http.ResponseWriter, r *http.Request) {
	epoch, err := epochBody(r)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	ctx := r.Context()
	if epoch == 0 {
		m, err := s.st.Meta(ctx)
		if err != nil {
			writeErr(w, http.StatusInternalServerError, "store_error", "cannot read the store's state")
			return
		}
		epoch = m.Epoch
	}
	if err := s.st.Fence(ctx, epoch); err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, store.ErrStaleEpoch) {
			status = http.StatusConflict
		}
		writeErr(w, status, "fence_failed", err.Error())
		return
	}
	// The reconcile loop, woken by the fence's commit, stops the lease
	// (the shippers go on until the peers hold every event); the answer
	// does not wait for that: the store itself already refuses writes.
	m, err := s.st.Meta(ctx)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "store_error", "cannot read the store's state")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"region": s.name, "role": m.Role, "epoch": m.Epoch, "position": m.Position})
}

func (s *Server) serveQuarantine(w http.ResponseWriter, r *http.Request) {
	q, err := s.st.Quarantine(r.Context())
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "store_error", "cannot read the quarantine")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": q})
}
