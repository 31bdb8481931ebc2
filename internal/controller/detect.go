package controller

import (
	"fmt"
	"time"
)

// Observation is one probe result of a region.
type Observation struct {
	At  time.Time `json:"at"`
	OK  bool      `json:"ok"`
	Err string    `json:"error,omitempty"`
}

// Detector decides with hysteresis whether a region is down: failures
// consecutive failed probes whose span is within window declare it down;
// as many consecutive passes declare it up again.
type Detector struct {
	failures int
	window   time.Duration
	regions  map[string]*health
}

type health struct {
	down      bool
	streak    []Observation // the current run of equal results, capped at failures
	since     time.Time     // when the current state was declared
	failSince time.Time     // the first failure of the current run of failures
}

// NewDetector returns a detector with every region presumed up.
func NewDetector(failures int, window time.Duration) *Detector {
	return &Detector{failures: failures, window: window, regions: map[string]*health{}}
}

// Observe records a probe of region and reports whether the region's state
// changed and whether it is now down.
func (d *Detector) Observe(region string, o Observation) (changed, down bool) {
	h := d.regions[region]
	if h == nil {
		h = &health{}
		d.regions[region] = h
	}
	if len(h.streak) > 0 && h.streak[0].OK != o.OK {
		h.streak = h.streak[:0]
	}
	if o.OK {
		h.failSince = time.Time{}
	} else if h.failSince.IsZero() {
		h.failSince = o.At
	}
	h.streak = append(h.streak, o)
	if len(h.streak) > d.failures {
		h.streak = h.streak[1:]
	}
	full := len(h.streak) == d.failures
	switch {
	case !h.down && !o.OK && full && o.At.Sub(h.streak[0].At) <= d.window:
		h.down, h.since = true, o.At
		return true, true
	case h.down && o.OK && full:
		h.down, h.since = false, o.At
		return true, false
	}
	return false, h.down
}

// Down reports whether region is declared down.
func (d *Detector) Down(region string) bool {
	h := d.regions[region]
	return h != nil && h.down
}

// Evidence describes the failed probes that declared region down, and the
// time of the first failure of the run (where the RTO clock starts, however
// long the failover then waited for approval, a cooldown or a ready target).
func (d *Detector) Evidence(region string) (first time.Time, lines []string) {
	h := d.regions[region]
	if h == nil || !h.down {
		return time.Time{}, nil
	}
	for _, o := range h.streak {
		if !o.OK {
			lines = append(lines, fmt.Sprintf("%s probe failed: %s", o.At.UTC().Format(time.RFC3339Nano), o.Err))
		}
	}
	return h.failSince, lines
}
