package store

import (
	"iter"
	"slices"
	"strings"

	"github.com/pushgate/pushgate/internal/family"
)

// Families are a group's metric families with their series hashes, sorted
// by name. A sorted array, not maps by name: a stored group is then two
// heap objects (the Group and this array) instead of about ten (the tables
// of two maps), and the collector's marking, whose cost grows with the
// number of heap objects, sets the tail of the push latency at 1M series
// (BenchmarkCollect). A group holds a few families, so a binary search
// finds one as fast as a map. The zero value holds none; a Group's
// Families must not be modified.
type Families struct {
	list []member
}

type member struct {
	f *family.Family
	// hashes are the series hashes of a non-empty family, for unindexing
	// it when it is replaced; nil for an empty one.
	hashes []uint64
}

// Len is the number of families.
func (fs Families) Len() int { return len(fs.list) }

// Get returns the family of that name, or nil.
func (fs Families) Get(name string) *family.Family { return fs.lookup(name).f }

// All yields the families by name, in the order of their names.
func (fs Families) All() iter.Seq2[string, *family.Family] {
	return func(yield func(string, *family.Family) bool) {
		for _, m := range fs.list {
			if !yield(m.f.Name, m.f) {
				return
			}
		}
	}
}

// lookup returns the family of that name with its series hashes, or the
// zero member.
func (fs Families) lookup(name string) member {
	if i, ok := fs.find(name); ok {
		return fs.list[i]
	}
	return member{}
}

// holds reports whether m is a non-empty family.
func (m member) holds() bool { return m.f != nil && m.f.Series > 0 }

func (fs Families) find(name string) (int, bool) {
	return slices.BinarySearchFunc(fs.list, name, func(m member, name string) int {
		return strings.Compare(m.f.Name, name)
	})
}

// makeFamilies sorts members, which must have distinct names, into
// Families; it takes ownership of the slice.
func makeFamilies(members []member) Families {
	slices.SortFunc(members, func(a, b member) int { return strings.Compare(a.f.Name, b.f.Name) })
	return Families{list: members}
}

// with returns a copy of fs in which f, with its hashes, replaces the
// family of its name or is added.
func (fs Families) with(f *family.Family, hashes []uint64) Families {
	list := make([]member, len(fs.list), len(fs.list)+1)
	copy(list, fs.list)
	m := member{f: f, hashes: hashes}
	if i, ok := fs.find(f.Name); ok {
		list[i] = m
	} else {
		list = slices.Insert(list, i, m)
	}
	return Families{list: list}
}

// MakeFamilies returns Families holding fams (distinct names), without
// series hashes: for building a Group outside the store, in tests.
func MakeFamilies(fams ...*family.Family) Families {
	members := make([]member, len(fams))
	for i, f := range fams {
		members[i] = member{f: f}
	}
	return makeFamilies(members)
}
