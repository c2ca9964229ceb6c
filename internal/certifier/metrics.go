package certifier

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the certifier's Prometheus metrics, by remote.
type Metrics struct {
	seen      *prometheus.CounterVec
	outcomes  *prometheus.CounterVec
	errors    *prometheus.CounterVec
	queue     *prometheus.GaugeVec
	runs      *prometheus.HistogramVec
	latency   *prometheus.HistogramVec
	lastCycle *prometheus.GaugeVec
}

// NewMetrics registers the certifier's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		seen: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_certifier_versions_seen_total",
			Help: "New versions seen that match the filter."}, []string{"remote"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_certifier_versions_total",
			Help: "Versions dealt with, by outcome: certified, failed (the command failed or timed out), already (certified before, by this key or another replica), skipped (no such artifact, or its blob withheld from the server; out of the key's scope), refused (the server refused the record)."}, []string{"remote", "outcome"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_certifier_errors_total",
			Help: "Errors that will be retried (the remote unreachable, a blob missing, a push that did not land)."}, []string{"remote"}),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cairn_certifier_queue_length",
			Help: "Versions waiting to be run."}, []string{"remote"}),
		runs: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "cairn_certifier_run_duration_seconds",
			Help: "How long the command ran, by result (passed, failed, timeout).", Buckets: prometheus.ExponentialBuckets(0.01, 3, 12)}, []string{"result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "cairn_certifier_overhead_seconds",
			Help: "Time from a version's first sight to its record landing, less the command's run.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}, []string{"remote"}),
		lastCycle: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cairn_certifier_last_poll_timestamp_seconds",
			Help: "When the remote was last polled successfully."}, []string{"remote"}),
	}
	reg.MustRegister(m.seen, m.outcomes, m.errors, m.queue, m.runs, m.latency, m.lastCycle)
	return m
}
