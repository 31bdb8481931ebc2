package gateway

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus series, on its own registry.
type metrics struct {
	requests     *prometheus.CounterVec   // route, deployment, code
	duration     *prometheus.HistogramVec // route, deployment
	ttft         *prometheus.HistogramVec // deployment
	tokens       *prometheus.CounterVec   // deployment, type
	attempts     *prometheus.CounterVec   // deployment, backend, result
	retries      *prometheus.CounterVec   // deployment
	fallbacks    *prometheus.CounterVec   // deployment, fallback
	cooldowns    *prometheus.CounterVec   // deployment, backend
	ejections    *prometheus.CounterVec   // deployment, backend
	recoveries   *prometheus.CounterVec   // deployment, backend
	limited      *prometheus.CounterVec   // limit
	streamErrors *prometheus.CounterVec   // deployment, code
	inflight     prometheus.Gauge
}

// attemptResult is the "result" label of backend_attempts_total.
type attemptResult uint8

const (
	resultOK          attemptResult = iota
	resultRateLimited               // 429
	resultError                     // 5xx, connection error, broken stream
	resultTimeout                   // headers, first token or idle timeout
	resultRejected                  // a 4xx that is the request's fault
	resultAborted                   // client gone, overall deadline, shutdown
	numResults
)

var attemptResults = [numResults]string{"ok", "rate_limited", "error", "timeout", "rejected", "aborted"}

func newMetrics(reg prometheus.Registerer, g *Gateway) *metrics {
	const ns, sub = "understudy", "gateway"
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "requests_total",
			Help: "Requests answered, by route pattern, deployment (empty for non-model routes) and HTTP status."},
			[]string{"route", "deployment", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "request_duration_seconds",
			Help:    "Time from request to the end of the answer (the last chunk for streams).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}},
			[]string{"route", "deployment"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "time_to_first_token_seconds",
			Help:    "Streams: time from request to the first chunk sent to the client.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
			[]string{"deployment"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "tokens_total",
			Help: "Tokens reported by backends (estimated for streams without usage), by type prompt or completion."},
			[]string{"deployment", "type"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "backend_attempts_total",
			Help: "Attempts at backends, by result: ok, rate_limited, error, timeout, rejected, aborted."},
			[]string{"deployment", "backend", "result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "retries_total",
			Help: "Attempts beyond the first of a request (another backend or a fallback deployment)."},
			[]string{"deployment"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "fallbacks_total",
			Help: "Requests that moved to a fallback deployment."},
			[]string{"deployment", "fallback"}),
		cooldowns: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "backend_cooldowns_total",
			Help: "Backends cooled down after a 429."},
			[]string{"deployment", "backend"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "backend_ejections_total",
			Help: "Backends ejected after a 5xx, timeout, connection error or broken stream."},
			[]string{"deployment", "backend"}),
		recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "backend_recoveries_total",
			Help: "Ejected backends brought back by a successful trial request."},
			[]string{"deployment", "backend"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "key_rate_limited_total",
			Help: "Requests refused by a client key's limit, by limit rpm or tpm."},
			[]string{"limit"}),
		streamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "stream_errors_total",
			Help: "Streams ended with an explicit error event after bytes reached the client, by error code."},
			[]string{"deployment", "code"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "inflight_requests",
			Help: "Requests being served."}),
	}
	reg.MustRegister(m.requests, m.duration, m.ttft, m.tokens, m.attempts, m.retries, m.fallbacks,
		m.cooldowns, m.ejections, m.recoveries, m.limited, m.streamErrors, m.inflight, &stateCollector{g: g})
	return m
}

// stateCollector reports pool state at scrape time, so the hot path never
// touches a gauge for it.
type stateCollector struct{ g *Gateway }

var (
	descState = prometheus.NewDesc("understudy_gateway_backend_state",
		"1 for the backend's current state (healthy, cooling, ejected, probing), 0 for the others.",
		[]string{"deployment", "backend", "state"}, nil)
	descServing = prometheus.NewDesc("understudy_gateway_deployment_serving_backends",
		"Backends of the deployment that are neither cooling nor ejected.", []string{"deployment"}, nil)
	descDraining = prometheus.NewDesc("understudy_gateway_draining",
		"1 while the gateway is in lame duck or draining.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descState
	ch <- descServing
	ch <- descDraining
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	for _, d := range c.g.depList {
		serving := 0
		for _, s := range d.pool.status() {
			for _, st := range states {
				v := 0.0
				if s.State == st {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, d.name, s.Name, st)
			}
			if s.State == stateHealthy || s.State == stateProbing {
				serving++
			}
		}
		ch <- prometheus.MustNewConstMetric(descServing, prometheus.GaugeValue, float64(serving), d.name)
	}
	v := 0.0
	if c.g.draining.Load() {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(descDraining, prometheus.GaugeValue, v)
}

// statusText caches the status-code label values.
var statusText = func() (t [600]string) {
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func codeLabel(status int) string {
	if status >= 0 && status < len(statusText) {
		return statusText[status]
	}
	return strconv.Itoa(status)
}
