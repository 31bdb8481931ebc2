package gateway

import (
	"fmt"
	"testing"
	"time"
)

func testPool(clock *fakeClock, prios ...int) *pool {
	var bs []*backend
	for i, p := range prios {
		bs = append(bs, &backend{name: fmt.Sprintf("b%d", i), priority: p, weight: 1})
	}
	return newPool("d", bs, clock.Now, poolConfig{
		cooldownDefault: 10 * time.Second, cooldownMax: 60 * time.Second,
		ejectBase: time.Second, ejectMax: 30 * time.Second,
		jitter: func(d time.Duration) time.Duration { return d }, // exact in tests
	}, poolEvents{})
}

func mustPick(t *testing.T, p *pool, tried ...*backend) ticket {
	t.Helper()
	tk, ok, why := p.pick(tried)
	if !ok {
		t.Fatalf("pick found nothing (%+v)", why)
	}
	return tk
}

func TestPoolPriorityThenWeight(t *testing.T) {
	clock := newFakeClock()
	p := testPool(clock, 2, 1, 1, 3)
	// backends are b0 (prio 2), b1 and b2 (prio 1), b3 (prio 3); weights 1, 3 for b1, b2
	byName := map[string]*backend{}
	for _, b := range p.backends {
		byName[b.name] = b
	}
	byName["b2"].weight = 3
	counts := map[string]int{}
	for range 4000 {
		tk := mustPick(t, p)
		counts[tk.b.name]++
		p.report(tk, outcomeOK, 0, "")
	}
	if counts["b0"] != 0 || counts["b3"] != 0 {
		t.Fatalf("lower priorities served while priority 1 was up: %v", counts)
	}
	// b2 has weight 3 of 4: expect 3000; 6 standard deviations is about ±165.
	if c := counts["b2"]; c < 2800 || c > 3200 {
		t.Errorf("weighted pick: %v, want about 3000 for b2", counts)
	}

	// Excluding what a request already tried moves to the other equal
	// backend, then down the priorities.
	order := []string{}
	var tried []*backend
	for {
		tk, ok, _ := p.pick(tried)
		if !ok {
			break
		}
		tried = append(tried, tk.b)
		order = append(order, tk.b.name)
		p.report(tk, outcomeNeutral, 0, "")
	}
	if len(order) != 4 || order[2] != "b0" || order[3] != "b3" {
		t.Errorf("retry order %v, want b1/b2 then b0 then b3", order)
	}
}

func TestPoolCooldownExact(t *testing.T) {
	tests := []struct {
		name string
		hint time.Duration // -1: no hint
		want time.Duration
	}{
		{"retry-after", 7 * time.Second, 7 * time.Second},
		{"no hint: cooldown_default", -1, 10 * time.Second},
		{"capped at cooldown_max", time.Hour, 60 * time.Second},
		{"zero", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			p := testPool(clock, 1, 2)
			a := p.backends[0]
			tk := mustPick(t, p)
			if tk.b != a {
				t.Fatalf("picked %s, want the priority-1 backend", tk.b.name)
			}
			p.report(tk, outcomeRateLimited, tt.hint, "HTTP 429")
			if tt.want > 0 {
				clock.Advance(tt.want - time.Nanosecond)
				if got := mustPick(t, p); got.b == a {
					t.Fatalf("cooling backend picked %s before the cooldown ended", tt.want-time.Nanosecond)
				}
				if st := p.status()[0]; st.State != stateCooling || !st.CooldownUntil.Equal(clock.Now().Add(time.Nanosecond)) {
					t.Errorf("status %+v", st)
				}
				clock.Advance(time.Nanosecond)
			}
			if got := mustPick(t, p); got.b != a {
				t.Fatalf("backend not back after exactly %s", tt.want)
			}
			if st := p.status()[0]; st.State != stateHealthy || st.Failures != 0 || st.LastError != "HTTP 429" {
				t.Errorf("after cooldown: %+v", st)
			}
		})
	}
}

func TestPoolDefaultJitter(t *testing.T) {
	p := newPool("d", []*backend{{name: "a", priority: 1, weight: 1}}, time.Now, poolConfig{cooldownDefault: 10 * time.Second}, poolEvents{})
	seen := map[time.Duration]bool{}
	for range 200 {
		d := p.cfg.jitter(10 * time.Second)
		if d < 8*time.Second || d > 12*time.Second {
			t.Fatalf("jittered cooldown %s outside 10s ±20%%", d)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Errorf("only %d distinct cooldowns in 200: no jitter", len(seen))
	}
}

// TestPoolEjectionBackoff: every failed trial doubles the ejection up to
// eject_max; a successful trial resets it; one trial at a time.
func TestPoolEjectionBackoff(t *testing.T) {
	clock := newFakeClock()
	p := testPool(clock, 1)
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i, w := range want {
		w *= time.Second
		tk := mustPick(t, p)
		if tk.trial != (i > 0) {
			t.Fatalf("round %d: trial = %v", i, tk.trial)
		}
		p.report(tk, outcomeFailed, 0, "HTTP 500")
		if st := p.status()[0]; st.State != stateEjected || st.Failures != i+1 {
			t.Fatalf("round %d: %+v", i, st)
		}
		clock.Advance(w - time.Nanosecond)
		if _, ok, why := p.pick(nil); ok || why.wait != time.Nanosecond || why.rateLimited {
			t.Fatalf("round %d: ejected backend available %s before its %s ejection ended (%+v)", i, time.Nanosecond, w, why)
		}
		clock.Advance(time.Nanosecond)
		if st := p.status()[0]; st.State != stateProbing {
			t.Fatalf("round %d: after ejection state %s", i, st.State)
		}
	}
	// One trial at a time: while it is in flight the backend is not picked.
	tk := mustPick(t, p)
	if _, ok, _ := p.pick(nil); ok {
		t.Fatal("second request picked a backend whose trial is in flight")
	}
	total, serving := p.serving()
	if total != 1 || serving != 1 {
		t.Errorf("serving %d/%d during the trial, want 1/1", serving, total)
	}
	p.report(tk, outcomeOK, 0, "")
	if st := p.status()[0]; st.State != stateHealthy || st.Failures != 0 {
		t.Fatalf("after successful trial: %+v", st)
	}
	// The backoff starts over.
	tk = mustPick(t, p)
	p.report(tk, outcomeFailed, 0, "timeout")
	if st := p.status()[0]; !st.EjectedUntil.Equal(clock.Now().Add(time.Second)) {
		t.Errorf("ejection after reset until %v, want now+1s", st.EjectedUntil)
	}
}

// TestPoolStaleOutcomes: N requests in flight when a backend dies eject it
// once; a neutral outcome frees a trial without deciding anything.
func TestPoolStaleOutcomes(t *testing.T) {
	clock := newFakeClock()
	p := testPool(clock, 1)
	t1, t2, t3 := mustPick(t, p), mustPick(t, p), mustPick(t, p)
	p.report(t1, outcomeFailed, 0, "conn refused")
	p.report(t2, outcomeFailed, 0, "conn refused")
	p.report(t3, outcomeOK, 0, "")
	if st := p.status()[0]; st.Failures != 1 || st.State != stateEjected || !st.EjectedUntil.Equal(clock.Now().Add(time.Second)) {
		t.Fatalf("after 2 concurrent failures and a stale success: %+v", st)
	}
	clock.Advance(time.Second)
	trial := mustPick(t, p)
	p.report(trial, outcomeNeutral, 0, "")
	if st := p.status()[0]; st.State != stateProbing || st.Failures != 1 {
		t.Fatalf("neutral trial changed the state: %+v", st)
	}
	if tk := mustPick(t, p); !tk.trial {
		t.Fatal("the trial slot was not released by a neutral outcome")
	}
}

func TestPoolWhyNone(t *testing.T) {
	clock := newFakeClock()
	p := testPool(clock, 1, 1)
	a := mustPick(t, p)
	b := mustPick(t, p, a.b)
	p.report(a, outcomeRateLimited, 5*time.Second, "")
	p.report(b, outcomeRateLimited, 3*time.Second, "")
	if _, ok, why := p.pick(nil); ok || !why.rateLimited || why.wait != 3*time.Second {
		t.Fatalf("all cooling: ok=%v why=%+v, want rate limited, wait 3s", ok, why)
	}
	clock.Advance(3 * time.Second)
	c := mustPick(t, p)
	p.report(c, outcomeFailed, 0, "")
	if _, ok, why := p.pick(nil); ok || why.rateLimited || why.wait != time.Second {
		t.Fatalf("cooling + ejected: ok=%v why=%+v, want not rate limited, wait 1s", ok, why)
	}
	if _, ok, why := p.pick(p.backends); ok || why.wait != 0 || why.rateLimited {
		t.Fatalf("all tried: %+v", why)
	}
}
