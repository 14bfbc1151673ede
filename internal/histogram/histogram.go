// Package histogram lays out the buckets of a native histogram (schema,
// spans, delta or absolute counts, zero bucket) as bounded buckets, for the
// API and the UI to show. It only reads dto.Histogram; nothing is converted.
package histogram

import (
	dto "github.com/prometheus/client_model/go"
	"math"
)

// Bucket is one populated bucket. Positive buckets are (Lower, Upper],
// negative ones [Lower, Upper), the zero bucket [Lower, Upper]: the
// boundaries Prometheus uses.
type Bucket struct {
	Lower, Upper float64
	Count        float64
	Kind         Kind
}

// Kind tells which side of zero a bucket is on.
type Kind int

const (
	Negative Kind = iota
	Zero
	Positive
)

// IsNative reports whether h is a native histogram.
func IsNative(h *dto.Histogram) bool {
	return len(h.GetPositiveSpan()) > 0 || len(h.GetNegativeSpan()) > 0 ||
		(h.ZeroThreshold != nil && len(h.GetBucket()) == 0)
}

// Count is the observation count of h, integer or float.
func Count(h *dto.Histogram) float64 {
	if c := h.GetSampleCountFloat(); c > 0 {
		return c
	}
	return float64(h.GetSampleCount())
}

// ZeroCount is the count of the zero bucket, integer or float.
func ZeroCount(h *dto.Histogram) float64 {
	if c := h.GetZeroCountFloat(); c > 0 {
		return c
	}
	return float64(h.GetZeroCount())
}

// Factor is the growth factor between neighbouring buckets: 2^(2^-schema).
func Factor(h *dto.Histogram) float64 {
	return math.Exp2(math.Exp2(-float64(h.GetSchema())))
}

// Buckets lists the populated buckets from the most negative to the most
// positive. At schema s, positive bucket i is (2^((i-1)·2^-s), 2^(i·2^-s)];
// negative buckets mirror that.
func Buckets(h *dto.Histogram) []Bucket {
	schema := h.GetSchema()
	upper := func(i int32) float64 { return math.Exp2(float64(i) * math.Exp2(-float64(schema))) }
	var out []Bucket
	neg := expand(h.GetNegativeSpan(), h.GetNegativeDelta(), h.GetNegativeCount())
	for i := len(neg) - 1; i >= 0; i-- {
		if b := neg[i]; b.count != 0 {
			out = append(out, Bucket{Lower: -upper(b.index), Upper: -upper(b.index - 1), Count: b.count, Kind: Negative})
		}
	}
	if zero := ZeroCount(h); zero != 0 {
		zt := h.GetZeroThreshold()
		out = append(out, Bucket{Lower: -zt, Upper: zt, Count: zero, Kind: Zero})
	}
	for _, b := range expand(h.GetPositiveSpan(), h.GetPositiveDelta(), h.GetPositiveCount()) {
		if b.count != 0 {
			out = append(out, Bucket{Lower: upper(b.index - 1), Upper: upper(b.index), Count: b.count, Kind: Positive})
		}
	}
	return out
}

type indexed struct {
	index int32
	count float64
}

// expand walks the spans of one side. Integer histograms give each bucket's
// count as a delta to the previous bucket's, float histograms absolute
// counts. The first span's offset is from index 0, later ones from the end
// of the previous span.
func expand(spans []*dto.BucketSpan, deltas []int64, absolute []float64) []indexed {
	var out []indexed
	var index int32
	var running int64
	n := 0
	for _, s := range spans {
		index += s.GetOffset()
		for range s.GetLength() {
			var c float64
			if n < len(deltas) {
				running += deltas[n]
				c = float64(running)
			} else if n < len(absolute) {
				c = absolute[n]
			}
			out = append(out, indexed{index: index, count: c})
			index++
			n++
		}
	}
	return out
}
