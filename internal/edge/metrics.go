package edge

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the edge's Prometheus series, in its own registry.
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	retries      *prometheus.CounterVec
	ejections    *prometheus.CounterVec
	streamErrors *prometheus.CounterVec
	probes       *prometheus.CounterVec
	probeLatency *prometheus.GaugeVec
	healthy      *prometheus.GaugeVec
	serving      *prometheus.GaugeVec
	enabled      *prometheus.GaugeVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "understudy_edge_requests_total",
			Help: "Client requests answered, by the origin that answered (none: the edge answered) and status code.",
		}, []string{"origin", "code"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "understudy_edge_retries_total",
			Help: "Attempts that failed before the first byte and were replayed on the next origin, by failed origin and reason.",
		}, []string{"origin", "reason"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "understudy_edge_ejections_total",
			Help: "Passive ejections of an origin after real traffic failed, by reason.",
		}, []string{"origin", "reason"}),
		streamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "understudy_edge_stream_errors_total",
			Help: "Responses whose body broke after the first byte reached the client.",
		}, []string{"origin"}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "understudy_edge_probes_total",
			Help: "Health probes sent, by origin and result (pass, fail).",
		}, []string{"origin", "result"}),
		probeLatency: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "understudy_edge_probe_latency_seconds",
			Help: "Mean latency of the passing probes in the sample window.",
		}, []string{"origin"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "understudy_edge_origin_healthy",
			Help: "1 when the origin's probe window is healthy.",
		}, []string{"origin"}),
		serving: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "understudy_edge_origin_serving",
			Help: "1 when the origin takes traffic: enabled, healthy and not ejected.",
		}, []string{"origin"}),
		enabled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "understudy_edge_origin_enabled",
			Help: "1 when the origin is enabled (admin API).",
		}, []string{"origin"}),
	}
	m.reg.MustRegister(m.requests, m.retries, m.ejections, m.streamErrors, m.probes, m.probeLatency,
		m.healthy, m.serving, m.enabled,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) request(origin string, code int) {
	m.requests.WithLabelValues(origin, strconv.Itoa(code)).Inc()
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
