package store

import (
	"errors"
	"fmt"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/pushgate/pushgate/internal/grouping"
)

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
	if s.shared != nil {
		// Its groups come back through Apply; importing is the shared
		// journal's own (etcd's Import), into an empty prefix.
		return nil, errors.New("a replica of a shared journal does not import")
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
	p, err := prepare(g.Key, g.Families, s.scheme, limits{}, g.PushTime, nil)
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
// It is DecodeReplay followed by ApplyReplay.
func (s *Store) Replay(value []byte) error {
	r, err := s.DecodeReplay(value)
	if err != nil {
		return err
	}
	return s.ApplyReplay(r)
}

// Replayed is a stored group decoded by DecodeReplay, not yet added.
type Replayed struct {
	g *Group
	p *prepared
}

// Series returns the number of series of the group, timestamps included.
func (r *Replayed) Series() int {
	n := 0
	for _, s := range r.p.series {
		n += len(s)
	}
	return n
}

// DecodeReplay is the first half of Replay: it decodes and checks a stored
// value on its own, without the store's state, so that values can be
// decoded concurrently with each other and with ApplyReplay. The result
// does not alias value.
func (s *Store) DecodeReplay(value []byte) (*Replayed, error) {
	g, p, err := s.decodeValue(value)
	if err != nil {
		return nil, err
	}
	return &Replayed{g: g, p: p}, nil
}

// ApplyReplay is the second half of Replay: it checks a decoded group
// against the groups added before it and adds it. Applied in the journal's
// order, the result (and the first error) is that of Replay.
func (s *Store) ApplyReplay(r *Replayed) error {
	g, p := r.g, r.p
	s.mu.Lock()
	defer s.mu.Unlock()
	ng, res, err := s.reserveNewLocked(g.Key, p, g.PushTime, g.FailTime)
	if err != nil {
		return err
	}
	// Published with it, so that its deadline is scheduled (and, if it
	// passed while the gateway was down, the group expires at once).
	ng.ExpireAfter = g.ExpireAfter
	s.publishLocked(nil, ng, res)
	return nil
}

// decodeValue decodes a stored group and completes it with its timestamp
// families, which are not stored: p holds all its families.
func (s *Store) decodeValue(value []byte) (*Group, *prepared, error) {
	g, err := decodeGroup(value)
	if err != nil {
		return nil, nil, err
	}
	p := &prepared{}
	for _, m := range g.Families.list {
		p.families = append(p.families, m.f)
		p.series = append(p.series, m.hashes)
	}
	if err := s.addTimestamps(p, g.Key, g.PushTime, g.FailTime); err != nil {
		return nil, nil, err
	}
	return g, p, nil
}

func (s *Store) addTimestamps(p *prepared, key grouping.Key, pushTime, failTime time.Time) error {
	at := pushTime
	if at.IsZero() {
		at = failTime
	}
	labels := timestampLabels(key)
	pt, pth, err := timestampFamily(labels, PushTimeName, pushTimeHelp, pushTime, at)
	if err != nil {
		return err
	}
	ft, fth, err := timestampFamily(labels, PushFailureName, pushFailureHelp, failTime, at)
	if err != nil {
		return err
	}
	p.addTimestamps(pt, pth, ft, fth)
	return nil
}

// Grow makes room in the indexes of an empty store for about groups
// groups of series series in all, so that a replay of that many does not
// rehash them over and over as they grow. It is a hint: a store that holds
// groups, or is writing its first, ignores it, and the indexes still grow
// past it as needed.
func (s *Store) Grow(groups, series int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A pending write has claimed its group number and series before its
	// group is in s.groups: those entries must not be dropped.
	if len(s.groups) > 0 || len(s.groupIDs) > 0 || len(s.series) > 0 || groups <= 0 {
		return
	}
	s.groups = make(map[string]*Group, groups)
	s.groupIDs = make(map[uint32]string, groups)
	if series > 0 {
		s.series = make(map[uint64]uint32, series)
	}
}
