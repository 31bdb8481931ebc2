package main

import (
	"slices"
	"testing"
	"time"
)

func TestHistClassesGapsByLowerEdge(t *testing.T) {
	h := newHist()
	for _, g := range []time.Duration{
		10 * time.Microsecond,  // exactly the first edge
		49 * time.Microsecond,  // still the first class
		50 * time.Microsecond,  // second
		700 * time.Microsecond, // 500 µs class
		7 * time.Millisecond,   // beyond the last edge: the last class
	} {
		h.add(g)
	}
	if want := []int{2, 1, 0, 0, 1, 0, 0, 1}; !slices.Equal(h.count, want) {
		t.Errorf("count = %v, want %v", h.count, want)
	}
	if want := []time.Duration{59 * time.Microsecond, 50 * time.Microsecond, 0, 0, 700 * time.Microsecond, 0, 0, 7 * time.Millisecond}; !slices.Equal(h.lost, want) {
		t.Errorf("lost = %v, want %v", h.lost, want)
	}
	if h.max != 7*time.Millisecond {
		t.Errorf("max = %v, want 7ms", h.max)
	}
}

func TestAtLeastSumsTheClassesFromTheEdgeUp(t *testing.T) {
	h := newHist()
	for _, g := range []time.Duration{60 * time.Microsecond, 150 * time.Microsecond, 600 * time.Microsecond, 3 * time.Millisecond} {
		h.add(g)
	}
	// Over 2 s: 3 gaps of 100 µs or more lost 3.75 ms, 2 of 500 µs or more 3.6 ms.
	if got, want := h.atLeast(100*time.Microsecond, 2*time.Second), "1.5/s (0.19% of the time)"; got != want {
		t.Errorf("atLeast(100µs) = %q, want %q", got, want)
	}
	if got, want := h.atLeast(500*time.Microsecond, 2*time.Second), "1.0/s (0.18% of the time)"; got != want {
		t.Errorf("atLeast(500µs) = %q, want %q", got, want)
	}
}

func TestSpinCountsTheGapsBetweenClockReads(t *testing.T) {
	// A clock that advances 1 µs per read, except for a 300 µs and a 2 ms
	// jump (the thread "not running") and one of exactly 10 µs.
	steps := map[int]time.Duration{5: 300 * time.Microsecond, 9: 10 * time.Microsecond, 20: 2 * time.Millisecond}
	now, reads := time.Unix(0, 0), 0
	clock := func() time.Time {
		reads++
		step := time.Microsecond
		if s, ok := steps[reads]; ok {
			step = s
		}
		now = now.Add(step)
		return now
	}
	h, took := spin(5*time.Millisecond, clock)
	if took < 5*time.Millisecond || took > 5*time.Millisecond+time.Microsecond {
		t.Errorf("measured %v, want 5ms (to the next read)", took)
	}
	if want := []int{1, 0, 0, 1, 0, 0, 1, 0}; !slices.Equal(h.count, want) {
		t.Errorf("count = %v, want %v", h.count, want)
	}
	if h.max != 2*time.Millisecond {
		t.Errorf("max = %v, want 2ms", h.max)
	}
}
