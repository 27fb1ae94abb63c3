// Package metrics exposes verihook's Prometheus metrics on its own registry:
// what was received and how fast it was acknowledged, what was delivered and
// how fast endpoints answered, and the state of the outbox.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/verihook/verihook/internal/hub"
)

// Metrics holds the collectors. Its Observe methods match the hooks of
// httpapi.Server and delivery.Worker.
type Metrics struct {
	registry       *prometheus.Registry
	received       *prometheus.CounterVec
	ingestLatency  prometheus.Histogram
	attempts       *prometheus.CounterVec
	attemptLatency prometheus.Histogram
	missingSecret  *prometheus.CounterVec
	dispatches     *prometheus.CounterVec
	dispatchTime   prometheus.Histogram
}

// New registers the collectors. stats is read at every scrape for the queue
// depth and the age of the oldest due delivery.
func New(stats func(context.Context, time.Time) (hub.QueueStats, error)) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verihook_messages_received_total",
			Help: "Requests on the ingest endpoint, by source and outcome (accepted, duplicate, quarantined, unauthorized, unknown_source, too_large, busy, unavailable, error).",
		}, []string{"source", "outcome"}),
		ingestLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "verihook_ingest_duration_seconds",
			Help:    "Time from the start of an ingest request to its answer, the durable commit included.",
			Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5},
		}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verihook_delivery_attempts_total",
			Help: "Delivery attempts, by endpoint and outcome (succeeded, retrying, failed).",
		}, []string{"endpoint", "outcome"}),
		attemptLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "verihook_delivery_attempt_duration_seconds",
			Help:    "Time endpoints took to answer a delivery attempt.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15},
		}),
		missingSecret: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verihook_ingest_missing_secret_total",
			Help: "Requests refused (401) because the source has no secret for their event type, by source and event type (documented types only; any other is \"other\").",
		}, []string{"source", "event_type"}),
		dispatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verihook_dispatches_total",
			Help: "OTP and session-link dispatch attempts and ends, by channel (email, sms) and outcome (sent, retrying, failed, expired).",
		}, []string{"channel", "outcome"}),
		dispatchTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "verihook_dispatch_attempt_duration_seconds",
			Help:    "Time an SMTP server or SMS gateway took to accept or refuse a dispatch attempt.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	m.registry.MustRegister(m.received, m.ingestLatency, m.attempts, m.attemptLatency, m.missingSecret,
		m.dispatches, m.dispatchTime,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		queueCollector{stats: stats})
	return m
}

// ObserveIngest counts one ingest request.
func (m *Metrics) ObserveIngest(source, outcome string, d time.Duration) {
	m.received.WithLabelValues(source, outcome).Inc()
	m.ingestLatency.Observe(d.Seconds())
}

// ObserveMissingSecret counts one request refused for want of a secret for
// its event type; eventType must come from a closed list (ingest.Service
// passes "other" for any type the provider's documents do not name).
func (m *Metrics) ObserveMissingSecret(source, eventType string) {
	m.missingSecret.WithLabelValues(source, eventType).Inc()
}

// ObserveAttempt counts one delivery attempt.
func (m *Metrics) ObserveAttempt(endpoint, outcome string, d time.Duration) {
	m.attempts.WithLabelValues(endpoint, outcome).Inc()
	m.attemptLatency.Observe(d.Seconds())
}

// ObserveDispatch counts one dispatch outcome; latency is zero for an end
// without an attempt (an expiry, a rate limit).
func (m *Metrics) ObserveDispatch(channel, outcome string, latency time.Duration) {
	m.dispatches.WithLabelValues(channel, outcome).Inc()
	if latency > 0 {
		m.dispatchTime.Observe(latency.Seconds())
	}
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

var (
	depthDesc = prometheus.NewDesc("verihook_delivery_queue_depth",
		"Pending deliveries, by whether they are due now.", []string{"state"}, nil)
	oldestDesc = prometheus.NewDesc("verihook_delivery_oldest_due_age_seconds",
		"How long the oldest due delivery has been waiting; 0 when none is due.", nil, nil)
)

// queueCollector reads the outbox's state at scrape time.
type queueCollector struct {
	stats func(context.Context, time.Time) (hub.QueueStats, error)
}

func (c queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- depthDesc
	ch <- oldestDesc
}

func (c queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := time.Now()
	st, err := c.stats(ctx, now)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(depthDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(st.Due), "due")
	ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(st.Pending-st.Due), "scheduled")
	age := 0.0
	if !st.OldestDue.IsZero() {
		age = max(now.Sub(st.OldestDue).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age)
}
