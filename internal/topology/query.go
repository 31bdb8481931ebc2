package topology

import (
	"path/filepath"
	"slices"
	"time"
)

// Region returns the region named name, or nil.
func (t *Topology) Region(name string) *Region {
	for i := range t.Regions {
		if t.Regions[i].Name == name {
			return &t.Regions[i]
		}
	}
	return nil
}

// Deployment returns the deployment named name, or nil.
func (t *Topology) Deployment(name string) *Deployment {
	for i := range t.Deployments {
		if t.Deployments[i].Name == name {
			return &t.Deployments[i]
		}
	}
	return nil
}

// Primary returns the region that starts as primary: the best (lowest)
// priority, the first listed among equals.
func (t *Topology) Primary() *Region {
	var best *Region
	for i := range t.Regions {
		if best == nil || t.Regions[i].Priority < best.Priority {
			best = &t.Regions[i]
		}
	}
	return best
}

// RegionNames returns the region names ordered by priority, then as listed.
func (t *Topology) RegionNames() []string {
	rs := slices.Clone(t.Regions)
	slices.SortStableFunc(rs, func(a, b Region) int { return a.Priority - b.Priority })
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = r.Name
	}
	return names
}

// Path resolves a path from the file against the file's directory.
func (t *Topology) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || t.Dir == "" {
		return p
	}
	return filepath.Join(t.Dir, p)
}

// DetectionWindow is the worst case from an origin failing to the probes
// declaring it unhealthy: it takes sample_size - successful_samples_required
// + 1 consecutive failed probes, and the last one only fails at its timeout.
func (p Probes) DetectionWindow() time.Duration {
	n := p.SampleSize - p.SuccessfulSamplesRequired + 1
	return time.Duration(n)*p.Interval.D() + p.Timeout.D()
}

// RecoveryWindow is the least time from an origin recovering to the probes
// declaring it healthy again: successful_samples_required passing probes.
func (p Probes) RecoveryWindow() time.Duration {
	return time.Duration(p.SuccessfulSamplesRequired) * p.Interval.D()
}

// DetectionWindow is the worst case from a region failing to the controller
// declaring it down: failures consecutive failed probes, the last at its
// timeout (the probes' timeout).
func (c Controller) DetectionWindow(probeTimeout time.Duration) time.Duration {
	return time.Duration(c.Failures)*c.ProbeInterval.D() + probeTimeout
}

// EstimatedRTO is detection by the controller, plus waiting out the old
// primary's lease, plus a budget for promotion, routing and validation.
func (t *Topology) EstimatedRTO() time.Duration {
	const promoteAndValidate = time.Second
	return t.Controller.DetectionWindow(t.Probes.Timeout.D()) + t.Controller.LeaseTTL.D() + promoteAndValidate
}
