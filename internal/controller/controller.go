package controller

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

	"github.com/understudy/understudy/internal/lease"
	"github.com/understudy/understudy/internal/topology"
)

// Options tune a controller.
type Options struct {
	Logger *slog.Logger
	// Binary is the understudy executable used to start a hot-cold region
	// that has no start_command. Default: this process's executable.
	Binary string
	// ReadyCheck, when set, is asked before an automatic failover whether
	// the target region is ready (drift verdict); a false answer with its
	// reason refuses the automatic failover.
	ReadyCheck func(ctx context.Context, region string) (ok bool, reason string)
	// Drift, when set, returns the latest drift verdict per region for
	// status and the dashboard.
	Drift func() map[string]string
	// TopologyPath is the file the controller was started with, passed to
	// a hot-cold region's gateway when the runbook starts it.
	TopologyPath string
}

// RegionView is the controller's latest view of one region.
type RegionView struct {
	Name      string    `json:"name"`
	Up        bool      `json:"up"` // not declared down
	LastOK    bool      `json:"last_ok"`
	LastError string    `json:"last_error,omitempty"`
	At        time.Time `json:"at"`
	Readiness Readiness `json:"readiness"`
	// LastGood is the last readiness that answered 200 (its position is
	// the primary's last known journal position, for RPO).
	LastGood Readiness `json:"last_good"`
}

// persisted is what the controller keeps across restarts.
type persisted struct {
	Primary      string    `json:"primary"`
	Epoch        int64     `json:"epoch"`
	LastFailover time.Time `json:"last_failover,omitzero"`
}

// Controller is the witness and runbook runner.
type Controller struct {
	t       *topology.Topology
	log     *slog.Logger
	opts    Options
	client  *http.Client
	dir     string
	journal Journal
	grantor *lease.Grantor
	det     *Detector

	mu      sync.Mutex
	state   persisted
	views   map[string]*RegionView
	active  *Run // running
	pending *Run // waiting for approval
	last    *Run // the most recent finished run

	agentsEpoch int64  // the epoch whose primary got the agent definitions
	lastRefusal string // why the last automatic failover could not start

	wg      sync.WaitGroup
	runCtx  context.Context
	started time.Time
}

// New prepares a controller; it starts nothing.
func New(t *topology.Topology, opts Options) (*Controller, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		opts.Binary = exe
	}
	dir := filepath.Join(t.Path(t.DataDir), "controller")
	c := &Controller{
		t: t, log: opts.Logger, opts: opts, dir: dir,
		client:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}},
		journal: Journal{Dir: filepath.Join(dir, "runs")},
		det:     NewDetector(t.Controller.Failures, t.Controller.Window.D()),
		views:   map[string]*RegionView{},
	}
	for _, r := range t.Regions {
		c.views[r.Name] = &RegionView{Name: r.Name, Up: true}
	}
	return c, nil
}

// Run serves the controller's API on ln and watches the regions until ctx
// is done.
func (c *Controller) Run(ctx context.Context, ln net.Listener) error {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	if err := c.loadState(ctx); err != nil {
		return err
	}
	c.grantor = lease.NewGrantor(c.t.Controller.LeaseTTL.D(), c.state.Primary, c.state.Epoch)
	c.log.Info("controller state", "primary", c.state.Primary, "epoch", c.state.Epoch)
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	c.runCtx, c.started = lctx, time.Now()
	if err := c.resume(lctx); err != nil {
		return err
	}
	srv := &http.Server{Handler: c.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	c.wg.Go(func() { c.watch(lctx) })
	select {
	case err := <-errc:
		cancel()
		c.wg.Wait()
		return err
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	err := srv.Shutdown(sctx)
	cancel()
	c.wg.Wait()
	return err
}

// loadState reads state.json, or discovers the primary from the regions:
// the one reporting role primary with the highest epoch; failing that, the
// topology's primary at epoch 1.
func (c *Controller) loadState(ctx context.Context) error {
	data, err := os.ReadFile(filepath.Join(c.dir, "state.json"))
	if err == nil {
		if err := json.Unmarshal(data, &c.state); err != nil {
			return fmt.Errorf("controller state: %w", err)
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	c.state = persisted{Primary: c.t.Primary().Name, Epoch: 1}
	for _, r := range c.t.Regions {
		rd, err := probe(ctx, c.client, r.URL, c.t.Probes.Timeout.D())
		if err == nil && rd.Role == "primary" && rd.Epoch > c.state.Epoch {
			c.state.Primary, c.state.Epoch = r.Name, rd.Epoch
		}
	}
	return c.saveState()
}

func (c *Controller) saveState() error {
	data, err := json.MarshalIndent(c.state, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(c.dir, "state.json.tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(c.dir, "state.json"))
}

// resume restarts a run a previous controller left running or waiting.
func (c *Controller) resume(ctx context.Context) error {
	runs, err := c.journal.List()
	if err != nil {
		return err
	}
	for _, r := range runs {
		switch r.Status {
		case RunRunning:
			c.log.Warn("resuming runbook left running by a previous controller", "run", r.ID, "kind", r.Kind)
			c.start(ctx, r)
		case RunWaiting:
			c.mu.Lock()
			c.pending = r
			c.mu.Unlock()
		default:
			c.mu.Lock()
			c.last = r
			c.mu.Unlock()
		}
	}
	return nil
}

// watch probes every region each probe interval and acts on the result.
func (c *Controller) watch(ctx context.Context) {
	t := time.NewTicker(c.t.Controller.ProbeInterval.D())
	defer t.Stop()
	for {
		c.step(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// step probes every region once, feeds the detector and, when the primary
// is declared down, starts (or stages for approval) a failover.
func (c *Controller) step(ctx context.Context) {
	type result struct {
		name string
		rd   Readiness
		err  error
		at   time.Time
	}
	results := make(chan result, len(c.t.Regions))
	for _, r := range c.t.Regions {
		go func() {
			at := time.Now()
			rd, err := probe(ctx, c.client, r.URL, c.t.Probes.Timeout.D())
			results <- result{r.Name, rd, err, at}
		}()
	}
	// Every probe answers (or times out) before the lock is taken: a
	// frozen region must not hold up Status and the API for a probe
	// timeout.
	all := make([]result, 0, len(c.t.Regions))
	for range c.t.Regions {
		all = append(all, <-results)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, res := range all {
		v := c.views[res.name]
		v.At, v.Readiness, v.LastOK, v.LastError = res.at, res.rd, res.err == nil, ""
		if res.err != nil {
			v.LastError = res.err.Error()
		} else {
			v.LastGood = res.rd
		}
		changed, down := c.det.Observe(res.name, Observation{At: res.at, OK: res.err == nil, Err: v.LastError})
		v.Up = !down
		if changed {
			c.log.Warn("region state changed", "region", res.name, "down", down, "error", v.LastError)
		}
	}
	c.noteRejoinLocked()
	c.decideLocked(ctx)
	if v := c.views[c.state.Primary]; v.LastOK && c.agentsEpoch != c.state.Epoch && c.active == nil {
		c.agentsEpoch = c.state.Epoch
		go c.ensureAgents(ctx, c.state.Primary)
	}
}

// noteRejoinLocked completes the report of the last unplanned failover
// once the old primary, down when the report was written, answers again
// as a standby of the new epoch: the events it set aside at rejoin are the
// exact count of what it wrote past the fork (rpo_events is a lower bound
// from its last probe). Journal transport only: an engine standby is
// rewound, and discards them.
func (c *Controller) noteRejoinLocked() {
	r := c.last
	if r == nil || r.Planned || r.Status != RunCompleted || c.engine() {
		return
	}
	if _, done := r.Int("quarantined"); done {
		return
	}
	epoch, _ := r.Int("epoch")
	v := c.views[r.From]
	if v == nil || !v.LastOK || v.Readiness.Role != "standby" || v.Readiness.Epoch < epoch {
		return
	}
	r.Set("quarantined", v.Readiness.Quarantined)
	r.Note("report", "quarantined_at_rejoin", v.Readiness.Quarantined)
	if err := c.journal.Save(r); err != nil {
		c.log.Error("save run", "run", r.ID, "err", err)
	}
}

// ensureAgents applies the agent definitions to the primary once per epoch
// (idempotent: unchanged definitions are not written again), so a fresh
// topology has its agents without an operator step.
func (c *Controller) ensureAgents(ctx context.Context, primary string) {
	defs, err := c.loadAgents()
	if err != nil || len(defs) == 0 {
		if err != nil {
			c.log.Error("agent definitions", "err", err)
		}
		return
	}
	if _, err := call(ctx, c.client, "PUT", c.regionURL(primary)+"/admin/agents", c.admin(), defs, nil); err != nil {
		c.log.Error("apply agents to the primary", "region", primary, "err", err)
		c.mu.Lock()
		c.agentsEpoch = 0 // try again next step
		c.mu.Unlock()
	}
}

// decideLocked starts an automatic failover when the primary is down.
func (c *Controller) decideLocked(ctx context.Context) {
	primary := c.state.Primary
	if !c.det.Down(primary) || c.active != nil || c.pending != nil {
		return
	}
	if cd := c.t.Controller.Cooldown.D(); !c.state.LastFailover.IsZero() && time.Since(c.state.LastFailover) < cd {
		return // reported in status as cooldown_until
	}
	target, why := c.pickTargetLocked(ctx, primary)
	if target == "" {
		if why != c.lastRefusal { // say it once per reason, not every probe
			c.log.Error("primary is down and no region can take over", "primary", primary, "why", why)
			c.lastRefusal = why
		}
		return
	}
	c.lastRefusal = ""
	first, evidence := c.det.Evidence(primary)
	r := c.newRunLocked("failover", primary, target, fmt.Sprintf("region %s declared down", primary), false)
	r.FaultAt, r.Evidence = first, evidence
	if c.t.Controller.Approval {
		r.Status = RunWaiting
		c.pending = r
		c.journal.Save(r)
		c.log.Warn("failover waits for approval (understudy approve)", "run", r.ID, "from", primary, "to", target)
		return
	}
	c.startLocked(c.runCtx, r)
}

// pickTargetLocked chooses the best-priority region, other than from, that
// is up, and ready by the ReadyCheck when one is set.
func (c *Controller) pickTargetLocked(ctx context.Context, from string) (string, string) {
	var reasons []string
	for _, name := range c.t.RegionNames() {
		if name == from {
			continue
		}
		// The target must be up by the detector's verdict and have answered
		// its last probe: a controller cut off from every region declares
		// the primary down first and would otherwise pick a standby it can
		// no longer see either, to promote it when the network heals (a
		// failover nobody needed). A slow probe of a busy standby delays
		// the failover by one probe interval. A hot-cold standby is not
		// running until the runbook starts it.
		if v := c.views[name]; (!v.Up || !v.LastOK) && c.t.Pattern != topology.HotCold {
			reasons = append(reasons, name+" is down or did not answer its last probe")
			continue
		}
		if c.opts.ReadyCheck != nil {
			if ok, reason := c.opts.ReadyCheck(ctx, name); !ok {
				reasons = append(reasons, name+" is NOT_READY: "+reason)
				continue
			}
		}
		return name, ""
	}
	return "", fmt.Sprint(reasons)
}

func (c *Controller) newRunLocked(kind, from, to, reason string, planned bool) *Run {
	id := fmt.Sprintf("%s-%s", kind, time.Now().UTC().Format("20060102T150405.000"))
	r := NewRun(id, kind, from, to, reason, c.steps(planned))
	r.Planned = planned
	r.Set("from_epoch", c.state.Epoch)
	return r
}

// start runs r in the background.
func (c *Controller) start(ctx context.Context, r *Run) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.startLocked(ctx, r)
}

func (c *Controller) startLocked(ctx context.Context, r *Run) {
	c.active = r
	c.pending = nil
	c.log.Warn("runbook started", "run", r.ID, "kind", r.Kind, "from", r.From, "to", r.To, "planned", r.Planned)
	c.wg.Go(func() {
		err := Execute(ctx, c.journal, r, c.steps(r.Planned))
		c.mu.Lock()
		defer c.mu.Unlock()
		c.active, c.last = nil, r
		if err != nil {
			c.log.Error("runbook failed", "run", r.ID, "err", err)
			return
		}
		c.log.Warn("runbook completed", "run", r.ID, "rto_ms", r.Data["rto_ms"])
	})
}

// Status is what GET /v1/status answers.
type Status struct {
	Primary       string                 `json:"primary"`
	Epoch         int64                  `json:"epoch"`
	Pattern       string                 `json:"pattern"`
	Regions       map[string]*RegionView `json:"regions"`
	Active        *Run                   `json:"active,omitempty"`
	Pending       *Run                   `json:"pending,omitempty"`
	Last          *Run                   `json:"last,omitempty"`
	CooldownUntil time.Time              `json:"cooldown_until,omitzero"`
	Lease         map[string]any         `json:"lease"`
	// Drift is each region's last drift verdict (READY, NOT_READY,
	// UNKNOWN), when the controller runs drift checks.
	Drift map[string]string `json:"drift,omitempty"`
}

// Status reports the controller's view.
func (c *Controller) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{Primary: c.state.Primary, Epoch: c.state.Epoch, Pattern: string(c.t.Pattern), Regions: map[string]*RegionView{}}
	for n, v := range c.views {
		cp := *v
		st.Regions[n] = &cp
	}
	snap := func(r *Run) *Run {
		if r == nil {
			return nil
		}
		s := r.Snapshot()
		return &s
	}
	st.Active, st.Pending, st.Last = snap(c.active), snap(c.pending), snap(c.last)
	if !c.state.LastFailover.IsZero() {
		if until := c.state.LastFailover.Add(c.t.Controller.Cooldown.D()); time.Now().Before(until) {
			st.CooldownUntil = until
		}
	}
	if c.opts.Drift != nil {
		st.Drift = c.opts.Drift()
	}
	if c.grantor != nil {
		p, e, stopped := c.grantor.State()
		st.Lease = map[string]any{"primary": p, "epoch": e, "granting": !stopped}
	}
	return st
}
