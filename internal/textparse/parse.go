package textparse

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Options configure Parse.
type Options struct {
	// Scheme validates metric and label names: model.LegacyValidation or
	// model.UTF8Validation, as expfmt.NewTextParser takes. Any other value
	// makes Parse fail at once (expfmt would panic on the first name).
	Scheme model.ValidationScheme
	// Charge, if non-nil, is called as the decoded result grows: series is
	// the number of new dto.Metric values created since the last call (0 or
	// more), bytes an estimate of the heap the decoded families now hold in
	// addition, per-object overhead included. It is called once for every new
	// dto.Metric, and in between whenever about 4 KiB accumulate (help texts,
	// quantiles, buckets). A non-nil error stops parsing at once; Parse
	// returns that error unwrapped. When Parse succeeds, the series passed to
	// Charge add up to the number of dto.Metric values in the result.
	Charge func(series int, bytes int64) error
	// MaxLineBytes, if positive, is the longest line accepted; a longer one
	// is an error on its line ("line longer than N bytes"), found before
	// the line is read whole. A line longer than the read buffer is copied
	// into a buffer of its own; its growth is charged (three times the
	// longest line: the old buffer lives while it is copied), so that one
	// huge line, such as a decompressed bomb of zero bytes, is bounded like
	// everything else. Charge only ever grows, so that charge stays with
	// the result.
	MaxLineBytes int
	// Arena, if non-nil, supplies the messages of the result, reusing
	// those of results parsed earlier with it once it is Reset (see Arena).
	Arena *Arena
}

// chargeEvery is how many bytes may accumulate without a new series before
// Charge hears of them.
const chargeEvery = 4 << 10

// readBufSize is the bufio buffer (bufio's and expfmt's default): a line
// that fits is parsed in place, a longer one is copied together.
const readBufSize = 4 << 10

// Parse reads a text-format (0.0.4) body and returns its families by name,
// as expfmt's TextParser.TextToMetricFamilies does; it reads r through a
// buffer and holds one line of it at a time.
//
// On failure it returns a nil map and either an expfmt.ParseError (with the
// text and line number expfmt gives), an error of r, or Charge's error.
//
// The result belongs to the caller. Messages share memory in two ways that
// only writing through a pointer would reveal: label names and repeated label
// values share one *string, and structs and strings are carved from larger
// blocks. Replace fields (lp.Value = proto.String(v)); never assign through
// them (*lp.Value = v). Appending to a Label or Metric slice is safe.
func Parse(r io.Reader, opts Options) (map[string]*dto.MetricFamily, error) {
	return parse(r, opts, readBufSize)
}

// parse is Parse with a choice of buffer size, so that tests can cross
// buffer boundaries with short inputs.
func parse(r io.Reader, opts Options, bufSize int) (map[string]*dto.MetricFamily, error) {
	switch opts.Scheme {
	case model.LegacyValidation, model.UTF8Validation:
	default:
		return nil, fmt.Errorf("text format: unsupported name validation scheme %s", opts.Scheme)
	}
	var br *bufio.Reader
	if opts.Arena != nil {
		br = opts.Arena.reader(r, bufSize)
	} else {
		br = bufio.NewReaderSize(r, bufSize)
	}
	p := &parser{
		br:       br,
		scheme:   opts.Scheme,
		charge:   opts.Charge,
		maxLine:  opts.MaxLineBytes,
		fams:     map[string]*dto.MetricFamily{},
		quantile: math.NaN(),
		bucket:   math.NaN(),
	}
	if opts.Arena != nil {
		p.slabs = opts.Arena.slabs()
		p.names = opts.Arena.labelNames()
	} else {
		p.slabs = &slabs{}
		p.names = map[string]*labelName{}
	}
	p.sig.nilMap = true
	return p.run()
}

// parser holds the state of one Parse. Its fields mirror the state expfmt's
// TextParser carries from byte to byte and from line to line, because some
// of expfmt's results depend on state left over from earlier lines (see
// labelSig); the comments name the expfmt field where that matters.
type parser struct {
	br     *bufio.Reader
	scheme model.ValidationScheme
	charge func(int, int64) error

	// line is the line being parsed, with its '\n' unless it is the last
	// one; line[i] is expfmt's currentByte. Reading past a line that ends in
	// '\n' never happens (every state stops at the '\n'); past the last line,
	// reading yields readErr (io.EOF or the reader's error).
	line    []byte
	i       int
	long    []byte // holds a line longer than the bufio buffer
	maxLine int    // Options.MaxLineBytes
	// longCharged is what was charged for long (the longest line so far).
	longCharged int64
	readErr     error
	lineNo      int
	tok         []byte // scratch for names with quotes or escapes

	fams map[string]*dto.MetricFamily
	mf   *dto.MetricFamily // currentMF: kept across lines, as in expfmt

	// Per line.
	hasMetric    bool      // currentMetric != nil
	inBraces     bool      // currentMetricIsInsideBraces
	nameInBraces bool      // currentMetricInsideBracesIsPresent
	lbls         []pending // currentLabelPairs
	posNames     []*labelName

	// Set by family lookup: whether the name is the _count or _sum of mf, a
	// summary or histogram family.
	isCount, isSum bool

	// Summary and histogram grouping; kept across lines like expfmt's.
	sig                   labelSig
	quantile, bucket      float64
	summaries, histograms map[uint64]*dto.Metric
	hists                 []*dto.Histogram

	names map[string]*labelName
	slabs *slabs

	// Not yet reported to Charge.
	series int
	bytes  int64
}

// pending is a label of the line being parsed, before it becomes a
// dto.LabelPair. val points into line.
type pending struct {
	name *labelName
	val  []byte
}

// labelName is an interned label name with its last value, so that a value
// repeated on many lines (job, instance) is stored once.
type labelName struct {
	name *string
	last *string
}

func (p *parser) run() (map[string]*dto.MetricFamily, error) {
	for {
		more, err := p.nextLine()
		if err == nil {
			err = p.parseLine()
		}
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
		if p.bytes >= chargeEvery {
			if err := p.flush(); err != nil {
				return nil, err
			}
		}
	}
	for name, mf := range p.fams {
		if len(mf.Metric) == 0 {
			delete(p.fams, name)
		}
	}
	for _, h := range p.hists {
		normalizeHistogram(h)
	}
	if p.bytes > 0 || p.series > 0 {
		if err := p.flush(); err != nil {
			return nil, err
		}
	}
	return p.fams, nil
}

// nextLine reads the next line into p.line. more is false once the input is
// exhausted; the last line (possibly empty) is still to be parsed then.
func (p *parser) nextLine() (more bool, err error) {
	p.i = 0
	line, err := p.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		p.long = append(p.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if err := p.chargeLong(); err != nil {
				return false, err
			}
			line, err = p.br.ReadSlice('\n')
			p.long = append(p.long, line...)
		}
		if err := p.chargeLong(); err != nil {
			return false, err
		}
		line = p.long
	}
	p.line = line
	if err != nil {
		p.readErr = err
		return false, nil
	}
	return true, nil
}

// chargeLong bounds and charges the buffer of a line longer than the read
// buffer, as it grows.
func (p *parser) chargeLong() error {
	if p.maxLine > 0 && len(p.long) > p.maxLine {
		return expfmt.ParseError{Line: p.lineNo + 1, Msg: fmt.Sprintf("line longer than %d bytes", p.maxLine)}
	}
	need := 3 * int64(len(p.long))
	if need <= p.longCharged || p.charge == nil {
		return nil
	}
	if err := p.charge(0, need-p.longCharged); err != nil {
		return err
	}
	p.longCharged = need
	return nil
}

// end is the error for reading past the input: expfmt turns io.EOF into a
// parse error and passes any other read error through.
func (p *parser) end() error {
	if errors.Is(p.readErr, io.EOF) {
		return p.errorf("unexpected end of input stream")
	}
	return p.readErr
}

func (p *parser) errorf(format string, args ...any) error {
	return expfmt.ParseError{Line: p.lineNo, Msg: fmt.Sprintf(format, args...)}
}

// atEnd reports whether line[i] lies past the input.
func (p *parser) atEnd() bool { return p.i >= len(p.line) }

// skipBlank is expfmt's skipBlankTab: it moves past the current byte and any
// blanks after it.
func (p *parser) skipBlank() bool {
	p.i++
	for p.i < len(p.line) && isBlank(p.line[p.i]) {
		p.i++
	}
	return p.i < len(p.line)
}

// skipBlankIfBlank is expfmt's skipBlankTabIfCurrentBlankTab.
func (p *parser) skipBlankIfBlank() bool {
	if isBlank(p.line[p.i]) {
		return p.skipBlank()
	}
	return true
}

func isBlank(b byte) bool { return b == ' ' || b == '\t' }

// parseLine parses p.line, expfmt's states from startOfLine up to the next
// startOfLine.
func (p *parser) parseLine() error {
	p.lineNo++
	p.hasMetric, p.inBraces, p.nameInBraces = false, false, false
	p.lbls = p.lbls[:0]
	for p.i < len(p.line) && isBlank(p.line[p.i]) {
		p.i++
	}
	if p.atEnd() {
		// The only place where the end of input is no error.
		if errors.Is(p.readErr, io.EOF) {
			return nil
		}
		return p.readErr
	}
	switch p.line[p.i] {
	case '#':
		return p.comment()
	case '\n':
		return nil
	case '{':
		p.inBraces = true
		return p.labels()
	}
	return p.sample()
}

// comment parses a comment line from its '#'.
func (p *parser) comment() error {
	if !p.skipBlank() {
		return p.end()
	}
	if p.line[p.i] == '\n' {
		return nil
	}
	keyword, ok := p.untilBlank()
	if !ok {
		return p.end()
	}
	if p.line[p.i] == '\n' {
		return nil
	}
	help := string(keyword) == "HELP"
	if !help && string(keyword) != "TYPE" {
		// Any other comment: skip to the end of the line.
		if p.line[len(p.line)-1] != '\n' {
			return p.end()
		}
		return nil
	}
	if !p.skipBlank() {
		return p.end()
	}
	name, err := p.name(false)
	if err != nil {
		return err
	}
	if p.line[p.i] == '\n' {
		return nil
	}
	if !isBlank(p.line[p.i]) {
		return p.errorf("invalid metric name in comment")
	}
	if err := p.family(name); err != nil {
		return err
	}
	if !p.skipBlank() {
		return p.end()
	}
	if p.line[p.i] == '\n' {
		return nil
	}
	if help {
		if p.mf.Help != nil {
			return p.errorf("second HELP line for metric name %q", p.mf.GetName())
		}
		text, ok, err := p.untilNewline(true)
		if err != nil {
			return err
		}
		if !ok {
			return p.end()
		}
		p.mf.Help = p.slabs.strs.put(p.slabs.str(text))
		p.bytes += sizeString + int64(len(text))
		return nil
	}
	if p.mf.Type != nil {
		return p.errorf("second TYPE line for metric name %q, or TYPE reported after samples", p.mf.GetName())
	}
	word, ok, _ := p.untilNewline(false)
	if !ok {
		return p.end()
	}
	// strings.ToUpper, not an ASCII fold: expfmt accepts "hıstogram".
	typ := strings.ToUpper(string(word))
	v, known := dto.MetricType_value[typ]
	if !known {
		// OpenMetrics' spelling of a gauge histogram, which expfmt accepts.
		if typ != "GAUGEHISTOGRAM" {
			return p.errorf("unknown metric type %q", word)
		}
		v = int32(dto.MetricType_GAUGE_HISTOGRAM)
	}
	p.mf.Type = dto.MetricType(v).Enum()
	return nil
}

// sample parses a sample line that starts with a metric name.
func (p *parser) sample() error {
	name, err := p.name(false)
	if err != nil {
		return err
	}
	if len(name) == 0 {
		return p.errorf("invalid metric name")
	}
	if err := p.family(name); err != nil {
		return err
	}
	p.defaultType()
	p.hasMetric = true
	if !p.skipBlankIfBlank() {
		return p.end()
	}
	return p.labels()
}

func (p *parser) defaultType() {
	if p.mf.Type == nil {
		p.mf.Type = dto.MetricType_UNTYPED.Enum()
	}
}

// isSummary and isHistogram test the current family, which may be nil (a
// line that starts with '{' before any family was seen), like expfmt's
// nil-safe getters.
func (p *parser) isSummary() bool { return p.mf.GetType() == dto.MetricType_SUMMARY }

func (p *parser) isHistogram() bool { return isHistogramType(p.mf.GetType()) }

func isHistogramType(t dto.MetricType) bool {
	return t == dto.MetricType_HISTOGRAM || t == dto.MetricType_GAUGE_HISTOGRAM
}

// labels is expfmt's readingLabels and what follows: line[i] is '{' or the
// first byte of the value.
func (p *parser) labels() error {
	if p.isSummary() || p.isHistogram() {
		p.sig.reset(p.mf.GetName())
		p.quantile = math.NaN()
		p.bucket = math.NaN()
	}
	if p.line[p.i] != '{' {
		return p.value()
	}
	for {
		done, err := p.label()
		if err != nil || done {
			return err
		}
	}
}

// label parses one label (or, inside braces, the metric name) and what
// follows it. done means the value has been parsed too.
func (p *parser) label() (done bool, err error) {
	if !p.skipBlank() {
		return false, p.end()
	}
	if p.line[p.i] == '}' {
		return true, p.closeBrace()
	}
	pos := len(p.lbls)
	tok, err := p.name(true)
	if err != nil {
		return false, err
	}
	if len(tok) == 0 {
		return false, p.errorf("invalid label name for metric %q", p.mf.GetName())
	}
	if !p.skipBlankIfBlank() {
		return false, p.end()
	}
	if c := p.line[p.i]; c != '=' {
		if !p.inBraces {
			return false, p.errorf("expected '=' after label name, found %q", c)
		}
		if p.nameInBraces {
			return false, p.errorf("multiple metric names for metric %q", p.mf.GetName())
		}
		switch c {
		case ',', '}':
			if err := p.family(tok); err != nil {
				return false, err
			}
			p.defaultType()
			p.hasMetric = true
			if c == ',' {
				p.nameInBraces = true
				return false, nil
			}
			if !p.skipBlank() {
				return false, p.end()
			}
			return true, p.value()
		default:
			return false, p.errorf("unexpected end of metric name %q", c)
		}
	}
	if string(tok) == model.MetricNameLabel {
		return false, p.errorf("label name %q is reserved", model.MetricNameLabel)
	}
	ln := p.labelName(tok, pos)
	if ln == nil {
		return false, p.errorf("invalid label name %q", tok)
	}
	name := *ln.name
	// quantile and le become part of the value, not labels.
	special := (p.isSummary() && name == model.QuantileLabel) || (p.isHistogram() && name == model.BucketLabel)
	if !special {
		for _, l := range p.lbls {
			if l.name == ln {
				return false, p.errorf("duplicate label names for metric %q", p.mf.GetName())
			}
		}
		p.lbls = append(p.lbls, pending{name: ln})
	}
	if !p.skipBlank() {
		return false, p.end()
	}
	if c := p.line[p.i]; c != '"' {
		return false, p.errorf("expected '\"' at start of label value, found %q", c)
	}
	val, err := p.labelValue()
	if err != nil {
		return false, err
	}
	if !utf8.Valid(val) {
		return false, p.errorf("invalid label value %q", val)
	}
	if !special {
		p.lbls[len(p.lbls)-1].val = val
	}
	if special {
		f, err := parseFloat(val)
		if err != nil {
			return false, p.errorf("expected float as value for '%s' label, got %q", name, val)
		}
		if p.isSummary() {
			p.quantile = f
		} else {
			p.bucket = f
		}
	} else if p.isSummary() || p.isHistogram() {
		if err := p.setSig(name, val); err != nil {
			return false, err
		}
	}
	if !p.skipBlank() {
		return false, p.end()
	}
	switch p.line[p.i] {
	case ',':
		return false, nil
	case '}':
		return true, p.closeBrace()
	default:
		return false, p.errorf("unexpected end of label value %q", val)
	}
}

// setSig records a label for the summary/histogram grouping.
func (p *parser) setSig(name string, val []byte) error {
	if p.sig.nilMap {
		// expfmt writes to a map it has not made yet and panics: a line
		// like {"sum", a="b"} where "sum" is a summary, when no earlier
		// line started a summary or histogram. We refuse it instead.
		return p.errorf("labels after the name of summary or histogram %q inside braces are not supported here (expfmt panics on this line)", p.mf.GetName())
	}
	p.sig.set(name, val)
	return nil
}

func (p *parser) closeBrace() error {
	if !p.hasMetric {
		return p.errorf("invalid metric name")
	}
	if !p.skipBlank() {
		return p.end()
	}
	return p.value()
}

// value parses the sample value and the rest of the line; line[i] is the
// first byte of the value.
func (p *parser) value() error {
	var m *dto.Metric
	switch {
	case p.isSummary():
		m = p.groupMetric(&p.summaries)
	case p.isHistogram():
		m = p.groupMetric(&p.histograms)
	default:
		m = p.newMetric()
	}
	if err := p.flushSeries(); err != nil {
		return err
	}
	tok, ok := p.untilBlank()
	if !ok {
		return p.end()
	}
	v, err := parseFloat(tok)
	if err != nil {
		return p.errorf("expected float as value, got %q", tok)
	}
	if err := p.setValue(m, v); err != nil {
		return err
	}
	if p.line[p.i] == '\n' {
		return nil
	}
	return p.timestamp(m)
}

// groupMetric returns the metric of group (expfmt's summaries or
// histograms) that the labels of the line belong to, making it if needed.
func (p *parser) groupMetric(group *map[uint64]*dto.Metric) *dto.Metric {
	sig := p.sig.hash()
	m := (*group)[sig]
	if m == nil {
		if *group == nil {
			*group = map[uint64]*dto.Metric{}
		}
		m = p.newMetric()
		(*group)[sig] = m
	}
	return m
}

func (p *parser) setValue(m *dto.Metric, v float64) error {
	s := p.slabs
	switch p.mf.GetType() {
	case dto.MetricType_COUNTER:
		c := s.counters.get()
		c.Value = s.floats.put(v)
		m.Counter = c
		p.bytes += sizeCounter + 8
	case dto.MetricType_GAUGE:
		g := s.gauges.get()
		g.Value = s.floats.put(v)
		m.Gauge = g
		p.bytes += sizeGauge + 8
	case dto.MetricType_UNTYPED:
		u := s.untypeds.get()
		u.Value = s.floats.put(v)
		m.Untyped = u
		p.bytes += sizeUntyped + 8
	case dto.MetricType_SUMMARY:
		if m.Summary == nil {
			m.Summary = &dto.Summary{}
			p.bytes += sizeSummary
		}
		switch {
		case p.isCount:
			m.Summary.SampleCount = s.uints.put(uint64(v))
			p.bytes += 8
		case p.isSum:
			m.Summary.SampleSum = s.floats.put(v)
			p.bytes += 8
		case !math.IsNaN(p.quantile):
			q := s.quantiles.get()
			q.Quantile = s.floats.put(p.quantile)
			q.Value = s.floats.put(v)
			m.Summary.Quantile = append(m.Summary.Quantile, q)
			p.bytes += sizeQuantile + 16 + 8
		}
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		h := m.Histogram
		if h == nil {
			h = &dto.Histogram{}
			m.Histogram = h
			p.hists = append(p.hists, h)
			p.bytes += sizeHistogram
		}
		switch {
		case p.isCount:
			if u := uint64(v); v == float64(u) {
				h.SampleCount = s.uints.put(u)
			} else {
				if v < 0 {
					return p.errorf("negative count for histogram %q", p.mf.GetName())
				}
				h.SampleCountFloat = s.floats.put(v)
			}
			p.bytes += 8
		case p.isSum:
			h.SampleSum = s.floats.put(v)
			p.bytes += 8
		case !math.IsNaN(p.bucket):
			b := s.buckets.get()
			b.UpperBound = s.floats.put(p.bucket)
			if u := uint64(v); v == float64(u) {
				b.CumulativeCount = s.uints.put(u)
			} else {
				if v < 0 {
					return p.errorf("negative bucket population for histogram %q", p.mf.GetName())
				}
				b.CumulativeCountFloat = s.floats.put(v)
			}
			h.Bucket = append(h.Bucket, b)
			p.bytes += sizeBucket + 16 + 8
		}
	}
	return nil
}

// timestamp parses what follows the value: line[i] is a blank.
func (p *parser) timestamp(m *dto.Metric) error {
	if !p.skipBlank() {
		return p.end()
	}
	tok, ok := p.untilBlank()
	if !ok {
		return p.end()
	}
	ts, err := strconv.ParseInt(string(tok), 10, 64)
	if err != nil {
		return p.errorf("expected integer as timestamp, got %q", tok)
	}
	m.TimestampMs = p.slabs.ints.put(ts)
	p.bytes += 8
	rest, ok, _ := p.untilNewline(false)
	if !ok {
		return p.end()
	}
	if len(rest) > 0 {
		return p.errorf("spurious string after timestamp: %q", rest)
	}
	return nil
}

// newMetric makes the metric of the current line, with its labels, and
// appends it to the current family.
func (p *parser) newMetric() *dto.Metric {
	s := p.slabs
	m := s.metrics.get()
	p.bytes += sizeMetric
	if n := len(p.lbls); n > 0 {
		m.Label = s.ptrs.take(n)
		for k, l := range p.lbls {
			lp := s.pairs.get()
			lp.Name = l.name.name
			if l.name.last != nil && *l.name.last == string(l.val) {
				lp.Value = l.name.last
			} else {
				lp.Value = s.strs.put(s.str(l.val))
				l.name.last = lp.Value
				p.bytes += sizeString + int64(len(l.val))
			}
			m.Label[k] = lp
		}
		p.bytes += int64(n) * (sizePair + 8)
	}
	mf := p.mf
	old := cap(mf.Metric)
	mf.Metric = append(mf.Metric, m)
	p.bytes += int64(cap(mf.Metric)-old) * 8
	p.series++
	return m
}

// flushSeries reports a new series to Charge at once, so that a limit stops
// the body at the first series over it.
func (p *parser) flushSeries() error {
	if p.series == 0 {
		return nil
	}
	return p.flush()
}

func (p *parser) flush() error {
	series, bytes := p.series, p.bytes
	p.series, p.bytes = 0, 0
	if p.charge == nil {
		return nil
	}
	return p.charge(series, bytes)
}

// family is expfmt's setOrCreateCurrentMF: it finds the family of a metric
// name, where a _count, _sum or _bucket line belongs to an existing summary
// or histogram family, or makes a new one.
func (p *parser) family(name []byte) error {
	p.isCount, p.isSum = false, false
	// The usual case: one more line of the current family, whose name was
	// validated when the family was made.
	if p.mf != nil && *p.mf.Name == string(name) {
		return nil
	}
	// IsValidMetricName keeps nothing, so a view of name serves; string(name)
	// would copy a long name on every _bucket line.
	if !p.scheme.IsValidMetricName(unsafe.String(unsafe.SliceData(name), len(name))) {
		return p.errorf("invalid metric name %q", name)
	}
	if mf := p.fams[string(name)]; mf != nil {
		p.mf = mf
		return nil
	}
	isCount := bytes.HasSuffix(name, []byte("_count"))
	isSum := bytes.HasSuffix(name, []byte("_sum"))
	isBucket := bytes.HasSuffix(name, []byte("_bucket"))
	if isCount || isSum || isBucket {
		base := name[:bytes.LastIndexByte(name, '_')]
		if mf := p.fams[string(base)]; mf != nil {
			if t := mf.GetType(); t == dto.MetricType_SUMMARY && !isBucket || isHistogramType(t) {
				p.mf = mf
				p.isCount, p.isSum = isCount, isSum
				return nil
			}
		}
	}
	s := p.slabs
	key := s.str(name)
	mf := s.families.get()
	mf.Name = s.strs.put(key)
	p.fams[key] = mf
	p.mf = mf
	p.bytes += sizeFamily + sizeString + sizeMapEntry + int64(len(name))
	return nil
}

// labelName interns a label name, or returns nil if the scheme refuses it.
// pos is the label's position on the line: labels tend to come in the same
// order on every line, so the name seen there last time is tried before the
// map.
func (p *parser) labelName(tok []byte, pos int) *labelName {
	if pos < len(p.posNames) {
		if ln := p.posNames[pos]; *ln.name == string(tok) {
			return ln
		}
	}
	ln := p.names[string(tok)]
	if ln == nil {
		name := string(tok)
		if !p.scheme.IsValidLabelName(name) {
			return nil
		}
		ln = &labelName{name: &name}
		p.names[name] = ln
		p.bytes += sizeMapEntry + sizeString + 16 + int64(len(name))
	}
	if pos < len(p.posNames) {
		p.posNames[pos] = ln
	} else if pos == len(p.posNames) {
		p.posNames = append(p.posNames, ln)
	}
	return ln
}

// untilBlank is expfmt's readTokenUntilWhitespace: the bytes from line[i] up
// to a blank or '\n', which becomes line[i]. ok is false at the end of input.
func (p *parser) untilBlank() (tok []byte, ok bool) {
	start := p.i
	for p.i < len(p.line) {
		switch p.line[p.i] {
		case ' ', '\t', '\n':
			return p.line[start:p.i], true
		}
		p.i++
	}
	return nil, false
}

// untilNewline is expfmt's readTokenUntilNewline: the bytes from line[i] up to
// '\n'. With escapes, \\, \n and \" are decoded and other escapes are an
// error; without, backslashes are dropped (as expfmt does). ok is false at the
// end of input.
func (p *parser) untilNewline(escapes bool) (tok []byte, ok bool, err error) {
	start := p.i
	for p.i < len(p.line) {
		switch p.line[p.i] {
		case '\n':
			return p.line[start:p.i], true, nil
		case '\\':
			return p.untilNewlineSlow(start, escapes)
		}
		p.i++
	}
	return nil, false, nil
}

func (p *parser) untilNewlineSlow(start int, escapes bool) (tok []byte, ok bool, err error) {
	tok = append(p.tok[:0], p.line[start:p.i]...)
	defer func() { p.tok = tok[:0] }()
	escaped := false
	for ; p.i < len(p.line); p.i++ {
		c := p.line[p.i]
		if escapes && escaped {
			if c, err = p.unescape(c); err != nil {
				return nil, true, err
			}
			tok = append(tok, c)
			escaped = false
			continue
		}
		switch c {
		case '\n':
			return tok, true, nil
		case '\\':
			escaped = true
		default:
			tok = append(tok, c)
		}
	}
	return nil, false, nil
}

// name is expfmt's readTokenAsMetricName (label false) or
// readTokenAsLabelName (label true): a name from line[i], possibly quoted
// with escapes; the byte after it becomes line[i]. A name that does not start
// like one is empty and consumes nothing. Quotes may open anywhere in a name
// (expfmt reads foo"bar" as foobar).
func (p *parser) name(label bool) ([]byte, error) {
	start := p.i
	if !isNameByte(p.line[p.i], label, false) {
		return nil, nil
	}
	// Fast path: an unquoted name, which needs no copy.
	for p.i < len(p.line) && p.line[p.i] != '"' && isNameByte(p.line[p.i], label, true) {
		p.i++
	}
	if p.i >= len(p.line) {
		return nil, p.end()
	}
	if p.line[p.i] != '"' {
		return p.line[start:p.i], nil
	}
	return p.quotedName(start, label)
}

// quotedName continues name for a name that contains a quote, from the
// start again.
func (p *parser) quotedName(start int, label bool) ([]byte, error) {
	p.i = start
	tok := p.tok[:0]
	defer func() { p.tok = tok[:0] }()
	quoted, escaped := false, false
	for {
		c := p.line[p.i]
		switch {
		case escaped:
			c, err := p.unescape(c)
			if err != nil {
				return nil, err
			}
			tok = append(tok, c)
			escaped = false
		case c == '"':
			quoted = !quoted
			if !quoted {
				p.i++
				if p.atEnd() {
					return nil, p.end()
				}
				return tok, nil
			}
		case c == '\n':
			what := "metric name"
			if label {
				what = "label name"
			}
			return nil, p.errorf("%s %q contains unescaped new-line", what, tok)
		case c == '\\':
			escaped = true
		default:
			tok = append(tok, c)
		}
		p.i++
		if p.atEnd() {
			return nil, p.end()
		}
		if !quoted && !isNameByte(p.line[p.i], label, true) {
			return tok, nil
		}
	}
}

// isNameByte tells the bytes that may start (cont false) or continue an
// unquoted name, '"' included since it opens a quoted part.
func isNameByte(c byte, label, cont bool) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '"' ||
		(cont && c >= '0' && c <= '9') || (!label && c == ':')
}

// labelValue is expfmt's readTokenAsLabelValue: line[i] is the opening quote;
// the closing quote becomes line[i]. Escapes are decoded in place, in the
// part of the line already read, so the value needs no copy.
func (p *parser) labelValue() ([]byte, error) {
	start := p.i + 1
	// Fast path: no escapes.
	for p.i++; p.i < len(p.line); p.i++ {
		switch p.line[p.i] {
		case '"':
			return p.line[start:p.i], nil
		case '\\':
			return p.labelValueEscaped(start)
		case '\n':
			return nil, p.errorf("label value %q contains unescaped new-line", p.line[start:p.i])
		}
	}
	return nil, p.end()
}

// labelValueEscaped continues labelValue at the first backslash, writing the
// decoded value over the escaped one.
func (p *parser) labelValueEscaped(start int) ([]byte, error) {
	w := p.i
	escaped := false
	for ; p.i < len(p.line); p.i++ {
		c := p.line[p.i]
		if escaped {
			c, err := p.unescape(c)
			if err != nil {
				return nil, err
			}
			p.line[w] = c
			w++
			escaped = false
			continue
		}
		switch c {
		case '"':
			return p.line[start:w], nil
		case '\n':
			return nil, p.errorf("label value %q contains unescaped new-line", p.line[start:w])
		case '\\':
			escaped = true
		default:
			p.line[w] = c
			w++
		}
	}
	return nil, p.end()
}

// unescape decodes the byte after a backslash: \\, \" and \n are the only
// escapes expfmt knows.
func (p *parser) unescape(c byte) (byte, error) {
	switch c {
	case '\\', '"':
		return c, nil
	case 'n':
		return '\n', nil
	}
	return 0, p.errorf("invalid escape sequence '\\%c'", c)
}

// parseFloat is expfmt's parseFloat: strconv.ParseFloat without hex floats
// and digit separators.
func parseFloat(b []byte) (float64, error) {
	// Fast path: digits only, few enough to convert exactly.
	if n := len(b); n > 0 && n <= 15 {
		var u uint64
		digits := true
		for _, c := range b {
			if c < '0' || c > '9' {
				digits = false
				break
			}
			u = u*10 + uint64(c-'0')
		}
		if digits {
			return float64(u), nil
		}
	}
	// A loop, not bytes.ContainsAny: for a token this short, building
	// ContainsAny's byte set was a twentieth of the parse.
	for _, c := range b {
		if c == 'p' || c == 'P' || c == '_' {
			return 0, errUnsupportedFloat
		}
	}
	return strconv.ParseFloat(string(b), 64)
}

// errUnsupportedFloat is never shown: callers report the token instead.
var errUnsupportedFloat = errors.New("unsupported character in float")

// normalizeHistogram makes a histogram's counts all integers or all floats,
// as expfmt does after parsing.
func normalizeHistogram(h *dto.Histogram) {
	floats := h.GetSampleCountFloat() != 0 ||
		slices.ContainsFunc(h.Bucket, func(b *dto.Bucket) bool { return b.GetCumulativeCountFloat() != 0 })
	if !floats {
		return
	}
	if h.GetSampleCountFloat() == 0 {
		f := float64(h.GetSampleCount())
		h.SampleCountFloat, h.SampleCount = &f, nil
	}
	for _, b := range h.Bucket {
		if b.GetCumulativeCountFloat() == 0 {
			f := float64(b.GetCumulativeCount())
			b.CumulativeCountFloat, b.CumulativeCount = &f, nil
		}
	}
}
