package startup_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pushgate/pushgate/internal/startup"
	"github.com/pushgate/pushgate/internal/store"
)

func TestReserved(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "own_gauge", Help: "h"}))
	// A vector without series gathers nothing: it must come as an extra.
	reg.MustRegister(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "own_unused_total", Help: "h"}, []string{"code"}))
	extra := store.Reserved{Name: "own_unused_total", Type: dto.MetricType_COUNTER}

	got, err := startup.Reserved(reg, extra)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Reserved{extra, {Name: "own_gauge", Type: dto.MetricType_GAUGE}}
	if !slices.Equal(got, want) {
		t.Errorf("Reserved = %v, want %v", got, want)
	}

	failed := errors.New("collector failed")
	_, err = startup.Reserved(prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return nil, failed }))
	if !errors.Is(err, failed) || err.Error() != "gather own metrics: collector failed" {
		t.Errorf("Reserved with a failing gatherer = %v, want it wrapped as gather own metrics", err)
	}
}
