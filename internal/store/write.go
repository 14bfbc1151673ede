package store

import (
	"errors"
	"fmt"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/pushgate/pushgate/internal/family"
	"github.com/pushgate/pushgate/internal/grouping"
)

// ErrStorage is wrapped by errors of the journal: the change was not made.
var ErrStorage = errors.New("storage failed")

// Every change to a group goes the same way:
//
//  1. prepare (no lock): sanitize, validate, encode the pushed families;
//  2. under mu: check against the indexes and build the new group value;
//  3. commit it, which differs by journal:
//     - a local journal (or none): reserve the new value's index entries
//     under mu (so that concurrent pushes to other groups see them),
//     write the value (no lock but the group's own; this is where
//     concurrent writes share an fsync), then under mu publish it and drop
//     the old value's entries, or undo the reservation if the write
//     failed;
//     - a shared journal (replicas on etcd): write the value on condition
//     that nothing the check relied on changed since the revision it saw;
//     on a conflict, catch up and go back to 2. The store publishes
//     nothing itself: every change, its own included, comes back through
//     Apply in the journal's order, and the write returns once it has.
//
// A failed write therefore leaves nothing behind, and readers only ever see
// durable groups.

// Push stores fams as the group key. With replace (PUT) all families of the
// group are replaced, otherwise (POST) only those of the names pushed. fams
// are the freshly decoded push; Push takes ownership and modifies them,
// and keeps none of their messages once it returns (strings it may keep):
// the push API reuses their memory.
//
// A push that is invalid or would make the exposition inconsistent returns
// an error wrapping ErrInvalid and changes nothing but the group's
// push_failure_time_seconds. Unlike the reference, a failed push to a new
// group creates that group (with push_time_seconds 0) only where its
// timestamp series collide with no other group, so the store always stays
// consistent. An error wrapping ErrStorage means the journal failed and
// nothing changed.
func (s *Store) Push(key grouping.Key, fams map[string]*dto.MetricFamily, replace bool) error {
	return s.PushExpiring(key, fams, replace, 0)
}

// PushExpiring is Push that also sets the group's own expiry (its
// ExpireAfter): 0 for none, so that Options.ExpireAfter applies;
// NeverExpire for never. Only a successful push sets it; a failed one
// leaves the group's expiry and deadline as they were.
func (s *Store) PushExpiring(key grouping.Key, fams map[string]*dto.MetricFamily, replace bool, expireAfter time.Duration) error {
	if expireAfter < NeverExpire {
		return fmt.Errorf("%w: %s", errNegativeExpiry, expireAfter)
	}
	s.writers.RLock()
	defer s.writers.RUnlock()
	defer s.keys.lock(key.ID())()

	if err := s.checkPushSize(fams); err != nil {
		return err
	}
	now := s.now()
	p, err := prepare(key, fams, s.scheme, s.limits, now, s.labels.get())
	if p != nil {
		defer s.labels.put(p.labels) // fams are the caller's again once Push returns
	}
	if err != nil {
		var limit *LimitError
		if !errors.As(err, &limit) {
			s.recordFailure(key, now)
		}
		return err
	}
	tsLabels := timestampLabels(key)
	pushTime, pushTimeHash, err := timestampFamily(tsLabels, PushTimeName, pushTimeHelp, now, now)
	if err != nil {
		return err
	}
	// For a new group; an existing one keeps its failure time, so this is
	// encoded only when the group looks new here, outside mu (and in build
	// should it have gone since).
	var noFailure *family.Family
	var noFailureHash uint64
	if s.Group(key.ID()) == nil {
		if noFailure, noFailureHash, err = timestampFamily(tsLabels, PushFailureName, pushFailureHelp, time.Time{}, now); err != nil {
			return err
		}
	}
	pushed := len(p.families)
	var instances map[uint64]string
	if s.shared != nil {
		instances = p.instances(key)
	}
	err = s.write(key.ID(), func(old *Group) (*Group, error) {
		var failure *family.Family
		var failureHash uint64
		var failTime time.Time
		if old != nil {
			m := old.Families.lookup(PushFailureName)
			failure, failureHash, failTime = m.f, m.hashes[0], old.FailTime
		} else {
			if noFailure == nil {
				var err error
				if noFailure, noFailureHash, err = timestampFamily(tsLabels, PushFailureName, pushFailureHelp, time.Time{}, now); err != nil {
					return nil, err
				}
			}
			failure, failureHash = noFailure, noFailureHash
		}
		// A retry after a conflict builds again from the pushed families.
		p.families, p.series = p.families[:pushed], p.series[:pushed]
		p.addTimestamps(pushTime, pushTimeHash, failure, failureHash)
		if err := s.checkLocked(key, old, replace, p); err != nil {
			return nil, err
		}
		if old == nil && s.limits.groups > 0 && s.stats.Groups >= s.limits.groups {
			return nil, &LimitError{Kind: TotalGroups, Got: s.stats.Groups + 1, Max: s.limits.groups}
		}
		ng := newGroup(key, old, replace, p, now, failTime)
		ng.ExpireAfter = expireAfter
		if err := s.checkTotalLocked(old, ng); err != nil {
			return nil, err
		}
		return ng, nil
	}, instances)
	if errors.Is(err, ErrInvalid) {
		s.recordFailure(key, now)
	}
	return err
}

// write builds the group's next value under mu with build (nil: nothing
// to write; deletion, with a shared journal only: delete the group) and
// commits it; with a shared journal it builds again after a lost race, a
// few times. instances is for the shared journal's guards (see
// sharedWriteLocked). The caller holds the group's key lock.
func (s *Store) write(id string, build func(old *Group) (*Group, error), instances map[uint64]string) error {
	var guards held
	defer func() { s.guards.unlock(guards) }()
	for attempt := 1; ; {
		s.mu.Lock()
		old := s.groups[id]
		ng, err := build(old)
		if err != nil || ng == nil {
			s.mu.Unlock()
			return err
		}
		if s.shared == nil {
			r := s.reserveLocked(old, ng)
			s.mu.Unlock()
			return s.commit(old, ng, r)
		}
		if ng == deletion {
			ng = nil
		}
		w, need := s.sharedWriteLocked(id, old, ng, instances)
		s.mu.Unlock()
		if !guards.covers(need) {
			// Wait for this replica's writes of those guards, then
			// check again against what they did.
			s.guards.unlock(guards)
			guards = s.guards.lock(need)
			continue
		}
		if ng != nil {
			w.Value = encodeGroup(ng) // ng is not published: no lock needed
		}
		err = s.commitShared(w)
		var conflict *ConflictError
		if !errors.As(err, &conflict) {
			return err
		}
		s.metrics.conflicts.Inc()
		if attempt == maxAttempts {
			return fmt.Errorf("%w: gave up after %d conflicting writes by other replicas; retry", ErrStorage, attempt)
		}
		attempt++
		s.metrics.retries.Inc()
		s.waitApplied(conflict.Rev)
	}
}

// deletion is what write's build returns to delete the group.
var deletion = &Group{}

// checkPushSize refuses a push over the per-push series limit before any
// work is spent on it.
func (s *Store) checkPushSize(fams map[string]*dto.MetricFamily) error {
	if s.limits.perPush <= 0 {
		return nil
	}
	n := 0
	for _, mf := range fams {
		n += len(mf.Metric)
	}
	if n > s.limits.perPush {
		return &LimitError{Kind: SeriesPerPush, Got: n, Max: s.limits.perPush}
	}
	return nil
}

// checkTotalLocked refuses a change that would take the store over its
// series limit. Writes still pending are not counted, so concurrent pushes
// can overshoot it by what they hold.
func (s *Store) checkTotalLocked(old, ng *Group) error {
	if s.limits.total <= 0 {
		return nil
	}
	grow := ng.Series() - 2 // the timestamp series are not counted
	if old != nil {
		grow -= old.Series() - 2
	}
	if total := s.stats.Series - 2*s.stats.Groups + grow; grow > 0 && total > s.limits.total {
		return &LimitError{Kind: TotalSeries, Got: total, Max: s.limits.total}
	}
	return nil
}

// newGroup builds the group that results from applying a checked push to old.
func newGroup(key grouping.Key, old *Group, replace bool, p *prepared, pushTime, failTime time.Time) *Group {
	ng := &Group{Key: key, PushTime: pushTime, FailTime: failTime}
	keep := old != nil && !replace // the old families the push leaves
	n := len(p.families)
	if keep {
		n += old.Families.Len()
	}
	members := make([]member, 0, n)
	if old != nil {
		ng.num = old.num
	}
	if keep {
		for _, m := range old.Families.list {
			if !p.has(m.f.Name) {
				members = append(members, m)
			}
		}
	}
	for i, f := range p.families {
		m := member{f: f}
		if f.Series > 0 {
			m.hashes = p.series[i]
		}
		members = append(members, m)
	}
	ng.Families = makeFamilies(members)
	return ng
}

// commit makes ng durable and publishes it, or undoes its reservation.
func (s *Store) commit(old, ng *Group, r *reservation) error {
	if s.journal != nil {
		value := appendGroup(s.values.get(), ng)
		err := s.journal.Save(ng.Key.ID(), value)
		s.values.put(value[:0]) // bytes keep nothing alive: nothing to clear
		if err != nil {
			s.mu.Lock()
			s.undoLocked(r)
			s.mu.Unlock()
			return fmt.Errorf("%w: %w", ErrStorage, err)
		}
	}
	s.mu.Lock()
	s.publishLocked(old, ng, r)
	s.mu.Unlock()
	return nil
}

// recordFailure sets push_failure_time_seconds of the group to now; the
// caller holds the group's key lock. Failing to record it is logged, not
// returned: the push has failed already.
func (s *Store) recordFailure(key grouping.Key, now time.Time) {
	tsLabels := timestampLabels(key)
	failure, failureHash, err := timestampFamily(tsLabels, PushFailureName, pushFailureHelp, now, now)
	if err != nil {
		s.logger.Error("record push failure", "grouping_key", key.String(), "err", err)
		return
	}
	pushTime, pushTimeHash, err := timestampFamily(tsLabels, PushTimeName, pushTimeHelp, time.Time{}, now)
	if err != nil {
		s.logger.Error("record push failure", "grouping_key", key.String(), "err", err)
		return
	}
	err = s.write(key.ID(), func(old *Group) (*Group, error) {
		if old != nil {
			ng := *old
			ng.Families = old.Families.with(failure, []uint64{failureHash})
			ng.FailTime = now
			return &ng, nil
		}
		if s.limits.groups > 0 && s.stats.Groups >= s.limits.groups {
			return nil, nil
		}
		for _, h := range []uint64{pushTimeHash, failureHash} {
			if owner, ok := s.series[h]; ok {
				// The reference would create a colliding group here and
				// fail every scrape until it is deleted; we do not.
				s.logger.Debug("not recording failure of push to new group: its timestamp series collide with another group",
					"grouping_key", key.String(), "other_group", s.describeLocked(owner))
				return nil, nil
			}
		}
		return &Group{
			Key:      key,
			Families: makeFamilies([]member{{pushTime, []uint64{pushTimeHash}}, {failure, []uint64{failureHash}}}),
			FailTime: now,
		}, nil
	}, nil)
	if err != nil {
		s.logger.Warn("record push failure", "grouping_key", key.String(), "err", err)
	}
}

// Delete removes the group. Deleting an unknown group is a no-op. An error
// wrapping ErrStorage means the journal failed and the group is still there.
func (s *Store) Delete(key grouping.Key) error {
	s.writers.RLock()
	defer s.writers.RUnlock()
	defer s.keys.lock(key.ID())()
	if s.shared != nil {
		return s.write(key.ID(), func(*Group) (*Group, error) { return deletion, nil }, nil)
	}
	s.mu.Lock()
	old := s.groups[key.ID()]
	s.mu.Unlock()
	if old == nil {
		return nil
	}
	if s.journal != nil {
		if err := s.journal.Remove(key.ID()); err != nil {
			return fmt.Errorf("%w: %w", ErrStorage, err)
		}
	}
	s.mu.Lock()
	s.deleteLocked(key.ID())
	s.mu.Unlock()
	return nil
}

// Wipe removes all groups. It waits for writes in progress.
func (s *Store) Wipe() error {
	s.writers.Lock()
	defer s.writers.Unlock()
	if s.shared != nil {
		return s.commitShared(&Write{All: true, Guards: allNameGuards()})
	}
	if s.journal != nil {
		if err := s.journal.RemoveAll(); err != nil {
			return fmt.Errorf("%w: %w", ErrStorage, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.groups {
		s.deleteLocked(id)
	}
	return nil
}

// keyLocks serializes writes per group key.
type keyLocks struct {
	mu sync.Mutex // guards m
	m  map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int // guarded by keyLocks.mu
}

// lock locks the key and returns its unlock function.
func (k *keyLocks) lock(id string) func() {
	k.mu.Lock()
	l := k.m[id]
	if l == nil {
		l = &keyLock{}
		k.m[id] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.m, id)
		}
		k.mu.Unlock()
	}
}
