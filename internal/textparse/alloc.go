package textparse

import (
	"bufio"
	"io"
	"unsafe"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
)

// Sizes for Charge's estimate: what each decoded object holds on the heap.
// Objects come from slabs (below), so there is no size-class rounding to add.
const (
	sizeMetric    = int64(unsafe.Sizeof(dto.Metric{}))
	sizePair      = int64(unsafe.Sizeof(dto.LabelPair{}))
	sizeCounter   = int64(unsafe.Sizeof(dto.Counter{}))
	sizeGauge     = int64(unsafe.Sizeof(dto.Gauge{}))
	sizeUntyped   = int64(unsafe.Sizeof(dto.Untyped{}))
	sizeSummary   = int64(unsafe.Sizeof(dto.Summary{}))
	sizeQuantile  = int64(unsafe.Sizeof(dto.Quantile{}))
	sizeHistogram = int64(unsafe.Sizeof(dto.Histogram{}))
	sizeBucket    = int64(unsafe.Sizeof(dto.Bucket{}))
	sizeFamily    = int64(unsafe.Sizeof(dto.MetricFamily{}))
	sizeString    = int64(unsafe.Sizeof(""))
	// A map entry with its share of buckets and overflow, roughly.
	sizeMapEntry = 48
)

// maxSlab caps the objects in one slab: a slab stays alive as long as any of
// its objects does, so bigger ones would only save a few allocations more.
const maxSlab = 256

// slab hands out pointers to the elements of arrays it allocates (or runs of
// them, see take), each twice as long as the one before (up to maxSlab), so
// that a small body allocates little and a big one allocates once per
// maxSlab objects instead of once per object. Elements are never copied (protobuf messages must not be).
type slab[T any] struct {
	free []T
	size int
	// An Arena's slabs keep the arrays they handed out (up to
	// maxKeptBlocks) in blocks and hand blocks[:reuse] out again only after
	// reset.
	keep   bool
	blocks [][]T
	reuse  int
}

// maxKeptBlocks bounds what an Arena holds on to: up to 16 full slabs of
// each type (about 1.5 MB), enough for pushes of a few thousand series.
const maxKeptBlocks = 16

func (s *slab[T]) get() *T {
	if len(s.free) == 0 {
		s.refill(1)
	}
	v := &s.free[0]
	s.free = s.free[1:]
	return v
}

// take hands out n consecutive elements, with capacity n: an append by
// the caller copies instead of overwriting the next ones.
func (s *slab[T]) take(n int) []T {
	if n > len(s.free) {
		s.refill(n)
	}
	out := s.free[:n:n]
	s.free = s.free[n:]
	return out
}

// refill makes free an array of at least n elements: the next kept one
// after reset if it is long enough, else a new one (kept, if there is
// room, when no kept one is waiting).
func (s *slab[T]) refill(n int) {
	if s.reuse < len(s.blocks) && n <= len(s.blocks[s.reuse]) {
		s.free = s.blocks[s.reuse]
		s.reuse++
		return
	}
	s.size = min(max(2*s.size, 8), maxSlab)
	s.free = make([]T, max(n, s.size))
	if s.keep && s.reuse == len(s.blocks) && len(s.blocks) < maxKeptBlocks {
		s.blocks = append(s.blocks, s.free)
		s.reuse++
	}
}

// reset zeroes the kept arrays, so that they hold no pointers, and makes
// them available again.
func (s *slab[T]) reset() {
	for _, b := range s.blocks[:s.reuse] {
		clear(b)
	}
	s.free, s.reuse = nil, 0
}

// put returns a pointer to a copy of v, for scalars (messages must not be
// copied: use get).
func (s *slab[T]) put(v T) *T {
	p := s.get()
	*p = v
	return p
}

// slabs allocates the decoded families, which live and die together.
type slabs struct {
	metrics   slab[dto.Metric]
	pairs     slab[dto.LabelPair]
	counters  slab[dto.Counter]
	gauges    slab[dto.Gauge]
	untypeds  slab[dto.Untyped]
	quantiles slab[dto.Quantile]
	buckets   slab[dto.Bucket]
	families  slab[dto.MetricFamily]
	floats    slab[float64]
	uints     slab[uint64]
	ints      slab[int64]
	strs      slab[string]
	ptrs      slab[*dto.LabelPair] // the arrays of Label slices

	text     []byte
	textSize int
}

// Arena lets Parse reuse the memory of an earlier result: the messages
// (dto.Metric, dto.LabelPair, the value messages and their scalars,
// dto.MetricFamily), the string headers their *string fields point to, the
// arrays of their Label slices, and the interned label names. After Reset,
// the next Parse with the same Arena hands them out again, zeroed, instead
// of allocating new ones. The bytes of strings are never reused: a string
// copied out of a result (a stored family's name, a label value in an
// error) stays valid for good, only the *string and the messages do not.
//
// The caller must not use any message of a result parsed with the Arena
// after calling Reset, nor pass the Arena to two Parse calls at once. Without
// Reset, an Arena only allocates, like no Arena. The zero value is ready to
// use.
type Arena struct {
	s    slabs
	init bool
	// br is reused too: strings are copied out of its buffer.
	br *bufio.Reader
	// names interns label names across parses: a push repeats the names of
	// the last one. Bounded by maxArenaNames.
	names map[string]*labelName
}

// maxArenaNames and maxArenaNameBytes bound the label names an Arena keeps
// between parses; past either, Reset starts the table afresh.
const (
	maxArenaNames     = 1024
	maxArenaNameBytes = 64 << 10
)

// reader returns the Arena's read buffer, reading r.
func (a *Arena) reader(r io.Reader, size int) *bufio.Reader {
	if a.br == nil || a.br.Size() != size {
		a.br = bufio.NewReaderSize(r, size)
	} else {
		a.br.Reset(r)
	}
	return a.br
}

// Reset makes the messages of all results parsed since the last Reset
// available to the next Parse; see Arena for the caller's obligation.
func (a *Arena) Reset() {
	if a.br != nil {
		a.br.Reset(nil) // drop the request body
	}
	s := &a.s
	s.metrics.reset()
	s.pairs.reset()
	s.counters.reset()
	s.gauges.reset()
	s.untypeds.reset()
	s.quantiles.reset()
	s.buckets.reset()
	s.families.reset()
	s.floats.reset()
	s.uints.reset()
	s.ints.reset()
	s.strs.reset()
	s.ptrs.reset()
	// The bytes of strings are the result's, never reused: a pooled Arena
	// must not keep them (and the blocks they sit in, or a HELP of
	// megabytes) alive until its next Parse.
	s.dropText()
	a.resetNames()
}

// resetNames forgets the last value of each interned label name, which
// points into the reset string headers, or the whole table if it grew past
// its bounds.
func (a *Arena) resetNames() {
	n := 0
	for name, ln := range a.names {
		ln.last = nil
		n += len(name)
	}
	if len(a.names) > maxArenaNames || n > maxArenaNameBytes {
		a.names = nil
	}
}

// slabs returns the Arena's slabs for one Parse, with fresh strings.
func (a *Arena) slabs() *slabs {
	s := &a.s
	if !a.init {
		a.init = true
		s.metrics.keep, s.pairs.keep, s.counters.keep, s.gauges.keep = true, true, true, true
		s.untypeds.keep, s.quantiles.keep, s.buckets.keep, s.families.keep = true, true, true, true
		s.floats.keep, s.uints.keep, s.ints.keep, s.strs.keep, s.ptrs.keep = true, true, true, true, true
	}
	s.dropText()
	return s
}

// labelNames returns the Arena's interned label names for one Parse.
// Without a Reset in between, a last value may come from the previous
// result, which is still valid: results then share a *string, as Parse
// allows.
func (a *Arena) labelNames() map[string]*labelName {
	if a.names == nil {
		a.names = map[string]*labelName{}
	}
	return a.names
}

// dropText starts afresh the bytes of the strings, which a result owns and
// an Arena never reuses.
func (s *slabs) dropText() {
	s.text, s.textSize = nil, 0
}

// maxArenaString is the longest string put in the shared text arena; longer
// ones get their own allocation so that they do not keep a block alive.
const maxArenaString = 512

// str copies b into a string. Short strings are cut from a shared block:
// unsafe.String over bytes that are never written again is an ordinary
// immutable string, and it saves an allocation (and its rounding) per label
// value, the most numerous object after the metric itself.
func (s *slabs) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > maxArenaString {
		return string(b)
	}
	if len(b) > cap(s.text)-len(s.text) {
		s.textSize = min(max(2*s.textSize, 256), 16<<10)
		s.text = make([]byte, 0, s.textSize)
	}
	start := len(s.text)
	s.text = append(s.text, b...)
	return unsafe.String(&s.text[start], len(b))
}

// labelSig is expfmt's currentLabels, the labels (without quantile or le,
// with __name__) that group the lines of a summary or histogram into one
// metric. expfmt resets it only when a line starts in a summary or histogram
// family, so a line that names its metric inside braces ({"x",a="b"}) can
// add to labels left over from earlier lines; that is reproduced, including
// the map expfmt has not made yet (nilMap).
type labelSig struct {
	nilMap  bool
	entries []sigEntry
	buf     []byte // values, which outlive the line they came from
	sorted  []sigEntry
}

type sigEntry struct {
	name   string
	off, n int
}

func (s *labelSig) reset(name string) {
	s.nilMap = false
	s.entries = s.entries[:0]
	s.buf = s.buf[:0]
	s.set(model.MetricNameLabel, []byte(name))
}

// set adds a label or replaces its value, as a map assignment does.
func (s *labelSig) set(name string, val []byte) {
	off := len(s.buf)
	s.buf = append(s.buf, val...)
	for k := range s.entries {
		if s.entries[k].name == name {
			s.entries[k].off, s.entries[k].n = off, len(val)
			return
		}
	}
	s.entries = append(s.entries, sigEntry{name: name, off: off, n: len(val)})
}

// hash is model.LabelsToSignature of the labels: FNV-1a over the names in
// order, each name and value followed by a 0xff byte. Using the same hash
// as expfmt keeps even its (unlikely) collisions identical.
func (s *labelSig) hash() uint64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	// Insertion sort: a handful of labels, usually in order already.
	s.sorted = append(s.sorted[:0], s.entries...)
	for i := 1; i < len(s.sorted); i++ {
		for j := i; j > 0 && s.sorted[j].name < s.sorted[j-1].name; j-- {
			s.sorted[j], s.sorted[j-1] = s.sorted[j-1], s.sorted[j]
		}
	}
	h := uint64(offset64)
	for _, e := range s.sorted {
		for i := 0; i < len(e.name); i++ {
			h = (h ^ uint64(e.name[i])) * prime64
		}
		h = (h ^ uint64(model.SeparatorByte)) * prime64
		for _, c := range s.buf[e.off : e.off+e.n] {
			h = (h ^ uint64(c)) * prime64
		}
		h = (h ^ uint64(model.SeparatorByte)) * prime64
	}
	return h
}
