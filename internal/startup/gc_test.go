package startup_test

import (
	"context"
	"runtime/debug"
	"testing"

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
		{0, startup.GCPercent},          // unknown
		{1 << 10, 1000},                 // capped
		{16 << 20, 50},                  // the floor: 8 MiB of 16
		{startup.MinGCHeadroom * 4, 25}, // where the floor stops
		{1 << 30, startup.GCPercent},    // a large store
	} {
		if got := startup.GCTarget(tc.live); got != tc.want {
			t.Errorf("GCTarget(%d) = %d, want %d", tc.live, got, tc.want)
		}
	}
}
