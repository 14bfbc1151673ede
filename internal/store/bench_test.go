package store_test

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/store/storetest"
)

// seriesPerGroup is the size of every benchmark push: 49 counters, 50
// gauges and one histogram with 10 buckets.
const seriesPerGroup = storetest.BenchSeries

// benchTemplate returns one group's push with realistic names and label
// lengths, and the size of its text exposition.
func benchTemplate(tb testing.TB) (map[string]*dto.MetricFamily, int64) {
	tb.Helper()
	body := storetest.BenchBody()
	fams := storetest.Families(tb, string(body))
	n := 0
	for _, mf := range fams {
		n += len(mf.Metric)
	}
	if n != seriesPerGroup {
		tb.Fatalf("template has %d series, want %d", n, seriesPerGroup)
	}
	return fams, int64(len(body))
}

func benchKey(tb testing.TB, job string, i int) grouping.Key {
	return storetest.Key(tb, fmt.Sprintf("job=%s,instance=batch-worker-%06d.prod.eu-west-1.example.net:9091", job, i))
}

// filled caches stores holding groups*seriesPerGroup series across the
// runs of a benchmark function: filling the 1M store takes seconds.
var filled = map[int]*store.Store{}

func filledStore(b *testing.B, groups int) (*store.Store, []grouping.Key) {
	b.Helper()
	tmpl, _ := benchTemplate(b)
	keys := make([]grouping.Key, groups)
	for i := range keys {
		keys[i] = benchKey(b, "fill", i)
	}
	s := filled[groups]
	if s == nil {
		s = fill(b, tmpl, keys)
		filled[groups] = s
	}
	return s, keys
}

func fill(b *testing.B, tmpl map[string]*dto.MetricFamily, keys []grouping.Key) *store.Store {
	b.Helper()
	now := time.Unix(1_700_000_000, 0)
	s := store.New(store.Options{Now: func() time.Time { return now }})
	for _, k := range keys {
		if err := s.Push(k, storetest.CloneFamilies(tmpl), true); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// pushSource hands out fresh copies of the template (Push takes ownership
// of its input), cloning them in batches with the timer stopped so that
// the benchmark measures Push alone.
type pushSource struct {
	tmpl  map[string]*dto.MetricFamily
	ready []map[string]*dto.MetricFamily
}

func (p *pushSource) next(b *testing.B) map[string]*dto.MetricFamily {
	if len(p.ready) == 0 {
		b.StopTimer()
		for range 256 {
			p.ready = append(p.ready, storetest.CloneFamilies(p.tmpl))
		}
		b.StartTimer()
	}
	fams := p.ready[len(p.ready)-1]
	p.ready = p.ready[:len(p.ready)-1]
	return fams
}

var benchSizes = []struct {
	name   string
	groups int
}{
	{"series=10k", 10_000 / seriesPerGroup},
	{"series=1M", 1_000_000 / seriesPerGroup},
}

// BenchmarkPush PUTs one group of 100 series to an existing group of a
// store of the given size; its cost should not depend on that size.
//
//	go test -run='^$' -bench=BenchmarkPush$ -benchtime=2000x ./internal/store/
func BenchmarkPush(b *testing.B) {
	tmpl, size := benchTemplate(b)
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			s, keys := filledStore(b, sz.groups)
			src := &pushSource{tmpl: tmpl}
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := s.Push(keys[i%len(keys)], src.next(b), true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPushParallel PUTs 100 series from each goroutine to groups of
// its own in a store of 10k series. It includes cloning the template
// (BenchmarkCloneTemplate), as a parallel benchmark cannot stop its timer.
//
//	go test -run='^$' -bench=BenchmarkPushParallel -benchtime=2000x -cpu=1,4,8 ./internal/store/
func BenchmarkPushParallel(b *testing.B) {
	tmpl, size := benchTemplate(b)
	keys := make([]grouping.Key, benchSizes[0].groups)
	for i := range keys {
		keys[i] = benchKey(b, "fill", i)
	}
	s := fill(b, tmpl, keys)
	var worker atomic.Int64
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := worker.Add(1)
		keys := make([]grouping.Key, 8)
		for i := range keys {
			keys[i] = benchKey(b, fmt.Sprint("parallel-", w), i)
		}
		i := 0
		for pb.Next() {
			if err := s.Push(keys[i%len(keys)], storetest.CloneFamilies(tmpl), true); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkCloneTemplate is the part of BenchmarkPushParallel that is not
// Push.
//
//	go test -run='^$' -bench=BenchmarkCloneTemplate -benchtime=2000x ./internal/store/
func BenchmarkCloneTemplate(b *testing.B) {
	tmpl, size := benchTemplate(b)
	b.SetBytes(size)
	b.ReportAllocs()
	for range b.N {
		_ = storetest.CloneFamilies(tmpl)
	}
}

// BenchmarkView takes a View of a store of the given size, either right
// after a change (a small POST, not timed) or with nothing changed since
// the last View.
//
//	go test -run='^$' -bench=BenchmarkView -benchtime=2000x ./internal/store/
func BenchmarkView(b *testing.B) {
	for _, sz := range benchSizes {
		s, _ := filledStore(b, sz.groups)
		key := benchKey(b, "view", 0)
		b.Run(sz.name+"/changed", func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				b.StopTimer()
				if err := s.Push(key, nil, false); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if v := s.View(); len(v.Groups) != sz.groups+1 {
					b.Fatalf("%d groups", len(v.Groups))
				}
			}
		})
		b.Run(sz.name+"/unchanged", func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if v := s.View(); len(v.Groups) != sz.groups+1 {
					b.Fatalf("%d groups", len(v.Groups))
				}
			}
		})
	}
}

// BenchmarkCollect is one full garbage collection with a store of the given
// size live: the collector's marking grows with the heap objects the
// stored groups hold, and at 1M series it sets the push latency's tail
// (see docs/performance.md). objects/series is the heap objects per stored
// series, gc-cpu-ms/op the collector's CPU per collection as the runtime
// accounts it, which varies far less than the time on a shared machine.
//
//	go test -run='^$' -bench=BenchmarkCollect -benchtime=20x ./internal/store/
func BenchmarkCollect(b *testing.B) {
	clear(filled) // measure one store at a time
	gcCPU := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			s, _ := filledStore(b, sz.groups)
			runtime.GC()
			metrics.Read(gcCPU)
			before := gcCPU[0].Value.Float64()
			b.ResetTimer()
			for b.Loop() {
				runtime.GC()
			}
			b.StopTimer()
			metrics.Read(gcCPU)
			var mem runtime.MemStats
			runtime.ReadMemStats(&mem)
			b.ReportMetric((gcCPU[0].Value.Float64()-before)*1000/float64(b.N), "gc-cpu-ms/op")
			b.ReportMetric(float64(mem.HeapObjects)/float64(sz.groups*seriesPerGroup), "objects/series")
			runtime.KeepAlive(s)
		})
	}
}
