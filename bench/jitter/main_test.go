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

func TestSpinMeasuresAtLeastTheDuration(t *testing.T) {
	h, took := spin(20 * time.Millisecond)
	if took < 20*time.Millisecond {
		t.Errorf("measured %v, want at least 20ms", took)
	}
	var lost time.Duration
	for _, l := range h.lost {
		lost += l
	}
	if lost > took {
		t.Errorf("lost %v of %v measured", lost, took)
	}
}
