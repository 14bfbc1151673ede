package api

import (
	"strconv"

	dto "github.com/prometheus/client_model/go"

	"github.com/pushgate/pushgate/internal/histogram"
)

// Bucket boundary rules, as in Prometheus's HTTP API.
var boundaryRule = map[histogram.Kind]int{
	histogram.Positive: 0, // (lower, upper]
	histogram.Negative: 1, // [lower, upper)
	histogram.Zero:     3, // [lower, upper]
}

// nativeBuckets lists a native histogram's populated buckets the way
// Prometheus's query API does: [boundary rule, lower, upper, count].
func nativeBuckets(h *dto.Histogram) (count string, buckets [][]any) {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	for _, b := range histogram.Buckets(h) {
		buckets = append(buckets, []any{boundaryRule[b.Kind], f(b.Lower), f(b.Upper), f(b.Count)})
	}
	return f(histogram.Count(h)), buckets
}
