package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/understudy/understudy/internal/store"
)

// Streaming replication (the topology's replication.transport engine): one
// PostgreSQL primary and streaming hot standbys. The engine copies every
// table, the meta row included, so on a standby the meta row describes the
// primary it copies. The database's own state says who is who: a server in
// recovery is a standby whatever its meta row says.

// inRecovery reports whether the server is a hot standby.
func (s *Store) inRecovery(ctx context.Context) (bool, error) {
	var r bool
	if err := s.read.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&r); err != nil {
		return false, fmt.Errorf("pg_is_in_recovery: %w", err)
	}
	return r, nil
}

// Meta is store.Engine's Meta, except that with Options.Streaming a
// server in recovery is a standby of the epoch it has replayed.
func (s *Store) Meta(ctx context.Context) (store.Meta, error) {
	m, err := s.Engine.Meta(ctx)
	if err != nil || !s.streaming {
		return m, err
	}
	standby, err := s.inRecovery(ctx)
	if err != nil {
		return store.Meta{}, err
	}
	if standby || s.promoting.Load() {
		m.Role = store.RoleStandby
	}
	return m, nil
}

// Fence is store.Engine's Fence; with Options.Streaming, a standby has
// nothing to fence (it refuses writes by itself) and the call succeeds.
func (s *Store) Fence(ctx context.Context, epoch int64) error {
	if s.streaming {
		if standby, err := s.inRecovery(ctx); err != nil || standby {
			return err
		}
	}
	return s.Engine.Fence(ctx, epoch)
}

// promoteWait bounds pg_promote's wait for the end of recovery.
const promoteWait = 60

// Promote is store.Engine's Promote; with Options.Streaming, on a server
// in recovery it first ends recovery with pg_promote(), turns off
// synchronous replication (its standby is most likely the primary that
// was just lost, and commits would wait for it for ever; the region turns
// it back on once a standby streams again), and resets the copied meta
// row, which still describes the former primary, to a standby of its
// epoch; then the new epoch is recorded as usual.
func (s *Store) Promote(ctx context.Context, epoch int64) error {
	if !s.streaming {
		return s.Engine.Promote(ctx, epoch)
	}
	standby, err := s.inRecovery(ctx)
	if err != nil {
		return fmt.Errorf("promote to epoch %d: %w", epoch, err)
	}
	// Between the end of recovery and the new meta row, the copied row
	// would make this server look like the old epoch's primary: Meta
	// says standby until the promotion is recorded. (Another process on
	// the same database may see that row for a moment; it has no lease
	// for the old epoch, so its writes are refused.)
	s.promoting.Store(true)
	defer s.promoting.Store(false)
	if standby {
		var ok bool
		if err := s.write.QueryRowContext(ctx, "SELECT pg_promote(true, $1)", promoteWait).Scan(&ok); err != nil {
			return fmt.Errorf("promote to epoch %d: pg_promote: %w", epoch, err)
		}
		if !ok {
			return fmt.Errorf("promote to epoch %d: pg_promote did not finish within %ds", epoch, promoteWait)
		}
		s.log.Warn("postgres promoted: recovery ended", "epoch", epoch)
		if err := s.SetSynchronous(ctx, false); err != nil {
			return fmt.Errorf("promote to epoch %d: %w", epoch, err)
		}
		// The copied meta row says the former primary's role; the
		// promotion starts from a standby of that epoch.
		if _, err := s.write.ExecContext(ctx, "UPDATE meta SET role = 'standby' WHERE id = 1 AND role <> 'standby' AND epoch < $1", epoch); err != nil {
			return fmt.Errorf("promote to epoch %d: %w", epoch, err)
		}
	}
	return s.Engine.Promote(ctx, epoch)
}

// Streaming is the state of PostgreSQL streaming replication as one
// server sees it.
type Streaming struct {
	// InRecovery: the server is a hot standby.
	InRecovery bool `json:"in_recovery"`
	// LSN is the WAL position: written (primary) or replayed (standby).
	LSN string `json:"lsn"`
	// Synchronous: commits wait for a standby (synchronous_standby_names
	// is set); Commit is synchronous_commit.
	Synchronous      bool   `json:"synchronous"`
	SyncStandbyNames string `json:"synchronous_standby_names"`
	Commit           string `json:"synchronous_commit"`
	// Standbys stream from this primary (pg_stat_replication).
	Standbys []StandbyStatus `json:"standbys,omitempty"`
	// On a standby: whether the WAL receiver streams, from where, and how
	// far replay is behind what it received.
	Receiving      bool    `json:"receiving,omitempty"`
	Upstream       string  `json:"upstream,omitempty"`
	ReceivedLSN    string  `json:"received_lsn,omitempty"`
	ReplayLagBytes int64   `json:"replay_lag_bytes,omitempty"`
	LastReplayAgeS float64 `json:"last_replay_age_s,omitempty"`
}

// StandbyStatus is one row of pg_stat_replication.
type StandbyStatus struct {
	Name      string `json:"name"` // application_name
	Addr      string `json:"addr,omitempty"`
	State     string `json:"state"`      // startup, catchup, streaming, backup, stopping
	SyncState string `json:"sync_state"` // async, potential, sync, quorum
	// LagBytes is how much WAL the standby has not replayed yet.
	LagBytes int64 `json:"lag_bytes"`
	// ReplayLagMs is pg_stat_replication.replay_lag (-1 when unknown).
	ReplayLagMs int64 `json:"replay_lag_ms"`
}

// Streaming reads the replication state from the server.
func (s *Store) Streaming(ctx context.Context) (Streaming, error) {
	var st Streaming
	err := s.read.QueryRowContext(ctx, `SELECT pg_is_in_recovery(),
			COALESCE(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text, ''),
			current_setting('synchronous_standby_names'), current_setting('synchronous_commit')`).
		Scan(&st.InRecovery, &st.LSN, &st.SyncStandbyNames, &st.Commit)
	if err != nil {
		return st, fmt.Errorf("replication state: %w", err)
	}
	st.Synchronous = st.SyncStandbyNames != ""
	if st.InRecovery {
		var upstream, received sql.NullString
		var lag sql.NullInt64
		var age sql.NullFloat64
		err := s.read.QueryRowContext(ctx, `SELECT
				(SELECT status = 'streaming' FROM pg_stat_wal_receiver) IS TRUE,
				(SELECT sender_host || ':' || sender_port FROM pg_stat_wal_receiver),
				pg_last_wal_receive_lsn()::text,
				pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint,
				EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8`).
			Scan(&st.Receiving, &upstream, &received, &lag, &age)
		if err != nil {
			return st, fmt.Errorf("standby state: %w", err)
		}
		st.Upstream, st.ReceivedLSN, st.ReplayLagBytes, st.LastReplayAgeS = upstream.String, received.String, lag.Int64, age.Float64
		return st, nil
	}
	rows, err := s.read.QueryContext(ctx, `SELECT application_name, COALESCE(client_addr::text, ''), state, sync_state,
			COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), -1)::bigint,
			COALESCE((EXTRACT(EPOCH FROM replay_lag) * 1000)::bigint, -1)
		FROM pg_stat_replication ORDER BY application_name`)
	if err != nil {
		return st, fmt.Errorf("pg_stat_replication: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var sb StandbyStatus
		if err := rows.Scan(&sb.Name, &sb.Addr, &sb.State, &sb.SyncState, &sb.LagBytes, &sb.ReplayLagMs); err != nil {
			return st, fmt.Errorf("pg_stat_replication: %w", err)
		}
		st.Standbys = append(st.Standbys, sb)
	}
	return st, rows.Err()
}

// SetSynchronous makes commits wait until a standby has applied them
// (synchronous_standby_names '*', synchronous_commit remote_apply) or
// stops them waiting (both reset), with ALTER SYSTEM and a configuration
// reload. It needs a superuser, or a role granted ALTER SYSTEM on both
// parameters and EXECUTE on pg_reload_conf.
func (s *Store) SetSynchronous(ctx context.Context, on bool) error {
	stmts := []string{"ALTER SYSTEM RESET synchronous_standby_names", "ALTER SYSTEM RESET synchronous_commit"}
	if on {
		stmts = []string{"ALTER SYSTEM SET synchronous_standby_names = '*'", "ALTER SYSTEM SET synchronous_commit = 'remote_apply'"}
	}
	stmts = append(stmts, "SELECT pg_reload_conf()")
	for _, q := range stmts {
		if _, err := s.write.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("set synchronous replication %v: %s: %w", on, q, err)
		}
	}
	// pg_reload_conf only signals the postmaster; wait until a new
	// session sees the setting, so the caller's next commit obeys it.
	want := ""
	if on {
		want = "*"
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var got string
		if err := s.read.QueryRowContext(ctx, "SELECT current_setting('synchronous_standby_names')").Scan(&got); err != nil {
			return fmt.Errorf("set synchronous replication %v: %w", on, err)
		}
		if got == want {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("set synchronous replication: the server did not reload its configuration within 5s")
		}
		t := time.NewTimer(5 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
