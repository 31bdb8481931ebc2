package drift

import (
	"fmt"
	"strings"
	"time"
)

// Kind is the kind of a finding, in the vocabulary of drift reports.
type Kind string

// Finding kinds. They read as what applying the file would do to the
// region.
const (
	// Added: in the file, missing from the region.
	Added Kind = "Added"
	// Removed: in the region, not in the file.
	Removed Kind = "Removed"
	// NotEqual: in both, with different values.
	NotEqual Kind = "NotEqual"
)

// Kinds lists the finding kinds.
var Kinds = []Kind{Added, Removed, NotEqual}

// Verdict is a region's readiness.
type Verdict string

// Verdicts.
const (
	// Ready: every check passed.
	Ready Verdict = "READY"
	// NotReady: at least one check failed (has a finding).
	NotReady Verdict = "NOT_READY"
	// Unknown: no check failed, but at least one could not decide.
	Unknown Verdict = "UNKNOWN"
)

// Verdicts lists the verdicts, best first.
var Verdicts = []Verdict{Ready, Unknown, NotReady}

// Status is the outcome of one check in one region.
type Status string

// Check statuses.
const (
	Pass Status = "pass"
	Fail Status = "fail"
	// StatusUnknown: the check lacked the data to decide.
	StatusUnknown Status = "unknown"
)

// Statuses lists the check statuses.
var Statuses = []Status{Pass, Fail, StatusUnknown}

// Finding is one difference between the file and a region.
type Finding struct {
	Kind       Kind   `json:"kind"`
	Check      string `json:"check"`
	Region     string `json:"region"`
	Deployment string `json:"deployment,omitempty"`
	Backend    string `json:"backend,omitempty"`
	Agent      string `json:"agent,omitempty"`
	// Field names what differs, e.g. version, capacity, hash,
	// replication.lag_seconds.
	Field    string `json:"field"`
	Expected string `json:"expected"`
	Actual   string `json:"actual"`
	// Detail explains, when there is more to say (differing config paths,
	// the last replication error).
	Detail string `json:"detail,omitempty"`
}

// Subject is what the finding is about: deployment[/backend], or
// agent <name>, or "" for the region as a whole.
func (f Finding) Subject() string {
	switch {
	case f.Agent != "":
		return "agent " + f.Agent
	case f.Backend != "":
		return f.Deployment + "/" + f.Backend
	}
	return f.Deployment
}

// describe is the finding without its kind and region.
func (f Finding) describe() string {
	var b strings.Builder
	if s := f.Subject(); s != "" {
		b.WriteString(s + " ")
	}
	fmt.Fprintf(&b, "%s: expected %s, actual %s", f.Field, f.Expected, f.Actual)
	if f.Detail != "" {
		b.WriteString(" (" + f.Detail + ")")
	}
	return b.String()
}

func (f Finding) String() string {
	return string(f.Kind) + " " + f.Region + " " + f.describe()
}

// CheckResult is one check's outcome in one region.
type CheckResult struct {
	Check    string    `json:"check"`
	Status   Status    `json:"status"`
	Findings []Finding `json:"findings,omitempty"`
	// Unknown says why the check could not decide (parts of it).
	Unknown []string `json:"unknown,omitempty"`
	// Notes say why a check passed without comparing anything (a single
	// region has no failover load, the primary is not a replica).
	Notes []string `json:"notes,omitempty"`
}

// RegionReport is one region's verdict with the reasons for it.
type RegionReport struct {
	Region string `json:"region"`
	URL    string `json:"url"`
	// Role and Epoch come from the region's /admin/state ("" and 0 when it
	// did not answer).
	Role    string  `json:"role,omitempty"`
	Epoch   int64   `json:"epoch,omitempty"`
	Verdict Verdict `json:"verdict"`
	// Reasons has a line per finding and per unknown part; empty when READY.
	Reasons []string      `json:"reasons"`
	Checks  []CheckResult `json:"checks"`
}

// Check returns the result of the named check, or nil.
func (r *RegionReport) Check(name string) *CheckResult {
	for i := range r.Checks {
		if r.Checks[i].Check == name {
			return &r.Checks[i]
		}
	}
	return nil
}

// Report is the outcome of one run of the checks.
type Report struct {
	Topology string         `json:"topology"`
	At       time.Time      `json:"at"`
	Duration time.Duration  `json:"duration_ns"`
	Regions  []RegionReport `json:"regions"`
	// Findings are every region's findings, in region then check order.
	Findings []Finding `json:"findings"`
}

// Region returns the named region's report, or nil.
func (r Report) Region(name string) *RegionReport {
	for i := range r.Regions {
		if r.Regions[i].Region == name {
			return &r.Regions[i]
		}
	}
	return nil
}

// Verdict is the named region's verdict; UNKNOWN for a region the report
// does not cover.
func (r Report) Verdict(region string) Verdict {
	if rr := r.Region(region); rr != nil {
		return rr.Verdict
	}
	return Unknown
}

// Worst is the worst verdict of any region: NOT_READY, then UNKNOWN, then
// READY (READY for a report without regions).
func (r Report) Worst() Verdict {
	w := Ready
	for _, rr := range r.Regions {
		switch {
		case rr.Verdict == NotReady:
			return NotReady
		case rr.Verdict == Unknown:
			w = Unknown
		}
	}
	return w
}

// regions returns the names of the regions with verdict v.
func (r Report) regions(v Verdict) []string {
	var out []string
	for _, rr := range r.Regions {
		if rr.Verdict == v {
			out = append(out, rr.Region)
		}
	}
	return out
}

// verdictOf derives a region's verdict and reasons from its checks.
func verdictOf(checks []CheckResult) (Verdict, []string) {
	v := Ready
	reasons := []string{}
	for _, c := range checks {
		switch c.Status {
		case Fail:
			v = NotReady
		case StatusUnknown:
			if v == Ready {
				v = Unknown
			}
		}
	}
	for _, c := range checks {
		for _, f := range c.Findings {
			reasons = append(reasons, c.Check+": "+string(f.Kind)+" "+f.describe())
		}
	}
	for _, u := range groupUnknown(checks) {
		reasons = append(reasons, strings.Join(u.checks, ", ")+": unknown: "+u.reason)
	}
	return v, reasons
}

// unknownGroup is one reason for unknown and the checks that give it (a
// region that cannot be reached is one reason for every check).
type unknownGroup struct {
	reason string
	checks []string
}

func groupUnknown(checks []CheckResult) []unknownGroup {
	var out []unknownGroup
	at := map[string]int{}
	for _, c := range checks {
		for _, u := range c.Unknown {
			i, ok := at[u]
			if !ok {
				i = len(out)
				at[u] = i
				out = append(out, unknownGroup{reason: u})
			}
			out[i].checks = append(out[i].checks, c.Check)
		}
	}
	return out
}
