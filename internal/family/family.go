// Package family holds one metric family of one group in the forms a scrape
// needs: the protobuf encoding of its metrics and its text exposition lines.
// Both are produced once, when the family is pushed, so that a scrape only
// concatenates bytes: the metrics of the same family name in different groups
// are joined under one header, in text as in protobuf.
//
// Both forms are held s2-compressed (github.com/klauspost/compress/s2):
// exposition text is repetitive (every series repeats its grouping labels),
// so this holds a stored series in a fraction of the memory, and s2 decodes
// at several GB/s, so a scrape still costs little more than copying bytes.
package family

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unique"

	"github.com/klauspost/compress/s2"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/deflate"
)

// Family is one metric family of one group. It is immutable once built and
// safe for concurrent use.
type Family struct {
	Name string
	Help string
	Type dto.MetricType
	// Time is when the family was last pushed.
	Time time.Time
	// Series is the number of metrics (label sets) in the family.
	Series int

	// metrics holds, compressed, the family's metrics as protobuf field-4
	// entries of an io.prometheus.client.MetricFamily message. Entries of
	// several groups concatenate into one valid message body, so this is
	// the canonical stored form; Decode turns it back into a MetricFamily.
	metrics    []byte
	metricsLen int
	// text holds, compressed, the text format 0.0.4 sample lines without
	// HELP and TYPE; absent (hasText false) when a name needs escaping for
	// legacy scrapers, in which case the family is encoded per scrape.
	text    []byte
	textLen int
	hasText bool

	// textGzip and metricsGzip cache the text lines and the metric entries
	// as deflate fragments, for gzip scrapes. They are made by the first
	// scrape that needs them, so that pushes and families that are never
	// scraped with gzip pay nothing; a family is replaced, not changed, by
	// a push, so a cached fragment never goes stale.
	textGzip    atomic.Pointer[deflate.Fragment]
	metricsGzip atomic.Pointer[deflate.Fragment]

	// name and help keep the interned Name and Help (see intern) in the
	// table while a family uses them.
	name, help unique.Handle[string]
}

// New encodes mf, which must be sanitized already (labels sorted, grouping
// labels set) and have a valid type. mf is not retained.
func New(mf *dto.MetricFamily, t time.Time) (*Family, error) {
	f := &Family{Type: mf.GetType(), Time: t, Series: len(mf.Metric)}
	f.intern(mf.GetName(), mf.GetHelp())
	if len(mf.Metric) == 0 {
		f.hasText = true
		return f, nil
	}
	sc := scratchPool.Get().(*scratch)
	defer sc.put()
	raw, ok := appendMetricEntries(sc.raw[:0], mf.Metric)
	if !ok {
		var err error
		if raw, err = (proto.MarshalOptions{}).MarshalAppend(sc.raw[:0], &dto.MetricFamily{Metric: mf.Metric}); err != nil {
			return nil, fmt.Errorf("encode family %q as protobuf: %w", f.Name, err)
		}
	}
	sc.raw = raw
	hasText, err := sc.textLines(mf)
	if err != nil {
		return nil, err
	}
	// Both forms in one exact-size allocation: a stored family is one
	// object fewer for the collector to mark.
	data := sc.compress(sc.data[:0], raw)
	n := len(data)
	f.metricsLen = len(raw)
	if hasText {
		data = sc.compress(data, sc.text)
		f.textLen, f.hasText = len(sc.text), true
	}
	sc.data = data
	data = bytes.Clone(data)
	f.metrics, f.text = data[:n:n], data[n:]
	if !hasText {
		f.text = nil
	}
	return f, nil
}

// scratch holds New's intermediate buffers, which are garbage once the
// compressed forms are made: pooled, a push allocates little more than
// what it stores.
type scratch struct {
	raw    []byte // protobuf
	text   []byte // text lines
	labels []byte // one metric's label pairs, as text
	data   []byte // the compressed forms
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// maxScratch is the largest buffer returned to the pool: one huge push
// must not keep its buffers alive.
const maxScratch = 1 << 20

func (sc *scratch) put() {
	if cap(sc.raw) > maxScratch || cap(sc.text) > maxScratch || cap(sc.labels) > maxScratch || cap(sc.data) > maxScratch {
		return
	}
	scratchPool.Put(sc)
}

// intern sets the family's name and help to the copies that every family
// of that name shares. Copies, because a decoded push's strings share
// blocks (see textparse), which a kept name or help would keep alive
// (measured at a fifth of the heap at 100k series); shared, because
// every group repeats them: two objects fewer per stored family for the
// collector to mark, whose work grows with their number (a sixth of the
// CPU during pushes at 1M series).
func (f *Family) intern(name, help string) {
	f.name, f.help = unique.Make(name), unique.Make(help)
	f.Name, f.Help = f.name.Value(), f.help.Value()
}

// compress appends b to dst, compressed. s2's default
// mode, not EncodeBetter: on a push's families (BenchmarkNew) it takes 42 %
// of the time for 3.9 % more bytes, and compression was the largest single
// item of a push's CPU profile once the encoders were ours (12 %).
func (sc *scratch) compress(dst, b []byte) []byte {
	// s2 writes into dst's spare room if it can hold the worst case.
	dst = slices.Grow(dst, s2.MaxEncodedLen(len(b)))
	out := s2.Encode(dst[len(dst):cap(dst)], b)
	return dst[:len(dst)+len(out)]
}

// Stored returns the compressed forms, for writing the family to storage.
// The slices must not be modified.
func (f *Family) Stored() (metrics, text []byte, hasText bool) {
	return f.metrics, f.text, f.hasText
}

// FromStored rebuilds a family from what Stored returned. Only the headers
// of the compressed forms are checked (see checked).
func FromStored(name, help string, typ dto.MetricType, t time.Time, series int, metrics, text []byte, hasText bool) (*Family, error) {
	f := &Family{Type: typ, Time: t, Series: series, hasText: hasText}
	f.intern(name, help)
	if series == 0 {
		if len(metrics) != 0 || len(text) != 0 {
			return nil, fmt.Errorf("family %q: data without series", name)
		}
		return f, nil
	}
	var err error
	if f.metrics, f.metricsLen, err = checked(metrics); err != nil {
		return nil, fmt.Errorf("family %q: metrics: %w", name, err)
	}
	if hasText {
		if f.text, f.textLen, err = checked(text); err != nil {
			return nil, fmt.Errorf("family %q: text: %w", name, err)
		}
	}
	return f, nil
}

// checked reads a compressed block's length. The block itself is not
// decoded: stored values carry a checksum over all of it (see the store's
// codec), and decoding every block would double the restart time; a block
// that still fails to decode is an error where it is read.
func checked(b []byte) ([]byte, int, error) {
	n, err := s2.DecodedLen(b)
	if err != nil {
		return nil, 0, err
	}
	return b, n, nil
}

// HasText reports whether the family's text lines are stored; if not, its
// names need escaping and it must be encoded per scrape.
func (f *Family) HasText() bool { return f.hasText }

// MetricsLen is the size of the uncompressed protobuf metric entries.
func (f *Family) MetricsLen() int { return f.metricsLen }

// Size is the number of bytes the family holds in memory for its data.
func (f *Family) Size() int { return len(f.metrics) + len(f.text) }

// AppendText appends the text lines to dst.
func (f *Family) AppendText(dst []byte) ([]byte, error) {
	return appendDecoded(dst, f.text, f.textLen)
}

// AppendMetrics appends the protobuf metric entries to dst.
func (f *Family) AppendMetrics(dst []byte) ([]byte, error) {
	return appendDecoded(dst, f.metrics, f.metricsLen)
}

// TextFragment returns the text lines as a deflate fragment, made on the
// first call. Concurrent first calls may each compress them, and all get
// the same fragment.
func (f *Family) TextFragment() (*deflate.Fragment, error) {
	fr, err := fragment(&f.textGzip, f.text, f.textLen)
	if err != nil {
		return nil, fmt.Errorf("family %q: text lines for gzip: %w", f.Name, err)
	}
	return fr, nil
}

// MetricsFragment returns the protobuf metric entries as a deflate
// fragment, made on the first call, as TextFragment does.
func (f *Family) MetricsFragment() (*deflate.Fragment, error) {
	fr, err := fragment(&f.metricsGzip, f.metrics, f.metricsLen)
	if err != nil {
		return nil, fmt.Errorf("family %q: protobuf metrics for gzip: %w", f.Name, err)
	}
	return fr, nil
}

// GzipSize is the number of bytes the cached deflate fragments hold.
func (f *Family) GzipSize() int {
	n := 0
	if fr := f.textGzip.Load(); fr != nil {
		n += len(fr.Data)
	}
	if fr := f.metricsGzip.Load(); fr != nil {
		n += len(fr.Data)
	}
	return n
}

func fragment(cache *atomic.Pointer[deflate.Fragment], src []byte, n int) (*deflate.Fragment, error) {
	if fr := cache.Load(); fr != nil {
		return fr, nil
	}
	// New's pooled buffers serve here too: the decoded bytes are garbage
	// once compressed.
	sc := scratchPool.Get().(*scratch)
	defer sc.put()
	var err error
	if sc.raw, err = appendDecoded(sc.raw[:0], src, n); err != nil {
		return nil, err
	}
	fr := deflate.Compress(sc.raw)
	if !cache.CompareAndSwap(nil, fr) {
		fr = cache.Load()
	}
	return fr, nil
}

func appendDecoded(dst, src []byte, n int) ([]byte, error) {
	if n == 0 {
		return dst, nil
	}
	dst = slices.Grow(dst, n)
	out, err := s2.Decode(dst[len(dst):len(dst)+n], src)
	if err != nil {
		return dst, err
	}
	return dst[:len(dst)+len(out)], nil
}

// TextLines returns the text exposition of mf's metrics without the HELP and
// TYPE lines, as expfmt writes them: with New's encoder, or expfmt's for a
// family whose names need escaping (and for one without metrics, which it
// refuses).
func TextLines(mf *dto.MetricFamily) ([]byte, error) {
	sc := scratchPool.Get().(*scratch)
	defer sc.put()
	ok := false
	if len(mf.Metric) > 0 {
		var err error
		if ok, err = sc.textLines(mf); err != nil {
			return nil, err
		}
	}
	if ok {
		// An exact copy: the scratch goes back to its pool.
		return bytes.Clone(sc.text), nil
	}
	var buf bytes.Buffer
	if err := writeTextLines(&buf, mf); err != nil {
		return nil, err
	}
	// An exact copy: the buffer's spare capacity would stay allocated for
	// as long as the family is stored.
	return bytes.Clone(buf.Bytes()), nil
}

// writeTextLines writes TextLines to buf, which must be empty.
func writeTextLines(buf *bytes.Buffer, mf *dto.MetricFamily) error {
	noHelp := &dto.MetricFamily{Name: mf.Name, Type: mf.Type, Metric: mf.Metric}
	if _, err := expfmt.MetricFamilyToText(buf, noHelp); err != nil {
		return fmt.Errorf("encode family %q as text: %w", mf.GetName(), err)
	}
	// Without a HELP, the first line is the TYPE line.
	if i := bytes.IndexByte(buf.Bytes(), '\n'); i >= 0 {
		buf.Next(i + 1)
	}
	return nil
}

// NeedsEscaping reports whether the family's metric name or any label name is
// outside the legacy character set, so that its exposition depends on the
// escaping scheme negotiated with the scraper.
func NeedsEscaping(mf *dto.MetricFamily) bool {
	if !model.LegacyValidation.IsValidMetricName(mf.GetName()) {
		return true
	}
	var prev []*dto.LabelPair
	for _, m := range mf.Metric {
		for k, lp := range m.Label {
			// A decoded push's metrics share their label names (textparse
			// interns them): one checked at this position on the metric
			// before is valid. A check per label was 1 % of a push's CPU.
			if k < len(prev) && prev[k].Name == lp.Name && lp.Name != nil {
				continue
			}
			if !model.LegacyValidation.IsValidLabelName(lp.GetName()) {
				return true
			}
		}
		prev = m.Label
	}
	return false
}

// Decode returns the family as a new MetricFamily that the caller owns.
func (f *Family) Decode() (*dto.MetricFamily, error) {
	raw, err := f.AppendMetrics(nil)
	if err != nil {
		return nil, fmt.Errorf("decode family %q: %w", f.Name, err)
	}
	mf := &dto.MetricFamily{}
	if err := proto.Unmarshal(raw, mf); err != nil {
		return nil, fmt.Errorf("decode family %q: %w", f.Name, err)
	}
	mf.Name = proto.String(f.Name)
	if f.Help != "" {
		mf.Help = proto.String(f.Help)
	}
	mf.Type = f.Type.Enum()
	return mf, nil
}

// AppendTextHeader appends the HELP and TYPE lines of a family, as expfmt
// writes them, for a legacy-valid name.
func AppendTextHeader(b []byte, name, help string, typ dto.MetricType) []byte {
	if help != "" {
		b = append(b, "# HELP "...)
		b = append(b, name...)
		b = append(b, ' ')
		b = append(b, helpEscaper.Replace(help)...)
		b = append(b, '\n')
	}
	b = append(b, "# TYPE "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = append(b, TypeName(typ)...)
	return append(b, '\n')
}

var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

// TypeName is the type as the text format 0.0.4 spells it. It has no gauge
// histogram, which it renders as a histogram (as expfmt does).
func TypeName(t dto.MetricType) string {
	switch t {
	case dto.MetricType_COUNTER:
		return "counter"
	case dto.MetricType_GAUGE:
		return "gauge"
	case dto.MetricType_SUMMARY:
		return "summary"
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		return "histogram"
	default:
		return "untyped"
	}
}

// AppendDelimitedHeader appends the varint length prefix and the name, help
// and type fields of a length-delimited MetricFamily message whose metric
// entries (each group's Metrics) add up to bodyLen bytes and follow directly.
func AppendDelimitedHeader(b []byte, name, help string, typ dto.MetricType, bodyLen int) ([]byte, error) {
	mf := &dto.MetricFamily{Name: proto.String(name), Type: typ.Enum()}
	if help != "" {
		mf.Help = proto.String(help)
	}
	head, err := proto.Marshal(mf)
	if err != nil {
		return b, fmt.Errorf("encode header of family %q: %w", name, err)
	}
	b = binary.AppendUvarint(b, uint64(len(head)+bodyLen))
	return append(b, head...), nil
}
