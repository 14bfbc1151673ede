package startup_test

import (
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
		want    int
	}{
		{"", true, startup.GCPercent},
		{"100", false, 100},
		{"off", false, 100},
	} {
		debug.SetGCPercent(100)
		prev, set := startup.TuneGC(tc.gogc)
		if got := debug.SetGCPercent(100); set != tc.wantSet || got != tc.want || (set && prev != 100) {
			t.Errorf("TuneGC(%q) = %d, %v and the target is %d; want set=%v, target %d, previous 100", tc.gogc, prev, set, got, tc.wantSet, tc.want)
		}
	}
}
