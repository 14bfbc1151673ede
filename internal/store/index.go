package store

import dto "github.com/prometheus/client_model/go"

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
	for _, m := range ng.Families.list {
		name, f := m.f.Name, m.f
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
		if old != nil {
			if was := old.Families.lookup(name); was.f == f || equalHashes(m.hashes, was.hashes) {
				continue // unchanged family or series, already indexed
			}
		}
		for _, h := range m.hashes {
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
	return g != nil && g.Families.lookup(name).holds()
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
		for _, m := range old.Families.list {
			name, f := m.f.Name, m.f
			s.stats.Bytes -= f.Size()
			s.stats.Series -= f.Series
			now := ng.Families.lookup(name)
			if f.Series == 0 || now.f == f {
				continue
			}
			if !now.holds() {
				s.dropNameLocked(name)
			}
			s.unindexSeriesLocked(num, m.hashes, now.hashes)
		}
	} else {
		s.stats.Groups++
	}
	for _, m := range ng.Families.list {
		s.stats.Bytes += m.f.Size()
		s.stats.Series += m.f.Series
	}
	s.groups[id] = ng
	s.scheduleLocked(ng)
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

func (s *Store) deleteLocked(id string) {
	old := s.groups[id]
	if old == nil {
		return
	}
	for _, m := range old.Families.list {
		s.stats.Bytes -= m.f.Size()
		s.stats.Series -= m.f.Series
		if m.f.Series == 0 {
			continue
		}
		s.dropNameLocked(m.f.Name)
		s.unindexSeriesLocked(old.num, m.hashes, nil)
	}
	s.freeNumLocked(old.num)
	delete(s.groups, id)
	s.expiry.remove(id)
	s.stats.Groups--
	s.changedLocked()
}
