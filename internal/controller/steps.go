package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/understudy/understudy/internal/agents"
	"github.com/understudy/understudy/internal/lease"
	"github.com/understudy/understudy/internal/topology"
)

// steps returns the runbook: the unplanned failover (the primary is lost),
// or the planned, zero-loss move (failback, or failover --to with a
// healthy primary), which pauses writes instead of waiting out leases.
func (c *Controller) steps(planned bool) []Step {
	if planned {
		return []Step{
			{"check-target", 30 * time.Second, c.stepCheckTarget},
			{"pause-writes", 30 * time.Second, c.stepPauseWrites},
			{"promote", 15 * time.Second, c.stepPromote},
			{"apply-agents", 15 * time.Second, c.stepApplyAgents},
			{"switch-routing", 10 * time.Second, c.stepSwitchRouting},
			{"validate", 30 * time.Second, c.stepValidate},
			{"report", 5 * time.Second, c.stepReport},
		}
	}
	return []Step{
		{"detect", 5 * time.Second, c.stepDetect},
		{"start-region", 60 * time.Second, c.stepStartRegion},
		{"fence-old-primary", 2*c.t.Controller.LeaseTTL.D() + 10*time.Second, c.stepFence},
		{"promote", 15 * time.Second, c.stepPromote},
		{"apply-agents", 15 * time.Second, c.stepApplyAgents},
		{"switch-routing", 10 * time.Second, c.stepSwitchRouting},
		{"validate", 30 * time.Second, c.stepValidate},
		{"report", 5 * time.Second, c.stepReport},
	}
}

func (c *Controller) admin() string { return c.t.Admin.Token.Value() }

func (c *Controller) regionURL(name string) string { return c.t.Region(name).URL }

// stepDetect records what declared the old primary down.
func (c *Controller) stepDetect(ctx context.Context, r *Run) error {
	c.mu.Lock()
	v := *c.views[r.From]
	c.mu.Unlock()
	r.Note("detect", "last_error", v.LastError)
	r.Note("detect", "last_known_position", v.LastGood.Position)
	if rep, ok := v.LastGood.Replication[r.To]; ok {
		r.Note("detect", "last_known_lag_events", rep.Events)
		r.Note("detect", "last_known_lag_seconds", rep.Seconds)
		r.Set("lag_seconds", rep.Seconds)
	}
	if v.LastGood.Engine != nil {
		r.Note("detect", "last_known_engine", v.LastGood.Engine)
	}
	r.Set("old_position", v.LastGood.Position)
	return nil
}

// stepStartRegion starts a hot-cold standby's gateway and waits until it
// answers; other patterns skip it.
func (c *Controller) stepStartRegion(ctx context.Context, r *Run) error {
	if c.t.Pattern != topology.HotCold {
		return ErrSkip
	}
	if _, err := probe(ctx, c.client, c.regionURL(r.To), c.t.Probes.Timeout.D()); err == nil {
		r.Note("start-region", "already_running", true)
		return nil
	}
	if _, started := r.Int("region_started"); !started {
		argv := c.t.Region(r.To).StartCommand
		if len(argv) == 0 {
			if c.opts.TopologyPath == "" {
				return errors.New("no start_command and no topology path to start the gateway with")
			}
			argv = []string{c.opts.Binary, "gateway", "-f", c.opts.TopologyPath, "--region", r.To}
		}
		logPath := filepath.Join(c.t.Path(c.t.DataDir), "logs", "gateway-"+r.To+".log")
		os.MkdirAll(filepath.Dir(logPath), 0o755)
		logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return fmt.Errorf("start %s: %w", r.To, err)
		}
		go func() { cmd.Wait(); logf.Close() }()
		r.Set("region_started", int64(cmd.Process.Pid))
		r.Note("start-region", "pid", cmd.Process.Pid)
		r.Note("start-region", "log", logPath)
	}
	if _, err := probe(ctx, c.client, c.regionURL(r.To), c.t.Probes.Timeout.D()); err != nil {
		return fmt.Errorf("%s not ready yet: %w", r.To, err)
	}
	return nil
}

// stepFence stops the old primary from writing: directly if it answers,
// and in every case by stopping both lease grantors and waiting until no
// lease they granted can still be in force.
func (c *Controller) stepFence(ctx context.Context, r *Run) error {
	epoch, _ := r.Int("from_epoch")
	fctx, cancel := context.WithTimeout(ctx, time.Second)
	_, ferr := call(fctx, c.client, "POST", c.regionURL(r.From)+"/admin/fence", c.admin(), map[string]int64{"epoch": epoch}, nil)
	cancel()
	r.Note("fence-old-primary", "fenced_directly", ferr == nil)
	mine := c.grantor.Stop()
	theirs, err := lease.StopHTTP(ctx, c.client, c.regionURL(r.To)+"/lease", c.admin())
	if err != nil {
		return fmt.Errorf("stop %s vouching for %s: %w", r.To, r.From, err)
	}
	// A grant made by an earlier controller process ended at most one TTL
	// after this one started.
	prior := c.t.Controller.LeaseTTL.D() - time.Since(c.started)
	wait := max(mine, theirs, prior, 0)
	if ferr == nil {
		wait = 0 // the old primary confirmed it is fenced
	}
	r.Note("fence-old-primary", "waited_ms", wait.Milliseconds())
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// stepPromote gives the target the next epoch and points the controller's
// lease at it.
func (c *Controller) stepPromote(ctx context.Context, r *Run) error {
	from, _ := r.Int("from_epoch")
	epoch := from + 1
	var ans struct {
		Epoch    int64 `json:"epoch"`
		Position struct {
			Seq int64 `json:"seq"`
		} `json:"position"`
		Waited int64 `json:"waited_ms"`
	}
	// Vouch for the target at the new epoch before promoting it: its lease
	// holder asks at once, and a refusal here would keep it from writing
	// until its next renewal (a third of the lease TTL). Only the target
	// can hold that epoch, and the old primary's is refused from now on.
	c.mu.Lock()
	c.grantor.Reset(r.To, epoch)
	c.mu.Unlock()
	if _, err := call(ctx, c.client, "POST", c.regionURL(r.To)+"/admin/promote", c.admin(), map[string]int64{"epoch": epoch}, &ans); err != nil {
		return err
	}
	r.Set("epoch", ans.Epoch)
	r.Set("promoted_position", ans.Position.Seq)
	r.Note("promote", "epoch", ans.Epoch)
	r.Note("promote", "position", ans.Position.Seq)
	c.mu.Lock()
	c.state = persisted{Primary: r.To, Epoch: ans.Epoch, LastFailover: time.Now()}
	err := c.saveState()
	c.grantor.Reset(r.To, ans.Epoch)
	c.mu.Unlock()
	return err
}

// stepApplyAgents applies the agent definitions to the new primary.
func (c *Controller) stepApplyAgents(ctx context.Context, r *Run) error {
	defs, err := c.loadAgents()
	if err != nil {
		return err
	}
	if len(defs) == 0 {
		r.Note("apply-agents", "agents", 0)
		return ErrSkip
	}
	var res agents.ApplyResults
	if _, err := call(ctx, c.client, "PUT", c.regionURL(r.To)+"/admin/agents", c.admin(), defs, &res); err != nil {
		return err
	}
	r.Note("apply-agents", "results", res.Results)
	return nil
}

func (c *Controller) loadAgents() ([]*agents.Definition, error) {
	dir := c.t.Path(c.t.Agents.Dir)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	var deps []string
	for _, d := range c.t.Deployments {
		deps = append(deps, d.Name)
	}
	return agents.LoadDir(dir, deps)
}

// stepSwitchRouting makes the new primary the edge's best-priority origin.
func (c *Controller) stepSwitchRouting(ctx context.Context, r *Run) error {
	prio := 2
	for _, name := range c.t.RegionNames() {
		p := prio
		if name == r.To {
			p = 1
		} else {
			prio++
		}
		if _, err := call(ctx, c.client, "PATCH", c.t.Edge.URL+"/admin/origins/"+name, c.admin(), map[string]int{"priority": p}, nil); err != nil {
			return fmt.Errorf("edge: %w", err)
		}
	}
	return nil
}

// stepValidate proves the new primary serves through the edge: one
// inference and, when agents are defined, one agent turn (a write), both
// answered by the new primary.
func (c *Controller) stepValidate(ctx context.Context, r *Run) error {
	key := c.t.Keys[0].Key.Value()
	dep := c.t.Deployments[0].Name
	chat := map[string]any{"model": dep, "max_tokens": 8, "messages": []map[string]string{{"role": "user", "content": "understudy failover validation"}}}
	if err := c.validateOne(ctx, "/v1/chat/completions", key, chat, r.To); err != nil {
		return fmt.Errorf("inference: %w", err)
	}
	r.Note("validate", "inference", "ok")
	defs, err := c.loadAgents()
	if err != nil {
		return err
	}
	if len(defs) > 0 {
		turn := map[string]any{"input": "understudy failover validation", "agent_reference": map[string]string{"type": "agent_reference", "name": defs[0].Name}}
		if err := c.validateOne(ctx, "/v1/responses", key, turn, r.To); err != nil {
			return fmt.Errorf("agent turn: %w", err)
		}
		r.Note("validate", "agent_turn", "ok")
	}
	r.Set("validated_at", time.Now().UnixMilli())
	return nil
}

func (c *Controller) validateOne(ctx context.Context, path, key string, body any, want string) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, "POST", c.t.Edge.URL+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s: %s", path, resp.Status, bytes.TrimSpace(data))
	}
	if got := resp.Header.Get("x-understudy-region"); got != want {
		return fmt.Errorf("%s answered by region %q, want %s", path, got, want)
	}
	return nil
}

// stepReport computes RTO and RPO.
func (c *Controller) stepReport(ctx context.Context, r *Run) error {
	validated, _ := r.Int("validated_at")
	rto := time.UnixMilli(validated).Sub(r.FaultAt)
	r.Set("rto_ms", rto.Milliseconds())
	r.Set("rto_target_ms", c.t.Targets.RTO.D().Milliseconds())
	r.Set("rto_met", rto <= c.t.Targets.RTO.D())
	oldPos, _ := r.Int("old_position")
	newPos, _ := r.Int("promoted_position")
	// Events the old primary was last seen to hold beyond the new one: a
	// lower bound of what it wrote past the fork, as it may have committed
	// more after its last probe (quarantined when it rejoins). Sync mode
	// acknowledged none of them.
	r.Set("rpo_events", max(0, oldPos-newPos))
	if lag, ok := r.Data["lag_seconds"]; ok && oldPos > newPos {
		r.Set("rpo_seconds", lag)
	} else {
		r.Set("rpo_seconds", 0)
	}
	if c.engine() {
		// Nothing rejoins by itself: the former primary's database must be
		// rewound (what it wrote after the fork is discarded; rpo_events
		// counts it).
		r.Set("rejoin", rewindHint(r.From, r.To))
	} else if q, err := c.quarantined(ctx, r.From); err == nil {
		r.Set("quarantined", q)
	}
	r.Note("report", "rto_ms", rto.Milliseconds())
	return nil
}

// quarantined asks a region how many events it holds in quarantine.
func (c *Controller) quarantined(ctx context.Context, region string) (int, error) {
	var ans struct {
		Data []json.RawMessage `json:"data"`
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := call(ctx, c.client, "GET", c.regionURL(region)+"/admin/quarantine", c.admin(), nil, &ans)
	return len(ans.Data), err
}

// regionState is the part of a region's /admin/state the planned runbook reads.
type regionState struct {
	Role     string `json:"role"`
	Epoch    int64  `json:"epoch"`
	Position struct {
		Seq int64 `json:"seq"`
	} `json:"position"`
	SyncPeers   []string `json:"sync_peers"`
	Replication map[string]struct {
		LagEvents int64 `json:"lag_events"`
		PeerEpoch int64 `json:"peer_epoch"`
	} `json:"replication"`
	Engine *struct {
		InRecovery bool `json:"in_recovery"`
		Receiving  bool `json:"receiving"`
	} `json:"engine"`
}

// engine reports whether PostgreSQL streaming replication moves the state.
func (c *Controller) engine() bool { return c.t.Replication.Transport == "engine" }

// rewindHint tells the operator how to turn a former primary's database
// into a standby of the current primary (engine transport).
func rewindHint(old, primary string) string {
	return fmt.Sprintf("stop %s's PostgreSQL, run `understudy pg-rewind -f <topology> --region %s --data <its data directory>` "+
		"(it rewinds it into a standby of %s), and start it again", old, old, primary)
}

func (c *Controller) regionAdminState(ctx context.Context, region string) (regionState, error) {
	var st regionState
	_, err := call(ctx, c.client, "GET", c.regionURL(region)+"/admin/state", c.admin(), nil, &st)
	return st, err
}

// stepCheckTarget waits until the target is a caught-up standby of the
// primary's epoch.
func (c *Controller) stepCheckTarget(ctx context.Context, r *Run) error {
	epoch, _ := r.Int("from_epoch")
	to, err := c.regionAdminState(ctx, r.To)
	if err != nil {
		return err
	}
	if to.Role != "standby" || to.Epoch != epoch {
		err := fmt.Errorf("%s is %s at epoch %d, want a standby of epoch %d", r.To, to.Role, to.Epoch, epoch)
		if c.engine() && to.Role != "standby" {
			err = fmt.Errorf("%w: %s", err, rewindHint(r.To, r.From))
		}
		return err
	}
	from, err := c.regionAdminState(ctx, r.From)
	if err != nil {
		return err
	}
	if c.engine() {
		// The engine streams WAL; the journal position it replays says
		// how far the standby is.
		if to.Engine == nil || !to.Engine.Receiving || to.Position.Seq < from.Position.Seq {
			return fmt.Errorf("%s is not streaming from %s, or not caught up yet (seq %d of %d)", r.To, r.From, to.Position.Seq, from.Position.Seq)
		}
	} else if rep, ok := from.Replication[r.To]; !ok || rep.PeerEpoch != epoch || rep.LagEvents > 0 {
		return fmt.Errorf("%s is not caught up with %s yet", r.To, r.From)
	}
	r.Note("check-target", "position", to.Position.Seq)
	return nil
}

// stepPauseWrites fences the primary (writes pause) and waits until the
// target holds every event it wrote.
func (c *Controller) stepPauseWrites(ctx context.Context, r *Run) error {
	epoch, _ := r.Int("from_epoch")
	if _, ok := r.Int("paused_at"); !ok {
		r.Set("paused_at", time.Now().UnixMilli())
		r.SetFaultAt(time.Now())
	}
	if _, err := call(ctx, c.client, "POST", c.regionURL(r.From)+"/admin/fence", c.admin(), map[string]int64{"epoch": epoch}, nil); err != nil {
		return err
	}
	c.grantor.Stop()
	if _, err := lease.StopHTTP(ctx, c.client, c.regionURL(r.To)+"/lease", c.admin()); err != nil {
		return err
	}
	from, err := c.regionAdminState(ctx, r.From)
	if err != nil {
		return err
	}
	to, err := c.regionAdminState(ctx, r.To)
	if err != nil {
		return err
	}
	if to.Position.Seq < from.Position.Seq {
		return fmt.Errorf("%s at seq %d, %s at %d: waiting for the last events", r.To, to.Position.Seq, r.From, from.Position.Seq)
	}
	r.Set("old_position", from.Position.Seq)
	r.Note("pause-writes", "position", from.Position.Seq)
	return nil
}
