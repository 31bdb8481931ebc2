package region

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/understudy/understudy/internal/agents"
	"github.com/understudy/understudy/internal/gateway"
	"github.com/understudy/understudy/internal/lease"
	"github.com/understudy/understudy/internal/oaierr"
	"github.com/understudy/understudy/internal/replication"
	"github.com/understudy/understudy/internal/store"
	"github.com/understudy/understudy/internal/store/postgres"
	"github.com/understudy/understudy/internal/store/sqlite"
	"github.com/understudy/understudy/internal/topology"
)

// Store is what a region needs of its store; the sqlite and postgres
// drivers both provide it (they share store.Engine).
type Store interface {
	agents.Store
	replication.Source
	replication.Receiver
	Promote(ctx context.Context, epoch int64) error
	Quarantine(ctx context.Context) ([]store.QuarantinedEvent, error)
	SetGuard(store.Guard)
	Close() error
}

// openStore opens the region's store with the topology's driver.
func openStore(t *topology.Topology, r *topology.Region, log *slog.Logger) (Store, error) {
	switch r.Store.Driver {
	case "postgres":
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return postgres.Open(ctx, r.Store.DSN.Value(), postgres.Options{MaxConns: r.Store.MaxConns, Log: log,
			Streaming: t.Replication.Transport == "engine"})
	default:
		path := t.Path(r.Store.Path)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		return sqlite.Open(path, sqlite.Options{Log: log})
	}
}

// Options tune a region server.
type Options struct {
	Logger *slog.Logger
	// ReconcileEvery bounds how stale the running parts may be relative to
	// the store's role (store commits also wake the loop). Default 200ms.
	ReconcileEvery time.Duration
}

// Server is one region's process.
type Server struct {
	t     *topology.Topology
	name  string
	log   *slog.Logger
	every time.Duration
	multi bool // more than one region: leases and replication apply

	// engine is the store when PostgreSQL streaming replication moves the
	// state (replication.transport engine): no journal shipping; the
	// region reads the engine's replication state and keeps its
	// synchronous setting in line with the topology.
	engine *postgres.Store

	st      Store
	gw      *gateway.Gateway
	svc     *agents.Service
	grantor *lease.Grantor // vouches for the primary while this region is a standby
	client  *http.Client   // to the controller and peers

	mu       sync.Mutex
	role     store.Role
	epoch    int64
	holder   *lease.Holder
	shippers map[string]*replication.Shipper // peer region -> shipper, while primary
	inSync   map[string]bool                 // peers whose acknowledgement a write waits for
	promoted bool                            // this process promoted the store (peers start out of sync)
	meta     store.Meta                      // as of the last reconcile: /readyz answers from it, not the store
	quarant  int                             // quarantined events, counted when the role or epoch changes
	metaErr  error
	streamSt *postgres.Streaming // engine mode: as of the last reconcile
	noSyncAt time.Time           // engine sync mode: when the primary last saw no streaming standby

	runCtx context.Context // lives as long as Run: parts started by reconcile use it
	wg     sync.WaitGroup
}

// New opens the region's store and builds its parts; it starts nothing.
func New(t *topology.Topology, name string, opts Options) (*Server, error) {
	r := t.Region(name)
	if r == nil {
		return nil, fmt.Errorf("region %q is not in the topology", name)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.ReconcileEvery <= 0 {
		opts.ReconcileEvery = 200 * time.Millisecond
	}
	st, err := openStore(t, r, log)
	if err != nil {
		return nil, err
	}
	gw, err := gateway.New(t, name, gateway.Options{Logger: log})
	if err != nil {
		st.Close()
		return nil, err
	}
	s := &Server{
		t: t, name: name, log: log, every: opts.ReconcileEvery, multi: len(t.Regions) > 1,
		st: st, gw: gw,
		client:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}},
		shippers: map[string]*replication.Shipper{},
		inSync:   map[string]bool{},
	}
	if t.Replication.Transport == "engine" {
		s.engine = st.(*postgres.Store) // validation allows engine with postgres only
	}
	var deps []string
	for _, d := range t.Deployments {
		deps = append(deps, d.Name)
	}
	s.svc = agents.New(agents.Options{
		Store: st, Completer: gw, Deployments: deps, KeyScope: gateway.KeyName,
		AfterWrite: s.afterWrite, Logger: log, MaxBodyBytes: t.Gateway.MaxBody,
	})
	s.grantor = lease.NewGrantor(t.Controller.LeaseTTL.D(), t.Primary().Name, 1)
	secret := t.Replication.Secret.Value()
	if s.multi && s.engine == nil {
		repl, err := replication.NewHandler(st, secret, replication.HandlerOptions{}, log)
		if err != nil {
			st.Close()
			return nil, err
		}
		gw.HandleRaw("/replication/", repl)
	}
	if s.multi {
		gw.HandleRaw("/lease/", lease.Handler(s.grantor, "/lease", secret, t.Admin.Token.Value()))
	}
	api := s.svc.Handler()
	for _, p := range []string{"/v1/responses", "/v1/responses/", "/v1/conversations", "/v1/conversations/", "/v1/agents", "/v1/agents/"} {
		gw.HandleClient(p, api)
	}
	gw.HandleAdmin("/admin/agents", s.svc.AdminHandler())
	gw.HandleAdmin("GET /admin/state", http.HandlerFunc(s.serveState))
	gw.HandleAdmin("POST /admin/promote", http.HandlerFunc(s.servePromote))
	gw.HandleAdmin("POST /admin/fence", http.HandlerFunc(s.serveFence))
	gw.HandleAdmin("GET /admin/quarantine", http.HandlerFunc(s.serveQuarantine))
	gw.AddReadiness("state", s.readiness)
	return s, nil
}

// Gateway returns the region's gateway.
func (s *Server) Gateway() *gateway.Gateway { return s.gw }

// Run bootstraps the store, serves on ln until ctx is done (with the
// gateway's staged shutdown), then stops every part.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	if err := s.bootstrap(ctx); err != nil {
		s.st.Close()
		return err
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.runCtx = lctx
	s.reconcile(lctx)
	s.wg.Go(func() { s.loop(lctx) })
	err := s.gw.Run(ctx, ln)
	cancel()
	s.wg.Wait()
	s.mu.Lock()
	s.stopPrimaryLocked(context.Background())
	s.mu.Unlock()
	if cerr := s.st.Close(); err == nil {
		err = cerr
	}
	return err
}

// bootstrap promotes a fresh store of the topology's primary to epoch 1.
func (s *Server) bootstrap(ctx context.Context) error {
	m, err := s.st.Meta(ctx)
	if err != nil {
		return fmt.Errorf("read store state: %w", err)
	}
	if m.Epoch == 0 && m.KnownEpoch == 0 && m.Position.Seq == 0 && s.name == s.t.Primary().Name {
		if err := s.st.Promote(ctx, 1); err != nil {
			return fmt.Errorf("bootstrap epoch 1: %w", err)
		}
		s.log.Info("fresh store: primary of epoch 1 by the topology", "region", s.name)
	}
	return nil
}

func (s *Server) loop(ctx context.Context) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		sig := s.st.CommitSignal()
		select {
		case <-ctx.Done():
			return
		case <-sig:
		case <-t.C:
		}
		s.reconcile(ctx)
	}
}

// reconcile makes the running parts match the store's role and epoch.
func (s *Server) reconcile(ctx context.Context) {
	m, err := s.st.Meta(ctx)
	var stream *postgres.Streaming
	if err == nil && s.engine != nil {
		var st postgres.Streaming
		if st, err = s.engine.Streaming(ctx); err == nil {
			stream = &st
			s.keepSync(ctx, m, st)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metaErr = err
	if err != nil {
		s.log.Error("read store state", "err", err)
		return
	}
	s.meta, s.streamSt = m, stream
	if m.Role != s.role || m.Epoch != s.epoch {
		if q, err := s.st.Quarantine(ctx); err == nil {
			s.quarant = len(q)
		}
		s.log.Info("store role", "region", s.name, "role", m.Role, "epoch", m.Epoch, "was_role", s.role, "was_epoch", s.epoch)
		if m.Role == store.RoleFenced && s.role == store.RolePrimary && m.Epoch == s.epoch {
			// Fenced in its own epoch (the planned runbook pausing writes,
			// or a superseded lease): no more writes, but the shippers go
			// on until the peers hold every event it committed — the
			// runbook waits for exactly that. They stop when the store
			// rejoins as a standby.
			s.stopLeaseLocked(ctx)
		} else {
			s.stopPrimaryLocked(ctx)
		}
		s.role, s.epoch = m.Role, m.Epoch
		if m.Role == store.RolePrimary {
			s.startPrimaryLocked(m.Epoch)
		}
	}
	switch m.Role {
	case store.RolePrimary:
		s.grantor.Reset(s.name, m.Epoch)
		s.grantor.Stop() // a primary vouches for nobody
		if s.holder != nil {
			if err := s.holder.Check(ctx); errors.Is(err, lease.ErrSuperseded) {
				var ref *lease.Refusal
				epoch := m.Epoch
				if errors.As(err, &ref) {
					epoch = max(epoch, ref.Epoch)
				}
				if ferr := s.st.Fence(ctx, epoch); ferr != nil {
					s.log.Error("fence after superseded lease", "err", ferr)
				} else {
					s.log.Warn("fenced: a newer epoch holds the primary role", "region", s.name, "epoch", epoch)
				}
			}
		}
		for peer, sh := range s.shippers {
			if s.inSync[peer] {
				continue
			}
			if st := sh.Status(); st.PeerEpoch == m.Epoch && st.Connected && st.LagEvents == 0 {
				s.inSync[peer] = true
				s.log.Info("peer caught up: writes wait for it again", "peer", peer, "epoch", m.Epoch)
			}
		}
	case store.RoleStandby:
		primary, epoch := m.KnownPrimary, max(m.Epoch, m.KnownEpoch, 1)
		if primary == "" || epoch == 1 {
			primary = s.t.Primary().Name
		}
		if p, e, _ := s.grantor.State(); p != primary || e != epoch {
			s.grantor.Reset(primary, epoch)
		}
	default: // fenced
		s.grantor.Stop()
	}
}

// startPrimaryLocked starts the lease holder and the shippers of a
// primary, for as long as Run runs (not as long as the caller's request).
func (s *Server) startPrimaryLocked(epoch int64) {
	if !s.multi {
		s.st.SetGuard(nil) // alone: no other region can hold the epoch, no lease to hold
		return
	}
	ctx := s.runCtx
	t := s.t
	secret := t.Replication.Secret.Value()
	ttl := t.Controller.LeaseTTL.D()
	renewers := []lease.Renewer{lease.HTTPRenewer(s.client, t.Controller.URL+"/v1/lease", secret)}
	for _, r := range t.Regions {
		if r.Name == s.name {
			continue
		}
		renewers = append(renewers, lease.HTTPRenewer(s.client, r.URL+"/lease", secret))
		if s.engine != nil {
			continue // the database ships its own changes
		}
		sh, err := replication.New(s.st, r.URL, secret, replication.Mode(t.Replication.Mode), replication.Options{
			From: s.name, BatchEvents: t.Replication.BatchSize, SyncTimeout: t.Replication.SyncTimeout.D(),
			DegradeToAsync: t.Replication.DegradeToAsync,
		}, s.log.With("peer_region", r.Name))
		if err != nil {
			s.log.Error("replication shipper", "peer", r.Name, "err", err)
			continue
		}
		sh.Start(ctx)
		s.shippers[r.Name] = sh
		// At epoch 1 (the topology's own start) every peer is a sync
		// standby; after a promotion the former primary is not, until it
		// has caught up in the new epoch.
		s.inSync[r.Name] = epoch == 1 && !s.promoted
	}
	s.holder = lease.NewHolder(s.name, epoch, ttl/3, s.log, renewers...)
	s.st.SetGuard(s.holder.Check)
	s.holder.Start(ctx)
}

// stopPrimaryLocked stops the lease holder and the shippers.
func (s *Server) stopPrimaryLocked(ctx context.Context) {
	s.stopLeaseLocked(ctx)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for peer, sh := range s.shippers {
		sh.Close(cctx)
		delete(s.shippers, peer)
		delete(s.inSync, peer)
	}
}

// stopLeaseLocked stops the lease holder and refuses every write.
func (s *Server) stopLeaseLocked(ctx context.Context) {
	if s.holder != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		s.holder.Close(cctx)
		cancel()
		s.holder = nil
	}
	// No lease, no writes: the store refuses them by role as well.
	s.st.SetGuard(func(context.Context) error { return errors.New("region is not primary") })
}

// afterWrite waits until every peer in the sync set has applied pos.
func (s *Server) afterWrite(ctx context.Context, pos store.Position) error {
	s.mu.Lock()
	var wait []*replication.Shipper
	for peer, sh := range s.shippers {
		if s.inSync[peer] {
			wait = append(wait, sh)
		}
	}
	s.mu.Unlock()
	for _, sh := range wait {
		if err := sh.WaitReplicated(ctx, pos.Seq); err != nil {
			return err
		}
	}
	return nil
}

// State is what GET /admin/state answers and /readyz embeds.
type State struct {
	Region       string                        `json:"region"`
	Role         store.Role                    `json:"role"`
	Epoch        int64                         `json:"epoch"`
	KnownEpoch   int64                         `json:"known_epoch"`
	KnownPrimary string                        `json:"known_primary,omitempty"`
	Position     store.Position                `json:"position"`
	History      []store.EpochStart            `json:"history"`
	Lease        *LeaseState                   `json:"lease,omitempty"`
	Replication  map[string]replication.Status `json:"replication,omitempty"`
	SyncPeers    []string                      `json:"sync_peers,omitempty"`
	Vouching     bool                          `json:"vouching"`
	Quarantined  int                           `json:"quarantined"`
	// Engine is PostgreSQL's streaming replication state (engine transport).
	Engine *postgres.Streaming `json:"engine,omitempty"`
}

// LeaseState is the primary's write lease.
type LeaseState struct {
	Valid       bool   `json:"valid"`
	RemainingMs int64  `json:"remaining_ms"`
	From        string `json:"from"` // controller | standby
	LastError   string `json:"last_error,omitempty"`
}

// State reports the region's replication state, read from the store now.
func (s *Server) State(ctx context.Context) (State, error) {
	m, err := s.st.Meta(ctx)
	if err != nil {
		return State{}, err
	}
	q, err := s.st.Quarantine(ctx)
	if err != nil {
		return State{}, err
	}
	var stream *postgres.Streaming
	if s.engine != nil {
		st, err := s.engine.Streaming(ctx)
		if err != nil {
			return State{}, err
		}
		stream = &st
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stateLocked(ctx, m, len(q))
	st.Engine = stream
	return st, nil
}

// stateLocked assembles State from m and the running parts.
func (s *Server) stateLocked(ctx context.Context, m store.Meta, quarantined int) State {
	st := State{Region: s.name, Role: m.Role, Epoch: m.Epoch, KnownEpoch: m.KnownEpoch, KnownPrimary: m.KnownPrimary,
		Position: m.Position, History: m.History, Quarantined: quarantined}
	if m.Role == store.RolePrimary && st.KnownPrimary == "" {
		st.KnownPrimary = s.name
	}
	if s.holder != nil {
		_, rem, from, lastErr := s.holder.Status()
		ls := &LeaseState{Valid: s.holder.Check(ctx) == nil, RemainingMs: rem.Milliseconds(), From: "controller"}
		if from > 0 {
			ls.From = "standby"
		}
		if lastErr != nil {
			ls.LastError = lastErr.Error()
		}
		st.Lease = ls
	}
	if len(s.shippers) > 0 {
		st.Replication = map[string]replication.Status{}
		for peer, sh := range s.shippers {
			st.Replication[peer] = sh.Status()
			if s.inSync[peer] {
				st.SyncPeers = append(st.SyncPeers, peer)
			}
		}
	}
	_, _, stopped := s.grantor.State()
	st.Vouching = m.Role == store.RoleStandby && !stopped
	return st
}

// readiness answers /readyz from the state the reconcile loop read last
// (woken by every commit), so a probe never waits on the store: a busy
// disk must not make a healthy region look dead to the edge and the
// controller. A store that cannot be read fails it.
func (s *Server) readiness(ctx context.Context) (map[string]any, error) {
	s.mu.Lock()
	if s.metaErr != nil {
		err := s.metaErr
		s.mu.Unlock()
		return nil, fmt.Errorf("store: %w", err)
	}
	st := s.stateLocked(ctx, s.meta, s.quarant)
	stream := s.streamSt
	s.mu.Unlock()
	fields := map[string]any{"role": st.Role, "epoch": st.Epoch, "position": st.Position.Seq, "quarantined": st.Quarantined}
	if st.KnownPrimary != "" {
		fields["primary"] = st.KnownPrimary
	}
	if st.Lease != nil {
		fields["writable"] = st.Lease.Valid
		fields["lease_ms"] = st.Lease.RemainingMs
	} else {
		fields["writable"] = st.Role == store.RolePrimary
	}
	if stream != nil {
		fields["engine"] = engineFields(stream)
	}
	if st.Replication != nil {
		lag := map[string]any{}
		for peer, r := range st.Replication {
			lag[peer] = map[string]any{"events": r.LagEvents, "seconds": r.LagSeconds, "connected": r.Connected, "degraded": r.Degraded}
		}
		fields["replication"] = lag
	}
	return fields, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeErr answers an OpenAI-shaped error (oaierr).
func writeErr(w http.ResponseWriter, status int, code, msg string) {
	oaierr.Write(w, status, oaierr.Marshal(status, "", code, "", msg), 0)
}
