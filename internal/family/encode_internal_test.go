package family

import (
	"slices"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestEncodedFields holds the hand-written protobuf encoder to
// client_model's schema: every field of every message it writes is either
// written, with the number it was given here, or sends the metric to
// proto.Marshal. A field added to metrics.proto fails this test until the
// encoder knows about it, instead of being dropped from stored families.
func TestEncodedFields(t *testing.T) {
	for _, tc := range []struct {
		msg      protoreflect.ProtoMessage
		written  map[string]protoreflect.FieldNumber
		fallback []string // set: proto.Marshal writes the metric
	}{
		{&dto.Metric{}, map[string]protoreflect.FieldNumber{
			"label": metricLabel, "gauge": metricGauge, "counter": metricCounter, "summary": metricSummary,
			"untyped": metricUntyped, "timestamp_ms": metricTimestamp, "histogram": metricHistogram,
		}, nil},
		{&dto.LabelPair{}, map[string]protoreflect.FieldNumber{"name": labelName, "value": labelValue}, nil},
		{&dto.Gauge{}, map[string]protoreflect.FieldNumber{"value": valueField}, nil},
		{&dto.Untyped{}, map[string]protoreflect.FieldNumber{"value": valueField}, nil},
		{&dto.Counter{}, map[string]protoreflect.FieldNumber{"value": valueField}, []string{"exemplar", "created_timestamp"}},
		{&dto.Summary{}, map[string]protoreflect.FieldNumber{
			"sample_count": summaryCount, "sample_sum": summarySum, "quantile": summaryQuantile,
		}, []string{"created_timestamp"}},
		{&dto.Quantile{}, map[string]protoreflect.FieldNumber{"quantile": quantileQuantile, "value": quantileValue}, nil},
		{&dto.Histogram{}, map[string]protoreflect.FieldNumber{
			"sample_count": histogramCount, "sample_sum": histogramSum, "bucket": histogramBucket, "sample_count_float": histogramCountFloat,
		}, []string{
			"schema", "zero_threshold", "zero_count", "zero_count_float", "negative_span", "negative_delta",
			"negative_count", "positive_span", "positive_delta", "positive_count", "created_timestamp", "exemplars",
		}},
		{&dto.Bucket{}, map[string]protoreflect.FieldNumber{
			"cumulative_count": bucketCount, "upper_bound": bucketUpperBound, "cumulative_count_float": bucketCountFloat,
		}, []string{"exemplar"}},
	} {
		desc := tc.msg.ProtoReflect().Descriptor()
		fields := desc.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			name := string(fd.Name())
			if num, ok := tc.written[name]; ok {
				if fd.Number() != num {
					t.Errorf("%s.%s is field %d, the encoder writes it as %d", desc.Name(), name, fd.Number(), num)
				}
				if fd.Number() >= 16 {
					t.Errorf("%s.%s: field %d needs a tag of two bytes", desc.Name(), name, fd.Number())
				}
				continue
			}
			if !slices.Contains(tc.fallback, name) {
				t.Errorf("%s.%s (field %d) is unknown to the encoder: write it, or send metrics that set it to proto.Marshal", desc.Name(), name, fd.Number())
			}
		}
		if n := len(tc.written) + len(tc.fallback); n != fields.Len() {
			t.Errorf("%s has %d fields, the encoder lists %d", desc.Name(), fields.Len(), n)
		}
	}
}
