package textparse_test

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pushgate/pushgate/internal/textparse"
)

// Run, comparing with expfmt in the same run:
//
//	go test -run='^$' -bench=. -benchmem -count=5 ./internal/textparse/

// realisticBody is a push of 100 series in about 11 KiB: gauges and counters
// with a few labels, a histogram and a summary, as a batch job sends them.
func realisticBody() []byte {
	var b bytes.Buffer
	b.WriteString("# HELP job_last_success_unixtime Last time the batch job succeeded.\n# TYPE job_last_success_unixtime gauge\n")
	for i := range 20 {
		fmt.Fprintf(&b, "job_last_success_unixtime{job=\"billing-export\",instance=\"worker-%02d\",region=\"eu-west-1\",shard=\"%d\"} %d\n", i, i%4, 1719836547+i)
	}
	b.WriteString("# HELP job_records_processed_total Records processed by the batch job.\n# TYPE job_records_processed_total counter\n")
	for i := range 30 {
		fmt.Fprintf(&b, "job_records_processed_total{job=\"billing-export\",instance=\"worker-%02d\",table=\"invoices_%d\",status=\"ok\"} %d\n", i%20, i, 1000*i+17)
	}
	b.WriteString("# HELP job_duration_seconds Duration of the batch job phases.\n# TYPE job_duration_seconds histogram\n")
	for _, phase := range []string{"extract", "load"} {
		for k, le := range []string{"0.1", "0.5", "1", "5", "10", "30", "60", "+Inf"} {
			fmt.Fprintf(&b, "job_duration_seconds_bucket{job=\"billing-export\",phase=\"%s\",le=\"%s\"} %d\n", phase, le, 3*k)
		}
		fmt.Fprintf(&b, "job_duration_seconds_sum{job=\"billing-export\",phase=\"%s\"} 812.5\n", phase)
		fmt.Fprintf(&b, "job_duration_seconds_count{job=\"billing-export\",phase=\"%s\"} 21\n", phase)
	}
	b.WriteString("# HELP job_batch_size_bytes Size of the batches written.\n# TYPE job_batch_size_bytes summary\n")
	for _, q := range []string{"0.5", "0.9", "0.99"} {
		fmt.Fprintf(&b, "job_batch_size_bytes{job=\"billing-export\",quantile=\"%s\"} %s\n", q, "1.048576e+06")
	}
	b.WriteString("job_batch_size_bytes_sum{job=\"billing-export\"} 4.4040192e+07\njob_batch_size_bytes_count{job=\"billing-export\"} 42\n")
	b.WriteString("# HELP job_memory_bytes Memory in use by the batch job.\n# TYPE job_memory_bytes gauge\n")
	for i := range 46 {
		fmt.Fprintf(&b, "job_memory_bytes{job=\"billing-export\",instance=\"worker-%02d\",area=\"heap\"} %g\n", i, 1.5e8+float64(i)*12345.678)
	}
	return b.Bytes()
}

// shortBody is n short series of ten families.
func shortBody(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "metric_%d{label=\"value_%d\"} %d\n", i%10, i, i)
	}
	return b.Bytes()
}

func parseText(body []byte) (map[string]*dto.MetricFamily, error) {
	return textparse.Parse(bytes.NewReader(body), textparse.Options{Scheme: model.UTF8Validation})
}

func parseExpfmt(body []byte) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(bytes.NewReader(body))
}

var parsers = []struct {
	name  string
	parse func([]byte) (map[string]*dto.MetricFamily, error)
}{
	{"textparse", parseText},
	{"expfmt", parseExpfmt},
}

func BenchmarkParse(b *testing.B) {
	for _, body := range []struct {
		name string
		text []byte
	}{
		{"realistic-100", realisticBody()},
		{"short-100k", shortBody(100_000)},
	} {
		for _, p := range parsers {
			b.Run(body.name+"/"+p.name, func(b *testing.B) {
				b.SetBytes(int64(len(body.text)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := p.parse(body.text); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkLiveHeap reports the heap that the result of parsing 100k short
// series holds (HeapAlloc after GC with the result alive, minus HeapAlloc
// before), per series; for textparse also what Charge was told.
//
//	go test -run='^$' -bench=LiveHeap ./internal/textparse/
func BenchmarkLiveHeap(b *testing.B) {
	const n = 100_000
	body := shortBody(n)
	for _, p := range parsers {
		b.Run(p.name, func(b *testing.B) {
			var live float64
			for b.Loop() {
				live += liveHeap(b, body, p.parse)
			}
			b.ReportMetric(live/float64(b.N)/n, "live-B/series")
			b.ReportMetric(float64(len(body))/n, "text-B/series")
			if p.name == "textparse" {
				b.ReportMetric(float64(charged(b, body))/n, "charged-B/series")
			}
		})
	}
}

// liveHeap parses body and returns the heap its result holds.
func liveHeap(tb testing.TB, body []byte, parse func([]byte) (map[string]*dto.MetricFamily, error)) float64 {
	tb.Helper()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	fams, err := parse(body)
	if err != nil {
		tb.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	runtime.KeepAlive(fams)
	return float64(ms.HeapAlloc) - float64(before)
}

// charged returns the bytes Parse charges for body.
func charged(tb testing.TB, body []byte) int64 {
	tb.Helper()
	var total int64
	_, err := textparse.Parse(bytes.NewReader(body), textparse.Options{
		Scheme: model.UTF8Validation,
		Charge: func(_ int, b int64) error { total += b; return nil },
	})
	if err != nil {
		tb.Fatal(err)
	}
	return total
}

// BenchmarkParseArena parses the realistic 100-series body without and with
// an Arena reset after every parse, as the push handler does.
//
//	go test -run='^$' -bench=BenchmarkParseArena -benchmem ./internal/textparse/
func BenchmarkParseArena(b *testing.B) {
	body := realisticBody()
	for _, tc := range []struct {
		name  string
		arena *textparse.Arena
	}{{"none", nil}, {"arena", &textparse.Arena{}}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				opts := textparse.Options{Scheme: model.UTF8Validation, Arena: tc.arena}
				if _, err := textparse.Parse(bytes.NewReader(body), opts); err != nil {
					b.Fatal(err)
				}
				if tc.arena != nil {
					tc.arena.Reset()
				}
			}
		})
	}
}
