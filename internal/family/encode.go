package family

import (
	"fmt"
	"math"
	"strconv"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// This file writes a family's two stored forms by hand, because the
// libraries' encoders were a fifth of a push's CPU: proto.Marshal walks
// its reflection tables and expfmt.MetricFamilyToText writes a byte at a
// time through an interface and re-checks every name per sample line
// (internal/family BenchmarkNew: see its comment for the command). The
// output is theirs byte for byte, which FuzzFamily checks against both on
// every input; what this code does not know (exemplars, created
// timestamps, native histograms, unknown fields) still goes through
// proto.Marshal, and TestEncodedFields fails when client_model adds a
// field this code would silently drop.

// appendMetricEntries appends metrics as the MetricFamily field-4 entries
// proto.Marshal writes for them. ok is false, with b unchanged, when a
// metric has a field this encoder does not write.
func appendMetricEntries(b []byte, metrics []*dto.Metric) (_ []byte, ok bool) {
	for _, m := range metrics {
		if !encodable(m) {
			return b, false
		}
	}
	for _, m := range metrics {
		b = appendMetric(appendLenField(b, 4, metricSize(m)), m)
	}
	return b, true
}

// Field numbers, from client_model's metrics.proto; TestEncodedFields
// holds them to the generated descriptors.
const (
	labelName, labelValue = 1, 2

	metricLabel, metricGauge, metricCounter, metricSummary = 1, 2, 3, 4
	metricUntyped, metricTimestamp, metricHistogram        = 5, 6, 7

	valueField = 1 // of Gauge, Counter and Untyped

	summaryCount, summarySum, summaryQuantile = 1, 2, 3
	quantileQuantile, quantileValue           = 1, 2

	histogramCount, histogramSum, histogramBucket, histogramCountFloat = 1, 2, 3, 4
	bucketCount, bucketUpperBound, bucketCountFloat                    = 1, 2, 4
)

// Every field number is below 16: a tag is one byte.
const (
	tagSize    = 1
	doubleSize = tagSize + 8
)

// encodable reports whether this encoder writes every field m has set.
func encodable(m *dto.Metric) bool {
	if unknown(m) {
		return false
	}
	for _, lp := range m.Label {
		if unknown(lp) {
			return false
		}
	}
	if g := m.Gauge; g != nil && unknown(g) {
		return false
	}
	if c := m.Counter; c != nil && (c.Exemplar != nil || c.CreatedTimestamp != nil || unknown(c)) {
		return false
	}
	if u := m.Untyped; u != nil && unknown(u) {
		return false
	}
	if s := m.Summary; s != nil {
		if s.CreatedTimestamp != nil || unknown(s) {
			return false
		}
		for _, q := range s.Quantile {
			if unknown(q) {
				return false
			}
		}
	}
	if h := m.Histogram; h != nil {
		// Classic histograms only: a native histogram's fields (schema,
		// spans, deltas, ...) go through proto.Marshal.
		if h.Schema != nil || h.ZeroThreshold != nil || h.ZeroCount != nil || h.ZeroCountFloat != nil ||
			h.NegativeSpan != nil || h.NegativeDelta != nil || h.NegativeCount != nil ||
			h.PositiveSpan != nil || h.PositiveDelta != nil || h.PositiveCount != nil ||
			h.CreatedTimestamp != nil || h.Exemplars != nil || unknown(h) {
			return false
		}
		for _, bk := range h.Bucket {
			if bk.Exemplar != nil || unknown(bk) {
				return false
			}
		}
	}
	return true
}

// metricSize is the size of the encoding of m, which must be encodable.
// Set fields are written even when zero or empty: they are proto2
// optional, as proto.Marshal does.
func metricSize(m *dto.Metric) int {
	n := 0
	for _, lp := range m.Label {
		n += lenFieldSize(labelPairSize(lp))
	}
	if g := m.Gauge; g != nil {
		n += valueMessageSize(g.Value)
	}
	if c := m.Counter; c != nil {
		n += valueMessageSize(c.Value)
	}
	if u := m.Untyped; u != nil {
		n += valueMessageSize(u.Value)
	}
	if s := m.Summary; s != nil {
		n += lenFieldSize(summarySize(s))
	}
	if m.TimestampMs != nil {
		n += tagSize + protowire.SizeVarint(uint64(*m.TimestampMs))
	}
	if h := m.Histogram; h != nil {
		n += lenFieldSize(histogramSize(h))
	}
	return n
}

func appendMetric(b []byte, m *dto.Metric) []byte {
	for _, lp := range m.Label {
		b = appendLenField(b, metricLabel, labelPairSize(lp))
		b = appendOptString(b, labelName, lp.Name)
		b = appendOptString(b, labelValue, lp.Value)
	}
	if g := m.Gauge; g != nil {
		b = appendValueMessage(b, metricGauge, g.Value)
	}
	if c := m.Counter; c != nil {
		b = appendValueMessage(b, metricCounter, c.Value)
	}
	if s := m.Summary; s != nil {
		b = appendLenField(b, metricSummary, summarySize(s))
		b = appendOptUint(b, summaryCount, s.SampleCount)
		b = appendOptDouble(b, summarySum, s.SampleSum)
		for _, q := range s.Quantile {
			b = appendLenField(b, summaryQuantile, optDoubleSize(q.Quantile)+optDoubleSize(q.Value))
			b = appendOptDouble(b, quantileQuantile, q.Quantile)
			b = appendOptDouble(b, quantileValue, q.Value)
		}
	}
	if u := m.Untyped; u != nil {
		b = appendValueMessage(b, metricUntyped, u.Value)
	}
	if m.TimestampMs != nil {
		b = appendVarint(appendTag(b, metricTimestamp, protowire.VarintType), uint64(*m.TimestampMs))
	}
	if h := m.Histogram; h != nil {
		b = appendLenField(b, metricHistogram, histogramSize(h))
		b = appendOptUint(b, histogramCount, h.SampleCount)
		b = appendOptDouble(b, histogramSum, h.SampleSum)
		for _, bk := range h.Bucket {
			b = appendLenField(b, histogramBucket, bucketSize(bk))
			b = appendOptUint(b, bucketCount, bk.CumulativeCount)
			b = appendOptDouble(b, bucketUpperBound, bk.UpperBound)
			b = appendOptDouble(b, bucketCountFloat, bk.CumulativeCountFloat)
		}
		b = appendOptDouble(b, histogramCountFloat, h.SampleCountFloat)
	}
	return b
}

// valueMessageSize and appendValueMessage are for a Gauge, Counter or
// Untyped message, whose one written field is the value.
func valueMessageSize(v *float64) int { return lenFieldSize(optDoubleSize(v)) }

func appendValueMessage(b []byte, num protowire.Number, v *float64) []byte {
	b = appendLenField(b, num, optDoubleSize(v))
	return appendOptDouble(b, valueField, v)
}

func summarySize(s *dto.Summary) int {
	n := optUintSize(s.SampleCount) + optDoubleSize(s.SampleSum)
	for _, q := range s.Quantile {
		n += lenFieldSize(optDoubleSize(q.Quantile) + optDoubleSize(q.Value))
	}
	return n
}

func histogramSize(h *dto.Histogram) int {
	n := optUintSize(h.SampleCount) + optDoubleSize(h.SampleSum) + optDoubleSize(h.SampleCountFloat)
	for _, bk := range h.Bucket {
		n += lenFieldSize(bucketSize(bk))
	}
	return n
}

func bucketSize(bk *dto.Bucket) int {
	return optUintSize(bk.CumulativeCount) + optDoubleSize(bk.UpperBound) + optDoubleSize(bk.CumulativeCountFloat)
}

func labelPairSize(lp *dto.LabelPair) int {
	n := 0
	if lp.Name != nil {
		n += tagSize + protowire.SizeBytes(len(*lp.Name))
	}
	if lp.Value != nil {
		n += tagSize + protowire.SizeBytes(len(*lp.Value))
	}
	return n
}

// unknown reports whether m carries fields that were not in the schema
// it was decoded with, which proto.Marshal writes back.
func unknown(m interface{ ProtoReflect() protoreflect.Message }) bool {
	return len(m.ProtoReflect().GetUnknown()) != 0
}

func lenFieldSize(n int) int { return tagSize + protowire.SizeBytes(n) }

func optDoubleSize(v *float64) int {
	if v == nil {
		return 0
	}
	return doubleSize
}

func optUintSize(v *uint64) int {
	if v == nil {
		return 0
	}
	return tagSize + protowire.SizeVarint(*v)
}

func appendLenField(b []byte, num protowire.Number, n int) []byte {
	return appendVarint(appendTag(b, num, protowire.BytesType), uint64(n))
}

// appendTag and appendVarint are protowire's, with the one-byte case
// inlined: every tag and most lengths here are one byte, and protowire's
// functions are too large to inline.
func appendTag(b []byte, num protowire.Number, typ protowire.Type) []byte {
	return append(b, byte(num)<<3|byte(typ))
}

func appendVarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

func appendOptString(b []byte, num protowire.Number, s *string) []byte {
	if s == nil {
		return b
	}
	b = appendVarint(appendTag(b, num, protowire.BytesType), uint64(len(*s)))
	return append(b, *s...)
}

func appendOptDouble(b []byte, num protowire.Number, v *float64) []byte {
	if v == nil {
		return b
	}
	return protowire.AppendFixed64(appendTag(b, num, protowire.Fixed64Type), math.Float64bits(*v))
}

func appendOptUint(b []byte, num protowire.Number, v *uint64) []byte {
	if v == nil {
		return b
	}
	return appendVarint(appendTag(b, num, protowire.VarintType), *v)
}

// textLines writes the text format 0.0.4 sample lines of mf into sc.text,
// as expfmt.MetricFamilyToText writes them, without HELP and TYPE. ok is
// false when a name needs escaping (see NeedsEscaping): such a family's
// lines depend on the scraper.
func (sc *scratch) textLines(mf *dto.MetricFamily) (ok bool, err error) {
	name := mf.GetName()
	typ := mf.GetType()
	if NeedsEscaping(mf) {
		return false, nil
	}
	b := sc.text[:0]
	defer func() { sc.text = b }()
	fail := func(what string, m *dto.Metric) (bool, error) {
		return false, fmt.Errorf("encode family %q as text: %s in metric %s", name, what, m)
	}
	for _, m := range mf.Metric {
		// The label pairs, written once for all the lines of the metric
		// (a histogram has many).
		labels := sc.labels[:0]
		for _, lp := range m.Label {
			labels = append(labels, lp.GetName()...)
			labels = append(labels, `="`...)
			labels = appendEscaped(labels, lp.GetValue())
			labels = append(labels, `",`...)
		}
		sc.labels = labels
		line := sampleLine{name: name, labels: labels, ts: m.TimestampMs}
		switch typ {
		case dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_UNTYPED:
			v, ok := simpleValue(typ, m)
			if !ok {
				return fail("expected "+TypeName(typ), m)
			}
			b = line.append(b, "", "", 0, v)
		case dto.MetricType_SUMMARY:
			s := m.Summary
			if s == nil {
				return fail("expected summary", m)
			}
			for _, q := range s.Quantile {
				b = line.append(b, "", model.QuantileLabel, q.GetQuantile(), q.GetValue())
			}
			b = line.append(b, "_sum", "", 0, s.GetSampleSum())
			b = line.append(b, "_count", "", 0, float64(s.GetSampleCount()))
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			h := m.Histogram
			if h == nil {
				return fail("expected histogram", m)
			}
			infSeen := false
			for _, bk := range h.Bucket {
				v := bk.GetCumulativeCountFloat()
				if v == 0 {
					v = float64(bk.GetCumulativeCount())
				}
				b = line.append(b, "_bucket", model.BucketLabel, bk.GetUpperBound(), v)
				infSeen = infSeen || math.IsInf(bk.GetUpperBound(), 1)
			}
			count := h.GetSampleCountFloat()
			if count == 0 {
				count = float64(h.GetSampleCount())
			}
			if !infSeen {
				b = line.append(b, "_bucket", model.BucketLabel, math.Inf(1), count)
			}
			b = line.append(b, "_sum", "", 0, h.GetSampleSum())
			b = line.append(b, "_count", "", 0, count)
		default:
			return fail("unknown type "+typ.String(), m)
		}
	}
	return true, nil
}

func simpleValue(typ dto.MetricType, m *dto.Metric) (float64, bool) {
	switch typ {
	case dto.MetricType_COUNTER:
		return m.Counter.GetValue(), m.Counter != nil
	case dto.MetricType_GAUGE:
		return m.Gauge.GetValue(), m.Gauge != nil
	default:
		return m.Untyped.GetValue(), m.Untyped != nil
	}
}

// sampleLine is what the lines of one metric share.
type sampleLine struct {
	name   string
	labels []byte // `name="value",` for each label pair, escaped
	ts     *int64
}

// append appends one line: the name with a suffix, the labels and the
// extra label (le or quantile) if any, the value and the timestamp.
func (l sampleLine) append(b []byte, suffix, extra string, extraValue, v float64) []byte {
	b = append(b, l.name...)
	b = append(b, suffix...)
	if len(l.labels) > 0 || extra != "" {
		b = append(b, '{')
		b = append(b, l.labels...)
		if extra != "" {
			b = append(b, extra...)
			b = append(b, `="`...)
			b = appendTextFloat(b, extraValue)
			b = append(b, `",`...)
		}
		b[len(b)-1] = '}' // the last comma
	}
	b = append(b, ' ')
	b = appendTextFloat(b, v)
	if l.ts != nil {
		b = append(b, ' ')
		b = strconv.AppendInt(b, *l.ts, 10)
	}
	return append(b, '\n')
}

// appendEscaped appends a label value escaped as the text format does:
// backslash, double quote and newline.
func appendEscaped(b []byte, s string) []byte {
	for {
		i := 0
		for i < len(s) && s[i] != '\\' && s[i] != '"' && s[i] != '\n' {
			i++
		}
		b = append(b, s[:i]...)
		if i == len(s) {
			return b
		}
		switch s[i] {
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, '\\', s[i])
		}
		s = s[i+1:]
	}
}

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
