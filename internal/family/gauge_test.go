package family_test

import (
	"bytes"
	"math"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/family"
)

// sameFamily fails unless NewGauge(name, help, lps, v) holds what New
// holds for the same gauge family, byte for byte.
func sameFamily(t *testing.T, name, help string, lps []*dto.LabelPair, v float64) {
	t.Helper()
	got, err := family.NewGauge(name, help, lps, v, pushed)
	if err != nil {
		t.Fatalf("NewGauge: %v", err)
	}
	want, err := family.New(fam(name, help, dto.MetricType_GAUGE, &dto.Metric{Label: lps, Gauge: &dto.Gauge{Value: proto.Float64(v)}}), pushed)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if got.Name != want.Name || got.Help != want.Help || got.Type != want.Type || !got.Time.Equal(want.Time) || got.Series != want.Series || got.HasText() != want.HasText() {
		t.Fatalf("NewGauge header = %q %q %v %v %d text=%v, New's %q %q %v %v %d text=%v",
			got.Name, got.Help, got.Type, got.Time, got.Series, got.HasText(), want.Name, want.Help, want.Type, want.Time, want.Series, want.HasText())
	}
	if g, w := metricsOf(t, got), metricsOf(t, want); !bytes.Equal(g, w) {
		t.Fatalf("NewGauge protobuf =\n%x\nNew's\n%x", g, w)
	}
	if !want.HasText() {
		return
	}
	if g, w := textOf(t, got), textOf(t, want); !bytes.Equal(g, w) {
		t.Fatalf("NewGauge text = %q, New's %q", g, w)
	}
}

func TestNewGaugeIsNew(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels []*dto.LabelPair
		v      float64
	}{
		{"push_time_seconds", labels("instance", "i-1", "job", "batch"), 1.7000000001234567e9},
		{"push_time_seconds", labels("instance", "", "job", "batch"), 0},
		{"push_failure_time_seconds", labels("instance", "", "job", `a "quoted"\ job`+"\nwith a newline"), 1},
		{"g", nil, -1},
		{"g", labels("a", ""), math.NaN()},
		{"g", labels("a", "b"), math.Inf(1)},
		{"g", labels("a", "b"), math.Inf(-1)},
		{"g", labels("a", "b"), math.Copysign(0, -1)},
		{"g", labels("a", "ünïcödé ☃"), 1e-300},
		{"g", labels("a", "b"), math.MaxFloat64},
		{"g", labels("a", string(bytes.Repeat([]byte("x"), 300))), 12345.678},
		{"name.with.dots", labels("a", "b"), 1}, // escaped: New's path
		{"g", labels("label.dotted", "b"), 2},   // escaped: New's path
		{"g", labels("a", "b", "c", "d", "e", "f"), 3},
	} {
		sameFamily(t, tc.name, "Help with \\ and \n.", tc.labels, tc.v)
	}
}

// BenchmarkNewGauge compares NewGauge with New on a MetricFamily built on
// the heap, for a push_time_seconds family:
//
//	go test -run '^$' -bench BenchmarkNewGauge -benchmem ./internal/family/
func BenchmarkNewGauge(b *testing.B) {
	lps := labels("instance", "batch-worker-000001.prod.eu-west-1.example.net:9091", "job", "bench")
	v := float64(time.Unix(1_700_000_000, 123456789).UnixNano()) / 1e9
	b.Run("NewGauge", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := family.NewGauge("push_time_seconds", "help", lps, v, pushed); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("New", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			mf := fam("push_time_seconds", "help", dto.MetricType_GAUGE, &dto.Metric{Label: lps, Gauge: &dto.Gauge{Value: proto.Float64(v)}})
			if _, err := family.New(mf, pushed); err != nil {
				b.Fatal(err)
			}
		}
	})
}
