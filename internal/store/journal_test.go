package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/store/storetest"
)

// reload builds a new store from what the journal holds, as a restart does.
func reloadFrom(t *testing.T, j *gateJournal) *store.Store {
	t.Helper()
	s := store.New(store.Options{Journal: j})
	for _, v := range j.values() {
		if err := s.Replay(v); err != nil {
			t.Fatalf("load: %v", err)
		}
	}
	return s
}

// exposition renders the whole store as sorted text lines, for comparisons.
func storeText(t *testing.T, s *store.Store) string {
	t.Helper()
	var lines []string
	for _, g := range s.View().Groups {
		for _, f := range g.Families.All() {
			text, err := f.AppendText(nil)
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, strings.Split(strings.TrimSpace(string(text)), "\n")...)
		}
	}
	sortLines(lines)
	return strings.Join(lines, "\n")
}

func sortLines(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestJournalRoundTrip(t *testing.T) {
	j := &gateJournal{}
	now := time.Unix(1700000000, 0)
	clock := func() time.Time { now = now.Add(time.Second); return now }
	s := store.New(store.Options{Journal: j, Now: clock})
	if err := s.Push(storetest.Key(t, "job=a"), storetest.Families(t, "# TYPE x counter\nx{l=\"1\"} 1\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"), true); err != nil {
		t.Fatal(err)
	}
	if err := s.Push(storetest.Key(t, "job=b,instance=i"), storetest.Families(t, "y 2\n"), true); err != nil {
		t.Fatal(err)
	}
	if err := s.Push(storetest.Key(t, "job=b,instance=i"), storetest.Families(t, "y 1 1\n"), false); !errors.Is(err, store.ErrTimestamp) {
		t.Fatalf("push with timestamp: %v", err)
	}
	if err := s.Push(storetest.Key(t, "job=c"), storetest.Families(t, "z 3\n"), true); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(storetest.Key(t, "job=c")); err != nil {
		t.Fatal(err)
	}

	r := reloadFrom(t, j)
	if got, want := storeText(t, r), storeText(t, s); got != want {
		t.Errorf("reloaded store differs:\n%s\nwant:\n%s", got, want)
	}
	if got, want := r.Stats(), s.Stats(); got != want {
		t.Errorf("reloaded stats = %+v, want %+v", got, want)
	}
	g := r.Group(storetest.Key(t, "job=b,instance=i").ID())
	if g == nil || g.FailTime.IsZero() || g.LastPushSuccessful() {
		t.Errorf("failure time not restored: %+v", g)
	}
	// The reloaded indexes work: a type clash is still detected.
	if err := r.Push(storetest.Key(t, "job=d"), storetest.Families(t, "# TYPE x gauge\nx 1\n"), true); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("type clash after reload: err = %v", err)
	}
}

func TestJournalFailureChangesNothing(t *testing.T) {
	j := &gateJournal{}
	s := store.New(store.Options{Journal: j})
	a := storetest.Key(t, "job=a")
	if err := s.Push(a, storetest.Families(t, "# TYPE x gauge\nx 1\n"), true); err != nil {
		t.Fatal(err)
	}
	before, beforeStats, beforeGen := storeText(t, s), s.Stats(), s.View().Gen

	j.setFail(errors.New("disk full"))
	ops := []struct {
		name string
		do   func() error
	}{
		{"replace", func() error { return s.Push(a, storetest.Families(t, "# TYPE x counter\nx 2\n"), true) }},
		{"new group", func() error {
			return s.Push(storetest.Key(t, "job=b"), storetest.Families(t, "# TYPE y counter\ny 1\n"), true)
		}},
		{"delete", func() error { return s.Delete(a) }},
		{"wipe", func() error { return s.Wipe() }},
	}
	for _, op := range ops {
		if err := op.do(); !errors.Is(err, store.ErrStorage) {
			t.Errorf("%s with failing journal: err = %v, want ErrStorage", op.name, err)
		}
	}
	if got := storeText(t, s); got != before {
		t.Errorf("store changed:\n%s\nwant:\n%s", got, before)
	}
	if got := s.Stats(); got != beforeStats {
		t.Errorf("stats changed: %+v, want %+v", got, beforeStats)
	}
	if got := s.View().Gen; got != beforeGen {
		t.Errorf("generation changed: %d, want %d", got, beforeGen)
	}

	// The reservations were undone: the refused counter y does not block a
	// gauge y, and x is still a gauge.
	j.setFail(nil)
	if err := s.Push(storetest.Key(t, "job=c"), storetest.Families(t, "# TYPE y gauge\ny 1\n"), true); err != nil {
		t.Errorf("push after recovery: %v", err)
	}
	if err := s.Push(storetest.Key(t, "job=d"), storetest.Families(t, "# TYPE x counter\nx 1\n"), true); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("x changed type although the replace failed: err = %v", err)
	}
	if r := reloadFrom(t, j); storeText(t, r) != storeText(t, s) {
		t.Errorf("journal and memory disagree after recovery")
	}
}

func TestReplayRejectsCorruptValues(t *testing.T) {
	j := &gateJournal{}
	s := store.New(store.Options{Journal: j})
	if err := s.Push(storetest.Key(t, "job=a"), storetest.Families(t, "x 1\n"), true); err != nil {
		t.Fatal(err)
	}
	var v []byte
	for _, val := range j.values() {
		v = val
	}
	for i := range v {
		bad := append([]byte(nil), v...)
		bad[i] ^= 0x10
		if err := store.New(store.Options{}).Replay(bad); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("bit flip at byte %d: err = %v, want ErrCorrupt", i, err)
		}
	}
	for n := 0; n < len(v); n++ {
		if err := store.New(store.Options{}).Replay(v[:n]); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: err = %v, want ErrCorrupt", n, err)
		}
	}
}

func FuzzReplay(f *testing.F) {
	j := &gateJournal{}
	s := store.New(store.Options{Journal: j})
	k, _ := grouping.FromMap(map[string]string{"job": "a", "instance": "i"})
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, _ := p.TextToMetricFamilies(strings.NewReader("# TYPE x counter\nx{l=\"v\"} 1\ny 2\n"))
	if err := s.Push(k, fams, true); err != nil {
		f.Fatal(err)
	}
	for _, v := range j.values() {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		s := store.New(store.Options{})
		if err := s.Replay(v); err != nil {
			return
		}
		// A value that loads is consistent: the store can expose it.
		if st := s.Stats(); st.Groups != 1 {
			t.Fatalf("loaded value gives %d groups", st.Groups)
		}
	})
}

func TestImport(t *testing.T) {
	j := &gateJournal{}
	s := store.New(store.Options{Journal: j})
	if err := s.Push(storetest.Key(t, "job=x"), storetest.Families(t, "# TYPE x gauge\nx 1\n"), true); err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1700000000, 0)
	group := func(key, text string) store.Imported {
		return store.Imported{Key: storetest.Key(t, key), Families: storetest.Families(t, text), PushTime: at}
	}
	groups := []store.Imported{
		group("job=a", "# TYPE y gauge\ny{g=\"a\"} 1\n"),
		group("job=b", "# TYPE x counter\nx{g=\"b\"} 1\n"), // x is a gauge
		group("job=c", "# TYPE y gauge\ny{g=\"c\"} 1\n"),
		group("job=a", "# TYPE z gauge\nz 1\n"),            // a is there already
		group("job=d", "# TYPE y counter\ny{g=\"d\"} 1\n"), // y is a gauge in a and c
	}
	before, beforeStats, beforeGen := storeText(t, s), s.Stats(), s.View().Gen

	// A failing write adds nothing, and leaves nothing reserved.
	j.setFail(errors.New("disk full"))
	if _, err := s.Import(groups, j.writeAll); !errors.Is(err, store.ErrStorage) {
		t.Fatalf("import with a failing write: err = %v, want ErrStorage", err)
	}
	if got := storeText(t, s); got != before {
		t.Errorf("store changed by a failed import:\n%s\nwant:\n%s", got, before)
	}
	if s.Stats() != beforeStats || s.View().Gen != beforeGen {
		t.Errorf("stats %+v (gen %d) after a failed import, want %+v (gen %d)", s.Stats(), s.View().Gen, beforeStats, beforeGen)
	}
	j.setFail(nil)
	if len(j.values()) != 1 {
		t.Fatalf("journal holds %d groups after a failed import, want 1", len(j.values()))
	}

	rejected, err := s.Import(groups, j.writeAll)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{false, true, false, true, true} {
		if got := rejected[i] != nil; got != want || (got && !errors.Is(rejected[i], store.ErrInvalid)) {
			t.Errorf("group %d: rejected = %v, want rejected: %v", i, rejected[i], want)
		}
	}
	if got := s.Stats().Groups; got != 3 {
		t.Errorf("%d groups after the import, want 3", got)
	}
	if r := reloadFrom(t, j); storeText(t, r) != storeText(t, s) {
		t.Errorf("journal and memory disagree after the import")
	}
	// The imported groups are indexed: y stays a gauge.
	if err := s.Push(storetest.Key(t, "job=e"), storetest.Families(t, "# TYPE y counter\ny 1\n"), true); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("type clash with an imported group: err = %v", err)
	}
}
