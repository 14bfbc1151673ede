package store

import (
	"sync"
	"testing"
	"time"

	"github.com/pushgate/pushgate/internal/grouping"
)

// memShared is a Shared journal in memory for a few replicas: each write
// is conditional on its group's revision, and every change is applied to
// every replica at once, in order.
type memShared struct {
	mu       sync.Mutex
	rev      int64
	revs     map[string]int64
	deletes  int
	replicas []*Store
}

func (m *memShared) Commit(w *Write) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.revs[w.ID] != w.Rev {
		return 0, &ConflictError{Rev: m.rev}
	}
	m.rev++
	if w.Value == nil {
		delete(m.revs, w.ID)
		m.deletes++
	} else {
		m.revs[w.ID] = m.rev
	}
	for _, r := range m.replicas {
		if err := r.Apply(m.rev, []Change{{ID: w.ID, Rev: m.rev, Value: w.Value}}); err != nil {
			return 0, err
		}
	}
	return m.rev, nil
}

// TestExpiryShared: with replicas of a shared journal, an expiry is
// conditional on the group still being expired when its delete is built.
// Both replicas may find the same deadline due; only one deletes, and a
// group pushed again meanwhile on the other replica stays.
func TestExpiryShared(t *testing.T) {
	now := time.Unix(1700000000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	m := &memShared{revs: map[string]int64{}}
	opts := Options{Now: clock, Shared: m, ExpireAfter: time.Minute}
	a, b := New(opts), New(opts)
	m.replicas = []*Store{a, b}
	k, _ := grouping.FromMap(map[string]string{"job": "j"})
	fams := parseText(t, "x 1\n")
	if err := a.Push(k, fams, true); err != nil {
		t.Fatal(err)
	}
	if b.Group(k.ID()) == nil {
		t.Fatal("push not applied to the other replica")
	}

	// Both find the deadline due; each then tries to delete.
	advance(time.Minute)
	due := func(s *Store) []string {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.expiry.popDue(s.now(), 1<<30)
	}
	if da, db := due(a), due(b); len(da) != 1 || len(db) != 1 {
		t.Fatalf("due: %v and %v, want the group on both", da, db)
	}
	ga, err := a.expire(k.ID(), clock())
	if err != nil || ga == nil {
		t.Fatalf("first expiry: %v, %v", ga, err)
	}
	gb, err := b.expire(k.ID(), clock())
	if err != nil || gb != nil {
		t.Fatalf("second expiry deleted again: %v, %v", gb, err)
	}
	if m.deletes != 1 || a.Group(k.ID()) != nil || b.Group(k.ID()) != nil {
		t.Fatalf("%d deletes; group left on a: %v, b: %v", m.deletes, a.Group(k.ID()) != nil, b.Group(k.ID()) != nil)
	}

	// Due on b, but pushed again on a before b's delete is built: kept.
	if err := a.Push(k, parseText(t, "x 2\n"), true); err != nil {
		t.Fatal(err)
	}
	advance(time.Minute)
	if len(due(b)) != 1 {
		t.Fatal("group not due on b")
	}
	if err := a.Push(k, parseText(t, "x 3\n"), true); err != nil {
		t.Fatal(err)
	}
	if gb, err := b.expire(k.ID(), clock()); err != nil || gb != nil {
		t.Fatalf("expiry deleted a group pushed again: %v, %v", gb, err)
	}
	if a.Group(k.ID()) == nil || b.Group(k.ID()) == nil || m.deletes != 1 {
		t.Fatal("group pushed again was deleted")
	}
	// Its new deadline is scheduled on b, which did not push it.
	advance(time.Minute)
	if n := b.ExpireDue(); n != 1 || a.Group(k.ID()) != nil {
		t.Fatalf("b expired %d at the renewed deadline", n)
	}
	if n := a.ExpireDue(); n != 0 || m.deletes != 2 {
		t.Fatalf("a expired %d after b did; %d deletes", n, m.deletes)
	}

	// A replica loading the journal (Reset) schedules the deadlines of
	// the groups it loads, with the group's own expiry.
	if err := a.PushExpiring(k, parseText(t, "x 4\n"), true, time.Hour); err != nil {
		t.Fatal(err)
	}
	c := New(opts)
	g := a.Group(k.ID())
	if err := c.Reset(m.rev, []Change{{ID: k.ID(), Rev: g.rev, Value: encodeGroup(g)}}); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.replicas = append(m.replicas, c)
	m.mu.Unlock()
	advance(time.Minute)
	if n := c.ExpireDue(); n != 0 {
		t.Fatal("loaded group expired by the flag despite its own expiry")
	}
	advance(time.Hour)
	if n := c.ExpireDue(); n != 1 || a.Group(k.ID()) != nil {
		t.Fatalf("loaded replica expired %d at the deadline", n)
	}
}
