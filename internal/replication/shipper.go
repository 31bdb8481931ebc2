package replication

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/understudy/understudy/internal/store"
)

// Mode is how a write is acknowledged.
type Mode string

// Modes.
const (
	// Sync: WaitReplicated returns once the standby durably applied the
	// write (RPO 0, one round trip added).
	Sync Mode = "sync"
	// Async: WaitReplicated returns at once; the lag is reported.
	Async Mode = "async"
)

// Errors of WaitReplicated.
var (
	// ErrNotReplicated: the standby did not apply the write within
	// SyncTimeout. The caller must answer its client with an error.
	ErrNotReplicated = errors.New("write not replicated to the standby in time")
	// ErrSuperseded: a newer epoch replaced this primary; the shipper
	// fenced the local store.
	ErrSuperseded = errors.New("primary superseded by a newer epoch")
	// ErrClosed: the shipper is closed.
	ErrClosed = errors.New("shipper closed")

	errTransport = errors.New("peer unreachable")
)

// Source is what the Shipper needs of the local store.
type Source interface {
	Meta(ctx context.Context) (store.Meta, error)
	ReadEvents(ctx context.Context, afterSeq int64, limit int) ([]store.Event, error)
	Fence(ctx context.Context, epoch int64) error
	CommitSignal() <-chan struct{}
}

// Options tune a Shipper. The zero value is usable.
type Options struct {
	// From names this region in batches. Default empty.
	From string
	// BatchEvents is the most events per batch. Default 500.
	BatchEvents int
	// BatchBytes bounds the payload bytes per batch (a single larger event
	// is still sent alone). Default 4 MiB.
	BatchBytes int
	// SyncTimeout bounds WaitReplicated. Default 2s.
	SyncTimeout time.Duration
	// DegradeToAsync: in sync mode, after a WaitReplicated timeout keep
	// acknowledging writes (reported as Degraded, counted in
	// DegradedAcks) until the standby has caught up again. Default false:
	// WaitReplicated returns ErrNotReplicated.
	DegradeToAsync bool
	// MaxLag bounds the lag in async mode: WaitReplicated(seq) waits (up
	// to SyncTimeout) until the standby acknowledged seq-MaxLag. Default
	// 0: unbounded, WaitReplicated returns at once.
	MaxLag int64
	// BackoffMin and BackoffMax bound the exponential retry delay after a
	// failed step. Defaults 50ms and 5s.
	BackoffMin, BackoffMax time.Duration
	// Heartbeat is how often an idle shipper asks the peer its position,
	// which keeps Connected and the lag current. Default 1s.
	Heartbeat time.Duration
	// RequestTimeout bounds one HTTP request. Default 10s.
	RequestTimeout time.Duration
	// Client sends the requests. Default: a client with its own transport.
	Client *http.Client
}

// Status is what a Shipper reports.
type Status struct {
	Mode      Mode   `json:"mode"`
	Peer      string `json:"peer"`
	Connected bool   `json:"connected"`
	// Epoch is the local store's epoch, PeerEpoch the peer's last answer.
	Epoch     int64 `json:"epoch"`
	PeerEpoch int64 `json:"peer_epoch"`
	// LocalSeq is the last seq of the local journal, AckedSeq the last the
	// peer durably applied.
	LocalSeq int64 `json:"local_seq"`
	AckedSeq int64 `json:"acked_seq"`
	// LagEvents = LocalSeq - AckedSeq; LagSeconds is the age of the oldest
	// unacknowledged event.
	LagEvents  int64   `json:"lag_events"`
	LagSeconds float64 `json:"lag_seconds"`
	LastError  string  `json:"last_error,omitempty"`
	// Degraded: sync mode is acknowledging writes the standby has not
	// applied (DegradeToAsync after a timeout); DegradedAcks counts them.
	Degraded     bool  `json:"degraded"`
	DegradedAcks int64 `json:"degraded_acks"`
	// Superseded: the peer answered with a newer epoch and the local store
	// was fenced.
	Superseded bool  `json:"superseded"`
	Batches    int64 `json:"batches"`
	Events     int64 `json:"events"`
}

// Shipper ships the local primary's journal to one standby over HTTP, in
// order, in batches, kicked by every commit.
type Shipper struct {
	st     Source
	peer   string
	secret string
	mode   Mode
	opts   Options
	log    *slog.Logger

	mu          sync.Mutex
	ackCh       chan struct{} // closed and replaced when acked or state changes
	epoch       int64         // local epoch the peer state belongs to
	peerKnown   bool
	peerEpoch   int64
	acked       int64
	localSeq    int64
	oldestAt    time.Time // At of the oldest unacknowledged event, if known
	connected   bool
	lastErr     string
	degraded    bool
	degradedN   int64
	superseded  bool
	closed      bool
	batches     int64
	events      int64
	failures    int
	refreshPeer bool

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a shipper from st to the gateway at peerURL (its base URL;
// batches go to peerURL + PathEvents). It starts nothing.
func New(st Source, peerURL, secret string, mode Mode, opts Options, log *slog.Logger) (*Shipper, error) {
	if mode != Sync && mode != Async {
		return nil, fmt.Errorf("replication shipper: mode %q: want sync or async", mode)
	}
	if secret == "" {
		return nil, errors.New("replication shipper: empty secret")
	}
	if !strings.HasPrefix(peerURL, "http://") && !strings.HasPrefix(peerURL, "https://") {
		return nil, fmt.Errorf("replication shipper: peer URL %q: want http(s)://host:port", peerURL)
	}
	if opts.BatchEvents <= 0 {
		opts.BatchEvents = 500
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = 4 << 20
	}
	if opts.SyncTimeout <= 0 {
		opts.SyncTimeout = 2 * time.Second
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = 50 * time.Millisecond
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 5 * time.Second
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = time.Second
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Shipper{
		st: st, peer: strings.TrimSuffix(peerURL, "/"), secret: secret, mode: mode, opts: opts,
		log: log.With("peer", peerURL), ackCh: make(chan struct{}),
	}, nil
}

// Start starts the shipping loop.
func (s *Shipper) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	if s.closed || s.cancel != nil {
		s.mu.Unlock()
		cancel()
		return errors.New("replication shipper: already started or closed")
	}
	s.cancel = cancel
	s.mu.Unlock()
	s.wg.Go(func() { s.run(ctx) })
	return nil
}

// Close stops the loop, waiting for it within ctx, and wakes every waiter
// with ErrClosed.
func (s *Shipper) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	cancel := s.cancel
	s.broadcastLocked()
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		if t, ok := s.opts.Client.Transport.(*http.Transport); ok {
			t.CloseIdleConnections()
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close replication shipper: %w", ctx.Err())
	}
}

func (s *Shipper) run(ctx context.Context) {
	heartbeat := time.NewTimer(s.opts.Heartbeat)
	defer heartbeat.Stop()
	for {
		sig := s.st.CommitSignal()
		idle, err := s.step(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.mu.Lock()
			s.failures++
			d := s.backoff(s.failures)
			s.mu.Unlock()
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		if !idle {
			continue
		}
		heartbeat.Reset(s.opts.Heartbeat)
		select {
		case <-ctx.Done():
			return
		case <-sig:
		case <-heartbeat.C:
			s.mu.Lock()
			s.refreshPeer = true
			s.mu.Unlock()
		}
	}
}

// backoff is the delay before retry number n (n ≥ 1): BackoffMin doubled
// n-1 times, at most BackoffMax.
func (s *Shipper) backoff(n int) time.Duration {
	d := s.opts.BackoffMin
	for i := 1; i < n && d < s.opts.BackoffMax; i++ {
		d *= 2
	}
	return min(d, s.opts.BackoffMax)
}

// step ships at most one batch. It reports idle when there is nothing
// more to send right now.
func (s *Shipper) step(ctx context.Context) (idle bool, err error) {
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			s.lastErr = err.Error()
			if !errors.Is(err, ErrSuperseded) {
				s.peerKnown = false
			}
			if errors.Is(err, errTransport) {
				s.connected = false
			}
		} else {
			s.failures = 0
		}
	}()
	m, err := s.st.Meta(ctx)
	if err != nil {
		return false, fmt.Errorf("read local meta: %w", err)
	}
	s.mu.Lock()
	if m.Epoch != s.epoch {
		// A new epoch (promotion): the peer state belongs to the old one.
		s.epoch, s.peerKnown, s.superseded, s.acked, s.peerEpoch, s.oldestAt = m.Epoch, false, false, 0, 0, time.Time{}
	}
	s.localSeq = m.Position.Seq
	known, refresh, superseded := s.peerKnown, s.refreshPeer, s.superseded
	s.refreshPeer = false
	s.mu.Unlock()
	// A fenced primary still ships, unless a newer epoch superseded it:
	// its peers need every event it committed before the fence (the
	// planned runbook waits for them).
	if m.Role == store.RoleStandby || (m.Role == store.RoleFenced && superseded) {
		s.broadcast()
		return true, nil
	}
	if !known || refresh {
		ack, err := s.fetchPosition(ctx)
		if err != nil {
			return false, err
		}
		s.mu.Lock()
		s.peerKnown, s.connected, s.peerEpoch, s.acked, s.lastErr = true, true, ack.Epoch, ack.Position.Seq, ""
		s.mu.Unlock()
		s.broadcast()
	}
	s.mu.Lock()
	acked, peerEpoch := s.acked, s.peerEpoch
	s.mu.Unlock()

	evs, err := s.st.ReadEvents(ctx, acked, s.opts.BatchEvents)
	if err != nil {
		return false, fmt.Errorf("read journal after %d: %w", acked, err)
	}
	full := len(evs) == s.opts.BatchEvents
	size := 0
	for i, ev := range evs {
		size += len(ev.Payload) + 128
		if i > 0 && size > s.opts.BatchBytes {
			evs, full = evs[:i], true
			break
		}
	}
	s.mu.Lock()
	if len(evs) > 0 {
		s.oldestAt = evs[0].At
	} else {
		s.oldestAt = time.Time{}
	}
	s.mu.Unlock()
	// An empty batch still goes out when the peer is behind an epoch
	// change (it must fence and rejoin) or claims more than we hold.
	if len(evs) == 0 && peerEpoch >= m.Epoch && acked <= m.Position.Seq {
		s.broadcast()
		return true, nil
	}
	status, ack, err := s.post(ctx, Batch{Epoch: m.Epoch, Epochs: m.History, From: s.opts.From, Events: evs})
	if err != nil {
		return false, err
	}
	switch {
	case status == http.StatusOK:
		s.mu.Lock()
		s.connected, s.peerEpoch, s.acked, s.lastErr = true, ack.Epoch, ack.Position.Seq, ""
		s.batches++
		s.events += int64(len(evs))
		if s.acked >= s.localSeq {
			s.oldestAt = time.Time{}
		}
		if s.degraded && s.acked >= s.localSeq {
			s.degraded = false
			s.log.Info("replication caught up: sync acknowledgements restored", "seq", s.acked)
		}
		s.mu.Unlock()
		if ack.Rejoined != nil {
			s.log.Warn("peer rejoined as standby", "epoch", ack.Epoch, "fork_seq", ack.Rejoined.ForkSeq, "quarantined", ack.Rejoined.Quarantined)
		}
		s.broadcast()
		return !full, nil
	case status == http.StatusConflict && ack.Epoch > m.Epoch:
		// The peer belongs to a newer epoch: this primary was replaced.
		if err := s.st.Fence(ctx, ack.Epoch); err != nil {
			return false, fmt.Errorf("fence after peer answered epoch %d: %w", ack.Epoch, err)
		}
		s.log.Warn("peer has a newer epoch: local store fenced, shipping stopped", "epoch", m.Epoch, "peer_epoch", ack.Epoch)
		s.mu.Lock()
		s.superseded, s.peerEpoch, s.connected = true, ack.Epoch, true
		s.mu.Unlock()
		s.broadcast()
		return false, fmt.Errorf("%w: peer is at epoch %d, we are at %d", ErrSuperseded, ack.Epoch, m.Epoch)
	case status == http.StatusConflict && ack.Code == CodeGap:
		// The peer is not where we thought (it restarted, or rejoined and
		// rolled back): continue from its position.
		s.mu.Lock()
		s.acked, s.peerEpoch, s.connected = ack.Position.Seq, ack.Epoch, true
		s.mu.Unlock()
		return false, nil
	}
	return false, fmt.Errorf("peer refused batch: %d %s: %s", status, ack.Code, ack.Error)
}

func (s *Shipper) fetchPosition(ctx context.Context) (Ack, error) {
	status, ack, err := s.do(ctx, http.MethodGet, PathPosition, nil)
	if err != nil {
		return Ack{}, err
	}
	if status != http.StatusOK {
		return Ack{}, fmt.Errorf("peer position: %d %s: %s", status, ack.Code, ack.Error)
	}
	return ack, nil
}

func (s *Shipper) post(ctx context.Context, b Batch) (int, Ack, error) {
	body, err := encodeBatch(b)
	if err != nil {
		return 0, Ack{}, err
	}
	return s.do(ctx, http.MethodPost, PathEvents, body)
}

func (s *Shipper) do(ctx context.Context, method, path string, body []byte) (int, Ack, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.peer+path, rd)
	if err != nil {
		return 0, Ack{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+s.secret)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return 0, Ack{}, fmt.Errorf("%w: %s %s: %w", errTransport, method, path, err)
	}
	defer resp.Body.Close()
	var ack Ack
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ack); err != nil {
		return resp.StatusCode, Ack{}, fmt.Errorf("%s %s: %d, unreadable answer: %w", method, path, resp.StatusCode, err)
	}
	return resp.StatusCode, ack, nil
}

func (s *Shipper) broadcast() {
	s.mu.Lock()
	s.broadcastLocked()
	s.mu.Unlock()
}

func (s *Shipper) broadcastLocked() {
	close(s.ackCh)
	s.ackCh = make(chan struct{})
}

// WaitReplicated blocks until the standby has durably applied seq (sync
// mode), or returns at once (async mode, unless MaxLag bounds the lag).
// After SyncTimeout it returns ErrNotReplicated, or nil with the shipper
// marked degraded when DegradeToAsync is set; while degraded it returns
// nil at once, until the standby has caught up.
func (s *Shipper) WaitReplicated(ctx context.Context, seq int64) error {
	s.mu.Lock()
	// Every acknowledged write passes here: keep the lag current even
	// while the shipper is backing off.
	s.localSeq = max(s.localSeq, seq)
	s.mu.Unlock()
	target := seq
	if s.mode == Async {
		if s.opts.MaxLag <= 0 {
			return nil
		}
		target = seq - s.opts.MaxLag
		if target <= 0 {
			return nil
		}
	}
	timer := time.NewTimer(s.opts.SyncTimeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		switch {
		case s.closed:
			s.mu.Unlock()
			return ErrClosed
		case s.superseded:
			s.mu.Unlock()
			return ErrSuperseded
		case s.peerEpoch == s.epoch && s.acked >= target:
			// Only a peer that adopted our epoch holds our branch: a
			// former primary's higher seq proves nothing.
			s.mu.Unlock()
			return nil
		case s.degraded:
			s.degradedN++
			s.mu.Unlock()
			return nil
		}
		ch := s.ackCh
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for replication of seq %d: %w", seq, ctx.Err())
		case <-timer.C:
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.opts.DegradeToAsync && s.mode == Sync {
				if !s.degraded {
					s.log.Warn("standby did not acknowledge in time: acknowledging writes without it (degraded)", "seq", seq, "acked", s.acked, "timeout", s.opts.SyncTimeout)
				}
				s.degraded = true
				s.degradedN++
				return nil
			}
			return fmt.Errorf("%w: seq %d, standby acknowledged %d after %v", ErrNotReplicated, seq, s.acked, s.opts.SyncTimeout)
		}
	}
}

// Status reports the shipper's state.
func (s *Shipper) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{
		Mode: s.mode, Peer: s.peer, Connected: s.connected, Epoch: s.epoch, PeerEpoch: s.peerEpoch,
		LocalSeq: s.localSeq, AckedSeq: s.acked, LastError: s.lastErr,
		Degraded: s.degraded, DegradedAcks: s.degradedN, Superseded: s.superseded,
		Batches: s.batches, Events: s.events,
	}
	st.LagEvents = s.localSeq
	if s.peerEpoch == s.epoch {
		st.LagEvents = max(0, s.localSeq-s.acked)
	}
	if st.LagEvents > 0 && !s.oldestAt.IsZero() {
		st.LagSeconds = time.Since(s.oldestAt).Seconds()
	}
	return st
}
