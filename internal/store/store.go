package store

import (
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"

	"github.com/pushgate/pushgate/internal/family"
	"github.com/pushgate/pushgate/internal/grouping"
)

// Group is one pushed group. A Group value is immutable once published:
// a push builds a new one and swaps it in, so readers never copy or wait.
type Group struct {
	Key grouping.Key
	// Families by name, including push_time_seconds and
	// push_failure_time_seconds. Must not be modified.
	Families map[string]*family.Family
	// PushTime is the last successful push; zero if none succeeded.
	PushTime time.Time
	// FailTime is the last failed push; zero if none failed.
	FailTime time.Time

	// hashes holds the series hashes of each non-empty family, for
	// unindexing it when it is replaced.
	hashes map[string][]uint64
}

// LastPushSuccessful reports whether the last push to the group succeeded,
// as the reference's API defines it.
func (g *Group) LastPushSuccessful() bool {
	return !g.PushTime.Before(g.FailTime)
}

// Series returns the number of series in the group.
func (g *Group) Series() int {
	n := 0
	for _, f := range g.Families {
		n += f.Series
	}
	return n
}

// View is a consistent snapshot of all groups, sorted by key. It is
// immutable and shared between readers.
type View struct {
	// Gen changes whenever the store changes.
	Gen    uint64
	Groups []*Group
}

// Reserved describes a metric family of the gateway itself; pushed families
// of that name must have the same type.
type Reserved struct {
	Name string
	Type dto.MetricType
}

// Options configure a Store. The zero value is usable.
type Options struct {
	// UTF8Names accepts metric and label names outside the legacy
	// character set (--push.enable-utf8-names).
	UTF8Names bool
	// Reserved lists the gateway's own metric families.
	Reserved []Reserved
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

// Stats are the current totals of a store.
type Stats struct {
	Groups int
	Series int
	// Bytes is the size of the encoded families held.
	Bytes int
}

// Store holds all groups in memory. All methods are safe for concurrent use.
type Store struct {
	scheme model.ValidationScheme
	now    func() time.Time
	logger *slog.Logger

	mu     sync.Mutex // guards the fields below
	groups map[string]*Group
	names  map[string]*nameEntry
	series map[uint64]string // series hash -> ID of the group that holds it
	stats  Stats
	gen    uint64

	view atomic.Pointer[View] // latest built View, possibly stale
}

// nameEntry is what the consistency check needs to know about a metric name.
type nameEntry struct {
	typ      dto.MetricType
	reserved bool // one of the gateway's own families
	groups   int  // number of groups holding a non-empty family of this name
}

// New returns an empty store.
func New(opts Options) *Store {
	s := &Store{
		scheme: model.LegacyValidation,
		now:    opts.Now,
		logger: opts.Logger,
		groups: map[string]*Group{},
		names:  map[string]*nameEntry{},
		series: map[uint64]string{},
	}
	if opts.UTF8Names {
		s.scheme = model.UTF8Validation
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	for _, name := range []string{groupsMetric, seriesMetric, bytesMetric} {
		s.names[name] = &nameEntry{typ: dto.MetricType_GAUGE, reserved: true}
	}
	for _, r := range opts.Reserved {
		s.names[r.Name] = &nameEntry{typ: r.Type, reserved: true}
	}
	return s
}

// Push stores fams as the group key. With replace (PUT) all families of the
// group are replaced, otherwise (POST) only those of the names pushed. fams
// are the freshly decoded push; Push takes ownership and modifies them.
//
// A push that is invalid or would make the exposition inconsistent returns
// an error wrapping ErrInvalid and changes nothing but the group's
// push_failure_time_seconds. Unlike the reference, a failed push to a new
// group creates that group (with push_time_seconds 0) only where its
// timestamp series collide with no other group, so the store always stays
// consistent.
func (s *Store) Push(key grouping.Key, fams map[string]*dto.MetricFamily, replace bool) error {
	now := s.now()
	p, err := prepare(key, fams, s.scheme, now)
	if err != nil {
		s.mu.Lock()
		s.recordFailureLocked(key, now)
		s.mu.Unlock()
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
	defer s.mu.Unlock()
	old := s.groups[key.ID()]
	failure, failureHash := noFailure, noFailureHash
	var failTime time.Time
	if old != nil {
		failure, failureHash, failTime = old.Families[PushFailureName], old.hashes[PushFailureName][0], old.FailTime
	}
	p.addTimestamps(pushTime, pushTimeHash, failure, failureHash)
	if err := s.checkLocked(key, old, replace, p); err != nil {
		s.recordFailureLocked(key, now)
		return err
	}
	s.applyLocked(key, old, replace, p, now, failTime)
	return nil
}

// Restored is a group read back from a snapshot.
type Restored struct {
	Key grouping.Key
	// Families without push_time_seconds and push_failure_time_seconds.
	Families map[string]*dto.MetricFamily
	// Times holds each family's push time; a missing one is PushTime.
	Times    map[string]time.Time
	PushTime time.Time
	FailTime time.Time
}

// Restore adds a group read from a snapshot. It applies the checks of a
// push, so a group that would make the store inconsistent is refused with
// an error wrapping ErrInvalid, and so is a group that exists already.
func (s *Store) Restore(r Restored) error {
	p, err := prepare(r.Key, r.Families, s.scheme, r.PushTime)
	if err != nil {
		return err
	}
	for _, f := range p.families {
		if t, ok := r.Times[f.Name]; ok {
			f.Time = t // not yet published, so still ours to set
		}
	}
	pushTime, pushTimeHash, err := timestampFamily(r.Key, PushTimeName, pushTimeHelp, r.PushTime, r.PushTime)
	if err != nil {
		return err
	}
	failure, failureHash, err := timestampFamily(r.Key, PushFailureName, pushFailureHelp, r.FailTime, r.PushTime)
	if err != nil {
		return err
	}
	p.addTimestamps(pushTime, pushTimeHash, failure, failureHash)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.groups[r.Key.ID()] != nil {
		return invalidf("group %s is restored twice", r.Key)
	}
	if err := s.checkLocked(r.Key, nil, true, p); err != nil {
		return err
	}
	s.applyLocked(r.Key, nil, true, p, r.PushTime, r.FailTime)
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

// applyLocked swaps in the group that results from applying a checked push.
func (s *Store) applyLocked(key grouping.Key, old *Group, replace bool, p *prepared, pushTime, failTime time.Time) {
	ng := &Group{
		Key:      key,
		Families: make(map[string]*family.Family, len(p.families)),
		hashes:   make(map[string][]uint64, len(p.families)),
		PushTime: pushTime,
		FailTime: failTime,
	}
	if old != nil {
		for name, f := range old.Families {
			if replace || p.has(name) {
				s.unindexLocked(old, name)
				continue
			}
			ng.Families[name] = f
			ng.hashes[name] = old.hashes[name]
		}
	}
	for i, f := range p.families {
		ng.Families[f.Name] = f
		ng.hashes[f.Name] = p.series[i]
		s.indexLocked(ng, f, p.series[i])
	}
	s.publishLocked(key.ID(), ng, old)
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

// checkLocked decides whether applying p to the group would keep the
// exposition consistent. Its cost is proportional to the push.
func (s *Store) checkLocked(key grouping.Key, old *Group, replace bool, p *prepared) error {
	// removed reports whether the push removes the old group's family.
	removed := func(name string) bool {
		if old == nil {
			return false
		}
		f, ok := old.Families[name]
		return ok && f.Series > 0 && (replace || p.has(name))
	}
	// elsewhere returns the entry of name if a family of that name will
	// remain outside this group: in another group or among the gateway's own.
	elsewhere := func(name string) *nameEntry {
		e := s.names[name]
		if e == nil {
			return nil
		}
		n := e.groups
		if removed(name) {
			n--
		}
		if n > 0 || e.reserved {
			return e
		}
		return nil
	}
	// typeAfter returns the type name will have after the push, if any.
	typeAfter := func(name string) (dto.MetricType, bool) {
		if f := p.get(name); f != nil && f.Series > 0 {
			return f.Type, true
		}
		if e := elsewhere(name); e != nil {
			return e.typ, true
		}
		if old != nil && !replace {
			if f, ok := old.Families[name]; ok && f.Series > 0 {
				return f.Type, true
			}
		}
		return 0, false
	}

	for i, f := range p.families {
		if f.Series == 0 {
			// Empty families are never exposed, so they cannot
			// make the exposition inconsistent.
			continue
		}
		if e := elsewhere(f.Name); e != nil && e.typ != f.Type {
			where := "in another group"
			if e.reserved {
				where = "among the gateway's own metrics"
			}
			return invalidf("metric %s is pushed as %s but exists as %s %s",
				f.Name, typeString(f.Type), typeString(e.typ), where)
		}
		if err := checkSuffixes(f, typeAfter); err != nil {
			return err
		}
		for _, h := range p.series[i] {
			if owner, ok := s.series[h]; ok && owner != key.ID() {
				return invalidf("a series of metric %s with the same labels is already pushed in group %s",
					f.Name, s.groups[owner].Key)
			}
		}
	}
	return nil
}

// checkSuffixes rejects a family whose _count, _sum or _bucket series would
// collide with a summary or histogram, or vice versa.
func checkSuffixes(f *family.Family, typeAfter func(string) (dto.MetricType, bool)) error {
	isHistogram := func(t dto.MetricType) bool {
		return t == dto.MetricType_HISTOGRAM || t == dto.MetricType_GAUGE_HISTOGRAM
	}
	for _, suffix := range []string{"_count", "_sum", "_bucket"} {
		base, ok := strings.CutSuffix(f.Name, suffix)
		if !ok {
			continue
		}
		t, ok := typeAfter(base)
		if ok && (isHistogram(t) || (t == dto.MetricType_SUMMARY && suffix != "_bucket")) {
			return invalidf("metric %s collides with %s %s", f.Name, typeString(t), base)
		}
	}
	if f.Type == dto.MetricType_SUMMARY || isHistogram(f.Type) {
		suffixes := []string{"_count", "_sum"}
		if isHistogram(f.Type) {
			suffixes = append(suffixes, "_bucket")
		}
		for _, suffix := range suffixes {
			if _, ok := typeAfter(f.Name + suffix); ok {
				return invalidf("%s %s collides with metric %s", typeString(f.Type), f.Name, f.Name+suffix)
			}
		}
	}
	return nil
}

func typeString(t dto.MetricType) string {
	return strings.ToLower(t.String())
}

// recordFailureLocked sets push_failure_time_seconds of the group to now.
func (s *Store) recordFailureLocked(key grouping.Key, now time.Time) {
	old := s.groups[key.ID()]
	failure, failureHash, err := timestampFamily(key, PushFailureName, pushFailureHelp, now, now)
	if err != nil {
		s.logger.Error("record push failure", "grouping_key", key.String(), "err", err)
		return
	}
	if old != nil {
		ng := old.clone()
		ng.Families[PushFailureName] = failure
		ng.FailTime = now
		// Same labels, same hash: the index does not change.
		s.publishLocked(key.ID(), ng, old)
		return
	}
	pushTime, pushTimeHash, err := timestampFamily(key, PushTimeName, pushTimeHelp, time.Time{}, now)
	if err != nil {
		s.logger.Error("record push failure", "grouping_key", key.String(), "err", err)
		return
	}
	for _, h := range []uint64{pushTimeHash, failureHash} {
		if owner, ok := s.series[h]; ok {
			// The reference would create a colliding group here and fail
			// every scrape until it is deleted; we do not create it.
			s.logger.Debug("not recording failure of push to new group: its timestamp series collide with another group",
				"grouping_key", key.String(), "other_group", s.groups[owner].Key.String())
			return
		}
	}
	ng := &Group{
		Key:      key,
		Families: map[string]*family.Family{PushTimeName: pushTime, PushFailureName: failure},
		hashes:   map[string][]uint64{PushTimeName: {pushTimeHash}, PushFailureName: {failureHash}},
		FailTime: now,
	}
	s.indexLocked(ng, pushTime, ng.hashes[PushTimeName])
	s.indexLocked(ng, failure, ng.hashes[PushFailureName])
	s.publishLocked(key.ID(), ng, nil)
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

// Delete removes the group. Deleting an unknown group is a no-op.
func (s *Store) Delete(key grouping.Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteLocked(key.ID())
}

func (s *Store) deleteLocked(id string) {
	old := s.groups[id]
	if old == nil {
		return
	}
	for name := range old.Families {
		s.unindexLocked(old, name)
	}
	delete(s.groups, id)
	s.stats.Groups--
	s.gen++
}

// Wipe removes all groups.
func (s *Store) Wipe() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.groups {
		s.deleteLocked(id)
	}
}

func (s *Store) indexLocked(g *Group, f *family.Family, hashes []uint64) {
	s.stats.Bytes += len(f.Metrics) + len(f.Text)
	if f.Series == 0 {
		return
	}
	e := s.names[f.Name]
	if e == nil {
		e = &nameEntry{typ: f.Type}
		s.names[f.Name] = e
	}
	e.groups++
	id := g.Key.ID()
	for _, h := range hashes {
		s.series[h] = id
	}
	s.stats.Series += len(hashes)
}

func (s *Store) unindexLocked(g *Group, name string) {
	f := g.Families[name]
	s.stats.Bytes -= len(f.Metrics) + len(f.Text)
	if f.Series == 0 {
		return
	}
	if e := s.names[name]; e != nil {
		e.groups--
		if e.groups == 0 && !e.reserved {
			delete(s.names, name)
		}
	}
	id := g.Key.ID()
	for _, h := range g.hashes[name] {
		if s.series[h] == id {
			delete(s.series, h)
		}
	}
	s.stats.Series -= len(g.hashes[name])
}

func (s *Store) publishLocked(id string, ng, old *Group) {
	if old == nil {
		s.stats.Groups++
	}
	s.groups[id] = ng
	s.gen++
}

// Group returns the group with the given key ID, or nil.
func (s *Store) Group(id string) *Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.groups[id]
}

// Stats returns the current totals.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// View returns a consistent snapshot of all groups, sorted by key ID. The
// snapshot is rebuilt only after a change and shared between callers.
func (s *Store) View() *View {
	s.mu.Lock()
	gen := s.gen
	if v := s.view.Load(); v != nil && v.Gen == gen {
		s.mu.Unlock()
		return v
	}
	groups := make([]*Group, 0, len(s.groups))
	for _, g := range s.groups {
		groups = append(groups, g)
	}
	s.mu.Unlock()

	sort.Slice(groups, func(i, j int) bool { return groups[i].Key.ID() < groups[j].Key.ID() })
	v := &View{Gen: gen, Groups: groups}
	for {
		cur := s.view.Load()
		if cur != nil && cur.Gen >= gen {
			return v
		}
		if s.view.CompareAndSwap(cur, v) {
			return v
		}
	}
}

// Names of the store's own gauges.
const (
	groupsMetric = "pushgate_store_groups"
	seriesMetric = "pushgate_store_series"
	bytesMetric  = "pushgate_store_bytes"
)

// RegisterMetrics registers gauges of the store's size with reg.
func (s *Store) RegisterMetrics(reg prometheus.Registerer) {
	gauge := func(name, help string, v func(Stats) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return float64(v(s.Stats())) })
	}
	reg.MustRegister(
		gauge(groupsMetric, "Number of groups stored.", func(st Stats) int { return st.Groups }),
		gauge(seriesMetric, "Number of series stored, including push_time_seconds and push_failure_time_seconds.", func(st Stats) int { return st.Series }),
		gauge(bytesMetric, "Bytes of encoded metric families held by the store.", func(st Stats) int { return st.Bytes }),
	)
}
