package drill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/understudy/understudy/internal/agents"
	"github.com/understudy/understudy/internal/topology"
)

// Results of a drill (AWS Resilience Hub's vocabulary).
const (
	Succeeded   = "SUCCEEDED"
	Failed      = "FAILED"
	Interrupted = "INTERRUPTED"
)

// DriftResult is what the drift check said about the standby.
type DriftResult struct {
	// Verdict is READY, NOT_READY or UNKNOWN (no drift check available).
	Verdict string `json:"verdict"`
	// Phase is when it ran: during (fault in place) or after (restored).
	Phase  string `json:"phase"`
	Region string `json:"region"`
	// VersionDrift is whether drift found the model version differing in
	// Region (what version-drift injects).
	VersionDrift bool   `json:"version_drift"`
	Output       string `json:"output,omitempty"`
}

// Options tune a drill.
type Options struct {
	// Scenario is one of ScenarioNames. Required.
	Scenario string
	// Duration is the drill's nominal length: a fifth before the fault,
	// two fifths with the fault (scenarios without failover), a fifth
	// after. Failover scenarios hold the fault until the standby serves,
	// then fail back. Default 60s.
	Duration time.Duration
	// Progress receives progress lines. Default: discarded.
	Progress io.Writer
	// Targets are the RTO and RPO the drill is judged against. Default:
	// the system's topology's.
	Targets *topology.Targets
	// ChatRate and StreamRate are chat completions per second; AgentWorkers
	// concurrent agent conversations. Defaults 8, 4, 4.
	ChatRate, StreamRate, AgentWorkers int
	// Model is the deployment the load calls. Default: the first.
	Model string
	// Agent is the agent agent turns reference. Default: the first agent
	// definition of the topology, or none (turns name Model).
	Agent string
	// SlowLinkLatency is slow-link's one-way latency. Default 100ms.
	SlowLinkLatency time.Duration
	// SlowBackendLatency is slow-backend's added latency. Default 1.5s.
	SlowBackendLatency time.Duration
	// StormRetryAfter is the Retry-After of backend-429-storm. Default 2s.
	StormRetryAfter time.Duration
	// DriftVersion is the version version-drift makes the standby report.
	// Default "2099-12-31".
	DriftVersion string
	// Drift runs the drift check of the standby; nil reports UNKNOWN.
	Drift func(ctx context.Context, region string) (DriftResult, error)
	// Poll is the watcher's interval (the resolution of detection times).
	// Default 100ms.
	Poll time.Duration
	// ValidateEvery and ValidateTimeout pace the validation rounds (the
	// resolution of the RTO). Defaults 250ms and 2s.
	ValidateEvery, ValidateTimeout time.Duration
	// Stable is how long validations must pass after a failover before the
	// fault is restored. Default 2s.
	Stable time.Duration
	// RecoveryTimeout bounds the wait for a failover. Default: 3×RTO
	// target, at least 45s.
	RecoveryTimeout time.Duration
	// FailbackTimeout bounds the rejoin of the old primary and the
	// failback. Default 90s.
	FailbackTimeout time.Duration
}

func (o *Options) defaults(t *topology.Topology) {
	if o.Duration == 0 {
		o.Duration = 60 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Targets == nil {
		tg := t.Targets
		o.Targets = &tg
	}
	if o.ChatRate == 0 && o.StreamRate == 0 && o.AgentWorkers == 0 {
		o.ChatRate, o.StreamRate, o.AgentWorkers = 8, 4, 4
	}
	if o.Model == "" && len(t.Deployments) > 0 {
		o.Model = t.Deployments[0].Name
	}
	if o.Agent == "" {
		var deps []string
		for _, d := range t.Deployments {
			deps = append(deps, d.Name)
		}
		if dir := t.Path(t.Agents.Dir); dir != "" {
			if _, err := os.Stat(dir); err == nil {
				if defs, err := agents.LoadDir(dir, deps); err == nil && len(defs) > 0 {
					o.Agent = defs[0].Name
				}
			}
		}
	}
	if o.SlowLinkLatency == 0 {
		o.SlowLinkLatency = 100 * time.Millisecond
	}
	if o.SlowBackendLatency == 0 {
		o.SlowBackendLatency = 1500 * time.Millisecond
	}
	if o.StormRetryAfter == 0 {
		o.StormRetryAfter = 2 * time.Second
	}
	if o.DriftVersion == "" {
		o.DriftVersion = "2099-12-31"
	}
	if o.Poll == 0 {
		o.Poll = 100 * time.Millisecond
	}
	if o.ValidateEvery == 0 {
		o.ValidateEvery = 250 * time.Millisecond
	}
	if o.ValidateTimeout == 0 {
		o.ValidateTimeout = 2 * time.Second
	}
	if o.Stable == 0 {
		o.Stable = 2 * time.Second
	}
	if o.RecoveryTimeout == 0 {
		o.RecoveryTimeout = max(3*o.Targets.RTO.D(), 45*time.Second)
	}
	if o.FailbackTimeout == 0 {
		o.FailbackTimeout = 90 * time.Second
	}
}

// runner is one drill in progress.
type runner struct {
	sys  *System
	opts Options
	sc   *Scenario
	rep  *Report

	load  *Load
	val   *validator
	watch *watcher
	sdk   openai.Client

	mu     sync.Mutex
	events []Event
	start  time.Time

	restore  func(context.Context) error
	restored bool
	fault    *fault
}

// Run runs one drill against sys and returns its report. The error is
// for misuse only (unknown scenario); a drill that fails is a report whose
// Result is FAILED.
func Run(ctx context.Context, sys *System, opts Options) (*Report, error) {
	sc, ok := Scenarios[opts.Scenario]
	if !ok {
		return nil, fmt.Errorf("unknown scenario %q (have %s)", opts.Scenario, strings.Join(ScenarioNames(), ", "))
	}
	opts.defaults(sys.Topology)
	r := &runner{sys: sys, opts: opts, sc: sc, start: time.Now()}
	r.rep = newReport(sys, sc, &r.opts, r.start)
	if sc.Note != "" {
		r.rep.Notes = append(r.rep.Notes, sc.Note)
	}
	r.sdk = openai.NewClient(option.WithBaseURL(strings.TrimRight(sys.EdgeURL(), "/")+"/v1/"), option.WithAPIKey(sys.Key),
		option.WithMaxRetries(2), option.WithHTTPClient(&http.Client{}))
	r.progressf("drill %s against %s (edge %s): %s", sc.Name, sys.Topology.Name, sys.EdgeURL(), sc.Description)
	if err := r.exec(ctx); err != nil && ctx.Err() == nil {
		r.rep.fail("%v", err)
	}
	r.finish(ctx)
	return r.rep, nil
}

// emit records an event and prints it.
func (r *runner) emit(e Event) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	fmt.Fprintf(r.opts.Progress, "[%6.2fs] %s\n", e.At.Sub(r.start).Seconds(), e.Message)
}

func (r *runner) note(kind, format string, a ...any) {
	r.emit(Event{Source: "drill", Kind: kind, Message: fmt.Sprintf(format, a...)})
}

func (r *runner) progressf(format string, a ...any) {
	fmt.Fprintf(r.opts.Progress, "[%6.2fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, a...))
}

// wait sleeps d or until ctx ends; false when ctx ended.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// until polls cond every interval until it holds (true), limit passes or
// ctx ends (false).
func until(ctx context.Context, limit, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || !wait(ctx, interval) {
			return false
		}
	}
}

// exec runs the phases; an error is a reason the drill failed.
func (r *runner) exec(ctx context.Context) error {
	o := &r.opts
	sys := r.sys
	// Preconditions: a writable primary, a caught-up standby, no runbook
	// running, and (for failover scenarios) no cooldown in force.
	var st ControllerStatus
	var why string
	// The controller refreshes its drift verdicts every 30s: wait longer.
	ok := until(ctx, 45*time.Second, 250*time.Millisecond, func() bool {
		var err error
		st, err = sys.Status(ctx)
		if err != nil {
			why = "controller: " + err.Error()
			return false
		}
		why = steady(st, r.sc.Failover)
		if want := sys.Topology.Primary().Name; why == "" && st.Primary != want {
			why = fmt.Sprintf("%s is the primary, not the topology's primary %s: run `understudy failback` first", st.Primary, want)
		}
		return why == ""
	})
	if !ok {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("precondition: %s", why)
	}
	primary := st.Primary
	standby := ""
	for _, n := range sys.Topology.RegionNames() {
		if n != primary {
			standby = n
			break
		}
	}
	r.rep.Primary, r.rep.Standby, r.rep.EpochBefore = primary, standby, st.Epoch
	lastRun := ""
	if st.Last != nil {
		lastRun = st.Last.ID
	}
	r.progressf("steady state: primary %s (epoch %d), standby %s", primary, st.Epoch, standby)

	r.val = newValidator(sys.EdgeURL(), sys.Key, o.Model, o.Agent, o.ValidateEvery, o.ValidateTimeout)
	if err := r.val.prepare(ctx); err != nil {
		return fmt.Errorf("precondition: %w", err)
	}
	r.watch = newWatcher(sys, o.Poll, r.emit)
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var bgWG sync.WaitGroup
	defer func() { stopBG(); bgWG.Wait() }()
	bgWG.Go(func() { r.val.run(bg) })
	bgWG.Go(func() { r.watch.run(bg) })

	load, err := NewLoad(LoadConfig{EdgeURL: sys.EdgeURL(), Key: sys.Key, Model: o.Model, Agent: o.Agent,
		ChatRate: o.ChatRate, StreamRate: o.StreamRate, AgentWorkers: o.AgentWorkers, RequestTimeout: 10 * time.Second})
	if err != nil {
		return err
	}
	r.load = load
	if err := load.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	r.rep.LoadStarted = time.Now()
	bgWG.Go(func() { r.progressLoop(bg) })

	d := o.Duration
	if !wait(ctx, max(d/5, 2*time.Second)) {
		return ctx.Err()
	}

	// The fault.
	r.fault = &fault{sys: sys, opts: o, primary: primary, standby: standby}
	injectAt := time.Now()
	restore, err := r.sc.inject(ctx, r.fault)
	r.rep.Fault.Injected = injectAt
	r.rep.Fault.Detail = slices.Clone(r.fault.detail)
	r.rep.Fault.Method = r.fault.method
	if r.fault.note != "" {
		r.rep.Notes = append(r.rep.Notes, r.fault.note)
	}
	if err != nil {
		return fmt.Errorf("inject %s: %w", r.sc.Name, err)
	}
	r.restore = restore
	defer r.ensureRestored(ctx)
	r.emit(Event{At: injectAt, Source: "drill", Kind: EvInject, Region: primary, Message: "inject: " + strings.Join(r.fault.detail, "; ")})

	switch {
	case r.sc.Failover:
		run, ok := r.waitFailover(ctx, lastRun, injectAt)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !ok {
			r.rep.fail("no completed failover within %s of the fault", o.RecoveryTimeout.Round(time.Second))
		} else if run.Status != "completed" {
			r.rep.fail("the failover runbook %s ended %s: %s", run.ID, run.Status, run.Error)
		}
		if run != nil {
			r.rep.Failover = run
		}
		if ok && !until(ctx, 30*time.Second, o.ValidateEvery, func() bool { return stablePassing(r.val.Rounds(), time.Now(), o.Stable) }) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.rep.fail("validations did not pass steadily for %s within 30s of the failover", o.Stable)
		}
		r.progressf("checking every acknowledged turn after the failover")
		c := checkAcks(ctx, r.sdk, load.Acks(), 10*time.Second)
		r.rep.RPO.AfterFailover = &c
		r.emit(Event{Source: "drill", Kind: EvRPO, Message: fmt.Sprintf("after failover: %d of %d acknowledged items readable, %d lost, %d unverified",
			c.Items-c.Lost-c.Unverified, c.Items, c.Lost, c.Unverified)})
	case r.sc.Name == "version-drift":
		hold := max(2*d/5, 3*time.Second)
		if !wait(ctx, hold/2) {
			return ctx.Err()
		}
		r.rep.Drift = append(r.rep.Drift, r.drift(ctx, "during", standby))
		if !wait(ctx, hold/2) {
			return ctx.Err()
		}
	default:
		if !wait(ctx, max(2*d/5, 3*time.Second)) {
			return ctx.Err()
		}
	}

	// Restore, then fail back.
	restoreAt := time.Now()
	r.rep.Fault.Restored = restoreAt
	r.rep.observed = recovery(r.val.Rounds(), injectAt, restoreAt)
	if err := r.ensureRestored(ctx); err != nil {
		return fmt.Errorf("restore %s: %w", r.sc.Name, err)
	}
	if !r.sc.Failover {
		// A fault the scenario does not expect to cause a failover may
		// still cause one (a 429 storm fails the primary's readiness):
		// report it and fail back all the same.
		if run := r.failoverSince(ctx, lastRun, injectAt); run != nil {
			r.rep.Failover = run
			r.rep.Notes = append(r.rep.Notes, fmt.Sprintf("the controller failed over %s -> %s (%s, %s) although this scenario does not require it",
				run.From, run.To, run.Reason, run.Status))
		}
	}
	if st, err := sys.Status(ctx); err == nil && st.Primary != primary || r.sc.Failover && r.rep.Failover != nil && r.rep.Failover.Status == "completed" {
		if err := r.failback(ctx, primary); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.rep.fail("failback: %v", err)
		}
	}
	if r.sc.Name == "version-drift" {
		r.rep.Drift = append(r.rep.Drift, r.drift(ctx, "after", standby))
	}
	r.rep.AfterStarted = time.Now()
	if !wait(ctx, max(d/5, 2*time.Second)) {
		return ctx.Err()
	}
	return nil
}

// steady says why the system is not ready for a drill, or "".
func steady(st ControllerStatus, failover bool) string {
	p := st.Regions[st.Primary]
	switch {
	case st.Primary == "" || p == nil:
		return "the controller knows no primary"
	case st.Active != nil:
		return "a runbook is running: " + st.Active.ID
	case st.Pending != nil:
		return "a failover waits for approval: " + st.Pending.ID
	case !p.Up || !p.Readiness.Writable:
		return fmt.Sprintf("primary %s is not up and writable", st.Primary)
	case failover && time.Now().Before(st.CooldownUntil):
		return fmt.Sprintf("the controller's failover cooldown lasts until %s", st.CooldownUntil.Format(time.TimeOnly))
	}
	if failover {
		for name, v := range st.Drift {
			if name != st.Primary && v == "NOT_READY" {
				return fmt.Sprintf("the controller's last drift check says %s is NOT_READY, so it would refuse an automatic failover", name)
			}
		}
	}
	for name, v := range st.Regions {
		if name == st.Primary {
			continue
		}
		if v == nil || !v.Up || v.Readiness.Role != "standby" {
			return fmt.Sprintf("region %s is not an answering standby", name)
		}
		if lag, ok := p.Readiness.Replication[name]; ok && lag.Events > 0 {
			return fmt.Sprintf("standby %s lags %d events", name, lag.Events)
		}
	}
	return ""
}

// waitFailover waits for the controller's failover run started after the
// fault to finish.
func (r *runner) waitFailover(ctx context.Context, lastRun string, injectAt time.Time) (*Runbook, bool) {
	var run *Runbook
	ok := until(ctx, r.opts.RecoveryTimeout, 100*time.Millisecond, func() bool {
		st, err := r.sys.Status(ctx)
		if err != nil || st.Last == nil || st.Last.ID == lastRun || st.Last.Kind != "failover" {
			return false
		}
		run = st.Last
		return run.Finished()
	})
	return run, ok
}

// failoverSince returns the first failover run created after the fault, or nil.
func (r *runner) failoverSince(ctx context.Context, lastRun string, injectAt time.Time) *Runbook {
	runs, err := r.sys.Runs(ctx)
	if err != nil {
		return nil
	}
	var first *Runbook
	for i := range runs {
		run := &runs[i]
		if run.Kind == "failover" && run.ID != lastRun && !run.Created.Before(injectAt) && (first == nil || run.Created.Before(first.Created)) {
			first = run
		}
	}
	return first
}

// failback waits for the old primary to rejoin as a caught-up standby,
// then asks the controller to fail back and waits for it.
func (r *runner) failback(ctx context.Context, to string) error {
	o := &r.opts
	var why string
	r.progressf("waiting for %s to rejoin as a caught-up standby", to)
	if !until(ctx, o.FailbackTimeout, 200*time.Millisecond, func() bool {
		st, err := r.sys.Status(ctx)
		if err != nil {
			why = err.Error()
			return false
		}
		old, cur := st.Regions[to], st.Regions[st.Primary]
		if old == nil || cur == nil {
			why = "no status of " + to
			return false
		}
		lag, ok := cur.Readiness.Replication[to]
		why = fmt.Sprintf("%s: up %v role %q epoch %d (primary epoch %d), lag %+v", to, old.Up, old.Readiness.Role, old.Readiness.Epoch, st.Epoch, lag)
		return old.Up && old.Readiness.Role == "standby" && old.Readiness.Epoch == st.Epoch && ok && lag.Events == 0 && st.Active == nil
	}) {
		return fmt.Errorf("%s did not rejoin within %s (%s)", to, o.FailbackTimeout, why)
	}
	r.note(EvFailback, "failback to %s requested", to)
	run, err := r.sys.Failback(ctx)
	if err != nil {
		return err
	}
	var last *Runbook
	if !until(ctx, o.FailbackTimeout, 100*time.Millisecond, func() bool {
		st, err := r.sys.Status(ctx)
		if err != nil || st.Last == nil || st.Last.ID != run.ID {
			return false
		}
		last = st.Last
		return last.Finished()
	}) {
		return fmt.Errorf("failback run %s did not finish within %s", run.ID, o.FailbackTimeout)
	}
	r.rep.Failback = last
	if last.Status != "completed" {
		return fmt.Errorf("failback run %s ended %s: %s", last.ID, last.Status, last.Error)
	}
	until(ctx, 30*time.Second, o.ValidateEvery, func() bool { return stablePassing(r.val.Rounds(), time.Now(), o.Stable) })
	return nil
}

// ensureRestored restores the fault once, even when ctx has ended.
func (r *runner) ensureRestored(ctx context.Context) error {
	if r.restore == nil || r.restored {
		return nil
	}
	r.restored = true
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer cancel()
	n := len(r.fault.detail)
	err := r.restore(rctx)
	if r.rep.Fault.Restored.IsZero() {
		r.rep.Fault.Restored = time.Now()
	}
	r.rep.Fault.Detail = slices.Clone(r.fault.detail)
	msg := "restore: " + strings.Join(r.fault.detail[n:], "; ")
	if err != nil {
		msg += " (error: " + err.Error() + ")"
	}
	r.emit(Event{Source: "drill", Kind: EvRestore, Region: r.fault.primary, Message: msg})
	return err
}

// drift runs the drift check of region.
func (r *runner) drift(ctx context.Context, phase, region string) DriftResult {
	res := DriftResult{Verdict: "UNKNOWN", Phase: phase, Region: region}
	if r.opts.Drift != nil {
		got, err := r.opts.Drift(ctx, region)
		if err != nil {
			got.Output = strings.TrimSpace(got.Output + "\n" + err.Error())
		}
		if got.Verdict != "" {
			res.Verdict = got.Verdict
		}
		res.Output, res.VersionDrift = got.Output, got.VersionDrift
	} else {
		res.Output = "no drift check in this build"
	}
	r.emit(Event{Source: "drift", Kind: EvDrift, Region: region, Message: fmt.Sprintf("drift (%s the fault): %s is %s, version drift found: %v", phase, region, res.Verdict, res.VersionDrift)})
	return res
}

// progressLoop prints the load's state every two seconds.
func (r *runner) progressLoop(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	var prev Snapshot
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		sn := r.load.Snapshot()
		ok := (sn.Total.Requests - sn.Total.Errors) - (prev.Total.Requests - prev.Total.Errors)
		errs := sn.Total.Errors - prev.Total.Errors
		var regions []string
		for _, name := range r.sys.Topology.RegionNames() {
			regions = append(regions, fmt.Sprintf("%s %d", name, sn.ByRegion[name].Requests-sn.ByRegion[name].Errors-(prev.ByRegion[name].Requests-prev.ByRegion[name].Errors)))
		}
		role := ""
		if st, ok := r.watch.Status(); ok {
			role = fmt.Sprintf(" | primary %s epoch %d", st.Primary, st.Epoch)
		}
		r.progressf("load: %.1f ok/s, %.1f errors/s (%s) | acked turns %d%s", float64(ok)/2, float64(errs)/2, strings.Join(regions, ", "), sn.Acked, role)
		prev = sn
	}
}

// finish stops everything, reads back every acknowledged turn and computes
// the report.
func (r *runner) finish(ctx context.Context) {
	if r.load != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		r.load.Close(cctx)
		cancel()
		r.rep.LoadStopped = time.Now()
	}
	if ctx.Err() == nil && r.load != nil {
		r.progressf("checking every acknowledged turn")
		c := checkAcks(ctx, r.sdk, r.load.Acks(), 15*time.Second)
		r.rep.RPO.Final = &c
		r.emit(Event{Source: "drill", Kind: EvRPO, Message: fmt.Sprintf("final: %d of %d acknowledged items readable, %d lost, %d unverified",
			c.Items-c.Lost-c.Unverified, c.Items, c.Lost, c.Unverified)})
	}
	if runs, err := r.sys.Runs(context.WithoutCancel(ctx)); err == nil {
		for _, run := range runs {
			if run.Created.After(r.start) {
				r.rep.Runs = append(r.rep.Runs, run)
			}
		}
	}
	r.mu.Lock()
	events := slices.Clone(r.events)
	r.mu.Unlock()
	var samples []Sample
	var acks []Ack
	var snap Snapshot
	if r.load != nil {
		samples, acks, snap = r.load.Samples(), r.load.Acks(), r.load.Snapshot()
	}
	var rounds []Round
	if r.val != nil {
		rounds = r.val.Rounds()
	}
	r.rep.compute(events, samples, acks, snap, rounds)
	if ctx.Err() != nil {
		r.rep.Result = Interrupted
		r.rep.Reasons = append(r.rep.Reasons, "interrupted: "+context.Cause(ctx).Error())
	}
	r.rep.Ended = time.Now()
	fmt.Fprintln(r.opts.Progress, r.rep.Summary())
}

var errNoAcks = errors.New("no agent turn was acknowledged, so nothing proves that acknowledged writes survive")
