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

// slab hands out pointers to the elements of arrays it allocates, each twice
// as long as the one before (up to maxSlab), so that a small body allocates
// little and a big one allocates once per maxSlab objects instead of once per
// object. Elements are never copied (protobuf messages must not be).
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
		if s.reuse < len(s.blocks) {
			s.free = s.blocks[s.reuse]
			s.reuse++
		} else {
			s.size = min(max(2*s.size, 8), maxSlab)
			s.free = make([]T, s.size)
			if s.keep && len(s.blocks) < maxKeptBlocks {
				s.blocks = append(s.blocks, s.free)
				s.reuse++
			}
		}
	}
	v := &s.free[0]
	s.free = s.free[1:]
	return v
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

	ptrs     []*dto.LabelPair
	ptrsSize int

	text     []byte
	textSize int
}

// Arena lets Parse reuse the messages of an earlier result (dto.Metric,
// dto.LabelPair, the value messages and their scalars, dto.MetricFamily):
// after Reset, the next Parse with the same Arena hands them out again,
// zeroed, instead of allocating new ones. Strings are never reused: label
// values and names may be kept (a stored family keeps its name and help).
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
}

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
	// The strings are the result's, never reused: a pooled Arena must not
	// keep them (and the blocks they sit in, or a HELP of megabytes) alive
	// until its next Parse.
	s.dropStrings()
}

// slabs returns the Arena's slabs for one Parse, with fresh strings.
func (a *Arena) slabs() *slabs {
	s := &a.s
	if !a.init {
		a.init = true
		s.metrics.keep, s.pairs.keep, s.counters.keep, s.gauges.keep = true, true, true, true
		s.untypeds.keep, s.quantiles.keep, s.buckets.keep, s.families.keep = true, true, true, true
		s.floats.keep, s.uints.keep, s.ints.keep = true, true, true
	}
	s.dropStrings()
	return s
}

// dropStrings starts afresh what a result owns and an Arena never reuses:
// its strings and the arrays of its label slices.
func (s *slabs) dropStrings() {
	s.strs = slab[string]{}
	s.ptrs, s.ptrsSize = nil, 0
	s.text, s.textSize = nil, 0
}

func (s *slabs) pairPtrs(n int) []*dto.LabelPair {
	if n > len(s.ptrs) {
		s.ptrsSize = min(max(2*s.ptrsSize, 16), 4*maxSlab)
		s.ptrs = make([]*dto.LabelPair, max(n, s.ptrsSize))
	}
	// Capacity n: an append by the caller copies instead of overwriting the
	// next metric's labels.
	out := s.ptrs[:n:n]
	s.ptrs = s.ptrs[n:]
	return out
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
