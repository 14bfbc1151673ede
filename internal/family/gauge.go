package family

import (
	"math"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// NewGauge is New for a family of one gauge metric with the given labels
// (sorted, as New needs them) and value: what push_time_seconds and
// push_failure_time_seconds are, two for every group at every restore and
// one at every push. It writes both forms directly instead of building a
// MetricFamily for protobuf's and expfmt's encoders, at a fifth of New's
// cost (BenchmarkNewGauge), which is an eighth of a restart's CPU at 1M
// series. The bytes are New's (TestNewGaugeIsNew, FuzzNewGauge); names
// that need escaping go through New.
func NewGauge(name, help string, labels []*dto.LabelPair, v float64, t time.Time) (*Family, error) {
	if !model.LegacyValidation.IsValidMetricName(name) || labelsNeedEscaping(labels) {
		return New(&dto.MetricFamily{
			Name:   proto.String(name),
			Help:   proto.String(help),
			Type:   dto.MetricType_GAUGE.Enum(),
			Metric: []*dto.Metric{{Label: labels, Gauge: &dto.Gauge{Value: proto.Float64(v)}}},
		}, t)
	}
	f := &Family{Name: name, Help: help, Type: dto.MetricType_GAUGE, Time: t, Series: 1, hasText: true}
	sc := scratchPool.Get().(*scratch)
	defer sc.put()

	// The metric entry: MetricFamily field 4 holding a Metric with its
	// labels (field 1) and its gauge (field 2, a Gauge with the double
	// in field 1). Every field is proto2 optional and set, so written
	// even when empty or zero, as proto.Marshal does.
	metric := 0
	for _, lp := range labels {
		metric += sizeBytes(1, labelPairSize(lp))
	}
	const gaugeLen = 1 + 8 // tag, fixed64
	metric += sizeBytes(2, gaugeLen)
	b := protowire.AppendTag(sc.raw[:0], 4, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(metric))
	for _, lp := range labels {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(labelPairSize(lp)))
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, lp.GetName())
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, lp.GetValue())
	}
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendVarint(b, gaugeLen)
	b = protowire.AppendTag(b, 1, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(v))
	sc.raw = b
	f.metrics, f.metricsLen = sc.compress(b), len(b)

	// The text line, as expfmt writes it for legacy names.
	sc.text.Reset()
	sc.text.WriteString(name)
	for i, lp := range labels {
		if i == 0 {
			sc.text.WriteByte('{')
		} else {
			sc.text.WriteByte(',')
		}
		sc.text.WriteString(lp.GetName())
		sc.text.WriteString(`="`)
		_, _ = labelValueEscaper.WriteString(&sc.text, lp.GetValue())
		sc.text.WriteByte('"')
	}
	if len(labels) > 0 {
		sc.text.WriteByte('}')
	}
	sc.text.WriteByte(' ')
	var num [32]byte
	sc.text.Write(appendTextFloat(num[:0], v))
	sc.text.WriteByte('\n')
	lines := sc.text.Bytes()
	f.text, f.textLen = sc.compress(lines), len(lines)
	return f, nil
}

// sizeBytes is the encoded size of a length-delimited field of n bytes.
func sizeBytes(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

// labelPairSize is the encoded size of a LabelPair message.
func labelPairSize(lp *dto.LabelPair) int {
	return sizeBytes(1, len(lp.GetName())) + sizeBytes(2, len(lp.GetValue()))
}

// labelValueEscaper escapes a label value as the text format does.
var labelValueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

// appendTextFloat formats a sample value as the text format does.
func appendTextFloat(b []byte, v float64) []byte {
	switch {
	case v == 1:
		return append(b, '1')
	case v == 0:
		return append(b, '0')
	case v == -1:
		return append(b, "-1"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
