// Package storetest is the conformance suite of store backends. Every
// backend's test calls Run, so the in-memory store and later durable or
// remote ones are held to the same behaviour: the push rules of
// prometheus/pushgateway (its README, storage/diskmetricstore.go and
// client_golang's Gatherers consistency check) plus the documented
// differences of package store.
//
// Results are compared as a canonical text of the whole store: one header
// line per group with its push_time_seconds and push_failure_time_seconds,
// then its other families in the text format, sorted by name. Every View the
// suite takes is also checked for the invariants of a consistent exposition.
//
// cases.go holds the table-driven tests, model.go the random sequences
// checked against a slow reference model.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/store"
)

// Store is the contract the suite checks. *store.Store implements it.
type Store interface {
	// Push stores fams as the group key, taking ownership of fams.
	Push(key grouping.Key, fams map[string]*dto.MetricFamily, replace bool) error
	// Delete removes a group; unknown groups are a no-op.
	Delete(key grouping.Key) error
	// Wipe removes all groups.
	Wipe() error
	// View returns an immutable snapshot of all groups sorted by key ID.
	View() *store.View
	// Stats counts groups, series and bytes of encoded families
	// (len(Metrics)+len(Text) of every family held).
	Stats() store.Stats
}

// Run runs the suite. newStore must return an empty store configured with
// opts (opts.Now is always set by the suite); it may register cleanups on t.
func Run(t *testing.T, newStore func(t *testing.T, opts store.Options) Store) {
	t.Run("Sequences", func(t *testing.T) { testSequences(t, newStore) })
	t.Run("Decisions", func(t *testing.T) { testDecisions(t, newStore) })
	t.Run("Suffixes", func(t *testing.T) { testSuffixes(t, newStore) })
	t.Run("LastPushSuccessful", func(t *testing.T) { testLastPushSuccessful(t, newStore) })
	t.Run("Gen", func(t *testing.T) { testGen(t, newStore) })
	t.Run("ViewImmutable", func(t *testing.T) { testViewImmutable(t, newStore) })
	t.Run("Stats", func(t *testing.T) { testStats(t, newStore) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newStore) })
	t.Run("ConcurrentConflicts", func(t *testing.T) { testConcurrentConflicts(t, newStore) })
	t.Run("Random", func(t *testing.T) { testRandom(t, newStore) })
}

// errPrefix is the reference's message for every rejected push.
const errPrefix = "pushed metrics are invalid or inconsistent with existing metrics"

// Reserved are gateway families that some tests configure as
// Options.Reserved: a gauge, a summary and a gauge named like a histogram's
// _bucket.
var Reserved = []store.Reserved{
	{Name: "go_goroutines", Type: dto.MetricType_GAUGE},
	{Name: "go_gc_duration_seconds", Type: dto.MetricType_SUMMARY},
	{Name: "reserved_bucket", Type: dto.MetricType_GAUGE},
}

// Clock is a settable clock for Options.Now, safe for concurrent use.
type Clock struct{ sec atomic.Int64 }

// Now returns the current time of the clock.
func (c *Clock) Now() time.Time { return time.Unix(c.sec.Load(), 0) }

// Set sets the clock to sec Unix seconds.
func (c *Clock) Set(sec int64) { c.sec.Store(sec) }

// Key parses "job=a,x=1,instance=" into a grouping key.
func Key(tb testing.TB, s string) grouping.Key {
	tb.Helper()
	m := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		name, value, ok := strings.Cut(pair, "=")
		if !ok {
			tb.Fatalf("bad key %q: pair %q has no '='", s, pair)
		}
		m[name] = value
	}
	k, err := grouping.FromMap(m)
	if err != nil {
		tb.Fatalf("key %q: %v", s, err)
	}
	return k
}

// Families parses each text with the text format parser (UTF-8 names
// allowed, so that the store can be the one to reject them) and merges the
// results. Unlike the parser, it keeps a family that has a TYPE line but no
// samples, as an empty family, the way a protobuf push carries it.
func Families(tb testing.TB, texts ...string) map[string]*dto.MetricFamily {
	tb.Helper()
	out := map[string]*dto.MetricFamily{}
	for _, text := range texts {
		if text != "" && !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(strings.NewReader(text))
		if err != nil {
			tb.Fatalf("parse %q: %v", text, err)
		}
		for _, line := range strings.Split(text, "\n") {
			f := strings.Fields(line)
			if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
				continue
			}
			if _, ok := fams[f[2]]; ok {
				continue
			}
			typ, ok := dto.MetricType_value[strings.ToUpper(f[3])]
			if !ok {
				tb.Fatalf("parse %q: unknown type %q", text, f[3])
			}
			fams[f[2]] = &dto.MetricFamily{Name: proto.String(f[2]), Type: dto.MetricType(typ).Enum()}
		}
		for name, mf := range fams {
			if _, dup := out[name]; dup {
				tb.Fatalf("family %q is in more than one text", name)
			}
			out[name] = mf
		}
	}
	return out
}

// CloneFamilies returns a deep copy of fams, for pushing one template many
// times (Push takes ownership).
func CloneFamilies(fams map[string]*dto.MetricFamily) map[string]*dto.MetricFamily {
	out := make(map[string]*dto.MetricFamily, len(fams))
	for name, mf := range fams {
		out[name] = proto.Clone(mf).(*dto.MetricFamily)
	}
	return out
}

// op is one step of a test: a push, a delete or a wipe.
type op struct {
	kind   string // "PUT", "POST", "DELETE", "WIPE"
	key    string
	bodies []string
	// pb builds a push that the text format cannot express.
	pb  func() map[string]*dto.MetricFamily
	err error // expected: nil, store.ErrInvalid or store.ErrTimestamp
}

func put(key string, bodies ...string) op  { return op{kind: "PUT", key: key, bodies: bodies} }
func post(key string, bodies ...string) op { return op{kind: "POST", key: key, bodies: bodies} }
func del(key string) op                    { return op{kind: "DELETE", key: key} }
func wipe() op                             { return op{kind: "WIPE"} }

func putPB(key string, fams ...*dto.MetricFamily) op {
	return op{kind: "PUT", key: key, pb: func() map[string]*dto.MetricFamily {
		m := map[string]*dto.MetricFamily{}
		for _, mf := range fams {
			m[mf.GetName()] = proto.Clone(mf).(*dto.MetricFamily)
		}
		return m
	}}
}

// fails sets the error the step must return.
func (o op) fails(err error) op { o.err = err; return o }

func (o op) String() string {
	switch o.kind {
	case "DELETE":
		return fmt.Sprintf("DELETE %s", o.key)
	case "WIPE":
		return "WIPE"
	}
	if o.pb != nil {
		return fmt.Sprintf("%s %s <protobuf %v>", o.kind, o.key, o.pb())
	}
	return fmt.Sprintf("%s %s %q", o.kind, o.key, strings.Join(o.bodies, ""))
}

// env is a store under test with its clock and options.
type env struct {
	t     *testing.T
	s     Store
	clock *Clock
	opts  store.Options
}

func newEnv(t *testing.T, newStore func(*testing.T, store.Options) Store, opts store.Options) *env {
	t.Helper()
	c := &Clock{}
	c.Set(100)
	opts.Now = c.Now
	return &env{t: t, s: newStore(t, opts), clock: c, opts: opts}
}

// apply runs o and returns the push error.
func (e *env) apply(o op) error {
	e.t.Helper()
	switch o.kind {
	case "DELETE":
		return e.s.Delete(Key(e.t, o.key))
	case "WIPE":
		return e.s.Wipe()
	}
	var fams map[string]*dto.MetricFamily
	if o.pb != nil {
		fams = o.pb()
	} else {
		fams = Families(e.t, o.bodies...)
	}
	return e.s.Push(Key(e.t, o.key), fams, o.kind == "PUT")
}

// do runs o and fails the test unless it returns the expected error.
func (e *env) do(o op) {
	e.t.Helper()
	if err := checkErr(e.apply(o), o.err); err != nil {
		e.t.Fatalf("%v: %v", o, err)
	}
}

// checkErr reports whether a push error is the expected one.
func checkErr(got, want error) error {
	switch {
	case want == nil && got != nil:
		return fmt.Errorf("unexpected error: %v", got)
	case want == nil:
		return nil
	case got == nil:
		return fmt.Errorf("accepted, want error %v", want)
	case !errors.Is(got, want) || !errors.Is(got, store.ErrInvalid):
		return fmt.Errorf("error %v does not wrap %v", got, want)
	case !strings.HasPrefix(got.Error(), errPrefix):
		return fmt.Errorf("error %q does not start with %q", got, errPrefix)
	}
	return nil
}

// Text checks the invariants of v (see snapshot) and returns its canonical
// text, for comparing stores, e.g. one reloaded from a journal.
func Text(tb testing.TB, v *store.View, reserved []store.Reserved) string {
	tb.Helper()
	return format(snapshot(tb, v, reserved))
}

// state returns the canonical text of the store, after checking its View.
func (e *env) state() string {
	e.t.Helper()
	return format(snapshot(e.t, e.s.View(), e.opts.Reserved))
}

// snapGroup is a group as the canonical text shows it.
type snapGroup struct {
	key        grouping.Key
	push, fail float64
	// fams are the families other than the two timestamp gauges, sorted
	// by name, with sorted labels.
	fams []*dto.MetricFamily
}

// snapshot decodes v and checks the invariants of every View: sorted
// groups, sanitized labels, the two timestamp gauges, Series counts and a
// consistent exposition of all groups together with the reserved families.
func snapshot(tb testing.TB, v *store.View, reserved []store.Reserved) []snapGroup {
	tb.Helper()
	if v == nil {
		tb.Fatal("View returned nil")
	}
	var all []*dto.MetricFamily
	out := make([]snapGroup, 0, len(v.Groups))
	for i, g := range v.Groups {
		if i > 0 && v.Groups[i-1].Key.ID() >= g.Key.ID() {
			tb.Errorf("View groups not sorted by key ID: %s before %s", v.Groups[i-1].Key, g.Key)
		}
		sg := snapGroup{key: g.Key}
		want := sanitizedLabels(nil, g.Key)
		series := 0
		prev := ""
		for name, f := range g.Families.All() {
			if name <= prev {
				tb.Errorf("group %s: family %q after %q: not in the order of names, or twice", g.Key, name, prev)
			}
			prev = name
			mf, err := f.Decode()
			if err != nil {
				tb.Fatalf("group %s: %v", g.Key, err)
			}
			if len(mf.Metric) != f.Series {
				tb.Errorf("group %s: family %s has Series %d but %d metrics", g.Key, name, f.Series, len(mf.Metric))
			}
			series += f.Series
			for _, m := range mf.Metric {
				checkLabels(tb, g.Key, name, m)
			}
			all = append(all, mf)
			if name != store.PushTimeName && name != store.PushFailureName {
				sg.fams = append(sg.fams, mf)
				continue
			}
			if mf.GetType() != dto.MetricType_GAUGE || len(mf.Metric) != 1 || mf.Metric[0].Gauge == nil {
				tb.Errorf("group %s: %s is not one gauge: %v", g.Key, name, mf)
				continue
			}
			if got := labelString(mf.Metric[0].Label); got != labelString(want) {
				tb.Errorf("group %s: %s has labels %s, want %s", g.Key, name, got, labelString(want))
			}
			if name == store.PushTimeName {
				sg.push = mf.Metric[0].Gauge.GetValue()
			} else {
				sg.fail = mf.Metric[0].Gauge.GetValue()
			}
		}
		for _, name := range []string{store.PushTimeName, store.PushFailureName} {
			if g.Families.Get(name) == nil {
				tb.Errorf("group %s has no %s", g.Key, name)
			}
		}
		if sg.push != unixSeconds(g.PushTime) || sg.fail != unixSeconds(g.FailTime) {
			tb.Errorf("group %s: PushTime %v, FailTime %v, but gauges %v, %v", g.Key, g.PushTime, g.FailTime, sg.push, sg.fail)
		}
		if got, want := g.LastPushSuccessful(), sg.push >= sg.fail; got != want {
			tb.Errorf("group %s: LastPushSuccessful() = %v with push time %v and failure time %v", g.Key, got, sg.push, sg.fail)
		}
		if g.Series() != series {
			tb.Errorf("group %s: Series() = %d, families hold %d", g.Key, g.Series(), series)
		}
		sort.Slice(sg.fams, func(i, j int) bool { return sg.fams[i].GetName() < sg.fams[j].GetName() })
		out = append(out, sg)
	}
	if err := consistent(all, reserved); err != nil {
		tb.Errorf("View is inconsistent: %v", err)
	}
	return out
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// checkLabels checks that a stored metric's labels are sorted, unique, carry
// the grouping labels and an instance label.
func checkLabels(tb testing.TB, key grouping.Key, name string, m *dto.Metric) {
	tb.Helper()
	got := map[string]string{}
	for i, lp := range m.Label {
		if i > 0 && m.Label[i-1].GetName() >= lp.GetName() {
			tb.Errorf("group %s: %s%s: labels not sorted and unique", key, name, labelString(m.Label))
		}
		got[lp.GetName()] = lp.GetValue()
	}
	for _, l := range key.Labels() {
		if v, ok := got[l.Name]; !ok || v != l.Value {
			tb.Errorf("group %s: %s%s lacks grouping label %s=%q", key, name, labelString(m.Label), l.Name, l.Value)
		}
	}
	if _, ok := got["instance"]; !ok {
		tb.Errorf("group %s: %s%s has no instance label", key, name, labelString(m.Label))
	}
}

// sanitizedLabels is the naive version of the store's label rule: body
// labels, overwritten by the grouping labels, plus instance="" if absent,
// sorted. The body must not repeat a label name.
func sanitizedLabels(body []*dto.LabelPair, key grouping.Key) []*dto.LabelPair {
	m := map[string]string{}
	for _, lp := range body {
		m[lp.GetName()] = lp.GetValue()
	}
	for _, l := range key.Labels() {
		m[l.Name] = l.Value
	}
	if _, ok := m["instance"]; !ok {
		m["instance"] = ""
	}
	out := make([]*dto.LabelPair, 0, len(m))
	for n, v := range m {
		out = append(out, &dto.LabelPair{Name: proto.String(n), Value: proto.String(v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

func labelString(labels []*dto.LabelPair) string {
	var sb strings.Builder
	sb.WriteByte('{')
	for i, lp := range labels {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "%s=%q", lp.GetName(), lp.GetValue())
	}
	sb.WriteByte('}')
	return sb.String()
}

// consistent checks an exposition the naive way: families grouped by name
// (empty ones ignored, reserved ones added) must agree on type, every series
// (name and label set) must be unique, and no family may be named like the
// _count or _sum of a summary or the _count, _sum or _bucket of a histogram.
func consistent(fams []*dto.MetricFamily, reserved []store.Reserved) error {
	types := map[string]dto.MetricType{}
	for _, r := range reserved {
		types[r.Name] = r.Type
	}
	series := map[string]bool{}
	for _, mf := range fams {
		if len(mf.Metric) == 0 {
			continue
		}
		name := mf.GetName()
		if t, ok := types[name]; ok && t != mf.GetType() {
			return fmt.Errorf("%s is both %v and %v", name, t, mf.GetType())
		}
		types[name] = mf.GetType()
		for _, m := range mf.Metric {
			labels := slices.Clone(m.Label)
			sort.Slice(labels, func(i, j int) bool { return labels[i].GetName() < labels[j].GetName() })
			id := name + labelString(labels)
			if series[id] {
				return fmt.Errorf("series %s appears twice", id)
			}
			series[id] = true
		}
	}
	for name, t := range types {
		var suffixes []string
		switch t {
		case dto.MetricType_SUMMARY:
			suffixes = []string{"_count", "_sum"}
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			suffixes = []string{"_count", "_sum", "_bucket"}
		}
		for _, s := range suffixes {
			if _, ok := types[name+s]; ok {
				return fmt.Errorf("%v %s collides with %s", t, name, name+s)
			}
		}
	}
	return nil
}

// format renders groups as the canonical text.
func format(groups []snapGroup) string {
	var b bytes.Buffer
	for _, g := range groups {
		fmt.Fprintf(&b, "group %s push=%s fail=%s\n", g.key, formatFloat(g.push), formatFloat(g.fail))
		for _, mf := range g.fams {
			if len(mf.Metric) == 0 {
				if mf.GetHelp() != "" {
					fmt.Fprintf(&b, "# HELP %s %s\n", mf.GetName(), mf.GetHelp())
				}
				fmt.Fprintf(&b, "# TYPE %s %s (empty)\n", mf.GetName(), strings.ToLower(mf.GetType().String()))
				continue
			}
			if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
				fmt.Fprintf(&b, "# ERROR %s: %v\n", mf.GetName(), err)
			}
		}
	}
	return b.String()
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// recount computes the Stats of a View.
func recount(v *store.View) store.Stats {
	var st store.Stats
	for _, g := range v.Groups {
		st.Groups++
		for _, f := range g.Families.All() {
			st.Series += f.Series
			st.Bytes += f.Size()
		}
	}
	return st
}

// diff lists the lines only in got and only in want, for failure messages.
func diff(got, want string) string {
	count := map[string]int{}
	for _, l := range strings.Split(want, "\n") {
		count[l]++
	}
	var b strings.Builder
	for _, l := range strings.Split(got, "\n") {
		if count[l] > 0 {
			count[l]--
			continue
		}
		fmt.Fprintf(&b, "+ %s\n", l)
	}
	for _, l := range strings.Split(want, "\n") {
		if count[l] > 0 {
			count[l]--
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	return b.String()
}

// compare fails the test if the store's text is not the wanted one.
func compare(tb testing.TB, what, got, want string) {
	tb.Helper()
	got, want = strings.TrimSpace(got), strings.TrimSpace(want)
	if got != want {
		tb.Errorf("%s:\ngot:\n%s\nwant:\n%s\ndiff (+got -want):\n%s", what, got, want, diff(got, want))
	}
}

// Builders of protobuf families, for pushes the text format cannot express.

func family(name string, typ dto.MetricType, ms ...*dto.Metric) *dto.MetricFamily {
	return &dto.MetricFamily{Name: proto.String(name), Type: typ.Enum(), Metric: ms}
}

func labels(pairs ...string) []*dto.LabelPair {
	var out []*dto.LabelPair
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, &dto.LabelPair{Name: proto.String(pairs[i]), Value: proto.String(pairs[i+1])})
	}
	return out
}

func gauge(v float64, pairs ...string) *dto.Metric {
	return &dto.Metric{Label: labels(pairs...), Gauge: &dto.Gauge{Value: proto.Float64(v)}}
}

func counter(v float64, pairs ...string) *dto.Metric {
	return &dto.Metric{Label: labels(pairs...), Counter: &dto.Counter{Value: proto.Float64(v)}}
}

func summary(pairs ...string) *dto.Metric {
	return &dto.Metric{Label: labels(pairs...), Summary: &dto.Summary{
		SampleCount: proto.Uint64(1), SampleSum: proto.Float64(1),
		Quantile: []*dto.Quantile{{Quantile: proto.Float64(0.5), Value: proto.Float64(1)}},
	}}
}
