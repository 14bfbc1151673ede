package ui

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/store"
)

// BenchmarkOverview10k renders page 1 of the overview of a store with
// 10,000 groups (3 families, 5 series each), with and without a filter, and
// reports the HTML size. The budget is a first paint under a second; the
// server's share should stay in milliseconds. "after-push" includes a push
// and the store's rebuilding of its view, as under steady pushing.
//
//	go test ./internal/ui/ -run '^$' -bench Overview10k -benchmem -count 5
func BenchmarkOverview10k(b *testing.B) {
	st := store.New(store.Options{})
	for i := range 10000 {
		k, err := grouping.FromMap(map[string]string{"job": fmt.Sprintf("job-%02d", i%50), "instance": fmt.Sprintf("i-%05d", i)})
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Push(k, benchFamilies(i), true); err != nil {
			b.Fatal(err)
		}
	}
	u, err := New(st, Options{TelemetryPath: "/metrics", EnableAdmin: true})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name, query string
		push        bool // push to one group before each render
	}{
		{name: "page1", query: "/"},
		{name: "filter-label", query: "/?q=i-099"},
		{name: "filter-two-words", query: "/?q=job-07+i-0"},
		{name: "filter-metric", query: "/?q=bench_latency&sort=push"},
		{name: "filter-no-match", query: "/?q=nothing"},
		{name: "sort-series-last-page", query: "/?sort=series&page=100"},
		{name: "filter-label-after-push", query: "/?q=i-099", push: true},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, c.query, nil)
			var size int
			k, err := grouping.FromMap(map[string]string{"job": "job-00", "instance": "i-00000"})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if c.push {
					// The store builds a new view; the UI re-sorts it and
					// reuses what it derived from the unchanged groups.
					if err := st.Push(k, benchFamilies(0), true); err != nil {
						b.Fatal(err)
					}
				}
				w := httptest.NewRecorder()
				u.Overview(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
				size = w.Body.Len()
			}
			b.ReportMetric(float64(size), "html_bytes")
		})
	}
}

func benchFamilies(i int) map[string]*dto.MetricFamily {
	gauge := func(v float64, labels ...string) *dto.Metric {
		m := &dto.Metric{Gauge: &dto.Gauge{Value: proto.Float64(v)}}
		for j := 0; j+1 < len(labels); j += 2 {
			m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(labels[j]), Value: proto.String(labels[j+1])})
		}
		return m
	}
	return map[string]*dto.MetricFamily{
		"bench_items": {Name: proto.String("bench_items"), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{
			gauge(float64(i), "shard", "a"), gauge(float64(i), "shard", "b"), gauge(float64(i%7), "shard", "c"),
		}},
		"bench_last_success_timestamp_seconds": {Name: proto.String("bench_last_success_timestamp_seconds"), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{gauge(1.7e9)}},
		"bench_latency_seconds": {Name: proto.String("bench_latency_seconds"), Type: dto.MetricType_SUMMARY.Enum(), Metric: []*dto.Metric{{
			Summary: &dto.Summary{SampleCount: proto.Uint64(10), SampleSum: proto.Float64(1), Quantile: []*dto.Quantile{{Quantile: proto.Float64(0.5), Value: proto.Float64(0.1)}}},
		}}},
	}
}
