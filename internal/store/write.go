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
//  2. under mu: check against the indexes, build the new group value and
//     reserve its index entries (so that concurrent pushes to other groups
//     see them), then release mu;
//  3. write the value to the journal (no lock but the group's own; this is
//     where concurrent writes share an fsync);
//  4. under mu: publish the group and drop the old value's index entries,
//     or, if the journal failed, undo the reservation.
//
// A failed write therefore leaves nothing behind, and readers only ever see
// durable groups.

// Push stores fams as the group key. With replace (PUT) all families of the
// group are replaced, otherwise (POST) only those of the names pushed. fams
// are the freshly decoded push; Push takes ownership and modifies them.
//
// A push that is invalid or would make the exposition inconsistent returns
// an error wrapping ErrInvalid and changes nothing but the group's
// push_failure_time_seconds. Unlike the reference, a failed push to a new
// group creates that group (with push_time_seconds 0) only where its
// timestamp series collide with no other group, so the store always stays
// consistent. An error wrapping ErrStorage means the journal failed and
// nothing changed.
func (s *Store) Push(key grouping.Key, fams map[string]*dto.MetricFamily, replace bool) error {
	s.writers.RLock()
	defer s.writers.RUnlock()
	defer s.keys.lock(key.ID())()

	if err := s.checkPushSize(fams); err != nil {
		return err
	}
	now := s.now()
	p, err := prepare(key, fams, s.scheme, s.limits, now)
	if err != nil {
		var limit *LimitError
		if !errors.As(err, &limit) {
			s.recordFailure(key, now)
		}
		return err
	}
	pushTime, pushTimeHash, err := timestampFamily(key, PushTimeName, pushTimeHelp, now, now)
	if err != nil {
		return err
	}
	// For a new group; an existing one keeps its failure time.
	noFailure, noFailureHash, err := timestampFamily(key, PushFailureName, pushFailureHelp, time.Time{}, now)
	if err != nil {
		return err
	}

	s.mu.Lock()
	old := s.groups[key.ID()]
	failure, failureHash := noFailure, noFailureHash
	var failTime time.Time
	if old != nil {
		failure, failureHash, failTime = old.Families[PushFailureName], old.hashes[PushFailureName][0], old.FailTime
	}
	p.addTimestamps(pushTime, pushTimeHash, failure, failureHash)
	if err := s.checkLocked(key, old, replace, p); err != nil {
		s.mu.Unlock()
		s.recordFailure(key, now)
		return err
	}
	if old == nil && s.limits.groups > 0 && s.stats.Groups >= s.limits.groups {
		s.mu.Unlock()
		return &LimitError{Kind: TotalGroups, Got: s.stats.Groups + 1, Max: s.limits.groups}
	}
	ng := newGroup(key, old, replace, p, now, failTime)
	if err := s.checkTotalLocked(old, ng); err != nil {
		s.mu.Unlock()
		return err
	}
	r := s.reserveLocked(old, ng)
	s.mu.Unlock()
	return s.commit(old, ng, r)
}

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

// Imported is a group read from the reference's persistence file.
type Imported struct {
	Key grouping.Key
	// Families without push_time_seconds and push_failure_time_seconds.
	Families map[string]*dto.MetricFamily
	// Times holds each family's push time; a missing one is PushTime.
	Times    map[string]time.Time
	PushTime time.Time
	FailTime time.Time
}

// Import adds groups read from the reference's persistence file, as one
// step. Each group is checked like a push, against the store and the
// groups before it: a group that is invalid, inconsistent or there already
// is left out, with an error wrapping ErrInvalid at its index in rejected
// (nil for the groups taken).
//
// The groups taken are then handed to write, group ID -> the value the
// journal stores, which must store them all or none (the journal's own
// writes are per group, so they cannot). If write fails, Import adds
// nothing and returns its error wrapped in ErrStorage. write may be nil
// only for a store without a journal. No other write runs meanwhile.
func (s *Store) Import(groups []Imported, write func(values map[string][]byte) error) (rejected []error, err error) {
	if s.journal != nil && write == nil {
		return nil, errors.New("import into a store with a journal needs a write function")
	}
	s.writers.Lock()
	defer s.writers.Unlock()

	type taken struct {
		ng *Group
		r  *reservation
	}
	var all []taken
	ids := make(map[string]bool, len(groups))
	rejected = make([]error, len(groups))
	for i, g := range groups {
		ng, r, err := s.reserveImported(g, ids)
		if err != nil {
			rejected[i] = err
			continue
		}
		ids[g.Key.ID()] = true
		all = append(all, taken{ng, r})
	}
	if write != nil {
		values := make(map[string][]byte, len(all))
		for _, t := range all {
			values[t.ng.Key.ID()] = encodeGroup(t.ng)
		}
		if err := write(values); err != nil {
			s.mu.Lock()
			for i := len(all) - 1; i >= 0; i-- {
				s.undoLocked(all[i].r)
			}
			s.mu.Unlock()
			return rejected, fmt.Errorf("%w: %w", ErrStorage, err)
		}
	}
	s.mu.Lock()
	for _, t := range all {
		s.publishLocked(nil, t.ng, t.r)
	}
	s.mu.Unlock()
	return rejected, nil
}

// reserveImported checks an imported group and reserves its index entries.
// pending holds the IDs of the groups reserved before it.
func (s *Store) reserveImported(g Imported, pending map[string]bool) (*Group, *reservation, error) {
	p, err := prepare(g.Key, g.Families, s.scheme, limits{}, g.PushTime)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range p.families {
		if t, ok := g.Times[f.Name]; ok {
			f.Time = t // not yet published, so still ours to set
		}
	}
	if err := s.addTimestamps(p, g.Key, g.PushTime, g.FailTime); err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if pending[g.Key.ID()] {
		return nil, nil, invalidf("group %s exists already", g.Key)
	}
	return s.reserveNewLocked(g.Key, p, g.PushTime, g.FailTime)
}

// reserveNewLocked checks a group that must not exist yet, builds it and
// reserves its index entries.
func (s *Store) reserveNewLocked(key grouping.Key, p *prepared, pushTime, failTime time.Time) (*Group, *reservation, error) {
	if s.groups[key.ID()] != nil {
		return nil, nil, invalidf("group %s exists already", key)
	}
	if err := s.checkLocked(key, nil, true, p); err != nil {
		return nil, nil, err
	}
	ng := newGroup(key, nil, true, p, pushTime, failTime)
	return ng, s.reserveLocked(nil, ng), nil
}

// Replay adds a group from a value the journal stored, at start. The value
// is checksummed and was consistent when written; it is checked again all
// the same, since the indexes are rebuilt from it. Nothing is written.
func (s *Store) Replay(value []byte) error {
	g, err := decodeGroup(value)
	if err != nil {
		return err
	}
	p := &prepared{}
	for name, f := range g.Families {
		p.families = append(p.families, f)
		p.series = append(p.series, g.hashes[name])
	}
	if err := s.addTimestamps(p, g.Key, g.PushTime, g.FailTime); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ng, r, err := s.reserveNewLocked(g.Key, p, g.PushTime, g.FailTime)
	if err != nil {
		return err
	}
	s.publishLocked(nil, ng, r)
	return nil
}

func (s *Store) addTimestamps(p *prepared, key grouping.Key, pushTime, failTime time.Time) error {
	at := pushTime
	if at.IsZero() {
		at = failTime
	}
	pt, pth, err := timestampFamily(key, PushTimeName, pushTimeHelp, pushTime, at)
	if err != nil {
		return err
	}
	ft, fth, err := timestampFamily(key, PushFailureName, pushFailureHelp, failTime, at)
	if err != nil {
		return err
	}
	p.addTimestamps(pt, pth, ft, fth)
	return nil
}

// addTimestamps completes a prepared push with the group's timestamp
// families.
func (p *prepared) addTimestamps(pushTime *family.Family, pushTimeHash uint64, failure *family.Family, failureHash uint64) {
	p.families = append(p.families, pushTime, failure)
	p.series = append(p.series, []uint64{pushTimeHash}, []uint64{failureHash})
	p.byName = make(map[string]int, len(p.families))
	for i, f := range p.families {
		p.byName[f.Name] = i
	}
}

// has reports whether the push contains a family of that name.
func (p *prepared) has(name string) bool {
	_, ok := p.byName[name]
	return ok
}

func (p *prepared) get(name string) *family.Family {
	if i, ok := p.byName[name]; ok {
		return p.families[i]
	}
	return nil
}

// newGroup builds the group that results from applying a checked push to old.
func newGroup(key grouping.Key, old *Group, replace bool, p *prepared, pushTime, failTime time.Time) *Group {
	ng := &Group{
		Key:      key,
		Families: make(map[string]*family.Family, len(p.families)),
		hashes:   make(map[string][]uint64, len(p.families)),
		PushTime: pushTime,
		FailTime: failTime,
	}
	if old != nil {
		ng.num = old.num
	}
	if old != nil && !replace {
		for name, f := range old.Families {
			if !p.has(name) {
				ng.Families[name] = f
				ng.hashes[name] = old.hashes[name]
			}
		}
	}
	for i, f := range p.families {
		ng.Families[f.Name] = f
		if f.Series > 0 {
			ng.hashes[f.Name] = p.series[i]
		}
	}
	return ng
}

// reservation records the index entries a pending write added, to undo them
// if the journal fails.
type reservation struct {
	hashes  []uint64                  // series newly owned by the group
	names   []string                  // names whose group count went up
	retyped map[string]dto.MetricType // names whose type changed: their old type
	num     uint32                    // number given to a new group, else 0
}

// reserveLocked adds the index entries of ng that old does not have. Until
// publication, the indexes hold the union of old and ng.
func (s *Store) reserveLocked(old, ng *Group) *reservation {
	r := &reservation{}
	if old == nil {
		ng.num = s.allocNumLocked(ng.Key.ID())
		r.num = ng.num
	}
	num := ng.num
	for name, f := range ng.Families {
		if f.Series == 0 {
			continue
		}
		e := s.names[name]
		if !holds(old, name) {
			if e == nil {
				e = &nameEntry{typ: f.Type}
				s.names[name] = e
				s.addEscapedLocked(name)
			}
			e.groups++
			r.names = append(r.names, name)
		} else if e.typ != f.Type {
			// Only possible when this group is the sole holder (checked).
			if r.retyped == nil {
				r.retyped = map[string]dto.MetricType{}
			}
			r.retyped[name] = e.typ
			e.typ = f.Type
			e.retyping++
		}
		if old != nil && old.Families[name] == f {
			continue // unchanged family, already indexed
		}
		for _, h := range ng.hashes[name] {
			if _, ok := s.series[h]; !ok {
				s.series[h] = num
				r.hashes = append(r.hashes, h)
			}
		}
	}
	return r
}

// holds reports whether g has a non-empty family of that name.
func holds(g *Group, name string) bool {
	if g == nil {
		return false
	}
	f, ok := g.Families[name]
	return ok && f.Series > 0
}

func (s *Store) undoLocked(r *reservation) {
	for _, h := range r.hashes {
		delete(s.series, h)
	}
	if r.num != 0 {
		s.freeNumLocked(r.num)
	}
	for _, name := range r.names {
		s.dropNameLocked(name)
	}
	for name, t := range r.retyped {
		if e := s.names[name]; e != nil {
			e.typ = t
			e.retyping--
		}
	}
}

// allocNumLocked gives a new group its number, reusing those of deleted
// groups so that the numbers never run out.
func (s *Store) allocNumLocked(id string) uint32 {
	var n uint32
	if k := len(s.freeNums); k > 0 {
		n, s.freeNums = s.freeNums[k-1], s.freeNums[:k-1]
	} else {
		n = s.nextNum
		s.nextNum++
	}
	s.groupIDs[n] = id
	return n
}

func (s *Store) freeNumLocked(n uint32) {
	delete(s.groupIDs, n)
	s.freeNums = append(s.freeNums, n)
}

func (s *Store) dropNameLocked(name string) {
	if e := s.names[name]; e != nil {
		e.groups--
		if e.groups <= 0 && !e.reserved {
			delete(s.names, name)
			s.dropEscapedLocked(name)
		}
	}
}

// commit makes ng durable and publishes it, or undoes its reservation.
func (s *Store) commit(old, ng *Group, r *reservation) error {
	if s.journal != nil {
		if err := s.journal.Save(ng.Key.ID(), encodeGroup(ng)); err != nil {
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

// publishLocked swaps in ng and drops the index entries only old had.
func (s *Store) publishLocked(old, ng *Group, r *reservation) {
	id := ng.Key.ID()
	num := ng.num
	for name := range r.retyped {
		if e := s.names[name]; e != nil {
			e.retyping--
		}
	}
	if old != nil {
		for name, f := range old.Families {
			s.stats.Bytes -= f.Size()
			s.stats.Series -= f.Series
			if f.Series == 0 || ng.Families[name] == f {
				continue
			}
			if !holds(ng, name) {
				s.dropNameLocked(name)
			}
			s.unindexSeriesLocked(num, old.hashes[name], ng.hashes[name])
		}
	} else {
		s.stats.Groups++
	}
	for _, f := range ng.Families {
		s.stats.Bytes += f.Size()
		s.stats.Series += f.Series
	}
	s.groups[id] = ng
	s.changedLocked()
}

// changedLocked marks a change: a new generation, and the cached view is
// dropped, so that it does not keep replaced groups alive until the next
// reader asks for a view.
func (s *Store) changedLocked() {
	s.gen++
	s.view.Store(nil)
}

// unindexSeriesLocked drops the series of oldHashes that newHashes does not
// have. Re-pushing the same series, the usual case, is one comparison.
func (s *Store) unindexSeriesLocked(num uint32, oldHashes, newHashes []uint64) {
	if equalHashes(oldHashes, newHashes) {
		return
	}
	keep := make(map[uint64]struct{}, len(newHashes))
	for _, h := range newHashes {
		keep[h] = struct{}{}
	}
	for _, h := range oldHashes {
		if _, ok := keep[h]; !ok && s.series[h] == num {
			delete(s.series, h)
		}
	}
}

func equalHashes(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// recordFailure sets push_failure_time_seconds of the group to now; the
// caller holds the group's key lock. Failing to record it is logged, not
// returned: the push has failed already.
func (s *Store) recordFailure(key grouping.Key, now time.Time) {
	failure, failureHash, err := timestampFamily(key, PushFailureName, pushFailureHelp, now, now)
	if err != nil {
		s.logger.Error("record push failure", "grouping_key", key.String(), "err", err)
		return
	}
	s.mu.Lock()
	old := s.groups[key.ID()]
	var ng *Group
	if old != nil {
		ng = old.clone()
		ng.Families[PushFailureName] = failure
		ng.hashes[PushFailureName] = []uint64{failureHash}
		ng.FailTime = now
	} else {
		if s.limits.groups > 0 && s.stats.Groups >= s.limits.groups {
			s.mu.Unlock()
			return
		}
		pushTime, pushTimeHash, err := timestampFamily(key, PushTimeName, pushTimeHelp, time.Time{}, now)
		if err != nil {
			s.mu.Unlock()
			s.logger.Error("record push failure", "grouping_key", key.String(), "err", err)
			return
		}
		for _, h := range []uint64{pushTimeHash, failureHash} {
			if owner, ok := s.series[h]; ok {
				// The reference would create a colliding group here and
				// fail every scrape until it is deleted; we do not.
				other := s.describeLocked(owner)
				s.mu.Unlock()
				s.logger.Debug("not recording failure of push to new group: its timestamp series collide with another group",
					"grouping_key", key.String(), "other_group", other)
				return
			}
		}
		ng = &Group{
			Key:      key,
			Families: map[string]*family.Family{PushTimeName: pushTime, PushFailureName: failure},
			hashes:   map[string][]uint64{PushTimeName: {pushTimeHash}, PushFailureName: {failureHash}},
			FailTime: now,
		}
	}
	r := s.reserveLocked(old, ng)
	s.mu.Unlock()
	if err := s.commit(old, ng, r); err != nil {
		s.logger.Warn("record push failure", "grouping_key", key.String(), "err", err)
	}
}

func (g *Group) clone() *Group {
	ng := *g
	ng.Families = make(map[string]*family.Family, len(g.Families))
	for n, f := range g.Families {
		ng.Families[n] = f
	}
	ng.hashes = make(map[string][]uint64, len(g.hashes))
	for n, h := range g.hashes {
		ng.hashes[n] = h
	}
	return &ng
}

// Delete removes the group. Deleting an unknown group is a no-op. An error
// wrapping ErrStorage means the journal failed and the group is still there.
func (s *Store) Delete(key grouping.Key) error {
	s.writers.RLock()
	defer s.writers.RUnlock()
	defer s.keys.lock(key.ID())()
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

func (s *Store) deleteLocked(id string) {
	old := s.groups[id]
	if old == nil {
		return
	}
	for name, f := range old.Families {
		s.stats.Bytes -= f.Size()
		s.stats.Series -= f.Series
		if f.Series == 0 {
			continue
		}
		s.dropNameLocked(name)
		s.unindexSeriesLocked(old.num, old.hashes[name], nil)
	}
	s.freeNumLocked(old.num)
	delete(s.groups, id)
	s.stats.Groups--
	s.changedLocked()
}

// Wipe removes all groups. It waits for writes in progress.
func (s *Store) Wipe() error {
	s.writers.Lock()
	defer s.writers.Unlock()
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
