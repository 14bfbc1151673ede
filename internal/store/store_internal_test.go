package store

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/grouping"
)

// checkIndex rebuilds the indexes and totals from the groups and compares
// them with the store's: names (type, group count, reserved), series
// owners, escaped names and Stats.
func checkIndex(t *testing.T, s *Store) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	type entry struct {
		typ      dto.MetricType
		reserved bool
		groups   int
	}
	wantNames := map[string]entry{}
	for name, e := range s.names {
		if e.reserved {
			wantNames[name] = entry{typ: e.typ, reserved: true}
		}
		if e.retyping != 0 {
			t.Errorf("name %s: retyping = %d with no write pending", name, e.retyping)
		}
	}
	wantSeries := map[uint64]uint32{}
	var st Stats
	for id, g := range s.groups {
		if g.Key.ID() != id {
			t.Errorf("group %s stored under ID %q", g.Key, id)
		}
		st.Groups++
		names := make([]string, 0, g.Families.Len())
		for name, f := range g.Families.All() {
			names = append(names, name)
			st.Bytes += f.Size()
			st.Series += f.Series
			if f.Series == 0 {
				if len(g.Families.lookup(name).hashes) != 0 {
					t.Errorf("group %s: empty family %s has hashes", g.Key, name)
				}
				continue
			}
			mf, err := f.Decode()
			if err != nil {
				t.Fatal(err)
			}
			hashes := g.Families.lookup(name).hashes
			if len(hashes) != len(mf.Metric) {
				t.Errorf("group %s: family %s has %d hashes for %d metrics", g.Key, name, len(hashes), len(mf.Metric))
				continue
			}
			for i, m := range mf.Metric {
				h := seriesHash(name, m.Label)
				if hashes[i] != h {
					t.Errorf("group %s: hash %d of %s is stale", g.Key, i, name)
				}
				if other, dup := wantSeries[h]; dup {
					t.Errorf("series %s%s in groups %q and %q", name, formatLabels(m.Label), s.groupIDs[other], id)
				}
				wantSeries[h] = g.num
			}
			e, ok := wantNames[name]
			if ok && e.typ != f.Type {
				t.Errorf("name %s is %v in group %s and %v elsewhere", name, f.Type, g.Key, e.typ)
			}
			e.typ = f.Type
			e.groups++
			wantNames[name] = e
		}
		if !slices.IsSorted(names) || len(slices.Compact(names)) != g.Families.Len() {
			t.Errorf("group %s: family names %q are not sorted and distinct", g.Key, names)
		}
	}
	gotNames := map[string]entry{}
	for name, e := range s.names {
		gotNames[name] = entry{typ: e.typ, reserved: e.reserved, groups: e.groups}
	}
	if !maps.Equal(gotNames, wantNames) {
		t.Errorf("names index:\n%v\nrecount:\n%v", gotNames, wantNames)
	}
	if !maps.Equal(s.series, wantSeries) {
		t.Errorf("series index has %d entries, recount %d", len(s.series), len(wantSeries))
	}
	wantIDs := map[uint32]string{}
	for id, g := range s.groups {
		if _, dup := wantIDs[g.num]; dup || g.num == 0 {
			t.Errorf("group %s has number %d, which is 0 or taken", g.Key, g.num)
		}
		wantIDs[g.num] = id
	}
	if !maps.Equal(s.groupIDs, wantIDs) {
		t.Errorf("group numbers: %v, recount %v", s.groupIDs, wantIDs)
	}
	if s.scheme == model.UTF8Validation {
		wantEscaped := map[string]map[string]struct{}{}
		for name := range wantNames {
			esc := model.EscapeName(name, model.UnderscoreEscaping)
			if wantEscaped[esc] == nil {
				wantEscaped[esc] = map[string]struct{}{}
			}
			wantEscaped[esc][name] = struct{}{}
		}
		if !maps.EqualFunc(s.escaped, wantEscaped, maps.Equal) {
			t.Errorf("escaped index:\n%v\nrecount:\n%v", s.escaped, wantEscaped)
		}
	}
	if s.stats != st {
		t.Errorf("stats = %+v, recount %+v", s.stats, st)
	}
}

func parseText(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse %q: %v", text, err)
	}
	return fams
}

// TestIndexBookkeeping checks the indexes after every step of random
// sequences of pushes, failures, deletes and wipes, and that nothing but
// the reserved names is left once all groups are gone.
func TestIndexBookkeeping(t *testing.T) {
	bodies := []string{
		"# TYPE a counter\na 1\n",
		"# TYPE a gauge\na{x=\"1\"} 1\na{x=\"2\"} 2\n",
		"# TYPE s summary\ns_sum 1\ns_count 1\n",
		"# TYPE s_count gauge\ns_count 1\n",
		"# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
		"# TYPE go_goroutines counter\ngo_goroutines 1\n",
		"{\"a.b\"} 1\n",
		"a_b 1\n",
		"b 1 1000\n", // timestamp: always rejected
		"",
	}
	keys := []map[string]string{
		{"job": "a"}, {"job": "a", "x": "1"}, {"job": "a", "instance": ""}, {"job": "b"},
	}
	for _, utf8 := range []bool{false, true} {
		for seed := range 10 {
			t.Run(fmt.Sprintf("utf8=%v/seed=%d", utf8, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(seed), 1))
				sec := int64(1000)
				s := New(Options{
					UTF8Names: utf8,
					Reserved:  []Reserved{{Name: "go_goroutines", Type: dto.MetricType_GAUGE}},
					Now:       func() time.Time { return time.Unix(sec, 0) },
				})
				for step := range 300 {
					sec++
					key, err := grouping.FromMap(keys[rng.IntN(len(keys))])
					if err != nil {
						t.Fatal(err)
					}
					var desc string
					switch r := rng.IntN(20); {
					case r < 17:
						fams := map[string]*dto.MetricFamily{}
						var texts []string
						for range rng.IntN(3) {
							text := bodies[rng.IntN(len(bodies))]
							for name, mf := range parseText(t, text) {
								if fams[name] == nil {
									fams[name] = mf
									texts = append(texts, text)
								}
							}
						}
						err := s.Push(key, fams, r < 9)
						desc = fmt.Sprintf("push %s %q replace=%v: %v", key, texts, r < 9, err)
					case r < 19:
						desc = fmt.Sprintf("delete %s: %v", key, s.Delete(key))
					default:
						desc = fmt.Sprintf("wipe: %v", s.Wipe())
					}
					checkIndex(t, s)
					if t.Failed() {
						t.Fatalf("step %d: %s", step, desc)
					}
				}
				for _, g := range s.View().Groups {
					if err := s.Delete(g.Key); err != nil {
						t.Fatal(err)
					}
				}
				checkIndex(t, s)
				if len(s.series) != 0 || s.stats != (Stats{}) {
					t.Errorf("after deleting all groups: %d series indexed, stats %+v", len(s.series), s.stats)
				}
				for name, e := range s.names {
					if !e.reserved || e.groups != 0 {
						t.Errorf("after deleting all groups: name %s left: %+v", name, *e)
					}
				}
			})
		}
	}
}

// TestSeriesHashIsStable pins seriesHash: the hashes are stored with every
// group, and a stored hash that no longer matches would let a series be
// pushed into two groups. The values are those of xxhash's streaming
// digest over the same bytes, which computed them before.
func TestSeriesHashIsStable(t *testing.T) {
	for _, tc := range []struct {
		labels []*dto.LabelPair
		want   uint64
	}{
		{nil, 0x968c717f359fcc9d},
		{[]*dto.LabelPair{{Name: proto.String("instance"), Value: proto.String("")}, {Name: proto.String("job"), Value: proto.String("j")}}, 0xb11cea0bcff65a0d},
		// Longer than the stack buffer.
		{[]*dto.LabelPair{{Name: proto.String("a"), Value: proto.String(string(make([]byte, 300)))}}, 0x85966b9b68261966},
	} {
		if got := seriesHash("metric_name", tc.labels); got != tc.want {
			t.Errorf("seriesHash(%v) = %#x, want %#x", tc.labels, got, tc.want)
		}
	}
}

// TestCheckLabelsKnown checks that checkLabels only skips the checks of
// the very strings the previous metric had: a new string at the same
// position, valid or not, is checked again.
func TestCheckLabelsKnown(t *testing.T) {
	valid, value := "job", "j"
	bad, badValue := "__reserved", "\xff"
	metric := func(name, value *string) *dto.Metric {
		return &dto.Metric{Label: []*dto.LabelPair{{Name: name, Value: value}}}
	}
	for _, tc := range []struct {
		name    string
		metrics []*dto.Metric
		wantErr bool
	}{
		{"shared valid strings", []*dto.Metric{metric(&valid, &value), metric(&valid, &value)}, false},
		{"invalid name after a valid one", []*dto.Metric{metric(&valid, &value), metric(&bad, &value)}, true},
		{"invalid value after a valid one", []*dto.Metric{metric(&valid, &value), metric(&valid, &badValue)}, true},
		{"equal copy of an invalid name", []*dto.Metric{metric(&valid, &value), metric(proto.String("__reserved"), &value)}, true},
	} {
		var prev *dto.Metric
		var err error
		for _, m := range tc.metrics {
			if err = checkLabels("m", dto.MetricType_GAUGE, m, prev, model.UTF8Validation); err != nil {
				break
			}
			prev = m
		}
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err = %v, want error %v", tc.name, err, tc.wantErr)
		}
	}
}
