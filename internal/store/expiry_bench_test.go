package store_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/pushgate/pushgate/internal/disk"
	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/store/storetest"
)

// BenchmarkExpireMass measures whether the expiry of many groups at once
// stalls the pushes and reads that run meanwhile: it fills a store with
// groups of one series that all share one deadline, moves the clock past
// it, and while one ExpireDue deletes them all, pushes to other groups and
// takes View()s (walking the groups, as the status page and API do) in a
// loop. It reports the expiry's duration and the p99 and max latency of
// those pushes and reads. "disk" journals every change in a bbolt file
// (internal/disk) in a temp dir, where every delete is durable.
//
//	go test -run='^$' -bench=ExpireMass -benchtime=1x ./internal/store/
func BenchmarkExpireMass(b *testing.B) {
	for _, c := range []struct {
		name   string
		groups int
		disk   bool
	}{
		{"memory/groups=100000", 100_000, false},
		{"disk/groups=100000", 100_000, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				expireMass(b, c.groups, c.disk)
			}
		})
	}
}

// expireMass runs one mass expiry and reports its metrics; the fill is
// part of the benchmark's time, which means nothing: read the metrics.
func expireMass(b *testing.B, groups int, durable bool) {
	const expireAfter = time.Hour
	var clock atomic.Int64
	clock.Store(time.Unix(1_700_000_000, 0).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	opts := store.Options{Now: now, ExpireAfter: expireAfter}
	if durable {
		db, err := disk.Open(b.TempDir(), disk.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = db.Close() })
		opts.Journal = db
	}
	s := store.New(opts)
	body := storetest.Families(b, "# TYPE batch_last_success_seconds gauge\nbatch_last_success_seconds 1.7e9\n")

	// Fill from several goroutines, so that the journal's group commit
	// shares fsyncs as it does for many clients.
	fillKeys := make([]grouping.Key, groups)
	for i := range fillKeys {
		fillKeys[i] = benchKey(b, "expire", i)
	}
	parallelPush(b, s, fillKeys, body, 64)
	if st := s.Stats(); st.Groups != groups {
		b.Fatalf("filled %d groups, want %d", st.Groups, groups)
	}

	liveKeys := make([]grouping.Key, 100)
	for i := range liveKeys {
		liveKeys[i] = benchKey(b, "live", i)
	}
	clock.Add(int64(expireAfter + time.Second))

	start := time.Now()
	var (
		done       atomic.Bool
		wg         sync.WaitGroup
		pushLat    [2][]time.Duration               // one slice per pusher
		pushMax    [2]struct{ d, at time.Duration } // each pusher's slowest push and when, into the expiry, it started
		viewLat    []time.Duration
		pushErrors atomic.Int64
	)
	for w := range pushLat {
		wg.Go(func() {
			for i := 0; !done.Load(); i++ {
				fams := storetest.CloneFamilies(body)
				began := time.Now()
				if err := s.Push(liveKeys[(i*len(pushLat)+w)%len(liveKeys)], fams, true); err != nil {
					pushErrors.Add(1)
				}
				d := time.Since(began)
				if d > pushMax[w].d {
					pushMax[w].d, pushMax[w].at = d, began.Sub(start)
				}
				pushLat[w] = append(pushLat[w], d)
			}
		})
	}
	wg.Go(func() {
		for !done.Load() {
			start := time.Now()
			series := 0
			for _, g := range s.View().Groups {
				series += g.Series()
			}
			viewLat = append(viewLat, time.Since(start))
			_ = series
		}
	})

	n := s.ExpireDue()
	expiry := time.Since(start)
	done.Store(true)
	wg.Wait()
	if n != groups {
		b.Fatalf("expired %d groups, want %d", n, groups)
	}
	if pushErrors.Load() > 0 {
		b.Fatalf("%d pushes failed during the expiry", pushErrors.Load())
	}
	pushes := slices.Concat(pushLat[:]...)
	b.ReportMetric(float64(expiry.Milliseconds()), "expire-ms")
	b.ReportMetric(float64(groups)/expiry.Seconds(), "expired/s")
	reportLatency(b, "push", pushes)
	slowest := pushMax[0]
	if pushMax[1].d > slowest.d {
		slowest = pushMax[1]
	}
	b.ReportMetric(float64(slowest.at.Milliseconds()), "push-max-at-ms")
	reportLatency(b, "view", viewLat)
}

func reportLatency(b *testing.B, what string, lat []time.Duration) {
	if len(lat) == 0 {
		b.Fatalf("no %s ran during the expiry", what)
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(float64(len(lat)), what+"-count")
	b.ReportMetric(ms(lat[len(lat)*99/100]), what+"-p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), what+"-max-ms")
}

// parallelPush pushes body to every key from workers goroutines.
func parallelPush(b *testing.B, s *store.Store, keys []grouping.Key, body map[string]*dto.MetricFamily, workers int) {
	b.Helper()
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		errs = make(chan error, workers)
	)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(keys) {
					return
				}
				if err := s.Push(keys[i], storetest.CloneFamilies(body), true); err != nil {
					errs <- fmt.Errorf("push %s: %w", keys[i], err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
