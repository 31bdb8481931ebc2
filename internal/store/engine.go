package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Dialect is what differs between SQL engines in the queries Engine runs.
// Queries are written with ? placeholders and portable SQL (INSERT … ON
// CONFLICT, partial indexes, integers for booleans and timestamps).
type Dialect struct {
	// Name is the driver name, for messages ("sqlite", "postgres").
	Name string
	// NumberedParams rewrites ? placeholders as $1, $2… (postgres).
	NumberedParams bool
	// LockMeta is appended to the SELECT of the meta row at the start of
	// every write transaction ("FOR UPDATE" on postgres; empty on sqlite,
	// whose single writer connection already serialises writers).
	LockMeta string
	// MapError, when set, translates a driver error of a write
	// transaction into a store error (postgres: a read-only transaction
	// on a hot standby becomes ErrNotPrimary). Default none.
	MapError func(error) error
	// CachesStatements says the driver prepares and caches statements
	// per connection by itself (pgx does), so write transactions run
	// their statements directly instead of preparing each one per
	// transaction. Default false.
	CachesStatements bool
}

// Guard is called just before a write transaction commits; if it returns an
// error the transaction rolls back. The controller plugs its write-lease
// check in here.
type Guard func(ctx context.Context) error

// Config is what a driver hands to NewEngine.
type Config struct {
	// Write runs every write transaction. Required. For sqlite it has a
	// single connection.
	Write *sql.DB
	// Read serves reads. Default Write.
	Read *sql.DB
	// Dialect of the SQL engine. Default sqlite's.
	Dialect Dialect
	// Now is the clock for created_at and event times. Default time.Now.
	Now func() time.Time
	// Guard is called before every write commit. Default none.
	Guard Guard
	// Log receives rejoin and quarantine reports. Default discards.
	Log *slog.Logger
}

// Engine is the driver-independent store: every operation of the contract
// over database/sql. Drivers (sqlite, postgres) open the database, migrate
// the schema and embed an *Engine.
type Engine struct {
	w, r  *sql.DB
	d     Dialect
	now   func() time.Time
	guard atomic.Pointer[Guard]
	log   *slog.Logger

	mu       sync.Mutex
	commitCh chan struct{}

	rebound sync.Map // query text → rebound text (numbered dialects)
}

// NewEngine returns an engine over an already migrated database.
func NewEngine(cfg Config) *Engine {
	e := &Engine{w: cfg.Write, r: cfg.Read, d: cfg.Dialect, now: cfg.Now, log: cfg.Log, commitCh: make(chan struct{})}
	if e.r == nil {
		e.r = e.w
	}
	if e.d.Name == "" {
		e.d.Name = "sqlite"
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Guard != nil {
		e.SetGuard(cfg.Guard)
	}
	return e
}

// SetGuard replaces the guard hook (nil removes it).
func (e *Engine) SetGuard(g Guard) {
	if g == nil {
		e.guard.Store(nil)
		return
	}
	e.guard.Store(&g)
}

// CommitSignal returns a channel that is closed at the next commit that
// changes the journal or the meta state. Take the channel before reading
// the state it guards, then wait on it.
func (e *Engine) CommitSignal() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.commitCh
}

func (e *Engine) notify() {
	e.mu.Lock()
	close(e.commitCh)
	e.commitCh = make(chan struct{})
	e.mu.Unlock()
}

// q rewrites a query for the dialect.
func (e *Engine) q(query string) string {
	if !e.d.NumberedParams {
		return query
	}
	if v, ok := e.rebound.Load(query); ok {
		return v.(string)
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	s := b.String()
	e.rebound.Store(query, s)
	return s
}

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// wtx is a write transaction that prepares each distinct statement once:
// a batch of a hundred events parses its two INSERTs once, not a hundred
// times. The statements close with the transaction.
type wtx struct {
	*sql.Tx
	direct bool // the driver caches statements: do not prepare
	stmts  map[string]*sql.Stmt
}

func (t *wtx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if t.direct {
		return t.Tx.ExecContext(ctx, query, args...)
	}
	st, ok := t.stmts[query]
	if !ok {
		var err error
		if st, err = t.Tx.PrepareContext(ctx, query); err != nil {
			return nil, err
		}
		if t.stmts == nil {
			t.stmts = map[string]*sql.Stmt{}
		}
		t.stmts[query] = st
	}
	return st.ExecContext(ctx, args...)
}

// meta is the meta row.
type meta struct {
	role         Role
	epoch        int64
	pos          Position
	knownEpoch   int64
	knownPrimary string
}

func (e *Engine) readMeta(ctx context.Context, q querier, lock bool) (meta, error) {
	var m meta
	query := "SELECT role, epoch, last_seq, last_epoch, known_epoch, known_primary FROM meta WHERE id = 1"
	if lock && e.d.LockMeta != "" {
		query += " " + e.d.LockMeta
	}
	err := q.QueryRowContext(ctx, e.q(query)).Scan(&m.role, &m.epoch, &m.pos.Seq, &m.pos.Epoch, &m.knownEpoch, &m.knownPrimary)
	if err != nil {
		return m, fmt.Errorf("read meta: %w", err)
	}
	return m, nil
}

func (e *Engine) writeMeta(ctx context.Context, tx *wtx, m meta) error {
	_, err := tx.ExecContext(ctx, e.q("UPDATE meta SET role = ?, epoch = ?, last_seq = ?, last_epoch = ?, known_epoch = ?, known_primary = ? WHERE id = 1"),
		string(m.role), m.epoch, m.pos.Seq, m.pos.Epoch, m.knownEpoch, m.knownPrimary)
	if err != nil {
		return fmt.Errorf("write meta: %w", err)
	}
	return nil
}

func (e *Engine) readHistory(ctx context.Context, q querier) ([]EpochStart, error) {
	rows, err := q.QueryContext(ctx, e.q("SELECT epoch, first_seq FROM epochs ORDER BY epoch"))
	if err != nil {
		return nil, fmt.Errorf("read epoch history: %w", err)
	}
	defer rows.Close()
	var h []EpochStart
	for rows.Next() {
		var s EpochStart
		if err := rows.Scan(&s.Epoch, &s.FirstSeq); err != nil {
			return nil, fmt.Errorf("read epoch history: %w", err)
		}
		h = append(h, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read epoch history: %w", err)
	}
	return h, nil
}

// Meta returns the store's role, epoch, history and position.
func (e *Engine) Meta(ctx context.Context) (Meta, error) {
	tx, err := e.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Meta{}, fmt.Errorf("meta: %w", err)
	}
	defer tx.Rollback()
	m, err := e.readMeta(ctx, tx, false)
	if err != nil {
		return Meta{}, err
	}
	h, err := e.readHistory(ctx, tx)
	if err != nil {
		return Meta{}, err
	}
	return Meta{Role: m.role, Epoch: m.epoch, History: h, Position: m.pos, KnownEpoch: max(m.knownEpoch, m.epoch), KnownPrimary: m.knownPrimary}, nil
}

// Position returns the last journal event held (last seq and its epoch).
func (e *Engine) Position(ctx context.Context) (Position, error) {
	m, err := e.readMeta(ctx, e.r, false)
	return m.pos, err
}

// writeTx runs fn in a write transaction, calls the guard when guarded,
// and commits. Changed reports whether to signal a commit.
func (e *Engine) writeTx(ctx context.Context, guarded bool, fn func(tx *wtx, m *meta) (changed bool, err error)) (err error) {
	if e.d.MapError != nil {
		defer func() {
			if err != nil {
				err = e.d.MapError(err)
			}
		}()
	}
	tx, err := e.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	w := &wtx{Tx: tx, direct: e.d.CachesStatements}
	m, err := e.readMeta(ctx, w, true)
	if err != nil {
		return err
	}
	changed, err := fn(w, &m)
	if err != nil {
		return err
	}
	if !changed {
		return nil
	}
	if err := e.writeMeta(ctx, w, m); err != nil {
		return err
	}
	if guarded {
		if g := e.guard.Load(); g != nil {
			if err := (*g)(ctx); err != nil {
				return fmt.Errorf("%w: %w", ErrGuard, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	e.notify()
	return nil
}

// Update runs fn in one write transaction. It checks that the store is
// primary and that epoch is the store's epoch, lets fn apply changes (each
// journaled as an event with the next gap-free seq), calls the guard, and
// commits. It returns the position after the commit: the seq to wait for
// in sync replication. If fn returns an error nothing is written.
func (e *Engine) Update(ctx context.Context, epoch int64, fn func(*Tx) error) (Position, error) {
	var pos Position
	err := e.writeTx(ctx, true, func(tx *wtx, m *meta) (bool, error) {
		if m.role != RolePrimary {
			return false, &NotPrimaryError{Role: m.role, Epoch: m.epoch, KnownEpoch: max(m.knownEpoch, m.epoch), KnownPrimary: m.knownPrimary}
		}
		if epoch != m.epoch {
			return false, &EpochError{Store: m.epoch, Got: epoch}
		}
		t := &Tx{ctx: ctx, e: e, tx: tx, epoch: epoch, pos: m.pos, now: truncate(e.now())}
		err := fn(t)
		if t.broken != nil {
			return false, t.broken
		}
		if err != nil {
			return false, err
		}
		pos = t.pos
		changed := t.pos != m.pos
		m.pos = t.pos
		return changed, nil
	})
	if err != nil {
		return Position{}, err
	}
	// When fn wrote nothing (an idempotent repeat), pos is the current
	// position, which covers the earlier write being repeated.
	return pos, nil
}

// insertEvent appends ev to the journal.
func (e *Engine) insertEvent(ctx context.Context, tx *wtx, ev Event) error {
	_, err := tx.ExecContext(ctx, e.q("INSERT INTO journal (seq, epoch, kind, at, payload) VALUES (?, ?, ?, ?, ?)"),
		ev.Seq, ev.Epoch, ev.Kind, micros(ev.At), []byte(ev.Payload))
	if err != nil {
		return fmt.Errorf("journal event %d: %w", ev.Seq, err)
	}
	return nil
}

// ReadEvents returns up to limit journal events with seq > afterSeq, in
// order. limit ≤ 0 means 100.
func (e *Engine) ReadEvents(ctx context.Context, afterSeq int64, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = 100
	}
	return e.readEvents(ctx, e.r, afterSeq, 1<<62, limit)
}

func (e *Engine) readEvents(ctx context.Context, q querier, afterSeq, beforeSeq int64, limit int) ([]Event, error) {
	rows, err := q.QueryContext(ctx, e.q("SELECT seq, epoch, kind, at, payload FROM journal WHERE seq > ? AND seq < ? ORDER BY seq LIMIT ?"), afterSeq, beforeSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("read events after %d: %w", afterSeq, err)
	}
	defer rows.Close()
	var evs []Event
	for rows.Next() {
		var ev Event
		var at int64
		var payload []byte
		if err := rows.Scan(&ev.Seq, &ev.Epoch, &ev.Kind, &at, &payload); err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		ev.At = fromMicros(at)
		ev.Payload = payload
		evs = append(evs, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return evs, nil
}

// epochAt returns the epoch in effect at seq according to h: the newest
// epoch that began at or before seq, 0 if none.
func epochAt(h []EpochStart, seq int64) int64 {
	var ep int64
	for _, s := range h {
		if s.FirstSeq <= seq && s.Epoch > ep {
			ep = s.Epoch
		}
	}
	return ep
}

func maxEpoch(h []EpochStart) int64 {
	var ep int64
	for _, s := range h {
		ep = max(ep, s.Epoch)
	}
	return ep
}

func historyHas(h []EpochStart, epoch int64) bool {
	for _, s := range h {
		if s.Epoch == epoch {
			return true
		}
	}
	return false
}

// ApplyEvents applies events shipped from the primary, in order, in one
// transaction. The store must be a standby. Events at or below the current
// position are skipped (after checking they carry the epoch of the event
// held at that seq); a seq that does not follow is ErrGap; an event whose
// epoch is older than the epoch the local history puts at its seq is
// ErrStaleEpoch. An event of a newer epoch than any known starts that
// epoch in the local history. It returns the position after applying.
func (e *Engine) ApplyEvents(ctx context.Context, events []Event) (Position, error) {
	var pos Position
	err := e.writeTx(ctx, false, func(tx *wtx, m *meta) (bool, error) {
		pos = m.pos
		if m.role != RoleStandby {
			return false, conflictf("apply events: store is %s, not standby", m.role)
		}
		hist, err := e.readHistory(ctx, tx)
		if err != nil {
			return false, err
		}
		start := m.pos
		for _, ev := range events {
			if ev.Seq <= m.pos.Seq {
				var held int64
				err := tx.QueryRowContext(ctx, e.q("SELECT epoch FROM journal WHERE seq = ?"), ev.Seq).Scan(&held)
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					return false, fmt.Errorf("check event %d: %w", ev.Seq, err)
				}
				if err == nil && held != ev.Epoch {
					return false, conflictf("event %d: epoch %d, local journal holds epoch %d (diverged; rejoin needed)", ev.Seq, ev.Epoch, held)
				}
				continue
			}
			if ev.Seq != m.pos.Seq+1 {
				return false, fmt.Errorf("%w: event %d after %d", ErrGap, ev.Seq, m.pos.Seq)
			}
			if cur := epochAt(hist, ev.Seq); ev.Epoch < cur || ev.Epoch < m.pos.Epoch {
				return false, &EpochError{Store: max(cur, m.pos.Epoch), Got: ev.Epoch}
			}
			switch {
			case ev.Epoch > maxEpoch(hist):
				s := EpochStart{Epoch: ev.Epoch, FirstSeq: ev.Seq}
				if _, err := tx.ExecContext(ctx, e.q("INSERT INTO epochs (epoch, first_seq) VALUES (?, ?)"), s.Epoch, s.FirstSeq); err != nil {
					return false, fmt.Errorf("record epoch %d: %w", s.Epoch, err)
				}
				hist = append(hist, s)
				m.epoch = ev.Epoch
			case epochAt(hist, ev.Seq) != ev.Epoch:
				return false, conflictf("event %d of epoch %d: the history starts that epoch later", ev.Seq, ev.Epoch)
			}
			c, err := decodeChange(ev)
			if err != nil {
				return false, err
			}
			if err := e.apply(ctx, tx, ev, c); err != nil {
				return false, err
			}
			ev.At = truncate(ev.At)
			if err := e.insertEvent(ctx, tx, ev); err != nil {
				return false, err
			}
			m.pos = Position{Seq: ev.Seq, Epoch: ev.Epoch}
		}
		pos = m.pos
		return m.pos != start, nil
	})
	if err != nil {
		return Position{}, fmt.Errorf("apply events: %w", err)
	}
	return pos, nil
}

// Promote makes a standby (or fenced) store the primary of newEpoch, which
// must be newer than any epoch it knows. It durably records that newEpoch
// begins at the seq after the last one held (the fork point). Promoting a
// primary to its own epoch again is a no-op, so the runbook step is
// idempotent.
func (e *Engine) Promote(ctx context.Context, newEpoch int64) error {
	err := e.writeTx(ctx, false, func(tx *wtx, m *meta) (bool, error) {
		if m.role == RolePrimary {
			if m.epoch == newEpoch {
				return false, nil
			}
			return false, conflictf("already primary of epoch %d", m.epoch)
		}
		if newEpoch <= max(m.epoch, m.knownEpoch) {
			return false, &EpochError{Store: max(m.epoch, m.knownEpoch), Got: newEpoch}
		}
		if _, err := tx.ExecContext(ctx, e.q("INSERT INTO epochs (epoch, first_seq) VALUES (?, ?)"), newEpoch, m.pos.Seq+1); err != nil {
			return false, fmt.Errorf("record epoch %d: %w", newEpoch, err)
		}
		m.role, m.epoch, m.knownEpoch, m.knownPrimary = RolePrimary, newEpoch, newEpoch, ""
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("promote to epoch %d: %w", newEpoch, err)
	}
	e.log.Info("store promoted", "epoch", newEpoch)
	return nil
}

// Fence stops a primary from writing: its role becomes fenced. epoch is
// the epoch being fenced or a newer one that replaced it (remembered as
// the known epoch); an epoch older than the store's is ErrStaleEpoch, so a
// late fence never stops a newer primary. Fencing a standby or a fenced
// store only records the epoch.
func (e *Engine) Fence(ctx context.Context, epoch int64) error {
	err := e.writeTx(ctx, false, func(tx *wtx, m *meta) (bool, error) {
		if epoch < m.epoch {
			return false, &EpochError{Store: m.epoch, Got: epoch}
		}
		changed := false
		if m.role == RolePrimary {
			m.role = RoleFenced
			changed = true
		}
		if epoch > m.knownEpoch {
			m.knownEpoch, m.knownPrimary = epoch, "" // whoever holds the newer epoch is not known here
			changed = true
		}
		return changed, nil
	})
	if err != nil {
		return fmt.Errorf("fence at epoch %d: %w", epoch, err)
	}
	return nil
}

// NotePrimary records who is primary of epoch, for NotPrimaryError, when
// epoch is at least the newest epoch known.
func (e *Engine) NotePrimary(ctx context.Context, name string, epoch int64) error {
	return e.writeTx(ctx, false, func(tx *wtx, m *meta) (bool, error) {
		if epoch < max(m.knownEpoch, m.epoch) || (epoch == m.knownEpoch && name == m.knownPrimary) {
			return false, nil
		}
		m.knownEpoch, m.knownPrimary = epoch, name
		return true, nil
	})
}

// ValidateHistory checks that h is a usable epoch history: epochs ≥ 1
// strictly ascending, first seqs ≥ 1 and non-decreasing.
func ValidateHistory(h []EpochStart) error {
	if len(h) == 0 {
		return invalidf("empty epoch history")
	}
	for i, s := range h {
		if s.Epoch < 1 || s.FirstSeq < 1 {
			return invalidf("epoch history entry %d: epoch %d first seq %d", i, s.Epoch, s.FirstSeq)
		}
		if i > 0 && (s.Epoch <= h[i-1].Epoch || s.FirstSeq < h[i-1].FirstSeq) {
			return invalidf("epoch history not ascending at entry %d", i)
		}
	}
	return nil
}

// stateTables are the tables Rejoin rebuilds from the journal.
var stateTables = []string{"items", "conversations", "responses", "agent_versions"}

// Rejoin turns a fenced former primary (or a standby that fell behind an
// epoch change) into a standby of the newest epoch of history, the new
// primary's epoch history. Every local event the new primary never
// received — from the first seq where the local journal's epochs disagree
// with history — moves to the quarantine table, and the state is rebuilt
// by replaying the journal up to that fork point. The store then holds
// exactly the new primary's prefix and continues as its standby.
// A primary must be fenced first (ErrConflict); a history whose newest
// epoch is older than the store's is ErrStaleEpoch.
func (e *Engine) Rejoin(ctx context.Context, history []EpochStart) (RejoinReport, error) {
	var rep RejoinReport
	if err := ValidateHistory(history); err != nil {
		return rep, fmt.Errorf("rejoin: %w", err)
	}
	newEpoch := history[len(history)-1].Epoch
	err := e.writeTx(ctx, false, func(tx *wtx, m *meta) (bool, error) {
		rep = RejoinReport{Epoch: newEpoch}
		switch {
		case m.role == RolePrimary:
			return false, conflictf("store is primary of epoch %d: fence it first", m.epoch)
		case newEpoch < m.epoch, newEpoch == m.epoch && m.role == RoleFenced:
			return false, &EpochError{Store: m.epoch, Got: newEpoch}
		}
		fork, err := e.findFork(ctx, tx, history, m.pos.Seq)
		if err != nil {
			return false, err
		}
		if fork > 0 {
			n, err := e.quarantineFrom(ctx, tx, fork, newEpoch)
			if err != nil {
				return false, err
			}
			if err := e.rebuild(ctx, tx, fork); err != nil {
				return false, err
			}
			rep.ForkSeq, rep.Quarantined = fork, n
			m.pos = Position{}
			if fork > 1 {
				m.pos.Seq = fork - 1
				if err := tx.QueryRowContext(ctx, e.q("SELECT epoch FROM journal WHERE seq = ?"), fork-1).Scan(&m.pos.Epoch); err != nil {
					return false, fmt.Errorf("read event %d: %w", fork-1, err)
				}
			}
		}
		if _, err := tx.ExecContext(ctx, e.q("DELETE FROM epochs")); err != nil {
			return false, fmt.Errorf("replace epoch history: %w", err)
		}
		for _, s := range history {
			if _, err := tx.ExecContext(ctx, e.q("INSERT INTO epochs (epoch, first_seq) VALUES (?, ?)"), s.Epoch, s.FirstSeq); err != nil {
				return false, fmt.Errorf("replace epoch history: %w", err)
			}
		}
		m.role, m.epoch = RoleStandby, newEpoch
		m.knownEpoch = max(m.knownEpoch, newEpoch)
		return true, nil
	})
	if err != nil {
		return RejoinReport{}, fmt.Errorf("rejoin epoch %d: %w", newEpoch, err)
	}
	if rep.Quarantined > 0 {
		e.log.Warn("store rejoined: divergent events quarantined", "epoch", newEpoch, "fork_seq", rep.ForkSeq, "quarantined", rep.Quarantined)
	} else {
		e.log.Info("store rejoined as standby", "epoch", newEpoch)
	}
	return rep, nil
}

// findFork returns the first seq ≤ last whose event's epoch differs from
// the epoch history puts at that seq, or 0.
func (e *Engine) findFork(ctx context.Context, tx *wtx, history []EpochStart, last int64) (int64, error) {
	var fork int64
	// Interval i is [from, to) with epoch ep; before the first entry the
	// epoch is 0, which no event has.
	from, ep := int64(1), int64(0)
	check := func(to int64) error {
		if from >= to || from > last {
			return nil
		}
		var s sql.NullInt64
		err := tx.QueryRowContext(ctx, e.q("SELECT MIN(seq) FROM journal WHERE seq >= ? AND seq < ? AND epoch <> ?"), from, to, ep).Scan(&s)
		if err != nil {
			return fmt.Errorf("find fork: %w", err)
		}
		if s.Valid && (fork == 0 || s.Int64 < fork) {
			fork = s.Int64
		}
		return nil
	}
	for _, s := range history {
		if err := check(s.FirstSeq); err != nil {
			return 0, err
		}
		from, ep = s.FirstSeq, s.Epoch
	}
	if err := check(last + 1); err != nil {
		return 0, err
	}
	return fork, nil
}

func (e *Engine) quarantineFrom(ctx context.Context, tx *wtx, fork, newEpoch int64) (int, error) {
	res, err := tx.ExecContext(ctx, e.q(`INSERT INTO quarantine (seq, epoch, kind, at, payload, quarantined_at, new_epoch)
		SELECT seq, epoch, kind, at, payload, ?, ? FROM journal WHERE seq >= ?`), micros(e.now()), newEpoch, fork)
	if err != nil {
		return 0, fmt.Errorf("quarantine events from %d: %w", fork, err)
	}
	n, _ := res.RowsAffected()
	if _, err := tx.ExecContext(ctx, e.q("DELETE FROM journal WHERE seq >= ?"), fork); err != nil {
		return 0, fmt.Errorf("truncate journal at %d: %w", fork, err)
	}
	return int(n), nil
}

// rebuild empties the state tables and replays the journal below fork.
func (e *Engine) rebuild(ctx context.Context, tx *wtx, fork int64) error {
	for _, t := range stateTables {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+t); err != nil {
			return fmt.Errorf("rebuild: empty %s: %w", t, err)
		}
	}
	var after int64
	for {
		evs, err := e.readEvents(ctx, tx, after, fork, 1000)
		if err != nil {
			return fmt.Errorf("rebuild: %w", err)
		}
		if len(evs) == 0 {
			return nil
		}
		for _, ev := range evs {
			c, err := decodeChange(ev)
			if err != nil {
				return fmt.Errorf("rebuild: %w", err)
			}
			if err := e.apply(ctx, tx, ev, c); err != nil {
				return fmt.Errorf("rebuild: %w", err)
			}
		}
		after = evs[len(evs)-1].Seq
	}
}

// Quarantine lists the events set aside by Rejoin, oldest first.
func (e *Engine) Quarantine(ctx context.Context) ([]QuarantinedEvent, error) {
	rows, err := e.r.QueryContext(ctx, e.q("SELECT seq, epoch, kind, at, payload, quarantined_at, new_epoch FROM quarantine ORDER BY id"))
	if err != nil {
		return nil, fmt.Errorf("list quarantine: %w", err)
	}
	defer rows.Close()
	var out []QuarantinedEvent
	for rows.Next() {
		var q QuarantinedEvent
		var at, qat int64
		var payload []byte
		if err := rows.Scan(&q.Seq, &q.Epoch, &q.Kind, &at, &payload, &qat, &q.NewEpoch); err != nil {
			return nil, fmt.Errorf("list quarantine: %w", err)
		}
		q.At, q.QuarantinedAt, q.Payload = fromMicros(at), fromMicros(qat), payload
		out = append(out, q)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list quarantine: %w", err)
	}
	return out, nil
}
