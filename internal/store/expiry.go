package store

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Group expiry (opt-in; the reference never deletes a group by itself).
//
// A group's deadline is its last successful push plus its expiry: the
// group's own ExpireAfter if set (a push's Pushgate-Expire-After header),
// else the operator's rule for it (Options.ExpireRule), else
// Options.ExpireAfter. Both parts are in the stored value, so a
// deadline survives a restart, and one that passed meanwhile expires right
// after start. A group that was never pushed successfully (created by a
// failed push) counts from its last failed push instead.
//
// The deadlines of all groups that have one sit in a min-heap kept in step
// with the groups under mu (publishLocked, deleteLocked): RunExpiry sleeps
// until the earliest, instead of scanning the groups. An expiry goes
// through the normal durable delete and is conditional on the group still
// being expired when the delete is built, so that with a shared journal,
// where every replica runs RunExpiry, one replica deletes it and a group
// pushed again meanwhile on any replica stays.

// NeverExpire, as a group's ExpireAfter, keeps it from expiring whatever
// Options.ExpireAfter says (a push's "Pushgate-Expire-After: 0").
const NeverExpire time.Duration = -1

// expiryRetry is how long an expiry whose delete failed waits to be tried
// again.
const expiryRetry = time.Second

// expiryItem is a group's place in the deadline heap.
type expiryItem struct {
	id    string
	at    time.Time
	index int
}

// expiryHeap is a min-heap of deadlines with an index by group ID, so that
// a push moves its group's deadline in O(log n). Guarded by Store.mu.
type expiryHeap struct {
	items []*expiryItem
	byID  map[string]*expiryItem
	// wake gets a signal (never blocking) when the earliest deadline
	// becomes earlier, for RunExpiry to sleep less.
	wake chan struct{}
}

func newExpiryHeap() expiryHeap {
	return expiryHeap{byID: map[string]*expiryItem{}, wake: make(chan struct{}, 1)}
}

func (h *expiryHeap) Len() int           { return len(h.items) }
func (h *expiryHeap) Less(i, j int) bool { return h.items[i].at.Before(h.items[j].at) }
func (h *expiryHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].index, h.items[j].index = i, j
}

func (h *expiryHeap) Push(x any) {
	it := x.(*expiryItem)
	it.index = len(h.items)
	h.items = append(h.items, it)
}

func (h *expiryHeap) Pop() any {
	n := len(h.items) - 1
	it := h.items[n]
	h.items[n] = nil
	h.items = h.items[:n]
	return it
}

// set schedules id at at, replacing its previous deadline.
func (h *expiryHeap) set(id string, at time.Time) {
	if it := h.byID[id]; it != nil {
		if it.at.Equal(at) {
			return
		}
		it.at = at
		heap.Fix(h, it.index)
	} else {
		it = &expiryItem{id: id, at: at}
		h.byID[id] = it
		heap.Push(h, it)
	}
	if h.items[0].id == id {
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
}

func (h *expiryHeap) remove(id string) {
	if it := h.byID[id]; it != nil {
		heap.Remove(h, it.index)
		delete(h.byID, id)
	}
}

// popDue removes and returns the IDs whose deadline is not after now, at
// most limit of them.
func (h *expiryHeap) popDue(now time.Time, limit int) []string {
	var ids []string
	for len(h.items) > 0 && len(ids) < limit && !h.items[0].at.After(now) {
		it := heap.Pop(h).(*expiryItem)
		delete(h.byID, it.id)
		ids = append(ids, it.id)
	}
	return ids
}

// next returns the earliest deadline.
func (h *expiryHeap) next() (time.Time, bool) {
	if len(h.items) == 0 {
		return time.Time{}, false
	}
	return h.items[0].at, true
}

// Deadline returns when g expires, and false if it never does.
func (s *Store) Deadline(g *Group) (time.Time, bool) {
	expire := g.ExpireAfter
	if expire == 0 && s.expireRule != nil {
		if d, ok := s.expireRule(g.Key); ok {
			expire = d
		}
	}
	if expire == 0 {
		expire = s.expireAfter
	}
	if expire <= 0 {
		return time.Time{}, false
	}
	base := g.PushTime
	if base.IsZero() {
		base = g.FailTime
	}
	if base.IsZero() {
		return time.Time{}, false
	}
	return base.Add(expire), true
}

func (s *Store) expired(g *Group, now time.Time) bool {
	at, ok := s.Deadline(g)
	return ok && !now.Before(at)
}

// scheduleLocked keeps the heap in step with a published group value.
func (s *Store) scheduleLocked(g *Group) {
	if at, ok := s.Deadline(g); ok {
		s.expiry.set(g.Key.ID(), at)
	} else {
		s.expiry.remove(g.Key.ID())
	}
}

// RescheduleExpiry computes every group's deadline again, after the rules
// that give expiries changed (a reload).
func (s *Store) RescheduleExpiry() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.groups {
		s.scheduleLocked(g)
	}
}

// RunExpiry deletes groups as they expire, until ctx is done. Start it once
// the store is restored (or loaded), since it writes to the journal.
func (s *Store) RunExpiry(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.ExpireDue()
		s.mu.Lock()
		next, ok := s.expiry.next()
		s.mu.Unlock()
		wait := time.Hour // only a bound: a new earlier deadline wakes us
		if ok {
			wait = min(wait, next.Sub(s.now()))
		}
		timer.Reset(max(wait, 0))
		select {
		case <-ctx.Done():
			return
		case <-s.expiry.wake:
		case <-timer.C:
		}
	}
}

// ExpireDue deletes the groups whose deadline has passed now, and returns
// how many it deleted. A delete that fails is tried again expiryRetry
// later; one warning per call says how many failed (while the storage is
// down, that is one line a second, not one per group). RunExpiry calls
// it; tests with their own clock do too.
func (s *Store) ExpireDue() int {
	now := s.now()
	var (
		mu       sync.Mutex // guards the counts below
		n, fails int
		firstErr error
		firstKey string
	)
	for {
		// In batches, so that a mass expiry holds mu briefly at a time.
		s.mu.Lock()
		ids := s.expiry.popDue(now, expiryBatch)
		s.mu.Unlock()
		if len(ids) == 0 {
			break
		}
		// Several at once with a journal: it shares one commit (and
		// fsync) between concurrent writes, not between one after
		// another. In memory, one is fastest.
		workers := 1
		if s.journal != nil || s.shared != nil {
			workers = min(expiryWorkers, len(ids))
		}
		work := make(chan string)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for id := range work {
					deleted, err := s.expire(id, now)
					mu.Lock()
					switch {
					case err != nil:
						if key, failed := s.retryExpiry(id, now); failed {
							if fails++; firstErr == nil {
								firstErr, firstKey = err, key
							}
						}
					case deleted != nil:
						n++
						s.metrics.expired.Inc()
						at, _ := s.Deadline(deleted)
						s.logger.Info("group expired", "grouping_key", deleted.Key.String(), "deadline", at)
					}
					mu.Unlock()
				}
			})
		}
		for _, id := range ids {
			work <- id
		}
		close(work)
		wg.Wait()
	}
	if fails > 0 {
		s.logger.Warn("expire groups; trying again", "failed", fails, "grouping_key", firstKey, "err", firstErr, "retry_in", expiryRetry)
	}
	return n
}

// Mass expiry: how many deadlines one hold of mu takes from the heap, and
// how many deletes run at once with a journal.
const (
	expiryBatch   = 1024
	expiryWorkers = 32
)

// retryExpiry schedules a group whose expiry failed to be tried again, and
// returns its key for the warning; false if the group is gone meanwhile.
func (s *Store) retryExpiry(id string, now time.Time) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[id]
	if g == nil {
		return "", false
	}
	if _, ok := s.expiry.byID[id]; !ok {
		s.expiry.set(id, now.Add(expiryRetry))
	}
	return g.Key.String(), true
}

// expire deletes the group if it is still expired at now, through the
// normal durable delete, and returns the value it deleted (nil: none).
func (s *Store) expire(id string, now time.Time) (*Group, error) {
	s.writers.RLock()
	defer s.writers.RUnlock()
	defer s.keys.lock(id)()
	if s.shared != nil {
		// Built under mu from the value this replica has applied, and
		// committed only if the group has not changed since: a push on
		// another replica or another replica's expiry of it wins, and
		// this delete is built again and finds nothing to do.
		var deleted *Group
		err := s.write(id, func(old *Group) (*Group, error) {
			deleted = nil
			if old == nil || !s.expired(old, now) {
				return nil, nil
			}
			deleted = old
			return deletion, nil
		}, nil)
		if err != nil {
			return nil, err
		}
		return deleted, nil
	}
	// The key lock keeps every other write of the group out until the
	// delete is published, so the check still holds then.
	s.mu.Lock()
	old := s.groups[id]
	s.mu.Unlock()
	if old == nil || !s.expired(old, now) {
		return nil, nil
	}
	if s.journal != nil {
		if err := s.journal.Remove(id); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrStorage, err)
		}
	}
	s.mu.Lock()
	s.deleteLocked(id)
	s.mu.Unlock()
	return old, nil
}

// errNegativeExpiry is returned for a negative expiry other than NeverExpire.
var errNegativeExpiry = errors.New("expiry must not be negative")

func newExpiredCounter() prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{
		Name: expiredName,
		Help: "Groups deleted because they were not pushed successfully for their expiry (--push.expire-after or Pushgate-Expire-After).",
	})
}

const expiredName = "pushgate_groups_expired_total"
