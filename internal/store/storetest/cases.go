package storetest

import (
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/pushgate/pushgate/internal/store"
)

func testSequences(t *testing.T, newStore func(*testing.T, store.Options) Store) {
	const (
		summaryFoo   = "# TYPE foo summary\nfoo{quantile=\"0.5\"} 1\nfoo_sum 2\nfoo_count 3"
		histogramBar = "# TYPE bar histogram\nbar_bucket{le=\"1\"} 1\nbar_bucket{le=\"+Inf\"} 2\nbar_sum 3\nbar_count 2"
	)
	// Step i runs at Unix time 100*(i+1).
	tests := []struct {
		name  string
		opts  store.Options
		steps []op
		want  string
	}{
		{
			name:  "PUT creates a group with instance label and push time",
			steps: []op{put("job=a", "# TYPE foo counter\nfoo 1\n# TYPE bar gauge\nbar{x=\"y\"} 2")},
			want: `
group {job="a"} push=100 fail=0
# TYPE bar gauge
bar{instance="",job="a",x="y"} 2
# TYPE foo counter
foo{instance="",job="a"} 1`,
		},
		{
			name:  "PUT replaces the whole group",
			steps: []op{put("job=a", "foo 1\nbar 2"), put("job=a", "baz 3")},
			want: `
group {job="a"} push=200 fail=0
# TYPE baz untyped
baz{instance="",job="a"} 3`,
		},
		{
			name:  "POST replaces only the families pushed",
			steps: []op{put("job=a", "foo{x=\"1\"} 1\nfoo{x=\"2\"} 1\nbar 2"), post("job=a", "foo 3\nbaz 4")},
			want: `
group {job="a"} push=200 fail=0
# TYPE bar untyped
bar{instance="",job="a"} 2
# TYPE baz untyped
baz{instance="",job="a"} 4
# TYPE foo untyped
foo{instance="",job="a"} 3`,
		},
		{
			name:  "empty PUT removes all families and updates the push time",
			steps: []op{put("job=a", "foo 1"), put("job=a")},
			want:  `group {job="a"} push=200 fail=0`,
		},
		{
			name:  "empty POST only updates the push time",
			steps: []op{put("job=a", "foo 1"), post("job=a")},
			want: `
group {job="a"} push=200 fail=0
# TYPE foo untyped
foo{instance="",job="a"} 1`,
		},
		{
			name:  "pushed timestamp families are overridden",
			steps: []op{put("job=a", "push_time_seconds 5\npush_failure_time_seconds{x=\"1\"} 7\nfoo 1")},
			want: `
group {job="a"} push=100 fail=0
# TYPE foo untyped
foo{instance="",job="a"} 1`,
		},
		{
			name:  "grouping labels overwrite body labels; labels sorted",
			steps: []op{put("job=a,x=1", `foo{z="9",job="b",x="2",a="3"} 1`)},
			want: `
group {job="a", x="1"} push=100 fail=0
# TYPE foo untyped
foo{a="3",instance="",job="a",x="1",z="9"} 1`,
		},
		{
			name:  "a body instance label is kept",
			steps: []op{put("job=a", `foo{instance="i"} 1`)},
			want: `
group {job="a"} push=100 fail=0
# TYPE foo untyped
foo{instance="i",job="a"} 1`,
		},
		{
			name:  "a grouping instance label overwrites the body's",
			steps: []op{put("job=a,instance=i", `foo{instance="j"} 1`)},
			want: `
group {instance="i", job="a"} push=100 fail=0
# TYPE foo untyped
foo{instance="i",job="a"} 1`,
		},
		{
			name: "inconsistent HELP is accepted and kept per group",
			steps: []op{
				put("job=a", "# HELP foo One.\n# TYPE foo counter\nfoo 1"),
				put("job=b", "# HELP foo Two.\n# TYPE foo counter\nfoo 2"),
			},
			want: `
group {job="a"} push=100 fail=0
# HELP foo One.
# TYPE foo counter
foo{instance="",job="a"} 1
group {job="b"} push=200 fail=0
# HELP foo Two.
# TYPE foo counter
foo{instance="",job="b"} 2`,
		},
		{
			name:  "PUT may change the type of a family only this group holds",
			steps: []op{put("job=a", "# TYPE foo gauge\nfoo 1"), put("job=a", "# TYPE foo counter\nfoo 2")},
			want: `
group {job="a"} push=200 fail=0
# TYPE foo counter
foo{instance="",job="a"} 2`,
		},
		{
			name:  "POST may change the type of a family only this group holds",
			steps: []op{put("job=a", "# TYPE foo gauge\nfoo 1\nbar 1"), post("job=a", "# TYPE foo counter\nfoo 2")},
			want: `
group {job="a"} push=200 fail=0
# TYPE bar untyped
bar{instance="",job="a"} 1
# TYPE foo counter
foo{instance="",job="a"} 2`,
		},
		{
			name:  "the same series may be pushed to the same group again",
			steps: []op{put("job=a", "foo 1"), post("job=a", "foo 2"), put("job=a", "foo 3")},
			want: `
group {job="a"} push=300 fail=0
# TYPE foo untyped
foo{instance="",job="a"} 3`,
		},
		{
			name:  "an empty family does not conflict with another group's type",
			steps: []op{put("job=a", "# TYPE foo gauge\nfoo 1"), put("job=b", "# TYPE foo counter")},
			want: `
group {job="a"} push=100 fail=0
# TYPE foo gauge
foo{instance="",job="a"} 1
group {job="b"} push=200 fail=0
# TYPE foo counter (empty)`,
		},
		{
			name:  "an empty PUT family replaces a non-empty one",
			steps: []op{put("job=a", "# TYPE foo gauge\nfoo 1"), put("job=a", "# TYPE foo counter"), put("job=b", "# TYPE foo summary\nfoo_count 1\nfoo_sum 1")},
			want: `
group {job="a"} push=200 fail=0
# TYPE foo counter (empty)
group {job="b"} push=300 fail=0
# TYPE foo summary
foo_sum{instance="",job="b"} 1
foo_count{instance="",job="b"} 1`,
		},
		{
			// An empty family named in a POST replaces the old summary,
			// so foo_count no longer collides with anything.
			name:  "POST of an empty summary frees its _count",
			steps: []op{put("job=a", summaryFoo), post("job=a", "# TYPE foo summary", "# TYPE foo_count gauge\nfoo_count 7")},
			want: `
group {job="a"} push=200 fail=0
# TYPE foo summary (empty)
# TYPE foo_count gauge
foo_count{instance="",job="a"} 7`,
		},
		{
			name:  "POST of an empty _bucket family frees it for a histogram",
			steps: []op{put("job=a", "# TYPE bar_bucket gauge\nbar_bucket 1"), post("job=a", "# TYPE bar_bucket gauge", histogramBar)},
			want: `
group {job="a"} push=200 fail=0
# TYPE bar histogram
bar_bucket{instance="",job="a",le="1"} 1
bar_bucket{instance="",job="a",le="+Inf"} 2
bar_sum{instance="",job="a"} 3
bar_count{instance="",job="a"} 2
# TYPE bar_bucket gauge (empty)`,
		},
		{
			name:  "a summary does not collide with _bucket",
			steps: []op{put("job=a", summaryFoo), put("job=b", "# TYPE foo_bucket gauge\nfoo_bucket 1")},
			want: `
group {job="a"} push=100 fail=0
# TYPE foo summary
foo{instance="",job="a",quantile="0.5"} 1
foo_sum{instance="",job="a"} 2
foo_count{instance="",job="a"} 3
group {job="b"} push=200 fail=0
# TYPE foo_bucket gauge
foo_bucket{instance="",job="b"} 1`,
		},
		{
			name:  "a reserved name may be pushed with its type",
			opts:  store.Options{Reserved: Reserved},
			steps: []op{put("job=a", "# TYPE go_goroutines gauge\ngo_goroutines 5")},
			want: `
group {job="a"} push=100 fail=0
# TYPE go_goroutines gauge
go_goroutines{instance="",job="a"} 5`,
		},
		{
			name:  "UTF-8 names with Options.UTF8Names",
			opts:  store.Options{UTF8Names: true},
			steps: []op{put("job=a", `{"foo.bar","a.b"="1"} 1`)},
			want: `
group {job="a"} push=100 fail=0
# TYPE "foo.bar" untyped
{"foo.bar","a.b"="1",instance="",job="a"} 1`,
		},
		{
			name:  "Delete frees names for another type",
			steps: []op{put("job=a", "# TYPE foo gauge\nfoo 1"), del("job=a"), put("job=b", "# TYPE foo counter\nfoo 2")},
			want: `
group {job="b"} push=300 fail=0
# TYPE foo counter
foo{instance="",job="b"} 2`,
		},
		{
			name:  "Delete frees suffixes",
			steps: []op{put("job=a", summaryFoo), del("job=a"), put("job=b", "# TYPE foo_count gauge\nfoo_count 1")},
			want: `
group {job="b"} push=300 fail=0
# TYPE foo_count gauge
foo_count{instance="",job="b"} 1`,
		},
		{
			name:  "Wipe frees series",
			steps: []op{put("job=a", `foo{x="1"} 1`), put("job=b", "bar 1"), wipe(), put("job=a,x=1", "foo 2")},
			want: `
group {job="a", x="1"} push=400 fail=0
# TYPE foo untyped
foo{instance="",job="a",x="1"} 2`,
		},
		{
			name:  "Delete of an unknown group is a no-op",
			steps: []op{put("job=a", "foo 1"), del("job=b"), del("job=a,x=1")},
			want: `
group {job="a"} push=100 fail=0
# TYPE foo untyped
foo{instance="",job="a"} 1`,
		},
		{
			name:  "Delete removes one group only",
			steps: []op{put("job=a", "foo 1"), put("job=a,x=1", "foo 1"), del("job=a")},
			want: `
group {job="a", x="1"} push=200 fail=0
# TYPE foo untyped
foo{instance="",job="a",x="1"} 1`,
		},
		{
			name:  "a failed push to an existing group records the failure and keeps everything else",
			steps: []op{put("job=a", "foo 1"), post("job=a", "foo 2\nbar 1 1000").fails(store.ErrTimestamp)},
			want: `
group {job="a"} push=100 fail=200
# TYPE foo untyped
foo{instance="",job="a"} 1`,
		},
		{
			name:  "a failed push to a new group creates it with push time 0",
			steps: []op{put("job=a", "# TYPE foo gauge\nfoo 1"), put("job=b", "# TYPE foo counter\nfoo 1").fails(store.ErrInvalid)},
			want: `
group {job="a"} push=100 fail=0
# TYPE foo gauge
foo{instance="",job="a"} 1
group {job="b"} push=0 fail=200`,
		},
		{
			name: "a failed push to a new group whose timestamps collide creates nothing",
			steps: []op{
				put("job=j", "foo 1"),
				put("job=j,instance=", "bar 1").fails(store.ErrInvalid),
				put("job=j,instance=", "bar 1 1000").fails(store.ErrTimestamp),
			},
			want: `
group {job="j"} push=100 fail=0
# TYPE foo untyped
foo{instance="",job="j"} 1`,
		},
		{
			name:  "a success after a failure keeps the failure time",
			steps: []op{put("job=a", "foo 1"), put("job=a", "foo 1 5").fails(store.ErrTimestamp), post("job=a", "bar 2")},
			want: `
group {job="a"} push=300 fail=200
# TYPE bar untyped
bar{instance="",job="a"} 2
# TYPE foo untyped
foo{instance="",job="a"} 1`,
		},
		{
			name:  "a group created by a failure can be pushed to",
			steps: []op{put("job=a", "foo 1 5").fails(store.ErrTimestamp), put("job=a", "foo 1")},
			want: `
group {job="a"} push=200 fail=100
# TYPE foo untyped
foo{instance="",job="a"} 1`,
		},
		{
			name:  "groups are sorted by key ID",
			steps: []op{put("job=b", "x 1"), put("job=a,y=1", "x 1"), put("job=a", "x 1"), put("job=a,instance=i", "x 1")},
			want: `
group {instance="i", job="a"} push=400 fail=0
# TYPE x untyped
x{instance="i",job="a"} 1
group {job="a"} push=300 fail=0
# TYPE x untyped
x{instance="",job="a"} 1
group {job="a", y="1"} push=200 fail=0
# TYPE x untyped
x{instance="",job="a",y="1"} 1
group {job="b"} push=100 fail=0
# TYPE x untyped
x{instance="",job="b"} 1`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, newStore, tt.opts)
			for i, o := range tt.steps {
				e.clock.Set(int64(100 * (i + 1)))
				e.do(o)
			}
			compare(t, "store", e.state(), tt.want)
		})
	}
}

// decision is a one-step case: after prior (all accepted), push must return
// push.err. A rejected push must change nothing but the target group's
// failure time (or create the target group with push time 0).
type decision struct {
	name  string
	opts  store.Options
	prior []op
	push  op
	// noGroup: a failed push to the new target group creates no group.
	noGroup bool
	// noExisting: skip the variant where the target group exists.
	noExisting bool
}

func testDecisions(t *testing.T, newStore func(*testing.T, store.Options) Store) {
	invalid, ts := store.ErrInvalid, store.ErrTimestamp
	reserved := store.Options{Reserved: Reserved}
	tests := []decision{
		// Checks that need no other group.
		{name: "timestamp", push: put("job=z", "foo 1 1000").fails(ts)},
		{name: "timestamp in one family of several", push: post("job=z", "foo 1\nbar 2 1000").fails(ts)},
		{name: "invalid metric name", push: put("job=z", `{"foo.bar"} 1`).fails(invalid)},
		{name: "invalid label name", push: put("job=z", `foo{"a.b"="1"} 1`).fails(invalid)},
		{name: "reserved label name", push: put("job=z", `foo{__x="1"} 1`).fails(invalid)},
		{name: "UTF-8 names allowed", opts: store.Options{UTF8Names: true}, push: put("job=z", `{"foo.bar","a.b"="1"} 1`)},
		{name: "counter with gauge value", push: putPB("job=z", family("foo", dto.MetricType_COUNTER, gauge(1))).fails(invalid)},
		{name: "gauge with counter value", push: putPB("job=z", family("foo", dto.MetricType_GAUGE, counter(1))).fails(invalid)},
		{name: "summary without value", push: putPB("job=z", family("foo", dto.MetricType_SUMMARY, &dto.Metric{})).fails(invalid)},
		{name: "histogram with summary value", push: putPB("job=z", family("foo", dto.MetricType_HISTOGRAM, summary())).fails(invalid)},
		{name: "untyped with gauge value", push: putPB("job=z", family("foo", dto.MetricType_UNTYPED, gauge(1))).fails(invalid)},
		{name: "unknown type", push: putPB("job=z", family("foo", dto.MetricType(42), gauge(1))).fails(invalid)},
		{name: "duplicate label names", push: putPB("job=z", family("foo", dto.MetricType_GAUGE, gauge(1, "a", "1", "a", "2"))).fails(invalid)},
		{name: "summary with quantile label", push: putPB("job=z", family("foo", dto.MetricType_SUMMARY, summary("quantile", "0.5"))).fails(invalid)},
		{name: "non-UTF-8 label value", push: putPB("job=z", family("foo", dto.MetricType_GAUGE, gauge(1, "a", "\xff"))).fails(invalid)},
		{name: "valid protobuf push", push: putPB("job=z", family("foo", dto.MetricType_GAUGE, gauge(1, "a", "1"), gauge(2, "a", "2")))},
		{name: "same series twice", push: putPB("job=z", family("foo", dto.MetricType_GAUGE, gauge(1), gauge(2))).fails(invalid)},
		{name: "same series after grouping labels overwrite", push: put("job=z", `foo{job="x"} 1`+"\n"+`foo{job="y"} 2`).fails(invalid)},
		{name: "same series after instance is added", push: put("job=z", `foo 1`+"\n"+`foo{instance=""} 2`).fails(invalid)},
		{name: "different series in one push", push: put("job=z", `foo{a="x"} 1`+"\n"+`foo{a="y"} 2`)},

		// Series in other groups.
		{name: "series in another group", prior: []op{put("job=a", `foo{x="1"} 1`)}, push: put("job=a,x=1", "foo 2").fails(invalid)},
		{name: "series in another group, other direction", prior: []op{put("job=a,x=1", "foo 1")}, push: put("job=a", `foo{x="1"} 2`).fails(invalid)},
		{name: "series in another group by POST", prior: []op{put("job=a", `foo{x="1"} 1`)}, push: post("job=a,x=1", "foo 2").fails(invalid)},
		{name: "series in another group by instance", prior: []op{put("job=a", `foo{instance="i"} 1`)}, push: put("job=a,instance=i", "foo 2").fails(invalid)},
		{name: "other series of the name in another group", prior: []op{put("job=a", `foo{x="1"} 1`)}, push: put("job=a,x=2", "foo 2")},
		{name: "series in another group, deleted", prior: []op{put("job=a", `foo{x="1"} 1`), del("job=a")}, push: put("job=a,x=1", "foo 2")},
		{name: "series in another group, replaced", prior: []op{put("job=a", `foo{x="1"} 1`), put("job=a", `foo{x="2"} 1`)}, push: put("job=a,x=1", "foo 2")},
		{name: "series in another group, POSTed away", prior: []op{put("job=a", `foo{x="1"} 1`), post("job=a", `foo{x="2"} 1`)}, push: put("job=a,x=1", "foo 2")},
		{
			name: "timestamp series of another group", prior: []op{put("job=j", "foo 1")},
			push: put("job=j,instance=", "bar 1").fails(invalid), noGroup: true, noExisting: true,
		},
		{
			name: "timestamp series of another group, other direction", prior: []op{put("job=j,instance=", "foo 1")},
			push: put("job=j", "bar 1").fails(invalid), noGroup: true, noExisting: true,
		},

		// Types.
		{name: "type differs from another group", prior: []op{put("job=a", "# TYPE foo counter\nfoo 1")}, push: put("job=b", "# TYPE foo gauge\nfoo 1").fails(invalid)},
		{name: "untyped differs from gauge", prior: []op{put("job=a", "# TYPE foo gauge\nfoo 1")}, push: put("job=b", "foo 1").fails(invalid)},
		{name: "type differs from another group by POST", prior: []op{put("job=a", "# TYPE foo counter\nfoo 1")}, push: post("job=b", "# TYPE foo gauge\nfoo 1").fails(invalid)},
		{name: "type differs from another group holding the name too", prior: []op{put("job=a", "# TYPE foo counter\nfoo 1"), put("job=b", "# TYPE foo counter\nfoo 1")}, push: put("job=b", "# TYPE foo gauge\nfoo 1").fails(invalid)},
		{name: "same type as another group", prior: []op{put("job=a", "# TYPE foo counter\nfoo 1")}, push: put("job=b", "# TYPE foo counter\nfoo 1")},
		{name: "type of another group that was deleted", prior: []op{put("job=a", "# TYPE foo counter\nfoo 1"), put("job=b", "# TYPE foo counter\nfoo 1"), del("job=a")}, push: put("job=b", "# TYPE foo gauge\nfoo 1")},
		{name: "type of another group that was wiped", prior: []op{put("job=a", "# TYPE foo counter\nfoo 1"), wipe()}, push: put("job=b", "# TYPE foo gauge\nfoo 1")},
		{name: "type of an empty family elsewhere", prior: []op{put("job=a", "# TYPE foo counter")}, push: put("job=b", "# TYPE foo gauge\nfoo 1")},
		{name: "type of a family that an empty family replaced", prior: []op{put("job=a", "# TYPE foo counter\nfoo 1"), post("job=a", "# TYPE foo counter")}, push: put("job=b", "# TYPE foo gauge\nfoo 1")},
		{name: "reserved type", opts: reserved, push: put("job=z", "# TYPE go_goroutines counter\ngo_goroutines 1").fails(invalid)},
		{name: "reserved type, untyped", opts: reserved, push: put("job=z", "go_goroutines 1").fails(invalid)},
		{name: "reserved type, same", opts: reserved, push: put("job=z", "# TYPE go_goroutines gauge\ngo_goroutines 1")},
		{name: "reserved type, empty family", opts: reserved, push: put("job=z", "# TYPE go_goroutines counter")},
		{name: "reserved type, after a group held it", opts: reserved, prior: []op{put("job=a", "# TYPE go_goroutines gauge\ngo_goroutines 1"), del("job=a")}, push: put("job=z", "# TYPE go_goroutines counter\ngo_goroutines 1").fails(invalid)},
		{name: "reserved summary's _count", opts: reserved, push: put("job=z", "# TYPE go_gc_duration_seconds_count gauge\ngo_gc_duration_seconds_count 1").fails(invalid)},
		{name: "reserved summary's _bucket", opts: reserved, push: put("job=z", "# TYPE go_gc_duration_seconds_bucket gauge\ngo_gc_duration_seconds_bucket 1")},
		{name: "reserved _bucket for a histogram", opts: reserved, push: put("job=z", "# TYPE reserved histogram\nreserved_bucket{le=\"+Inf\"} 1\nreserved_count 1\nreserved_sum 1").fails(invalid)},
		{name: "reserved _bucket for a summary", opts: reserved, push: put("job=z", "# TYPE reserved summary\nreserved_count 1\nreserved_sum 1")},
	}
	for _, tt := range tests {
		variants := []string{"new"}
		target := tt.push.key
		exists := false
		for _, o := range tt.prior {
			exists = exists || o.key == target
		}
		if exists {
			variants = []string{"existing"}
		} else if !tt.noExisting {
			variants = append(variants, "existing")
		}
		for _, variant := range variants {
			t.Run(tt.name+"/"+variant, func(t *testing.T) {
				prior := tt.prior
				if variant == "existing" && !exists {
					prior = append([]op{put(target, "unrelated_metric 1")}, prior...)
				}
				checkDecision(t, newStore, tt, prior)
			})
		}
	}
}

func checkDecision(t *testing.T, newStore func(*testing.T, store.Options) Store, tt decision, prior []op) {
	t.Helper()
	e := newEnv(t, newStore, tt.opts)
	for i, o := range prior {
		e.clock.Set(int64(100 * (i + 1)))
		e.do(o)
	}
	before := snapshot(t, e.s.View(), e.opts.Reserved)
	beforeGen := e.s.View().Gen
	now := int64(100 * (len(prior) + 1))
	e.clock.Set(now)
	err := e.apply(tt.push)
	if err := checkErr(err, tt.push.err); err != nil {
		t.Fatalf("%v: %v", tt.push, err)
	}
	v := e.s.View()
	after := snapshot(t, v, e.opts.Reserved)
	key := Key(t, tt.push.key)
	var target *snapGroup
	for i := range after {
		if after[i].key.ID() == key.ID() {
			target = &after[i]
		}
	}
	if err == nil {
		if target == nil || target.push != float64(now) {
			t.Fatalf("accepted push did not set the push time of %s to %d:\n%s", key, now, format(after))
		}
		return
	}

	// A rejected push changes only the failure time of its group.
	want := slices.Clone(before)
	found := false
	for i := range want {
		if want[i].key.ID() == key.ID() {
			want[i].fail = float64(now)
			found = true
		}
	}
	if !found && !tt.noGroup {
		want = append(want, snapGroup{key: key, fail: float64(now)})
		sort.Slice(want, func(i, j int) bool { return want[i].key.ID() < want[j].key.ID() })
	}
	compare(t, "store after rejected push", format(after), format(want))
	if changed := len(want) != len(before) || found; changed == (v.Gen == beforeGen) {
		t.Errorf("Gen went from %d to %d; the store changed: %v", beforeGen, v.Gen, changed)
	}
	if target != nil && target.push >= target.fail {
		t.Errorf("group %s: push time %v not before failure time %v", key, target.push, target.fail)
	}
}

// testSuffixes checks the _count, _sum and _bucket collisions of summaries
// and histograms in both orders of arrival, across groups and within one
// push or group.
func testSuffixes(t *testing.T, newStore func(*testing.T, store.Options) Store) {
	const (
		summaryFoo   = "# TYPE foo summary\nfoo{quantile=\"0.5\"} 1\nfoo_sum 2\nfoo_count 3"
		histogramFoo = "# TYPE foo histogram\nfoo_bucket{le=\"+Inf\"} 1\nfoo_sum 2\nfoo_count 1"
	)
	// Colliding families have a label of their own, so that only the name
	// collides, never a series.
	collider := func(name, typ string) string {
		switch typ {
		case "summary":
			return fmt.Sprintf("# TYPE %s summary\n%s_sum{own=\"1\"} 1\n%s_count{own=\"1\"} 1", name, name, name)
		case "histogram":
			return fmt.Sprintf("# TYPE %s histogram\n%s_bucket{le=\"+Inf\",own=\"1\"} 1\n%s_sum{own=\"1\"} 1\n%s_count{own=\"1\"} 1", name, name, name, name)
		}
		return fmt.Sprintf("# TYPE %s %s\n%s{own=\"1\"} 1", name, typ, name)
	}
	empty := func(name, typ string) string { return fmt.Sprintf("# TYPE %s %s", name, typ) }
	var tests []decision
	for _, base := range []struct{ typ, text string }{{"summary", summaryFoo}, {"histogram", histogramFoo}} {
		for _, suffix := range []string{"_count", "_sum", "_bucket"} {
			for _, ctyp := range []string{"gauge", "counter", "untyped", "summary", "histogram"} {
				if ctyp == "summary" || ctyp == "histogram" {
					if suffix != "_count" {
						continue // enough to see that the collider's type does not matter
					}
				}
				c := collider("foo"+suffix, ctyp)
				err := store.ErrInvalid
				if base.typ == "summary" && suffix == "_bucket" {
					err = nil
				}
				name := fmt.Sprintf("%s foo vs %s foo%s", base.typ, ctyp, suffix)
				tests = append(tests,
					decision{name: name + "/base first, other group", prior: []op{put("job=a", base.text)}, push: put("job=b", c).fails(err)},
					decision{name: name + "/suffix first, other group", prior: []op{put("job=a", c)}, push: put("job=b", base.text).fails(err)},
					decision{name: name + "/one push", push: put("job=a", base.text, c).fails(err)},
					decision{name: name + "/one push POST", push: post("job=a", base.text, c).fails(err)},
					decision{name: name + "/base first, same group POST", prior: []op{put("job=a", base.text)}, push: post("job=a", c).fails(err)},
					decision{name: name + "/suffix first, same group POST", prior: []op{put("job=a", c)}, push: post("job=a", base.text).fails(err)},
					// PUT replaces the other family, so nothing collides.
					decision{name: name + "/base first, same group PUT", prior: []op{put("job=a", base.text)}, push: put("job=a", c)},
					decision{name: name + "/suffix first, same group PUT", prior: []op{put("job=a", c)}, push: put("job=a", base.text)},
					// Empty families never collide.
					decision{name: name + "/empty base", prior: []op{put("job=a", c)}, push: put("job=b", empty("foo", base.typ))},
					decision{name: name + "/empty suffix", prior: []op{put("job=a", base.text)}, push: put("job=b", empty("foo"+suffix, ctyp))},
					decision{name: name + "/empty base in one push", push: put("job=a", empty("foo", base.typ), c)},
					decision{name: name + "/base deleted", prior: []op{put("job=a", base.text), del("job=a")}, push: put("job=b", c)},
					decision{name: name + "/suffix deleted", prior: []op{put("job=a", c), del("job=a")}, push: put("job=b", base.text)},
				)
				if ctyp == "gauge" {
					// The other family in the same group is replaced by an
					// empty one in the same POST.
					tests = append(tests,
						decision{name: name + "/base emptied in same POST", prior: []op{put("job=a", base.text)}, push: post("job=a", empty("foo", base.typ), c)},
						decision{name: name + "/suffix emptied in same POST", prior: []op{put("job=a", c)}, push: post("job=a", empty("foo"+suffix, ctyp), base.text)},
					)
				}
			}
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkDecision(t, newStore, tt, tt.prior)
		})
	}
}

func testLastPushSuccessful(t *testing.T, newStore func(*testing.T, store.Options) Store) {
	e := newEnv(t, newStore, store.Options{})
	f := func(sec int64, o op, want bool) {
		t.Helper()
		e.clock.Set(sec)
		e.do(o)
		v := e.s.View()
		snapshot(t, v, nil)
		if len(v.Groups) != 1 {
			t.Fatalf("after %v: %d groups, want 1", o, len(v.Groups))
		}
		if got := v.Groups[0].LastPushSuccessful(); got != want {
			t.Errorf("after %v at %d: LastPushSuccessful() = %v, want %v", o, sec, got, want)
		}
	}
	bad := put("job=a", "foo 1 1").fails(store.ErrTimestamp)
	f(100, bad, false) // a group created by a failure never succeeded
	f(200, put("job=a", "foo 1"), true)
	f(300, bad, false)
	f(400, post("job=a"), true)
	f(400, bad, true) // push time >= failure time
}

func testGen(t *testing.T, newStore func(*testing.T, store.Options) Store) {
	e := newEnv(t, newStore, store.Options{})
	gen := e.s.View().Gen
	sec := int64(100)
	f := func(o op, changes bool) {
		t.Helper()
		sec += 100
		e.clock.Set(sec)
		e.do(o)
		got := e.s.View().Gen
		if again := e.s.View().Gen; again != got {
			t.Errorf("after %v: Gen changed from %d to %d without a change", o, got, again)
		}
		if changes == (got == gen) {
			t.Errorf("after %v: Gen %d -> %d, want change: %v", o, gen, got, changes)
		}
		gen = got
	}
	f(del("job=a"), false)
	f(wipe(), false)
	f(put("job=a", "foo 1"), true)
	f(post("job=a"), true)
	f(put("job=a", "foo 1 1").fails(store.ErrTimestamp), true)
	f(put("job=b", `foo{job="x"} 1`+"\n"+`foo{job="y"} 1`).fails(store.ErrInvalid), true)
	f(put("job=a,instance=", "foo 1").fails(store.ErrInvalid), false) // timestamps collide: no group
	f(del("job=c"), false)
	f(del("job=b"), true)
	f(wipe(), true)
	f(wipe(), false)
}

func testViewImmutable(t *testing.T, newStore func(*testing.T, store.Options) Store) {
	e := newEnv(t, newStore, store.Options{})
	e.do(put("job=a", "foo 1\nbar 2"))
	e.do(put("job=b", "foo 1"))
	v := e.s.View()
	want := format(snapshot(t, v, nil))
	fams := v.Groups[0].Families
	e.clock.Set(200)
	e.do(put("job=a", "foo 3"))
	e.do(post("job=b", "baz 3"))
	e.do(put("job=b", "x 1 1").fails(store.ErrTimestamp))
	e.do(put("job=c", "x 1"))
	e.do(del("job=a"))
	compare(t, "old View after changes", format(snapshot(t, v, nil)), want)
	if fams.Len() != 4 || fams.Get("bar") == nil {
		t.Errorf("old group's families changed: %v", fams)
	}
	e.do(wipe())
	compare(t, "old View after Wipe", format(snapshot(t, v, nil)), want)
	if n := len(e.s.View().Groups); n != 0 {
		t.Errorf("View after Wipe has %d groups", n)
	}
}

func testStats(t *testing.T, newStore func(*testing.T, store.Options) Store) {
	e := newEnv(t, newStore, store.Options{})
	check := func(what string, want store.Stats) {
		t.Helper()
		v := e.s.View()
		snapshot(t, v, nil)
		if got := e.s.Stats(); got != recount(v) {
			t.Errorf("%s: Stats() = %+v, recount of View %+v", what, got, recount(v))
		}
		if got := e.s.Stats(); got.Groups != want.Groups || got.Series != want.Series || (want.Bytes >= 0 && got.Bytes != want.Bytes) {
			t.Errorf("%s: Stats() = %+v, want %+v", what, got, want)
		}
	}
	check("empty", store.Stats{})
	// 2 counters + 1 histogram + 1 empty family + 2 timestamp gauges.
	e.do(put("job=a", "# TYPE foo counter\nfoo{x=\"1\"} 1\nfoo{x=\"2\"} 1\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n# TYPE e gauge"))
	check("one group", store.Stats{Groups: 1, Series: 5, Bytes: -1})
	e.clock.Set(200)
	e.do(post("job=a", "foo 1"))
	check("POST", store.Stats{Groups: 1, Series: 4, Bytes: -1})
	e.clock.Set(300)
	e.do(put("job=a", "foo 1 1").fails(store.ErrTimestamp))
	check("failure of existing group", store.Stats{Groups: 1, Series: 4, Bytes: -1})
	e.clock.Set(400)
	e.do(put("job=b", "foo 1 1").fails(store.ErrTimestamp))
	check("failure of new group", store.Stats{Groups: 2, Series: 6, Bytes: -1})
	e.clock.Set(500)
	e.do(put("job=b", "bar 1"))
	check("push after failure", store.Stats{Groups: 2, Series: 7, Bytes: -1})
	e.do(del("job=a"))
	check("Delete", store.Stats{Groups: 1, Series: 3, Bytes: -1})
	e.do(del("job=b"))
	check("Delete all", store.Stats{})

	e.do(put("job=a", "foo 1"))
	e.do(put("job=b", "foo 1 1").fails(store.ErrTimestamp))
	e.clock.Set(600)
	e.do(put("job=a", "foo 1 1").fails(store.ErrTimestamp))
	e.do(wipe())
	check("Wipe", store.Stats{})
}

// testConcurrent pushes to different groups from several goroutines while
// others take Views; run it with -race.
func testConcurrent(t *testing.T, newStore func(*testing.T, store.Options) Store) {
	e := newEnv(t, newStore, store.Options{})
	const workers, pushes = 8, 40
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				v := e.s.View()
				for _, g := range v.Groups {
					for _, f := range g.Families.All() {
						if _, err := f.Decode(); err != nil {
							t.Error(err)
							return
						}
					}
				}
				_ = e.s.Stats()
			}
		}()
	}
	for w := range workers {
		key := Key(t, fmt.Sprintf("job=w,instance=%d", w))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range pushes {
				body := fmt.Sprintf("# TYPE foo counter\nfoo{i=\"%d\"} %d\n# TYPE bar gauge\nbar %d\n", i%3, i, i)
				fams := Families(t, body)
				if err := e.s.Push(key, fams, i%2 == 0); err != nil {
					t.Errorf("push %d of worker %d: %v", i, w, err)
				}
				if i%10 == 4 {
					if err := e.s.Delete(key); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	v := e.s.View()
	snapshot(t, v, nil)
	if len(v.Groups) != workers {
		t.Errorf("%d groups, want %d", len(v.Groups), workers)
	}
	if got := e.s.Stats(); got != recount(v) {
		t.Errorf("Stats() = %+v, recount %+v", got, recount(v))
	}
	if err := e.s.Wipe(); err != nil {
		t.Fatal(err)
	}
	if got := e.s.Stats(); got != (store.Stats{}) {
		t.Errorf("Stats() after Wipe = %+v", got)
	}
}

// testConcurrentConflicts starts conflicting pushes to different groups at
// once: whichever wins, the store must stay consistent, and a push must
// be in the store exactly when it was accepted.
func testConcurrentConflicts(t *testing.T, newStore func(*testing.T, store.Options) Store) {
	pushes := []struct{ key, body string }{
		{"job=a", "# TYPE foo counter\nfoo{x=\"1\"} 1"},
		{"job=a,x=1", "# TYPE foo counter\nfoo 1"},    // same series
		{"job=b", "# TYPE foo gauge\nfoo{x=\"2\"} 1"}, // other type
		{"job=c", "# TYPE s summary\ns_sum 1\ns_count 1"},
		{"job=d", "# TYPE s_count gauge\ns_count 1"}, // suffix
		{"job=j", "bar 1"},
		{"job=j,instance=", "baz 1"}, // timestamp series
	}
	rounds := 100
	if testing.Short() {
		rounds = 20
	}
	for round := range rounds {
		e := newEnv(t, newStore, store.Options{})
		start := make(chan struct{})
		errs := make([]error, len(pushes))
		var wg sync.WaitGroup
		// A panicking Push may leave the store locked: report it
		// instead of waiting for the others.
		panics := make(chan string, len(pushes))
		for i, p := range pushes {
			key, fams := Key(t, p.key), Families(t, p.body)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					if r := recover(); r != nil {
						panics <- fmt.Sprintf("PUT %s %q panicked: %v\n%s", p.key, p.body, r, debug.Stack())
					}
				}()
				<-start
				errs[i] = e.s.Push(key, fams, true)
			}()
		}
		close(start)
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case msg := <-panics:
			t.Fatalf("round %d: %s", round, msg)
		case <-time.After(time.Minute):
			t.Fatalf("round %d: pushes did not finish", round)
		}
		select {
		case msg := <-panics:
			t.Fatalf("round %d: %s", round, msg)
		default:
		}
		v := e.s.View()
		groups := map[string]snapGroup{}
		for _, g := range snapshot(t, v, nil) {
			groups[g.key.ID()] = g
		}
		for i, p := range pushes {
			g, ok := groups[Key(t, p.key).ID()]
			if stored := ok && g.push == 100; stored != (errs[i] == nil) {
				t.Errorf("round %d: PUT %s %q: error %v, but stored: %v", round, p.key, p.body, errs[i], stored)
			}
			if errs[i] != nil && !errors.Is(errs[i], store.ErrInvalid) {
				t.Errorf("round %d: PUT %s: %v", round, p.key, errs[i])
			}
		}
		if got := e.s.Stats(); got != recount(v) {
			t.Errorf("round %d: Stats() = %+v, recount %+v", round, got, recount(v))
		}
	}
}
