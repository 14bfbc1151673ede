package store

import (
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"

	"github.com/pushgate/pushgate/internal/grouping"
)

// Group is one pushed group. A Group value is immutable once published:
// a push builds a new one and swaps it in, so readers never copy or wait.
type Group struct {
	Key grouping.Key
	// Families, including push_time_seconds and
	// push_failure_time_seconds. Must not be modified.
	Families Families
	// PushTime is the last successful push; zero if none succeeded.
	PushTime time.Time
	// FailTime is the last failed push; zero if none failed.
	FailTime time.Time
	// ExpireAfter is the group's own expiry, set by the last successful
	// push's Pushgate-Expire-After header: 0 means none (the store's
	// Options.ExpireAfter applies), NeverExpire that the group never
	// expires. See Store.Deadline.
	ExpireAfter time.Duration
	// num identifies the group in the series index; it stays the same
	// across the group's versions.
	num uint32
	// rev is the shared journal's revision of this value; 0 without one.
	rev int64
}

// LastPushSuccessful reports whether the last push to the group succeeded,
// as the reference's API defines it.
func (g *Group) LastPushSuccessful() bool {
	return !g.PushTime.Before(g.FailTime)
}

// Series returns the number of series in the group.
func (g *Group) Series() int {
	n := 0
	for _, m := range g.Families.list {
		n += m.f.Series
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

// ReservedFrom lists the families g gathers as Reserved.
func ReservedFrom(g prometheus.Gatherer) ([]Reserved, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, err
	}
	reserved := make([]Reserved, 0, len(mfs))
	for _, mf := range mfs {
		reserved = append(reserved, Reserved{Name: mf.GetName(), Type: mf.GetType()})
	}
	return reserved, nil
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
	// Journal makes every change durable before it is published and
	// acknowledged; nil keeps the store in memory only.
	Journal Journal
	// Shared, instead of Journal, makes the store a replica of a journal
	// that other replicas write too (see Shared).
	Shared Shared
	// MaxSeriesPerPush and MaxSeries bound the series of one push and of
	// the whole store (not counting the two timestamp series per group);
	// 0 means no limit.
	MaxSeriesPerPush int
	MaxSeries        int
	// MaxGroups bounds the groups; MaxLabelsPerSeries the labels of a series
	// (grouping labels and instance included); MaxLabelNameLength and
	// MaxLabelValueLength their sizes in bytes. 0 means no limit.
	MaxGroups           int
	MaxLabelsPerSeries  int
	MaxLabelNameLength  int
	MaxLabelValueLength int
	// ExpireAfter deletes a group that has not been pushed successfully
	// for that long (--push.expire-after), unless the group has its own
	// expiry; 0 means never, as in the reference.
	ExpireAfter time.Duration
	// ExpireRule, if set, gives the operator's expiry for a group (the
	// first matching rule of --push.rules.file), which beats ExpireAfter;
	// a push's own (Pushgate-Expire-After) beats both.
	ExpireRule func(grouping.Key) (time.Duration, bool)
}

// Journal makes changes to groups durable. Each method returns only once
// the change is on stable storage; concurrent calls may share one fsync.
// Values are the store's own encoding of a group, keyed by group ID. An ID
// can be of any length (label values are long if limits allow): a journal
// whose keys are limited maps long IDs itself. An error means the change
// was not made. Save keeps no reference to value once it returns: the
// store reuses its memory for the next write.
type Journal interface {
	Save(id string, value []byte) error
	Remove(id string) error
	RemoveAll() error
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
	limits  limits
	scheme  model.ValidationScheme
	now     func() time.Time
	logger  *slog.Logger
	journal Journal
	// values encode the groups written to journal; labels are the label
	// slices of pushed metrics.
	values  pool[byte]
	labels  pool[*dto.LabelPair]
	shared  Shared
	guards  guardLocks
	metrics sharedMetrics
	// expireAfter and expireRule are Options'.
	expireAfter time.Duration
	expireRule  func(grouping.Key) (time.Duration, bool)

	// writers is held shared by every write for its whole duration and
	// exclusively by Wipe, so that a wipe never interleaves with a write
	// between its journal write and its publication.
	writers sync.RWMutex
	// keys serializes writes to the same group across their journal
	// write; writes to different groups only share mu.
	keys keyLocks

	mu     sync.Mutex // guards the fields below
	groups map[string]*Group
	names  map[string]*nameEntry
	// series maps a series hash to the number of the group that holds it.
	// A number, not the group ID: the map holds a series of every group,
	// and without pointers in it the garbage collector need not scan it.
	series   map[uint64]uint32
	groupIDs map[uint32]string // group number -> group ID
	freeNums []uint32          // numbers of deleted groups, for reuse
	nextNum  uint32            // next new number; 0 means none
	// escaped maps, with UTF-8 names only, the underscore-escaped form of
	// each indexed name (what scrapers without UTF-8 support see) to the
	// names that have it.
	escaped map[string]map[string]struct{}
	stats   Stats
	gen     uint64
	// expiry holds the deadline of every group that has one.
	expiry expiryHeap
	// rev is the shared journal's revision applied; applied is closed and
	// replaced when it advances.
	rev     int64
	applied chan struct{}

	view atomic.Pointer[View] // latest built View, possibly stale
}

type limits struct{ perPush, total, groups, labels, nameLen, valueLen int }

// nameEntry is what the consistency check needs to know about a metric name.
type nameEntry struct {
	typ      dto.MetricType
	reserved bool // one of the gateway's own families
	groups   int  // number of groups holding a non-empty family of this name
	// retyping counts pending writes that change the type (their group is
	// the sole holder); until they resolve, other groups may not push it.
	retyping int
}

// New returns an empty store.
func New(opts Options) *Store {
	s := &Store{
		scheme:   model.LegacyValidation,
		now:      opts.Now,
		logger:   opts.Logger,
		groups:   map[string]*Group{},
		names:    map[string]*nameEntry{},
		series:   map[uint64]uint32{},
		groupIDs: map[uint32]string{},
		nextNum:  1,
		escaped:  map[string]map[string]struct{}{},
		journal:  opts.Journal,
		shared:   opts.Shared,
		applied:  make(chan struct{}),
		metrics:  newSharedMetrics(),
		expiry:   newExpiryHeap(),
		keys:     keyLocks{m: map[string]*keyLock{}},

		expireAfter: opts.ExpireAfter,
		expireRule:  opts.ExpireRule,
		limits: limits{
			perPush: opts.MaxSeriesPerPush, total: opts.MaxSeries, groups: opts.MaxGroups,
			labels: opts.MaxLabelsPerSeries, nameLen: opts.MaxLabelNameLength, valueLen: opts.MaxLabelValueLength,
		},
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
	// The store's own gauges (RegisterMetrics) are reserved from the same
	// table they are registered from.
	for _, g := range ownGauges {
		s.names[g.name] = &nameEntry{typ: dto.MetricType_GAUGE, reserved: true}
		s.addEscapedLocked(g.name)
	}
	s.names[expiredName] = &nameEntry{typ: dto.MetricType_COUNTER, reserved: true}
	s.addEscapedLocked(expiredName)
	for _, r := range opts.Reserved {
		s.names[r.Name] = &nameEntry{typ: r.Type, reserved: true}
		s.addEscapedLocked(r.Name)
	}
	return s
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

// ownGauges are the store's own metrics, all gauges: RegisterMetrics
// registers them and New reserves their names, both from this one table.
var ownGauges = []struct {
	name, help string
	value      func(Stats) int
}{
	{"pushgate_store_groups", "Number of groups stored.", func(st Stats) int { return st.Groups }},
	{"pushgate_store_series", "Number of series stored, including push_time_seconds and push_failure_time_seconds.", func(st Stats) int { return st.Series }},
	{"pushgate_store_bytes", "Bytes of encoded metric families held by the store.", func(st Stats) int { return st.Bytes }},
}

// RegisterMetrics registers gauges of the store's size with reg.
func (s *Store) RegisterMetrics(reg prometheus.Registerer) {
	for _, g := range ownGauges {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: g.name, Help: g.help},
			func() float64 { return float64(g.value(s.Stats())) }))
	}
	reg.MustRegister(s.metrics.expired)
	if s.shared != nil {
		reg.MustRegister(s.metrics.conflicts, s.metrics.retries)
	}
}

// sharedMetrics count the races of writes to a shared journal, and the
// expired groups.
type sharedMetrics struct {
	conflicts, retries prometheus.Counter
	expired            prometheus.Counter
}

func newSharedMetrics() sharedMetrics {
	return sharedMetrics{
		expired: newExpiredCounter(),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushgate_etcd_conflicts_total",
			Help: "Writes that lost a race to a conflicting write of another replica and were checked again.",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushgate_etcd_retries_total",
			Help: "Writes committed again after a conflict.",
		}),
	}
}
