package probe

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Target is one thing to probe.
type Target struct {
	// Name identifies the target (a region).
	Name string
	// URL is the base URL; Config.Path is appended.
	URL string
}

// Func sends one probe to target within ctx (which carries the probe
// timeout). Start is stamped by the Monitor.
type Func func(ctx context.Context, target Target) Result

// Status is what the Monitor knows of one target.
type Status struct {
	// Healthy reports whether at least SuccessesRequired of the last
	// SampleSize probes passed. False before the first probe.
	Healthy bool `json:"healthy"`
	// Passes and Samples count the window (Samples is SampleSize once the
	// first probe is in).
	Passes  int `json:"passes"`
	Samples int `json:"samples"`
	// Since is when Healthy last changed (the first probe counts).
	Since time.Time `json:"since"`
	// Last is the latest result; LastPass the latest passing one.
	Last     Result `json:"last"`
	LastPass Result `json:"last_pass"`
	// Recent holds up to Options.Keep results, oldest first.
	Recent []Result `json:"recent"`
	// Latency is the mean latency of the passing probes among the last
	// SampleSize; zero when none passed.
	Latency time.Duration `json:"latency_ns"`
	// Readiness is from the latest probe that returned a JSON body.
	Readiness Readiness `json:"readiness"`
}

// Update is passed to Options.OnResult after each probe.
type Update struct {
	Target  Target
	Result  Result
	Status  Status
	Changed bool // Healthy changed with this result
}

// Options tune a Monitor. Every field is optional.
type Options struct {
	// Now stamps results. Default time.Now.
	Now func() time.Time
	// Probe sends one probe. Default: an HTTP Checker of the Config.
	Probe Func
	// OnResult is called after each result, from Step, one at a time in
	// target order, without the Monitor's lock held.
	OnResult func(Update)
	// Keep is how many recent results Status.Recent holds. Default
	// max(SampleSize, 10).
	Keep int
	// Logger records health changes. Default: discard.
	Logger *slog.Logger
}

type targetState struct {
	t      Target
	window *Window
	st     Status
	recent []Result // ring, len <= keep
	next   int
}

// Monitor probes a fixed set of targets every Interval.
type Monitor struct {
	cfg  Config
	opts Options

	stepMu sync.Mutex // one Step at a time
	mu     sync.Mutex // guards states
	states []*targetState
	byName map[string]*targetState

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// NewMonitor returns a Monitor of targets; it starts nothing.
func NewMonitor(cfg Config, targets []Target, opts Options) *Monitor {
	cfg = cfg.withDefaults()
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Probe == nil {
		c := NewChecker(cfg, nil)
		opts.Probe = func(ctx context.Context, t Target) Result { return c.Check(ctx, t.URL) }
	}
	if opts.Keep <= 0 {
		opts.Keep = max(cfg.SampleSize, 10)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Monitor{cfg: cfg, opts: opts, byName: map[string]*targetState{}, stop: make(chan struct{})}
	for _, t := range targets {
		s := &targetState{t: t, window: NewWindow(cfg.SampleSize, cfg.SuccessesRequired)}
		m.states = append(m.states, s)
		m.byName[t.Name] = s
	}
	return m
}

// Config returns the effective settings, defaults filled.
func (m *Monitor) Config() Config { return m.cfg }

// Step probes every target once, concurrently, each within the probe
// timeout, records the results and calls OnResult for each.
func (m *Monitor) Step(ctx context.Context) {
	m.stepMu.Lock()
	defer m.stepMu.Unlock()
	results := make([]Result, len(m.states))
	var wg sync.WaitGroup
	for i, s := range m.states {
		wg.Go(func() {
			start := m.opts.Now()
			pctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
			r := m.opts.Probe(pctx, s.t)
			cancel()
			r.Start = start
			if r.OK && r.Err != "" {
				r.OK = false
			}
			results[i] = r
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		// Shutting down: a probe cut short by us says nothing of the target.
		return
	}
	updates := make([]Update, len(m.states))
	m.mu.Lock()
	for i, s := range m.states {
		updates[i] = m.record(s, results[i])
	}
	m.mu.Unlock()
	for _, u := range updates {
		if u.Changed {
			m.opts.Logger.Info("probe health changed", "region", u.Target.Name, "healthy", u.Status.Healthy,
				"passes", u.Status.Passes, "samples", u.Status.Samples, "last_error", u.Result.Err)
		}
		if m.opts.OnResult != nil {
			m.opts.OnResult(u)
		}
	}
}

// record adds r to s; m.mu is held.
func (m *Monitor) record(s *targetState, r Result) Update {
	changed := s.window.Add(r.OK)
	if len(s.recent) < m.opts.Keep {
		s.recent = append(s.recent, r)
	} else {
		s.recent[s.next] = r
		s.next = (s.next + 1) % m.opts.Keep
	}
	st := &s.st
	st.Healthy = s.window.Healthy()
	st.Passes, st.Samples = s.window.Passes(), s.window.Size()
	if changed {
		st.Since = r.Start
	}
	st.Last = r
	if r.OK {
		st.LastPass = r
	}
	if r.HasBody {
		st.Readiness = r.Readiness
	}
	// Mean latency of passing probes among the last SampleSize results.
	var sum time.Duration
	var n int
	for i, r := range s.ordered() {
		if i < len(s.recent)-m.cfg.SampleSize {
			continue
		}
		if r.OK {
			sum += r.Latency
			n++
		}
	}
	st.Latency = 0
	if n > 0 {
		st.Latency = sum / time.Duration(n)
	}
	return Update{Target: s.t, Result: r, Status: s.snapshot(), Changed: changed}
}

// ordered returns the recent results oldest first. It may share memory
// with the ring: callers copy before keeping it.
func (s *targetState) ordered() []Result {
	if s.next == 0 {
		return s.recent
	}
	out := make([]Result, 0, len(s.recent))
	out = append(out, s.recent[s.next:]...)
	return append(out, s.recent[:s.next]...)
}

func (s *targetState) snapshot() Status {
	st := s.st
	st.Recent = append([]Result(nil), s.ordered()...)
	return st
}

// Status returns the status of the target named name.
func (m *Monitor) Status(name string) (Status, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.byName[name]
	if !ok {
		return Status{}, false
	}
	return s.snapshot(), true
}

// Start probes every Interval until Close. It does not probe at once: call
// Step first for a synchronous initial round.
func (m *Monitor) Start(ctx context.Context) error {
	select {
	case <-m.stop:
		return errors.New("probe monitor: closed")
	default:
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.wg.Go(func() {
		// Close cuts an in-flight round short.
		<-m.stop
		cancel()
	})
	m.wg.Go(func() {
		t := time.NewTicker(m.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
				m.Step(lctx)
			}
		}
	})
	return nil
}

// Close stops the loop and waits for it within ctx.
func (m *Monitor) Close(ctx context.Context) error {
	m.once.Do(func() { close(m.stop) })
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
