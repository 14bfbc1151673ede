package store

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/common/model"
)

// Shared is a journal that several stores write and read: replicas of the
// gateway on etcd. Unlike a Journal, it does not just store what the store
// decided. A write is conditional on nothing it relied on having changed
// since the revision its check saw, and the store publishes no change
// itself: every change, its own and the other replicas', comes back
// through Reset and Apply in the journal's order.
type Shared interface {
	// Commit makes w durable if its conditions hold and returns the
	// revision at which it did. It returns a *ConflictError if they did
	// not, a *LimitError if w can never be stored, and any other error
	// if it was not stored or its outcome could not be learned.
	Commit(w *Write) (rev int64, err error)
}

// Write is one change to a shared journal.
type Write struct {
	// ID is the group's ID. Value is its new stored value; nil deletes
	// it. All deletes every group (ID and Value unused).
	ID    string
	Value []byte
	All   bool
	// For a value: Rev is the revision of the group's current value the
	// write replaces (0: there is none), and the write fails if the group
	// changed since. A delete is unconditional.
	Rev int64
	// Base is the revision the check saw; each of Guards must not have
	// changed after it. The write changes each of Guards.
	Base   int64
	Guards []string
}

// ConflictError reports a write that lost a race: something it relied on
// changed. Rev is a revision that includes that change.
type ConflictError struct{ Rev int64 }

func (e *ConflictError) Error() string {
	return "conflicting write by another replica (revision " + strconv.FormatInt(e.Rev, 10) + ")"
}

// Change is one group's change read from a shared journal: its new value
// at revision Rev, or its deletion when Value is nil.
type Change struct {
	ID    string
	Rev   int64
	Value []byte
}

// maxAttempts bounds the writes of one change that lose a race to another
// replica. Of writes racing for a guard one always wins, so with a few
// replicas a handful of attempts is plenty.
const maxAttempts = 8

// applyWait bounds how long a committed write waits to come back through
// Apply (read-your-writes) before it is acknowledged anyway: it is durable,
// this replica is just behind.
const applyWait = 10 * time.Second

// Guard keys. A write whose check relied on the absence of something in
// other groups (a new metric name, a type change, a new series) changes a
// guard key that any write that could contradict it changes too; of two
// such writes checked at the same revision, only the first to commit
// succeeds, the other checks again. Writes that only change values of
// series their group has touch no guard and do not contend.
//
// A name's guard is found by its underscore-escaped form (what a scraper
// without UTF-8 support sees, where two names can clash) and by the base a
// histogram or summary suffix belongs to (h_sum clashes with histogram h).
// Names and series hash into a fixed number of guards so that etcd holds a
// bounded number of them, whatever is pushed, and a write stays within
// etcd's 128 operations per transaction; names sharing a guard contend
// only when both are new.
const (
	nameGuards   = 32
	seriesGuards = 32
)

// A guard is numbered: names' from 0, series' after them.
func nameGuard(name string) int { return int(xxhash.Sum64String(name) % nameGuards) }
func seriesGuard(h uint64) int  { return nameGuards + int(h%seriesGuards) }

func guardKey(g int) string {
	if g < nameGuards {
		return "n" + strconv.Itoa(g)
	}
	return "s" + strconv.Itoa(g-nameGuards)
}

// guardLocks serialize this replica's writes that change the same guard,
// so that they do not race each other in etcd only for all but one to
// check and write again: races are left to writes of different replicas.
type guardLocks struct {
	mu [nameGuards + seriesGuards]sync.Mutex
}

// held is a set of guards locked by one write, in ascending order.
type held []int

// covers reports whether h holds every guard of w.
func (h held) covers(guards []int) bool {
	for _, g := range guards {
		if _, ok := slices.BinarySearch(h, g); !ok {
			return false
		}
	}
	return true
}

// lock locks guards in ascending order, which rules out deadlocks.
func (l *guardLocks) lock(guards []int) held {
	h := slices.Clone(guards)
	slices.Sort(h)
	for _, g := range h {
		l.mu[g].Lock()
	}
	return h
}

func (l *guardLocks) unlock(h held) {
	for _, g := range h {
		l.mu[g].Unlock()
	}
}

// sharedWriteLocked builds the write of ng over old, and returns the
// guards it changes.
func (s *Store) sharedWriteLocked(old, ng *Group) (*Write, []int) {
	w := &Write{ID: ng.Key.ID(), Value: encodeGroup(ng), Base: s.rev}
	if old != nil {
		w.Rev = old.rev
	}
	guards := map[int]bool{}
	for name, f := range ng.Families {
		if f.Series == 0 || (old != nil && old.Families[name] == f) {
			continue
		}
		if e := s.names[name]; name != PushTimeName && name != PushFailureName && (!holds(old, name) || e == nil || e.typ != f.Type) {
			esc := model.EscapeName(name, model.UnderscoreEscaping)
			guards[nameGuard(esc)] = true
			for _, suffix := range []string{"_count", "_sum", "_bucket"} {
				if base, ok := strings.CutSuffix(esc, suffix); ok {
					guards[nameGuard(base)] = true
				}
			}
		}
		for _, h := range ng.hashes[name] {
			if owner, ok := s.series[h]; !ok || old == nil || owner != old.num {
				guards[seriesGuard(h)] = true
			}
		}
	}
	nums := make([]int, 0, len(guards))
	for g := range guards {
		nums = append(nums, g)
		w.Guards = append(w.Guards, guardKey(g))
	}
	return w, nums
}

// commitShared commits w and waits until this store has applied it.
func (s *Store) commitShared(w *Write) error {
	rev, err := s.shared.Commit(w)
	if err != nil {
		var conflict *ConflictError
		var limit *LimitError
		if errors.As(err, &conflict) || errors.As(err, &limit) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	if !s.waitApplied(rev) {
		s.logger.Warn("write committed but not yet applied here; acknowledging it anyway", "revision", rev, "wait", applyWait)
	}
	return nil
}

// waitApplied waits until the store has applied rev, for at most
// applyWait, and reports whether it has.
func (s *Store) waitApplied(rev int64) bool {
	var timeout <-chan time.Time
	for {
		s.mu.Lock()
		done, applied := s.rev >= rev, s.applied
		s.mu.Unlock()
		if done {
			return true
		}
		if timeout == nil {
			t := time.NewTimer(applyWait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-applied:
		case <-timeout:
			return false
		}
	}
}

// Revision returns the revision of a shared journal the store has applied.
func (s *Store) Revision() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
}

// Apply applies changes read from a shared journal, in its order, and
// marks rev applied. Changes are committed: they are applied unchecked
// (the journal's conditions kept them consistent). A value that does not
// decode is skipped and reported in the returned error; the rest apply.
func (s *Store) Apply(rev int64, changes []Change) error {
	groups, errs := s.decodeChanges(changes)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, c := range changes {
		switch {
		case c.Value == nil:
			s.deleteLocked(c.ID)
		case groups[i] != nil:
			s.applyLocked(groups[i])
		}
	}
	s.setRevLocked(rev)
	return errs
}

// Reset replaces the whole store by the groups of a shared journal at
// revision rev, as Apply would from empty.
func (s *Store) Reset(rev int64, values []Change) error {
	groups, errs := s.decodeChanges(values)
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.groups {
		s.deleteLocked(id)
	}
	for _, g := range groups {
		if g != nil {
			s.applyLocked(g)
		}
	}
	s.setRevLocked(rev)
	return errs
}

func (s *Store) decodeChanges(changes []Change) ([]*Group, error) {
	groups := make([]*Group, len(changes))
	var errs []error
	for i, c := range changes {
		if c.Value == nil {
			continue
		}
		g, p, err := s.decodeValue(c.Value)
		if err == nil && g.Key.ID() != c.ID {
			err = fmt.Errorf("%w: value of group %q holds group %q", ErrCorrupt, c.ID, g.Key.ID())
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("revision %d: %w", c.Rev, err))
			continue
		}
		ng := newGroup(g.Key, nil, true, p, g.PushTime, g.FailTime)
		ng.rev = c.Rev
		groups[i] = ng
	}
	return groups, errors.Join(errs...)
}

// applyLocked publishes a committed group value unchecked.
func (s *Store) applyLocked(ng *Group) {
	old := s.groups[ng.Key.ID()]
	if old != nil {
		ng.num = old.num
	}
	for name, f := range ng.Families {
		if e := s.names[name]; f.Series > 0 && e != nil && e.typ != f.Type && e.groups-boolInt(holds(old, name)) > 0 {
			s.logger.Error("applied group is inconsistent with another group; exposition may fail scrapes until one changes",
				"grouping_key", ng.Key.String(), "metric", name, "type", f.Type, "other_type", e.typ)
		}
	}
	r := s.reserveLocked(old, ng)
	s.publishLocked(old, ng, r)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *Store) setRevLocked(rev int64) {
	if rev <= s.rev {
		return
	}
	s.rev = rev
	close(s.applied)
	s.applied = make(chan struct{})
}
