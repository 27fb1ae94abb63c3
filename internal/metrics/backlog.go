package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verihook/verihook/internal/hub"
)

var (
	stuckDesc = prometheus.NewDesc("verihook_verifications_stuck",
		"Verifications not final past their source's reconciliation deadline, by source.", []string{"source"}, nil)
	quarantinedDesc = prometheus.NewDesc("verihook_messages_quarantined",
		"Messages in quarantine (authenticated, not understood), by source.", []string{"source"}, nil)
)

// WatchBacklog registers the gauges of stuck verifications and quarantined
// messages, read with backlog at every scrape (each count is one scan of a
// small partial index).
func (m *Metrics) WatchBacklog(backlog func(context.Context) (hub.Backlog, error)) {
	m.registry.MustRegister(backlogCollector{backlog})
}

type backlogCollector struct {
	backlog func(context.Context) (hub.Backlog, error)
}

func (c backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- stuckDesc
	ch <- quarantinedDesc
}

func (c backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := c.backlog(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(stuckDesc, err)
		return
	}
	for src, n := range b.Stuck {
		ch <- prometheus.MustNewConstMetric(stuckDesc, prometheus.GaugeValue, float64(n), src)
	}
	for src, n := range b.Quarantined {
		ch <- prometheus.MustNewConstMetric(quarantinedDesc, prometheus.GaugeValue, float64(n), src)
	}
}
