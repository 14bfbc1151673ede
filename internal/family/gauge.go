package family

import (
	"time"

	dto "github.com/prometheus/client_model/go"
)

// NewGauge is New for a family of one gauge metric with the given labels
// (sorted, as New needs them) and value: what push_time_seconds and
// push_failure_time_seconds are, two for every group at every restore and
// one at every push.
func NewGauge(name, help string, labels []*dto.LabelPair, v float64, t time.Time) (*Family, error) {
	gauge := dto.Gauge{Value: &v}
	typ := dto.MetricType_GAUGE
	metric := dto.Metric{Label: labels, Gauge: &gauge}
	metrics := [1]*dto.Metric{&metric}
	return New(&dto.MetricFamily{Name: &name, Help: &help, Type: &typ, Metric: metrics[:]}, t)
}
