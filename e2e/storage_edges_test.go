package e2e

// Storage edges: grouping keys longer than the storage engine's key limit.

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// bigKeyPath is a push path whose grouping key is about 45 KB: each label
// value stays under --push.max-label-value-length (16384 bytes), the key
// as a whole is longer than bbolt's largest key (32 KiB).
func bigKeyPath(i int) string {
	v := func(c string) string { return fmt.Sprintf("%s%05d", strings.Repeat(c, 15000), i) }
	return "/metrics/job/bigkey/instance/" + v("i") + "/a/" + v("a") + "/b/" + v("b")
}

// TestBigGroupingKeys pushes groups with very long grouping keys while
// ordinary pushes run: the long keys are stored like any other, and they
// never fail an ordinary push or make the gateway unready.
func TestBigGroupingKeys(t *testing.T) {
	t.Parallel()
	requirePushgate(t, "durable storage")
	const (
		big      = 20
		ordinary = 600
		workers  = 30
	)
	dir := filepath.Join(t.TempDir(), "storage")
	g := startDurable(t, dir)

	var (
		bigStatus  = make([]int, big)
		failed     atomic.Int64 // ordinary pushes not answered 200
		firstError atomic.Value
		unready    atomic.Int64 // polls of /-/ready that did not answer 200
		next       atomic.Int64
		wg         sync.WaitGroup
	)
	stopPolling := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-stopPolling:
				return
			default:
			}
			if r, err := g.tryDo(http.MethodGet, "/-/ready", nil, nil); err != nil || r.status != http.StatusOK {
				unready.Add(1)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w < big {
				r, err := g.tryDo(http.MethodPut, bigKeyPath(w), nil, []byte("bigkey_gauge 1\n"))
				if err == nil {
					bigStatus[w] = r.status
				}
			}
			for {
				i := int(next.Add(1)) - 1
				if i >= ordinary {
					return
				}
				path := fmt.Sprintf("/metrics/job/ordinary_%03d", i)
				r, err := g.tryDo(http.MethodPut, path, nil, gaugeBody("ordinary_gauge", 5, float64(i)))
				if err == nil && r.status != http.StatusOK {
					err = fmt.Errorf("PUT %s: got %s", path, r)
				}
				if err != nil {
					failed.Add(1)
					firstError.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	wg.Wait()
	close(stopPolling)
	<-polled
	t.Logf("%d of %d ordinary pushes failed, /-/ready answered non-200 %d times; long-key pushes answered %v",
		failed.Load(), ordinary, unready.Load(), bigStatus)
	if n := failed.Load(); n != 0 {
		t.Errorf("%d ordinary pushes failed next to long-key pushes; first: %v", n, firstError.Load())
	}
	if n := unready.Load(); n != 0 {
		t.Errorf("/-/ready answered non-200 %d times while long-key pushes were refused", n)
	}
	for i, s := range bigStatus {
		if s != http.StatusOK {
			t.Errorf("long-key push %d answered %d, want 200", i, s)
		}
	}

	// They survive a restart, and a delete removes them for good.
	mustStatus(t, g, http.MethodDelete, bigKeyPath(0), nil, http.StatusAccepted)
	want := g.pushed(t)
	if n := strings.Count(want, "bigkey_gauge{"); n != big-1 {
		t.Errorf("%d long-key groups exposed, want %d", n, big-1)
	}
	g.terminate(t)
	g = startDurable(t, dir)
	if got := g.pushed(t); got != want {
		t.Errorf("after a restart (- before, + after):\n%s", diffLines(want, got))
	}
}
