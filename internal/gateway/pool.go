package gateway

import (
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// A pool holds the backends of one deployment in this region and decides
// which one serves the next attempt. It is a small state machine per
// backend, guarded by one mutex that is held only for a few comparisons:
//
//	healthy ──429──► cooling (until Retry-After, capped) ──time──► healthy
//	healthy ──5xx / timeout / connection error──► ejected (eject_base·2^(n-1), capped)
//	ejected ──time──► probing: the next pick is its one trial request
//	probing ──success──► healthy (backoff reset)   probing ──failure──► ejected (n+1)
//
// Outcomes of attempts that started before a backend's latest ejection are
// ignored, so N requests in flight when a backend dies eject it once, not N
// times.
type pool struct {
	deployment string
	backends   []*backend // sorted by priority, then as listed
	now        func() time.Time
	cfg        poolConfig
	events     poolEvents

	mu sync.Mutex
}

type poolConfig struct {
	cooldownDefault, cooldownMax time.Duration
	ejectBase, ejectMax          time.Duration
	// jitter returns the cooldown for a 429 without any reset hint; default
	// cooldownDefault ±20%.
	jitter func(time.Duration) time.Duration
}

// poolEvents are the pool's metric hooks; each may be nil.
type poolEvents struct {
	cooldown func(b *backend)
	eject    func(b *backend)
	recover  func(b *backend)
}

// backendState is a backend's health, guarded by its pool's mutex.
type backendState struct {
	coolUntil  time.Time // cooling down after a 429 while now < coolUntil
	ejectUntil time.Time // ejected while failures > 0 and now < ejectUntil
	failures   int       // consecutive failures; > 0 until a trial succeeds
	gen        uint64    // bumped at every ejection
	trialBusy  bool      // the trial request is in flight
	lastErr    string
	lastErrAt  time.Time
}

// Backend states as reported by /admin/backends and metrics.
const (
	stateHealthy = "healthy"
	stateCooling = "cooling"
	stateEjected = "ejected"
	stateProbing = "probing"
)

var states = []string{stateHealthy, stateCooling, stateEjected, stateProbing}

func (st *backendState) state(now time.Time) string {
	switch {
	case st.coolUntil.After(now):
		return stateCooling
	case st.failures > 0 && st.ejectUntil.After(now):
		return stateEjected
	case st.failures > 0:
		return stateProbing
	}
	return stateHealthy
}

// available reports whether an attempt may use the backend now.
func (st *backendState) available(now time.Time) bool {
	if st.coolUntil.After(now) {
		return false
	}
	if st.failures > 0 {
		return !st.ejectUntil.After(now) && !st.trialBusy
	}
	return true
}

// ticket is one attempt's claim on a backend.
type ticket struct {
	b     *backend
	gen   uint64
	trial bool
}

func newPool(deployment string, bs []*backend, now func() time.Time, cfg poolConfig, ev poolEvents) *pool {
	bs = slices.Clone(bs)
	slices.SortStableFunc(bs, func(a, b *backend) int { return a.priority - b.priority })
	if cfg.jitter == nil {
		cfg.jitter = func(d time.Duration) time.Duration {
			return d - d/5 + rand.N(2*d/5+1) // d ±20%
		}
	}
	return &pool{deployment: deployment, backends: bs, now: now, cfg: cfg, events: ev}
}

// noBackend explains why pick found nothing.
type noBackend struct {
	// wait is how long until the first untried backend is available again
	// (0 when every backend was tried).
	wait time.Duration
	// rateLimited is true when every unavailable untried backend is cooling
	// after a 429, so the client should see 429 rather than 503.
	rateLimited bool
}

// pick claims the best available backend not in tried: the best (lowest)
// priority with any available backend, then weighted random among that
// priority's available backends.
func (p *pool) pick(tried []*backend) (ticket, bool, noBackend) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	best, total := -1, 0
	for _, b := range p.backends {
		if best >= 0 && b.priority != best {
			break
		}
		if slices.Contains(tried, b) || !b.st.available(now) {
			continue
		}
		best = b.priority
		total += b.weight
	}
	if best < 0 {
		return ticket{}, false, p.whyNone(now, tried)
	}
	n := 0
	if total > 1 {
		n = rand.IntN(total)
	}
	for _, b := range p.backends {
		if b.priority != best || slices.Contains(tried, b) || !b.st.available(now) {
			continue
		}
		if n -= b.weight; n >= 0 {
			continue
		}
		t := ticket{b: b, gen: b.st.gen}
		if b.st.failures > 0 {
			t.trial = true
			b.st.trialBusy = true
		}
		return t, true, noBackend{}
	}
	panic("gateway: pool weights changed under the lock")
}

func (p *pool) whyNone(now time.Time, tried []*backend) noBackend {
	var why noBackend
	first := true
	why.rateLimited = true
	for _, b := range p.backends {
		if slices.Contains(tried, b) {
			continue
		}
		var until time.Time
		switch {
		case b.st.coolUntil.After(now):
			until = b.st.coolUntil
		case b.st.failures > 0 && b.st.ejectUntil.After(now):
			until = b.st.ejectUntil
			why.rateLimited = false
		default: // probing with its trial in flight: free soon
			until = now
			why.rateLimited = false
		}
		if d := until.Sub(now); first || d < why.wait {
			why.wait, first = d, false
		}
	}
	if first { // every backend was tried
		why.rateLimited = false
	}
	return why
}

// outcome is what an attempt tells the pool about its backend.
type outcome uint8

const (
	// outcomeOK: the backend answered properly (2xx, or a 4xx that is the
	// request's fault).
	outcomeOK outcome = iota
	// outcomeRateLimited: 429; the backend cools down.
	outcomeRateLimited
	// outcomeFailed: 5xx, timeout, connection error, broken stream; the
	// backend is ejected.
	outcomeFailed
	// outcomeNeutral: the attempt ended for reasons that say nothing about
	// the backend (client gone, overall deadline).
	outcomeNeutral
)

// report records an attempt's outcome. cooldown is the 429 cooldown (< 0
// when the backend gave no hint); reason is a short error for the admin
// API. It returns the cooldown applied (jittered, capped) for a 429.
func (p *pool) report(t ticket, o outcome, cooldown time.Duration, reason string) time.Duration {
	b := t.b
	p.mu.Lock()
	now := p.now()
	st := &b.st
	if t.trial {
		st.trialBusy = false
	}
	var ev func(*backend)
	switch o {
	case outcomeOK:
		if t.trial && t.gen == st.gen {
			st.failures = 0
			ev = p.events.recover
		}
	case outcomeRateLimited:
		if cooldown < 0 {
			cooldown = p.cfg.jitter(p.cfg.cooldownDefault)
		}
		cooldown = min(cooldown, p.cfg.cooldownMax)
		if until := now.Add(cooldown); until.After(st.coolUntil) {
			st.coolUntil = until
		}
		if t.trial && t.gen == st.gen {
			st.failures = 0 // it answered: alive, only busy
		}
		st.lastErr, st.lastErrAt = reason, now
		ev = p.events.cooldown
	case outcomeFailed:
		st.lastErr, st.lastErrAt = reason, now
		if t.gen != st.gen {
			break // already ejected since this attempt started
		}
		st.failures++
		st.gen++
		st.ejectUntil = now.Add(p.backoff(st.failures))
		ev = p.events.eject
	}
	p.mu.Unlock()
	if ev != nil {
		ev(b)
	}
	return cooldown
}

// backoff is the ejection after n consecutive failures:
// eject_base·2^(n-1), capped at eject_max.
func (p *pool) backoff(n int) time.Duration {
	d := p.cfg.ejectBase
	for i := 1; i < n && d < p.cfg.ejectMax; i++ {
		d *= 2
	}
	return min(d, p.cfg.ejectMax)
}

// serving counts the backends that are neither cooling nor ejected.
func (p *pool) serving() (total, serving int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	for _, b := range p.backends {
		switch b.st.state(now) {
		case stateHealthy, stateProbing:
			serving++
		}
	}
	return len(p.backends), serving
}

// BackendStatus is one backend's state in GET /admin/backends.
type BackendStatus struct {
	Name          string     `json:"name"`
	Kind          string     `json:"kind"`
	Model         string     `json:"model"`
	Priority      int        `json:"priority"`
	Weight        int        `json:"weight"`
	State         string     `json:"state"`
	CooldownUntil *time.Time `json:"cooldown_until"`
	EjectedUntil  *time.Time `json:"ejected_until"`
	Failures      int        `json:"failures"`
	LastError     string     `json:"last_error,omitempty"`
	LastErrorAt   *time.Time `json:"last_error_at,omitempty"`
}

func (p *pool) status() []BackendStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	out := make([]BackendStatus, 0, len(p.backends))
	ts := func(t time.Time, ok bool) *time.Time {
		if !ok {
			return nil
		}
		t = t.UTC()
		return &t
	}
	for _, b := range p.backends {
		st := &b.st
		out = append(out, BackendStatus{
			Name: b.name, Kind: b.kind, Model: b.model, Priority: b.priority, Weight: b.weight,
			State:         st.state(now),
			CooldownUntil: ts(st.coolUntil, st.coolUntil.After(now)),
			EjectedUntil:  ts(st.ejectUntil, st.failures > 0 && st.ejectUntil.After(now)),
			Failures:      st.failures,
			LastError:     st.lastErr,
			LastErrorAt:   ts(st.lastErrAt, !st.lastErrAt.IsZero()),
		})
	}
	return out
}
