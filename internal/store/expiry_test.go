package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/store/storetest"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1700000000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

const body = "x 1\n"

func push(t *testing.T, s *store.Store, key string, expire time.Duration) {
	t.Helper()
	if err := s.PushExpiring(storetest.Key(t, key), storetest.Families(t, body), true, expire); err != nil {
		t.Fatalf("push %s: %v", key, err)
	}
}

func has(s *store.Store, t *testing.T, key string) bool {
	return s.Group(storetest.Key(t, key).ID()) != nil
}

func TestExpiry(t *testing.T) {
	const expire = time.Minute
	t.Run("at the deadline", func(t *testing.T) {
		c := newFakeClock()
		j := &gateJournal{}
		s := store.New(store.Options{Now: c.Now, Journal: j, ExpireAfter: expire})
		push(t, s, "job=a", 0)
		c.advance(expire - time.Nanosecond)
		if n := s.ExpireDue(); n != 0 || !has(s, t, "job=a") {
			t.Fatalf("expired %d before the deadline", n)
		}
		c.advance(time.Nanosecond)
		if n := s.ExpireDue(); n != 1 || has(s, t, "job=a") {
			t.Fatalf("expired %d at the deadline; group still there: %v", n, has(s, t, "job=a"))
		}
		if len(j.values()) != 0 {
			t.Fatalf("expired group still in the journal")
		}
	})
	t.Run("renewed by a successful push", func(t *testing.T) {
		c := newFakeClock()
		s := store.New(store.Options{Now: c.Now, ExpireAfter: expire})
		push(t, s, "job=a", 0)
		c.advance(expire / 2)
		push(t, s, "job=a", 0)
		c.advance(expire / 2)
		if n := s.ExpireDue(); n != 0 || !has(s, t, "job=a") {
			t.Fatalf("renewed group expired at its first deadline")
		}
		c.advance(expire / 2)
		if n := s.ExpireDue(); n != 1 {
			t.Fatalf("renewed group not expired at its new deadline")
		}
	})
	t.Run("failed push does not renew", func(t *testing.T) {
		c := newFakeClock()
		s := store.New(store.Options{Now: c.Now, ExpireAfter: expire})
		push(t, s, "job=a", 0)
		c.advance(expire / 2)
		// Timestamps are refused; the failure is recorded.
		err := s.PushExpiring(storetest.Key(t, "job=a"), storetest.Families(t, "x 1 1\n"), false, time.Hour)
		if !errors.Is(err, store.ErrTimestamp) {
			t.Fatalf("push with a timestamp: %v", err)
		}
		if g := s.Group(storetest.Key(t, "job=a").ID()); g.FailTime.IsZero() || g.ExpireAfter != 0 {
			t.Fatalf("failed push: fail time %v, expiry %v", g.FailTime, g.ExpireAfter)
		}
		c.advance(expire / 2)
		if n := s.ExpireDue(); n != 1 {
			t.Fatalf("failed push renewed the group")
		}
	})
	t.Run("header overrides the flag", func(t *testing.T) {
		c := newFakeClock()
		s := store.New(store.Options{Now: c.Now, ExpireAfter: expire})
		push(t, s, "job=long", 2*expire)
		push(t, s, "job=never", store.NeverExpire)
		push(t, s, "job=flag", 0)
		c.advance(expire)
		if n := s.ExpireDue(); n != 1 || has(s, t, "job=flag") {
			t.Fatalf("expired %d at the flag's deadline, want job=flag only", n)
		}
		c.advance(expire)
		if n := s.ExpireDue(); n != 1 || has(s, t, "job=long") {
			t.Fatalf("expired %d at the header's deadline, want job=long", n)
		}
		c.advance(1000 * time.Hour)
		if n := s.ExpireDue(); n != 0 || !has(s, t, "job=never") {
			t.Fatalf("group pushed with expiry 0 (never) expired")
		}
		// A push without the header falls back to the flag.
		push(t, s, "job=never", 0)
		c.advance(expire)
		if n := s.ExpireDue(); n != 1 {
			t.Fatalf("group pushed again without the header kept its old expiry")
		}
	})
	t.Run("header without the flag", func(t *testing.T) {
		c := newFakeClock()
		s := store.New(store.Options{Now: c.Now})
		push(t, s, "job=a", expire)
		push(t, s, "job=b", 0)
		c.advance(100 * expire)
		if n := s.ExpireDue(); n != 1 || has(s, t, "job=a") || !has(s, t, "job=b") {
			t.Fatalf("expired %d; want job=a only", n)
		}
	})
	t.Run("failed delete is retried", func(t *testing.T) {
		c := newFakeClock()
		j := &gateJournal{}
		s := store.New(store.Options{Now: c.Now, Journal: j, ExpireAfter: expire})
		push(t, s, "job=a", 0)
		c.advance(expire)
		j.setFail(errors.New("disk gone"))
		if n := s.ExpireDue(); n != 0 || !has(s, t, "job=a") {
			t.Fatalf("expired %d with a failing journal", n)
		}
		j.setFail(nil)
		c.advance(time.Second)
		if n := s.ExpireDue(); n != 1 {
			t.Fatalf("failed expiry not retried")
		}
	})
}

// TestExpiryRestart: the deadline survives a restart, and one that passed
// while the store was down expires right after start.
func TestExpiryRestart(t *testing.T) {
	c := newFakeClock()
	j := &gateJournal{}
	s := store.New(store.Options{Now: c.Now, Journal: j, ExpireAfter: time.Hour})
	push(t, s, "job=header", time.Minute)
	push(t, s, "job=flag", 0)
	push(t, s, "job=never", store.NeverExpire)

	c.advance(30 * time.Second)
	r := store.New(store.Options{Now: c.Now, Journal: j, ExpireAfter: time.Hour})
	for _, v := range j.values() {
		if err := r.Replay(v); err != nil {
			t.Fatal(err)
		}
	}
	g := r.Group(storetest.Key(t, "job=header").ID())
	if at, ok := r.Deadline(g); !ok || !at.Equal(c.Now().Add(30*time.Second)) {
		t.Fatalf("deadline after restart %v %v, want %v", at, ok, c.Now().Add(30*time.Second))
	}

	// Down for two hours: both expiring groups' deadlines passed.
	c.advance(2 * time.Hour)
	r = store.New(store.Options{Now: c.Now, Journal: j, ExpireAfter: time.Hour})
	for _, v := range j.values() {
		if err := r.Replay(v); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.RunExpiry(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for r.Stats().Groups != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if r.Stats().Groups != 1 || !has(r, t, "job=never") {
		t.Fatalf("after start: %d groups, want only job=never", r.Stats().Groups)
	}
	if len(j.values()) != 1 {
		t.Fatalf("journal holds %d groups, want 1", len(j.values()))
	}
}

// TestRunExpiryWakes: RunExpiry sleeping on a far deadline wakes for an
// earlier one pushed meanwhile, on the real clock.
func TestRunExpiryWakes(t *testing.T) {
	s := store.New(store.Options{})
	push(t, s, "job=far", time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.RunExpiry(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(10 * time.Millisecond)
	start := time.Now()
	push(t, s, "job=near", 50*time.Millisecond)
	for has(s, t, "job=near") {
		if time.Since(start) > 5*time.Second {
			t.Fatal("group not expired")
		}
		time.Sleep(time.Millisecond)
	}
	if !has(s, t, "job=far") {
		t.Fatal("far group expired")
	}
}

// TestExpiryPrecedence: a push's own expiry beats the operator's rule,
// which beats the flag; a changed rule applies once rescheduled.
func TestExpiryPrecedence(t *testing.T) {
	c := newFakeClock()
	ruleFor := map[string]time.Duration{"cron": 2 * time.Minute}
	var mu sync.Mutex
	rule := func(k grouping.Key) (time.Duration, bool) {
		mu.Lock()
		defer mu.Unlock()
		d, ok := ruleFor[k.Labels()[0].Value]
		return d, ok
	}
	s := store.New(store.Options{Now: c.Now, ExpireAfter: time.Minute, ExpireRule: rule})
	push(t, s, "job=plain", 0)                       // the flag: 1m
	push(t, s, "job=cron", 0)                        // the rule: 2m
	push(t, s, "job=cron,instance=h", 0)             // the rule too (matched by job)
	push(t, s, "job=cron,instance=x", 3*time.Minute) // its own: 3m
	c.advance(time.Minute)
	s.ExpireDue()
	if has(s, t, "job=plain") || !has(s, t, "job=cron") {
		t.Fatal("after 1m: want only the flag's group gone")
	}
	c.advance(time.Minute)
	s.ExpireDue()
	if has(s, t, "job=cron") || has(s, t, "job=cron,instance=h") || !has(s, t, "job=cron,instance=x") {
		t.Fatal("after 2m: want the rule's groups gone, the push's own kept")
	}
	// A reload that lengthens the rule, then a new group under it.
	push(t, s, "job=cron", 0)
	mu.Lock()
	ruleFor["cron"] = 10 * time.Minute
	mu.Unlock()
	s.RescheduleExpiry()
	c.advance(3 * time.Minute)
	s.ExpireDue()
	if !has(s, t, "job=cron") || has(s, t, "job=cron,instance=x") {
		t.Fatal("after the reload: want the rule's longer expiry, the push's own (3m) gone")
	}
}
