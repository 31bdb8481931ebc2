package drift

import (
	"github.com/prometheus/client_golang/prometheus"
)

// The metrics a report exports. Verdicts and check statuses are state
// sets: one series per possible value, 1 for the current one, 0 for the
// others, so alerts can match `== 1` and a missing series means no report.
var (
	descVerdict = prometheus.NewDesc("understudy_drift_region_verdict",
		"Readiness of a region from the last drift check: 1 for its verdict (READY, NOT_READY, UNKNOWN), 0 for the others.",
		[]string{"region", "verdict"}, nil)
	descCheck = prometheus.NewDesc("understudy_drift_check_status",
		"Outcome of each drift check per region: 1 for its status (pass, fail, unknown), 0 for the others.",
		[]string{"region", "check", "status"}, nil)
	descFindings = prometheus.NewDesc("understudy_drift_findings",
		"Findings of the last drift check per region, check and kind (Added, Removed, NotEqual).",
		[]string{"region", "check", "kind"}, nil)
	descAt = prometheus.NewDesc("understudy_drift_last_check_timestamp_seconds",
		"When the last drift check started (Unix time).", nil, nil)
	descDuration = prometheus.NewDesc("understudy_drift_last_check_duration_seconds",
		"How long the last drift check took.", nil, nil)
)

// Metrics returns a collector that exports r: register it on a
// prometheus.Registry (a Checker exports its last report the same way).
func Metrics(r Report) prometheus.Collector {
	return reportCollector(func() (Report, bool) { return r, true })
}

// reportCollector exports the report it returns (none when ok is false).
type reportCollector func() (r Report, ok bool)

// Describe sends the descriptions of every drift metric.
func (c reportCollector) Describe(ch chan<- *prometheus.Desc) { describe(ch) }

// Collect sends the report's series.
func (c reportCollector) Collect(ch chan<- prometheus.Metric) {
	if r, ok := c(); ok {
		collect(r, ch)
	}
}

func describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descVerdict, descCheck, descFindings, descAt, descDuration} {
		ch <- d
	}
}

func collect(r Report, ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	one := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for _, rr := range r.Regions {
		for _, v := range Verdicts {
			gauge(descVerdict, one(rr.Verdict == v), rr.Region, string(v))
		}
		for _, c := range rr.Checks {
			for _, s := range Statuses {
				gauge(descCheck, one(c.Status == s), rr.Region, c.Check, string(s))
			}
			for _, k := range Kinds {
				n := 0
				for _, f := range c.Findings {
					if f.Kind == k {
						n++
					}
				}
				gauge(descFindings, float64(n), rr.Region, c.Check, string(k))
			}
		}
	}
	gauge(descAt, float64(r.At.UnixNano())/1e9)
	gauge(descDuration, r.Duration.Seconds())
}
