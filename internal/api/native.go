package api

import (
	"math"
	"strconv"

	dto "github.com/prometheus/client_model/go"
)

// Bucket boundary rules, as in Prometheus's HTTP API.
const (
	openLeft     = 0 // (lower, upper]: positive buckets
	openRight    = 1 // [lower, upper): negative buckets
	closedBoth   = 3 // [lower, upper]: the zero bucket
	floatFormat  = 'g'
	floatPrecise = -1
)

func isNative(h *dto.Histogram) bool {
	return len(h.GetPositiveSpan())+len(h.GetNegativeSpan()) > 0 || h.ZeroThreshold != nil && len(h.GetBucket()) == 0
}

// nativeBuckets lists a native histogram's populated buckets the way
// Prometheus's query API does: [boundary rule, lower, upper, count].
func nativeBuckets(h *dto.Histogram) (count string, buckets [][]any) {
	f := func(v float64) string { return strconv.FormatFloat(v, floatFormat, floatPrecise, 64) }
	total := float64(h.GetSampleCount())
	if h.GetSampleCountFloat() > 0 {
		total = h.GetSampleCountFloat()
	}
	schema := h.GetSchema()

	neg := expand(h.GetNegativeSpan(), h.GetNegativeDelta(), h.GetNegativeCount())
	for i := len(neg) - 1; i >= 0; i-- {
		if neg[i].count != 0 {
			buckets = append(buckets, []any{openRight, f(-bound(neg[i].index, schema)), f(-bound(neg[i].index-1, schema)), f(neg[i].count)})
		}
	}
	zero := float64(h.GetZeroCount())
	if h.GetZeroCountFloat() > 0 {
		zero = h.GetZeroCountFloat()
	}
	if zero != 0 {
		zt := h.GetZeroThreshold()
		buckets = append(buckets, []any{closedBoth, f(-zt), f(zt), f(zero)})
	}
	for _, b := range expand(h.GetPositiveSpan(), h.GetPositiveDelta(), h.GetPositiveCount()) {
		if b.count != 0 {
			buckets = append(buckets, []any{openLeft, f(bound(b.index-1, schema)), f(bound(b.index, schema)), f(b.count)})
		}
	}
	return f(total), buckets
}

type nativeBucket struct {
	index int32
	count float64
}

// expand turns spans plus delta-encoded (integer) or absolute (float)
// counts into indexed buckets.
func expand(spans []*dto.BucketSpan, deltas []int64, counts []float64) []nativeBucket {
	var out []nativeBucket
	var idx int32
	var cur int64
	k := 0
	for i, s := range spans {
		if i == 0 {
			idx = s.GetOffset()
		} else {
			idx += s.GetOffset()
		}
		for j := uint32(0); j < s.GetLength(); j++ {
			var c float64
			switch {
			case k < len(deltas):
				cur += deltas[k]
				c = float64(cur)
			case k < len(counts):
				c = counts[k]
			}
			out = append(out, nativeBucket{index: idx, count: c})
			idx++
			k++
		}
	}
	return out
}

// bound is the upper bound of bucket index i at the given schema:
// 2^(i * 2^-schema).
func bound(i, schema int32) float64 {
	return math.Exp2(float64(i) * math.Exp2(-float64(schema)))
}
