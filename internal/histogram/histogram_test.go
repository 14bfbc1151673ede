package histogram_test

import (
	"math"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/histogram"
)

func span(offset int32, length uint32) *dto.BucketSpan {
	return &dto.BucketSpan{Offset: proto.Int32(offset), Length: proto.Uint32(length)}
}

func TestBuckets(t *testing.T) {
	tests := []struct {
		name string
		h    *dto.Histogram
		want []histogram.Bucket
	}{
		{
			name: "integer, schema 0, two spans, zero bucket, negative side",
			h: &dto.Histogram{
				Schema: proto.Int32(0), ZeroThreshold: proto.Float64(0.001), ZeroCount: proto.Uint64(1),
				// Buckets 1 and 2 (counts 2, 5), then a gap of 1, bucket 4 (count 3).
				PositiveSpan:  []*dto.BucketSpan{span(1, 2), span(1, 1)},
				PositiveDelta: []int64{2, 3, -2},
				NegativeSpan:  []*dto.BucketSpan{span(0, 1)},
				NegativeDelta: []int64{4},
			},
			want: []histogram.Bucket{
				{Lower: -1, Upper: -0.5, Count: 4, Kind: histogram.Negative},
				{Lower: -0.001, Upper: 0.001, Count: 1, Kind: histogram.Zero},
				{Lower: 1, Upper: 2, Count: 2, Kind: histogram.Positive},
				{Lower: 2, Upper: 4, Count: 5, Kind: histogram.Positive},
				{Lower: 8, Upper: 16, Count: 3, Kind: histogram.Positive},
			},
		},
		{
			name: "float counts, schema 1, empty buckets skipped",
			h: &dto.Histogram{
				Schema:        proto.Int32(1),
				PositiveSpan:  []*dto.BucketSpan{span(0, 3)},
				PositiveCount: []float64{1.5, 0, 2.5},
			},
			want: []histogram.Bucket{
				{Lower: 0.7071067811865476, Upper: 1, Count: 1.5, Kind: histogram.Positive},
				{Lower: 1.4142135623730951, Upper: 2, Count: 2.5, Kind: histogram.Positive},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !histogram.IsNative(tt.h) {
				t.Fatal("IsNative = false")
			}
			got := histogram.Buckets(tt.h)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d buckets %v, want %v", len(got), got, tt.want)
			}
			near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }
			for i := range got {
				g, w := got[i], tt.want[i]
				if !near(g.Lower, w.Lower) || !near(g.Upper, w.Upper) || g.Count != w.Count || g.Kind != w.Kind {
					t.Errorf("bucket %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestClassicIsNotNative(t *testing.T) {
	h := &dto.Histogram{SampleCount: proto.Uint64(1), Bucket: []*dto.Bucket{{UpperBound: proto.Float64(1), CumulativeCount: proto.Uint64(1)}}}
	if histogram.IsNative(h) {
		t.Error("classic histogram reported native")
	}
	if histogram.Count(h) != 1 {
		t.Errorf("Count = %v", histogram.Count(h))
	}
}
