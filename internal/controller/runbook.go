package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Step statuses.
const (
	StepPending = "pending"
	StepRunning = "running"
	StepDone    = "done"
	StepFailed  = "failed"
	StepSkipped = "skipped"
)

// Run statuses.
const (
	RunWaiting   = "waiting_approval"
	RunRunning   = "running"
	RunCompleted = "completed"
	RunFailed    = "failed"
)

// Step is one runbook step. Run must be idempotent: a controller killed
// while a step runs re-runs it on restart.
type Step struct {
	Name    string
	Timeout time.Duration
	Run     func(ctx context.Context, r *Run) error
}

// StepRecord is a step's journaled progress.
type StepRecord struct {
	Name     string         `json:"name"`
	Status   string         `json:"status"`
	Started  time.Time      `json:"started,omitzero"`
	Ended    time.Time      `json:"ended,omitzero"`
	Attempts int            `json:"attempts,omitempty"`
	Error    string         `json:"error,omitempty"`
	Detail   map[string]any `json:"detail,omitempty"`
}

// Run is one execution of a runbook: a failover or a failback. It is the
// journal record (rewritten atomically after every transition) and the
// report.
type Run struct {
	ID      string       `json:"id"`
	Kind    string       `json:"kind"` // failover | failback
	From    string       `json:"from"`
	To      string       `json:"to"`
	Reason  string       `json:"reason"`
	Planned bool         `json:"planned"`
	Status  string       `json:"status"`
	FaultAt time.Time    `json:"fault_at,omitzero"` // first failed probe; the RTO clock starts here
	Created time.Time    `json:"created"`
	Ended   time.Time    `json:"ended,omitzero"`
	Steps   []StepRecord `json:"steps"`
	// Data holds decisions steps make and later steps (or a resumed run)
	// need, e.g. the new epoch; it is journaled with the run.
	Data map[string]any `json:"data,omitempty"`
	// Evidence is what made the controller act.
	Evidence []string `json:"evidence,omitempty"`
	Error    string   `json:"error,omitempty"`

	mu *sync.Mutex
}

// Set records a value in the run's data.
func (r *Run) Set(key string, v any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Data == nil {
		r.Data = map[string]any{}
	}
	r.Data[key] = v
}

// Int returns a number from the run's data (JSON round trips numbers as float64).
func (r *Run) Int(key string) (int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch v := r.Data[key].(type) {
	case float64:
		return int64(v), true
	case int64:
		return v, true
	case int:
		return int64(v), true
	}
	return 0, false
}

// SetFaultAt sets when the RTO clock starts.
func (r *Run) SetFaultAt(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.FaultAt = t
}

// Note records a detail of the current step (shown in the report).
func (r *Run) Note(step, key string, v any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.Steps {
		if r.Steps[i].Name == step {
			if r.Steps[i].Detail == nil {
				r.Steps[i].Detail = map[string]any{}
			}
			r.Steps[i].Detail[key] = v
		}
	}
}

// Snapshot returns a deep copy safe to encode while the run goes on.
func (r *Run) Snapshot() Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	data, _ := json.Marshal(r)
	var cp Run
	json.Unmarshal(data, &cp)
	cp.mu = &sync.Mutex{}
	return cp
}

// Journal stores runs as one JSON file each in a directory.
type Journal struct{ Dir string }

func (j Journal) path(id string) string { return filepath.Join(j.Dir, id+".json") }

// Save writes the run atomically and durably (temp file, fsync, rename).
func (j Journal) Save(r *Run) error {
	snap := r.Snapshot()
	data, err := json.MarshalIndent(&snap, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(j.Dir, 0o755); err != nil {
		return err
	}
	tmp := j.path(r.ID) + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, j.path(r.ID)); err != nil {
		return err
	}
	if d, err := os.Open(j.Dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// List returns every journaled run, oldest first.
func (j Journal) List() ([]*Run, error) {
	names, err := filepath.Glob(filepath.Join(j.Dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var runs []*Run
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		r := &Run{mu: &sync.Mutex{}}
		if err := json.Unmarshal(data, r); err != nil {
			return nil, fmt.Errorf("journal %s: %w", n, err)
		}
		runs = append(runs, r)
	}
	sort.Slice(runs, func(a, b int) bool { return runs[a].Created.Before(runs[b].Created) })
	return runs, nil
}

// NewRun returns a run of the named steps, all pending.
func NewRun(id, kind, from, to, reason string, steps []Step) *Run {
	r := &Run{ID: id, Kind: kind, From: from, To: to, Reason: reason, Status: RunRunning, Created: time.Now(), mu: &sync.Mutex{}}
	for _, s := range steps {
		r.Steps = append(r.Steps, StepRecord{Name: s.Name, Status: StepPending})
	}
	return r
}

// ErrStepTimeout is returned (wrapped) when a step overruns its timeout.
var ErrStepTimeout = errors.New("step timed out")

// Execute runs the run's steps in order from the first that is not done,
// journaling every transition. A step left "running" by a crashed
// controller runs again (steps are idempotent). A failing step is retried
// until its timeout; then the run fails and stops.
func Execute(ctx context.Context, j Journal, r *Run, steps []Step) error {
	if got, want := stepNames(r), namesOf(steps); !slices.Equal(got, want) {
		return fmt.Errorf("run %s has steps %v, runbook has %v", r.ID, got, want)
	}
	r.mu.Lock()
	r.Status = RunRunning
	r.mu.Unlock()
	for i, s := range steps {
		if r.Steps[i].Status == StepDone || r.Steps[i].Status == StepSkipped {
			continue
		}
		if err := runStep(ctx, j, r, i, s); err != nil {
			r.mu.Lock()
			r.Status, r.Error, r.Ended = RunFailed, fmt.Sprintf("step %s: %v", s.Name, err), time.Now()
			r.mu.Unlock()
			j.Save(r)
			return fmt.Errorf("runbook %s step %s: %w", r.ID, s.Name, err)
		}
	}
	r.mu.Lock()
	r.Status, r.Ended = RunCompleted, time.Now()
	r.mu.Unlock()
	return j.Save(r)
}

// ErrSkip makes a step record itself as skipped (not needed in this run).
var ErrSkip = errors.New("skipped")

func runStep(ctx context.Context, j Journal, r *Run, i int, s Step) error {
	r.mu.Lock()
	rec := &r.Steps[i]
	rec.Status, rec.Started, rec.Error = StepRunning, time.Now(), ""
	r.mu.Unlock()
	if err := j.Save(r); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeoutCause(ctx, s.Timeout, ErrStepTimeout)
	defer cancel()
	var err error
	for attempt := 1; ; attempt++ {
		r.mu.Lock()
		rec.Attempts++
		r.mu.Unlock()
		err = s.Run(sctx, r)
		if err == nil || errors.Is(err, ErrSkip) || ctx.Err() != nil {
			break
		}
		if sctx.Err() != nil {
			err = fmt.Errorf("%w after %s: %w", ErrStepTimeout, s.Timeout, err)
			break
		}
		select { // back off before retrying the step
		case <-sctx.Done():
		case <-time.After(min(time.Duration(attempt)*100*time.Millisecond, time.Second)):
		}
	}
	r.mu.Lock()
	rec.Ended = time.Now()
	switch {
	case errors.Is(err, ErrSkip):
		rec.Status, err = StepSkipped, nil
	case err != nil:
		rec.Status, rec.Error = StepFailed, err.Error()
	default:
		rec.Status = StepDone
	}
	r.mu.Unlock()
	if serr := j.Save(r); serr != nil && err == nil {
		err = serr
	}
	return err
}

func stepNames(r *Run) []string {
	var n []string
	for _, s := range r.Steps {
		n = append(n, s.Name)
	}
	return n
}

func namesOf(steps []Step) []string {
	var n []string
	for _, s := range steps {
		n = append(n, s.Name)
	}
	return n
}

// Plan renders a runbook as text for --dry-run.
func Plan(kind, from, to string, steps []Step) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s from %s to %s:\n", kind, from, to)
	for i, s := range steps {
		fmt.Fprintf(&b, "  %d. %s (timeout %s)\n", i+1, s.Name, s.Timeout)
	}
	return b.String()
}
