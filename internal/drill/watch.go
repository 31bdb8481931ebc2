package drill

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Event is one moment on a drill's timeline.
type Event struct {
	At time.Time `json:"at"`
	// Source is drill, controller, edge, runbook, load or validation.
	Source string `json:"source"`
	// Kind is a stable name (inject, restore, probe_failing,
	// declared_down, origin_unhealthy, primary, step, reroute, recovered ...).
	Kind    string `json:"kind"`
	Region  string `json:"region,omitempty"`
	Message string `json:"message"`
}

// Event kinds the measurements read.
const (
	EvInject          = "inject"
	EvRestore         = "restore"
	EvProbeFailing    = "probe_failing"    // controller: a probe of a region failed
	EvDeclaredDown    = "declared_down"    // controller: a region is down (hysteresis)
	EvRegionUp        = "region_up"        // controller: a region answers again
	EvPrimary         = "primary"          // controller: the primary or epoch changed
	EvRole            = "role"             // a region's role changed
	EvOriginUnhealthy = "origin_unhealthy" // edge: an origin's probes fail
	EvOriginEjected   = "origin_ejected"   // edge: passive ejection after real traffic failed
	EvOriginHealthy   = "origin_healthy"
	EvOriginPriority  = "origin_priority"
	EvRunStarted      = "run_started"
	EvRunEnded        = "run_ended"
	EvStep            = "step"
	EvReroute         = "reroute"
	EvRecovered       = "recovered"
	EvFailback        = "failback"
	EvDrift           = "drift"
	EvRPO             = "rpo"
	EvNote            = "note"
)

// watcher polls the controller and the edge and turns every change it sees
// into an Event. Its resolution is the poll interval.
type watcher struct {
	sys   *System
	every time.Duration
	emit  func(Event)

	mu       sync.Mutex
	status   *ControllerStatus
	origins  map[string]Origin
	steps    map[string]string // run/step → status
	runs     map[string]string // run → status
	statusOK bool
	edgeOK   bool
}

func newWatcher(sys *System, every time.Duration, emit func(Event)) *watcher {
	return &watcher{sys: sys, every: every, emit: emit, steps: map[string]string{}, runs: map[string]string{}, statusOK: true, edgeOK: true}
}

func (w *watcher) run(ctx context.Context) {
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		w.step(ctx)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// Status returns the last controller status seen.
func (w *watcher) Status() (ControllerStatus, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.status == nil {
		return ControllerStatus{}, false
	}
	return *w.status, true
}

// step polls once and emits what changed.
func (w *watcher) step(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var (
		st      ControllerStatus
		origins []Origin
		serr    error
		oerr    error
		wg      sync.WaitGroup
	)
	wg.Go(func() { st, serr = w.sys.Status(pctx) })
	wg.Go(func() { origins, oerr = w.sys.Origins(pctx) })
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	ev := func(source, kind, region, format string, a ...any) {
		w.emit(Event{At: now, Source: source, Kind: kind, Region: region, Message: fmt.Sprintf(format, a...)})
	}
	if serr != nil {
		if w.statusOK {
			ev("drill", EvNote, "", "controller status unavailable: %v", serr)
		}
		w.statusOK = false
	} else {
		w.statusOK = true
		w.controllerChanges(&st, ev)
		w.status = &st
	}
	if oerr != nil {
		if w.edgeOK {
			ev("drill", EvNote, "", "edge origins unavailable: %v", oerr)
		}
		w.edgeOK = false
		return
	}
	w.edgeOK = true
	seen := map[string]Origin{}
	for _, o := range origins {
		seen[o.Name] = o
		prev, had := w.origins[o.Name]
		if !had {
			continue
		}
		switch {
		case prev.Healthy && !o.Healthy:
			ev("edge", EvOriginUnhealthy, o.Name, "edge: origin %s unhealthy (probes failing)", o.Name)
		case !prev.Healthy && o.Healthy:
			ev("edge", EvOriginHealthy, o.Name, "edge: origin %s healthy again", o.Name)
		}
		if !prev.Ejected && o.Ejected {
			ev("edge", EvOriginEjected, o.Name, "edge: origin %s ejected after failed requests", o.Name)
		}
		if prev.Priority != o.Priority {
			ev("edge", EvOriginPriority, o.Name, "edge: origin %s priority %d -> %d", o.Name, prev.Priority, o.Priority)
		}
	}
	w.origins = seen
}

func (w *watcher) controllerChanges(st *ControllerStatus, ev func(source, kind, region, format string, a ...any)) {
	prev := w.status
	if prev != nil {
		if prev.Primary != st.Primary || prev.Epoch != st.Epoch {
			ev("controller", EvPrimary, st.Primary, "controller: primary %s epoch %d (was %s epoch %d)", st.Primary, st.Epoch, prev.Primary, prev.Epoch)
		}
		for _, name := range slices.Sorted(maps.Keys(st.Regions)) { // events in a stable order
			v, p := st.Regions[name], prev.Regions[name]
			if p == nil || v == nil {
				continue
			}
			if p.LastOK && !v.LastOK {
				ev("controller", EvProbeFailing, name, "controller: probe of %s failed: %s", name, v.LastError)
			}
			if p.Up && !v.Up {
				ev("controller", EvDeclaredDown, name, "controller: %s declared down", name)
			}
			if !p.Up && v.Up {
				ev("controller", EvRegionUp, name, "controller: %s answers again", name)
			}
			if v.LastOK && p.Readiness.Role != v.Readiness.Role && v.Readiness.Role != "" {
				ev("controller", EvRole, name, "%s is %s (epoch %d)", name, v.Readiness.Role, v.Readiness.Epoch)
			}
		}
	}
	if prev != nil {
		for _, name := range slices.Sorted(maps.Keys(st.Drift)) {
			v := st.Drift[name]
			if old := prev.Drift[name]; old != v && v != "" {
				ev("controller", EvDrift, name, "controller: drift verdict of %s is %s", name, v)
			}
		}
	}
	for _, r := range []*Runbook{st.Active, st.Last} {
		if r == nil || r.ID == "" {
			continue
		}
		if old, seen := w.runs[r.ID]; !seen || old != r.Status {
			if !seen && prev != nil {
				ev("runbook", EvRunStarted, r.To, "runbook: %s %s -> %s started (%s)", r.Kind, r.From, r.To, r.Reason)
			}
			if r.Finished() && seen {
				ev("runbook", EvRunEnded, r.To, "runbook: %s %s -> %s %s", r.Kind, r.From, r.To, r.Status)
			}
			w.runs[r.ID] = r.Status
		}
		for _, s := range r.Steps {
			key := r.ID + "/" + s.Name
			if old, seen := w.steps[key]; (!seen && s.Status != "pending") || (seen && old != s.Status) {
				if prev != nil {
					ev("runbook", EvStep, r.To, "runbook step %s: %s", s.Name, s.Status)
				}
			}
			w.steps[key] = s.Status
		}
	}
}
