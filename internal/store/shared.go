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
	"github.com/pushgate/pushgate/internal/grouping"
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
	// it. All deletes every group and changes Guards, unconditionally
	// (ID, Value, Rev, Base and Checks unused).
	ID    string
	Value []byte
	All   bool
	// Rev is the revision of the group's current value the write replaces
	// or deletes (0: there is none); the write fails if the group changed
	// since.
	Rev int64
	// Base is the revision the check saw; each of Guards and Checks must
	// not have changed after it. The write changes each of Guards.
	Base   int64
	Guards []string
	Checks []string
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

// Guard keys. Two writes to different groups, each consistent with what
// its replica saw, may together make the exposition inconsistent. Each
// such pair shares a guard key that one of them changes and the other
// compares: of two writes checked at the same revision, the first to
// commit wins and the other checks again.
//
//   - A write that decides a metric name's type (the name is new to the
//     store, or its sole holder retypes it) or that removes the name's last
//     holder changes the name's guards; one that adds a holder of a name
//     others hold compares them (many groups joining a name do not
//     contend). A name's guards are those of its underscore-escaped form
//     (what a scraper without UTF-8 support sees, where two names can
//     clash) and of the base a histogram or summary suffix belongs to
//     (h_sum clashes with histogram h).
//   - A write that adds series its group did not have changes the series
//     guard of their job and instance labels: a series in two groups has
//     the same labels in both, these two included, so the groups that could
//     clash share it, while groups of different instances rarely do.
//
// Writes that only change values of series their group has touch no guard
// and do not contend. Names and series hash into a fixed number of guards,
// so that etcd holds a bounded number of them whatever is pushed, and a
// write stays within etcd's 128 operations per transaction.
const (
	nameGuards   = 32
	seriesGuards = 64
)

// A guard is numbered: names' from 0, series' after them.
func nameGuard(name string) int { return int(xxhash.Sum64String(name) % nameGuards) }

func seriesGuard(job, instance string) int {
	return nameGuards + int(xxhash.Sum64String(job+"\xff"+instance)%seriesGuards)
}

func guardKey(g int) string {
	if g < nameGuards {
		return "n" + strconv.Itoa(g)
	}
	return "s" + strconv.Itoa(g-nameGuards)
}

// nameGuards adds the guards of name to set.
func addNameGuards(set map[int]bool, name string) {
	esc := model.EscapeName(name, model.UnderscoreEscaping)
	set[nameGuard(esc)] = true
	for _, suffix := range []string{"_count", "_sum", "_bucket"} {
		if base, ok := strings.CutSuffix(esc, suffix); ok {
			set[nameGuard(base)] = true
		}
	}
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

// sharedWriteLocked builds the write that replaces old by ng (nil: deletes
// the group), but for its Value, which needs no lock (encode it after
// releasing mu), and returns the guards it changes. instances gives the
// instance label of a pushed series by hash, for a group whose key has
// none; nil means "".
func (s *Store) sharedWriteLocked(id string, old, ng *Group, instances map[uint64]string) (*Write, []int) {
	w := &Write{ID: id, Base: s.rev}
	if old != nil {
		w.Rev = old.rev
	}
	changes, compares := map[int]bool{}, map[int]bool{}
	if ng != nil {
		job, instance, keyed := jobInstance(ng.Key)
		for _, m := range ng.Families.list {
			name, f := m.f.Name, m.f
			if f.Series == 0 || (old != nil && old.Families.Get(name) == f) {
				continue
			}
			if name != PushTimeName && name != PushFailureName {
				e := s.names[name]
				others := e != nil && e.groups-boolInt(holds(old, name)) > 0
				switch {
				case holds(old, name) && e != nil && e.typ != f.Type: // retyped
					addNameGuards(changes, name)
				case holds(old, name):
				case !others && (e == nil || !e.reserved):
					addNameGuards(changes, name)
				default:
					addNameGuards(compares, name)
				}
			}
			for _, h := range m.hashes {
				if owner, ok := s.series[h]; !ok || old == nil || owner != old.num {
					inst := instance
					if !keyed {
						inst = instances[h]
					}
					changes[seriesGuard(job, inst)] = true
				}
			}
		}
	}
	if old != nil {
		for name, f := range old.Families.All() {
			if e := s.names[name]; f.Series > 0 && !holds(ng, name) && e != nil && !e.reserved && e.groups == 1 {
				addNameGuards(changes, name) // its last holder
			}
		}
	}
	nums := make([]int, 0, len(changes))
	for g := range changes {
		nums = append(nums, g)
		w.Guards = append(w.Guards, guardKey(g))
	}
	for g := range compares {
		if !changes[g] {
			w.Checks = append(w.Checks, guardKey(g))
		}
	}
	return w, nums
}

// jobInstance returns the job label of a key, and its instance label if it
// has one.
func jobInstance(k grouping.Key) (job, instance string, keyed bool) {
	for _, l := range k.Labels() {
		switch l.Name {
		case grouping.JobLabel:
			job = l.Value
		case instanceLabel:
			instance, keyed = l.Value, true
		}
	}
	return job, instance, keyed
}

// allNameGuards are the guards a wipe changes: it removes every holder.
func allNameGuards() []string {
	keys := make([]string, nameGuards)
	for g := range keys {
		keys[g] = guardKey(g)
	}
	return keys
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
		ng.ExpireAfter = g.ExpireAfter
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
	for name, f := range ng.Families.All() {
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
