package controller

import (
	"testing"
	"time"
)

func TestDetectorHysteresis(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type obs struct {
		ms       int
		ok       bool
		changed  bool
		wantDown bool
	}
	tests := []struct {
		name string
		seq  []obs
	}{
		{"three failures within the window", []obs{{0, false, false, false}, {500, false, false, false}, {1000, false, true, true}}},
		{"a pass resets the count", []obs{{0, false, false, false}, {500, false, false, false}, {1000, true, false, false}, {1500, false, false, false}, {2000, false, false, false}, {2500, false, true, true}}},
		{"failures too far apart", []obs{{0, false, false, false}, {4000, false, false, false}, {8000, false, false, false}, {9000, false, true, true}}},
		{"recovery needs as many passes", []obs{{0, false, false, false}, {1, false, false, false}, {2, false, true, true}, {3, true, false, true}, {4, true, false, true}, {5, true, true, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDetector(3, 5*time.Second)
			for i, o := range tt.seq {
				changed, down := d.Observe("eastus2", Observation{At: at(o.ms), OK: o.ok, Err: "refused"})
				if changed != o.changed || down != o.wantDown {
					t.Fatalf("observation %d (+%dms ok=%v): changed=%v down=%v, want %v %v", i, o.ms, o.ok, changed, down, o.changed, o.wantDown)
				}
			}
		})
	}
}

func TestDetectorEvidenceStartsAtFirstFailure(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := NewDetector(3, 5*time.Second)
	for i := range 3 {
		d.Observe("eastus2", Observation{At: t0.Add(time.Duration(i) * 500 * time.Millisecond), Err: "connection refused"})
	}
	first, lines := d.Evidence("eastus2")
	if !first.Equal(t0) || len(lines) != 3 {
		t.Fatalf("evidence first=%s lines=%v", first, lines)
	}
	if d.Down("centralus") {
		t.Error("an unobserved region is down")
	}
}

func TestDetectorEvidenceDoesNotSlide(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := NewDetector(3, 5*time.Second)
	// A region fails for 20 s (a failover waits, e.g. for approval): the
	// RTO clock still starts at the first failure.
	for i := range 40 {
		d.Observe("eastus2", Observation{At: t0.Add(time.Duration(i) * 500 * time.Millisecond), Err: "refused"})
	}
	if first, _ := d.Evidence("eastus2"); !first.Equal(t0) {
		t.Fatalf("evidence starts at %s, want the first failure %s", first, t0)
	}
}
