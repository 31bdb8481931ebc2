package region

import (
	"context"
	"time"

	"github.com/understudy/understudy/internal/store"
	"github.com/understudy/understudy/internal/store/postgres"
)

// keepSync keeps a PostgreSQL primary's synchronous replication in line
// with the topology (engine transport). In sync mode, commits wait for a
// standby whenever one streams (state "streaming": it has caught up once);
// promotion turns waiting off, since the standby is then usually the
// primary just lost, and this turns it back on once the old primary
// streams again as a standby, like the journal's sync set. With
// degrade_to_async, a primary whose standby has stopped streaming for
// sync_timeout stops waiting (and says so); without it, commits wait,
// and the requests that made them time out unacknowledged. In async mode
// commits never wait.
func (s *Server) keepSync(ctx context.Context, m store.Meta, st postgres.Streaming) {
	if m.Role != store.RolePrimary || st.InRecovery {
		return
	}
	rp := s.t.Replication
	streaming := false
	for _, sb := range st.Standbys {
		streaming = streaming || sb.State == "streaming"
	}
	s.mu.Lock()
	if streaming || !st.Synchronous {
		s.noSyncAt = time.Time{}
	} else if s.noSyncAt.IsZero() {
		s.noSyncAt = time.Now()
	}
	since := s.noSyncAt
	s.mu.Unlock()
	want := st.Synchronous
	switch {
	case rp.Mode != "sync":
		want = false
	case streaming:
		want = true
	case rp.DegradeToAsync && !since.IsZero() && time.Since(since) >= rp.SyncTimeout.D():
		want = false
	}
	if want == st.Synchronous {
		return
	}
	if err := s.engine.SetSynchronous(ctx, want); err != nil {
		s.log.Error("postgres synchronous replication", "want", want, "err", err)
		return
	}
	if want {
		s.log.Info("postgres standby streams: commits wait for it again", "region", s.name)
	} else if rp.Mode == "sync" {
		s.log.Warn("postgres standby not streaming for sync_timeout: degraded to async (degrade_to_async)", "region", s.name, "since", since)
	}
}

// engineFields are the engine's replication state for /readyz.
func engineFields(st *postgres.Streaming) map[string]any {
	if st.InRecovery {
		return map[string]any{"receiving": st.Receiving, "replay_lag_bytes": st.ReplayLagBytes, "last_replay_age_s": st.LastReplayAgeS}
	}
	streaming, lag := 0, int64(0)
	for _, sb := range st.Standbys {
		if sb.State == "streaming" {
			streaming++
		}
		lag = max(lag, sb.LagBytes)
	}
	return map[string]any{"synchronous": st.Synchronous, "standbys_streaming": streaming, "lag_bytes": lag}
}
