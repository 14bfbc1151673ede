package storetest

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/store"
)

// refModel is a slow reference store: it decides a push by building the whole
// resulting exposition and checking it with consistent. It handles the
// inputs testRandom generates (valid names, no repeated label names).
type refModel struct {
	reserved []store.Reserved
	groups   map[string]*modelGroup
}

type modelGroup struct {
	key        grouping.Key
	push, fail float64
	fams       map[string]*dto.MetricFamily // sanitized; no timestamp families
}

func newRefModel(reserved []store.Reserved) *refModel {
	return &refModel{reserved: reserved, groups: map[string]*modelGroup{}}
}

// clone copies the refModel; families are never modified, so they are shared.
func (m *refModel) clone() *refModel {
	c := newRefModel(m.reserved)
	for id, g := range m.groups {
		ng := *g
		ng.fams = make(map[string]*dto.MetricFamily, len(g.fams))
		for n, mf := range g.fams {
			ng.fams[n] = mf
		}
		c.groups[id] = &ng
	}
	return c
}

// push applies a push and reports whether it was accepted. It takes
// ownership of fams.
func (m *refModel) push(key grouping.Key, fams map[string]*dto.MetricFamily, replace bool, now float64) bool {
	for _, mf := range fams {
		for _, met := range mf.Metric {
			if met.TimestampMs != nil {
				m.fail(key, now)
				return false
			}
		}
	}
	c := m.clone()
	g := c.groups[key.ID()]
	if g == nil {
		g = &modelGroup{key: key, fams: map[string]*dto.MetricFamily{}}
		c.groups[key.ID()] = g
	}
	if replace {
		g.fams = map[string]*dto.MetricFamily{}
	}
	for name, mf := range fams {
		if name == store.PushTimeName || name == store.PushFailureName {
			continue
		}
		for _, met := range mf.Metric {
			met.Label = sanitizedLabels(met.Label, key)
		}
		g.fams[name] = mf
	}
	g.push = now
	if c.check() != nil {
		m.fail(key, now)
		return false
	}
	m.groups = c.groups
	return true
}

// fail records a failed push: it sets the failure time of an existing
// group, or creates the group unless that makes the exposition inconsistent.
func (m *refModel) fail(key grouping.Key, now float64) {
	if g := m.groups[key.ID()]; g != nil {
		g.fail = now
		return
	}
	c := m.clone()
	c.groups[key.ID()] = &modelGroup{key: key, fail: now, fams: map[string]*dto.MetricFamily{}}
	if c.check() == nil {
		m.groups = c.groups
	}
}

func (m *refModel) check() error {
	var all []*dto.MetricFamily
	for _, g := range m.groups {
		for _, mf := range g.fams {
			all = append(all, mf)
		}
		for _, name := range []string{store.PushTimeName, store.PushFailureName} {
			all = append(all, &dto.MetricFamily{
				Name: proto.String(name), Type: dto.MetricType_GAUGE.Enum(),
				Metric: []*dto.Metric{{Label: sanitizedLabels(nil, g.key), Gauge: &dto.Gauge{Value: proto.Float64(0)}}},
			})
		}
	}
	return consistent(all, m.reserved)
}

func (m *refModel) snapshot() []snapGroup {
	out := make([]snapGroup, 0, len(m.groups))
	for _, g := range m.groups {
		sg := snapGroup{key: g.key, push: g.push, fail: g.fail}
		for _, mf := range g.fams {
			sg.fams = append(sg.fams, mf)
		}
		sort.Slice(sg.fams, func(i, j int) bool { return sg.fams[i].GetName() < sg.fams[j].GetName() })
		out = append(out, sg)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key.ID() < out[j].key.ID() })
	return out
}

// randomKeys overlap: {job="a"} and {job="a",instance=""} share their
// timestamp series, and {job="a",x="1"} holds the series a{x="1"} of
// {job="a"}.
var randomKeys = []string{"job=a", "job=a,x=1", "job=b", "job=a,instance=", "job=b,instance=i"}

// randomFamilies each hold one family; they conflict by type, suffix and
// series. The lines with only a TYPE are empty families.
var randomFamilies = []string{
	"# TYPE a counter\na 1",
	"# TYPE a gauge\na 2",
	"# TYPE a counter\na{x=\"1\"} 3\na{x=\"2\"} 4",
	"# HELP a Other help.\n# TYPE a counter\na 5",
	"# TYPE a gauge",
	"# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3",
	"# TYPE s counter",
	"# TYPE s_count gauge\ns_count 1",
	"# TYPE s_count gauge",
	"# TYPE s_bucket gauge\ns_bucket 1",
	"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2",
	"# TYPE h summary",
	"h_bucket 5",
	"# TYPE h_sum counter\nh_sum{x=\"1\"} 1",
	"# TYPE h_count histogram",
	"# TYPE go_goroutines gauge\ngo_goroutines 1",
	"# TYPE go_goroutines counter\ngo_goroutines 1",
	"d{job=\"x\"} 1\nd{job=\"y\"} 2",
	"t 1 1000",
	"push_time_seconds 5",
}

// testRandom runs seeded random sequences of PUT, POST, DELETE and WIPE
// against the store and the refModel, comparing every decision and the whole
// store after every step.
func testRandom(t *testing.T, newStore func(*testing.T, store.Options) Store) {
	seeds, steps := 64, 500
	if testing.Short() {
		seeds, steps = 4, 200
	}
	// Parse each family once; pushes clone them.
	pool := make([]map[string]*dto.MetricFamily, len(randomFamilies))
	for i, text := range randomFamilies {
		pool[i] = Families(t, text)
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			runRandom(t, newStore, uint64(seed), steps, pool)
		})
	}
}

func runRandom(t *testing.T, newStore func(*testing.T, store.Options) Store, seed uint64, steps int, pool []map[string]*dto.MetricFamily) {
	rng := rand.New(rand.NewPCG(seed, 0))
	e := newEnv(t, newStore, store.Options{Reserved: Reserved[:1]})
	m := newRefModel(e.opts.Reserved)
	var history []string
	statsReported := false
	gen := e.s.View().Gen
	prev := ""

	for step := range steps {
		now := int64(1000 + step)
		e.clock.Set(now)
		key := Key(t, randomKeys[rng.IntN(len(randomKeys))])
		var desc string
		var accepted, want bool
		switch r := rng.IntN(100); {
		case r < 80:
			replace := r < 45
			fams := map[string]*dto.MetricFamily{}
			var texts []string
			for range rng.IntN(4) {
				i := rng.IntN(len(pool))
				for name, mf := range pool[i] {
					if _, dup := fams[name]; !dup {
						fams[name] = mf
						texts = append(texts, randomFamilies[i])
					}
				}
			}
			method := "POST"
			if replace {
				method = "PUT"
			}
			desc = fmt.Sprintf("%s %s %q", method, key, strings.Join(texts, "\n"))
			want = m.push(key, CloneFamilies(fams), replace, float64(now))
			err := e.s.Push(key, CloneFamilies(fams), replace)
			accepted = err == nil
			if err != nil {
				if cerr := checkErr(err, store.ErrInvalid); cerr != nil {
					t.Fatalf("seed %d step %d: %s: %v", seed, step, desc, cerr)
				}
				desc += " -> " + err.Error()
			}
		case r < 96:
			desc = fmt.Sprintf("DELETE %s", key)
			delete(m.groups, key.ID())
			if err := e.s.Delete(key); err != nil {
				t.Fatalf("seed %d step %d: %s: %v", seed, step, desc, err)
			}
			accepted, want = true, true
		default:
			desc = "WIPE"
			m.groups = map[string]*modelGroup{}
			if err := e.s.Wipe(); err != nil {
				t.Fatalf("seed %d step %d: WIPE: %v", seed, step, err)
			}
			accepted, want = true, true
		}
		history = append(history, fmt.Sprintf("%d: %s", step, desc))
		if len(history) > 12 {
			history = history[1:]
		}
		if accepted != want {
			t.Fatalf("seed %d step %d: store accepted=%v, refModel accepted=%v\nlast steps:\n%s\nstore before:\n%s",
				seed, step, accepted, want, strings.Join(history, "\n"), prev)
		}
		v := e.s.View()
		got := format(snapshot(t, v, e.opts.Reserved))
		wantText := format(m.snapshot())
		if got != wantText {
			t.Fatalf("seed %d step %d: store differs from refModel\nlast steps:\n%s\ndiff (+store -refModel):\n%s",
				seed, step, strings.Join(history, "\n"), diff(got, wantText))
		}
		if changed := got != prev; changed == (v.Gen == gen) {
			t.Errorf("seed %d step %d: %s: Gen %d -> %d, but store changed: %v", seed, step, desc, gen, v.Gen, changed)
		}
		gen, prev = v.Gen, got
		if st := e.s.Stats(); st != recount(v) && !statsReported {
			statsReported = true
			t.Errorf("seed %d step %d: Stats() = %+v, recount of View %+v\nlast steps:\n%s",
				seed, step, st, recount(v), strings.Join(history, "\n"))
		}
	}

	// Deleting everything leaves nothing behind: no stats, no names, no
	// series. Each pool family then pushes alone as on an empty store.
	for _, g := range e.s.View().Groups {
		if err := e.s.Delete(g.Key); err != nil {
			t.Fatal(err)
		}
	}
	if st, v := e.s.Stats(), e.s.View(); st != (store.Stats{}) || len(v.Groups) != 0 {
		t.Errorf("seed %d: after deleting all groups: Stats() = %+v, %d groups", seed, st, len(v.Groups))
	}
	key := Key(t, "job=fresh")
	for i, fams := range pool {
		want := newRefModel(e.opts.Reserved).push(key, CloneFamilies(fams), true, 1)
		err := e.s.Push(key, CloneFamilies(fams), true)
		if (err == nil) != want {
			t.Errorf("seed %d: after deleting all, PUT %q: error %v, refModel accepted: %v", seed, randomFamilies[i], err, want)
		}
		if err := e.s.Delete(key); err != nil {
			t.Fatal(err)
		}
	}
	if st := e.s.Stats(); st != (store.Stats{}) {
		t.Errorf("seed %d: Stats() = %+v after pushing and deleting each family", seed, st)
	}
}
