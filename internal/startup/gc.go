package startup

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// GCPercent is the GC target after the restore, unless GOGC is set. The heap
// is mostly pointer-free byte slices (the stored families), which the
// collector does not scan, so collecting more often is cheap, and a heap that
// may grow to twice the live data (Go's default) would double the resident
// memory. It matters only for stores past about 100k series (below, the
// headroom floor sets the target). Not lower: a collection's marking grows
// with the store, and pushes that arrive during one wait longer, so with
// 25 % the push latency's p99 at 1M series was 1.2-1.35x that at 100k
// (6.3-8.0 vs 5.2-6.0 ms; the recipe is in docs/performance.md); with
// 40 % it is 1.0-1.2x (5.9-6.6 vs 5.5-6.0 ms), for a peak RSS of 203
// instead of 186 B/series at 1M.
const GCPercent = 40

// MinGCHeadroom is the least the heap may grow between two collections
// under the tuned target. With 25 % alone, a small store's heap (14 MB at
// 100k series) is collected every 3.5 MB allocated, a dozen times a second
// under a steady push load. The floor costs up to its size in resident
// memory. 8 MiB measured 224-231 B/series after pushbench fill at 100k
// series until the storage log came: its checkpoints turn some 12 MB of
// bbolt page buffers a second into garbage, and right after the fill they
// ran into the headroom: 264-291 B/series, over issue #12's 269. 6 MiB
// measures 240-244, 4 MiB 210-212 but 9 % more server CPU per push than 8
// (pushbench compare push -groups 1000, 3 rounds, 5-13 % each). From 15 MiB
// of live heap on (about 100k series) GCPercent gives more.
const MinGCHeadroom = 6 << 20

// TuneGC sets the GC target to GCPercent, or to what gives MinGCHeadroom if
// that is more, and keeps it so after every collection as the live heap
// changes, until ctx ends; unless gogc, the value of the GOGC environment
// variable, is set: an operator's choice wins. Call it after Restore: the
// restore allocates the whole store at once, and only afterwards is the
// tighter target worth its extra collections. It returns the previous
// target and whether it set one.
func TuneGC(ctx context.Context, gogc string) (previous int, set bool) {
	if gogc != "" {
		return 0, false
	}
	t := &gcTuner{ctx: ctx, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.target = GCTarget(t.live())
	previous = debug.SetGCPercent(t.target)
	t.arm()
	return previous, true
}

// gcTuner retunes the GC target once per collection. Per collection, not on
// a timer: the live heap is only known after one, and a timer lags behind
// a store filling up fast (measured: a 1 s timer let the heap reach twice
// the floor during pushbench fill).
type gcTuner struct {
	ctx    context.Context
	sample []metrics.Sample
	target int
}

// gcSentinel is a block the collector frees at its next cycle, which runs
// its cleanup: the only way a program learns that a cycle ended. Not a
// tiny allocation, which can share a block and be freed late.
type gcSentinel [16]byte

func (t *gcTuner) arm() {
	runtime.AddCleanup(new(gcSentinel), func(t *gcTuner) { t.retune() }, t)
}

func (t *gcTuner) retune() {
	if t.ctx.Err() != nil {
		return
	}
	if next := GCTarget(t.live()); next != t.target {
		t.target = next
		debug.SetGCPercent(next)
	}
	t.arm()
}

func (t *gcTuner) live() uint64 {
	metrics.Read(t.sample)
	if t.sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return t.sample[0].Value.Uint64()
}

// GCTarget is the GC percent for a live heap of live bytes (0: unknown).
func GCTarget(live uint64) int {
	if live == 0 {
		return GCPercent
	}
	return max(GCPercent, int(min(MinGCHeadroom*100/live, 1000)))
}
