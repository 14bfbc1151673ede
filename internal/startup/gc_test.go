package startup_test

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/pushgate/pushgate/internal/startup"
)

// Not parallel: the GC target belongs to the whole process.
func TestTuneGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })
	for _, tc := range []struct {
		gogc    string
		wantSet bool
	}{
		{"", true},
		{"100", false},
		{"off", false},
	} {
		debug.SetGCPercent(100)
		ctx, cancel := context.WithCancel(context.Background())
		prev, set := startup.TuneGC(ctx, tc.gogc)
		got := debug.SetGCPercent(100)
		cancel()
		if set != tc.wantSet || (set && prev != 100) {
			t.Errorf("TuneGC(%q) = %d, %v; want set=%v, previous 100", tc.gogc, prev, set, tc.wantSet)
		}
		if !set && got != 100 {
			t.Errorf("TuneGC(%q) changed the target to %d", tc.gogc, got)
		}
		if set && (got < startup.GCPercent || got > 1000) {
			t.Errorf("TuneGC(%q) set the target to %d, want %d..1000", tc.gogc, got, startup.GCPercent)
		}
	}
}

func TestGCTarget(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, startup.GCPercent},              // unknown
		{1 << 10, 1000},                     // capped
		{12 << 20, 50},                      // the floor: 6 MiB of 12
		{startup.MinGCHeadroom * 5 / 2, 40}, // where the floor stops
		{1 << 30, startup.GCPercent},        // a large store
	} {
		if got := startup.GCTarget(tc.live); got != tc.want {
			t.Errorf("GCTarget(%d) = %d, want %d", tc.live, got, tc.want)
		}
	}
}

// TestTuneGCRetunes: the target follows the live heap after a collection.
// Not parallel, as above.
func TestTuneGCRetunes(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gogc := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	percent := func() int { metrics.Read(gogc); return int(gogc[0].Value.Uint64()) }
	runtime.GC()
	startup.TuneGC(ctx, "")
	if got := percent(); got <= startup.GCPercent {
		t.Fatalf("target %d with the test binary's small heap, want more than %d (the headroom floor)", got, startup.GCPercent)
	}
	// 64 MiB live is past the floor: a collection's retune must bring the
	// target down to GCPercent.
	ballast := make([][]byte, 64)
	for i := range ballast {
		ballast[i] = make([]byte, 1<<20)
	}
	for deadline := time.Now().Add(5 * time.Second); percent() != startup.GCPercent; {
		if time.Now().After(deadline) {
			t.Fatalf("target %d after collections with 64 MiB live, want %d", percent(), startup.GCPercent)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	runtime.KeepAlive(ballast)
}
