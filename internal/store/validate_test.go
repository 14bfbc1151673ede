package store_test

import (
	"errors"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/store/storetest"
)

// TestHistogramsScrapersWouldRefuse: protobuf pushes can carry histograms
// that no text scraper accepts; they are refused like other invalid input.
func TestHistogramsScrapersWouldRefuse(t *testing.T) {
	hist := func(m *dto.Metric) map[string]*dto.MetricFamily {
		return map[string]*dto.MetricFamily{"h": {Name: proto.String("h"), Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{m}}}
	}
	tests := []struct {
		name string
		m    *dto.Metric
		ok   bool
	}{
		{"valid", &dto.Metric{Histogram: &dto.Histogram{SampleCount: proto.Uint64(1), Bucket: []*dto.Bucket{{UpperBound: proto.Float64(1), CumulativeCount: proto.Uint64(1)}}}}, true},
		{"negative float bucket", &dto.Metric{Histogram: &dto.Histogram{SampleCountFloat: proto.Float64(1), Bucket: []*dto.Bucket{{UpperBound: proto.Float64(1), CumulativeCountFloat: proto.Float64(-1)}}}}, false},
		{"negative float count", &dto.Metric{Histogram: &dto.Histogram{SampleCountFloat: proto.Float64(-0.5)}}, false},
		{"negative native count", &dto.Metric{Histogram: &dto.Histogram{Schema: proto.Int32(0), PositiveSpan: []*dto.BucketSpan{{Offset: proto.Int32(0), Length: proto.Uint32(1)}}, PositiveCount: []float64{-2}}}, false},
		{"explicit le label", &dto.Metric{Label: []*dto.LabelPair{{Name: proto.String("le"), Value: proto.String("1")}}, Histogram: &dto.Histogram{SampleCount: proto.Uint64(1)}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := store.New(store.Options{})
			err := s.Push(storetest.Key(t, "job=a"), hist(tt.m), true)
			if tt.ok != (err == nil) || (!tt.ok && !errors.Is(err, store.ErrInvalid)) {
				t.Errorf("Push: %v, want ok=%v (ErrInvalid if refused)", err, tt.ok)
			}
		})
	}
}
