// Package openmetrics parses an OpenMetrics 1.0 text body (a push with
// Content-Type application/openmetrics-text) into metric families, the way
// Prometheus ingests such a scrape: a counter family "foo" becomes the
// counter "foo_total", an info family "foo" the gauge "foo_info", a stateset
// a gauge, exemplars and created timestamps are kept.
//
// The reference gateway reads such bodies with the 0.0.4 text parser, which
// turns "foo_total" into an untyped family and refuses exemplars. The
// prometheus/common release that ships an OpenMetrics parser cannot be
// built from the module proxy here (one of its dependencies is withheld),
// so this package is written by hand; it checks the grammar strictly enough
// to reject malformed input with the line number.
package openmetrics

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ParseError locates a syntax error.
type ParseError struct {
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("openmetrics parsing error in line %d: %s", e.Line, e.Msg)
}

// family is a family being assembled, under its OpenMetrics name.
type family struct {
	name, typ, help string
	mf              *dto.MetricFamily
	metrics         map[string]*dto.Metric // by label signature (without le/quantile)
	sampled         bool
}

// Options configure Parse.
type Options struct {
	// Scheme validates metric and label names.
	Scheme model.ValidationScheme
	// Charge, if not nil, is called as the decoded result grows: series is
	// the number of new dto.Metric values since the last call, bytes the
	// estimated additional heap (negative once the line buffer is dropped).
	// A non-nil error stops parsing and is returned unwrapped.
	Charge func(series int, bytes int64) error
}

// Estimated heap of the result, on top of the line strings (charged as
// read; parsed names and values point into them): a new series (dto.Metric,
// its value, its slot and its entry in the family's index), a label, a
// further sample of a series (bucket or quantile), a family.
const (
	seriesCost = 280
	labelCost  = 100
	sampleCost = 100
	familyCost = 400
)

// Line buffer: its first size, and the longest line allowed.
const (
	lineBufSize = 64 << 10
	maxLineSize = 16 << 20
)

type parser struct {
	scheme model.ValidationScheme
	charge func(series int, bytes int64) error
	fams   map[string]*family
	order  []*family
	cur    *family
	line   int

	bufSize   int   // the size the scanner's buffer has, as far as charged
	chargeErr error // a refusal of charge during a split, returned as it is
}

// Parse reads an OpenMetrics 1.0 exposition ending in "# EOF". Families are
// keyed by the name they get in Prometheus (see the package comment).
func Parse(r io.Reader, opts Options) (map[string]*dto.MetricFamily, error) {
	p := &parser{scheme: opts.Scheme, charge: opts.Charge, fams: map[string]*family{}, bufSize: lineBufSize}
	if p.charge == nil {
		p.charge = func(int, int64) error { return nil }
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, lineBufSize), maxLineSize)
	sc.Split(p.splitLines)
	eof := false
	for sc.Scan() {
		p.line++
		line := sc.Text()
		if err := p.charge(0, int64(len(line))); err != nil {
			return nil, err
		}
		if eof {
			return nil, p.errorf("content after # EOF")
		}
		var err error
		switch {
		case line == "# EOF":
			eof = true
		case strings.HasPrefix(line, "#"):
			err = p.descriptor(line)
		default:
			err = p.sample(line)
		}
		if err != nil {
			return nil, err
		}
	}
	if p.chargeErr != nil {
		return nil, p.chargeErr
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read openmetrics body: %w", err)
	}
	// The grown line buffer is garbage from here on.
	if err := p.charge(0, int64(lineBufSize-p.bufSize)); err != nil {
		return nil, err
	}
	if !eof {
		return nil, p.errorf("missing # EOF at the end")
	}
	out := make(map[string]*dto.MetricFamily, len(p.order))
	for _, f := range p.order {
		if err := finish(f); err != nil {
			return nil, err
		}
		if _, dup := out[f.mf.GetName()]; dup {
			return nil, fmt.Errorf("openmetrics family %s is defined twice", f.mf.GetName())
		}
		out[f.mf.GetName()] = f.mf
	}
	return out, nil
}

// splitLines is bufio.ScanLines that charges the growth of the scanner's
// buffer before it happens: a full buffer without a line end is doubled.
func (p *parser) splitLines(data []byte, atEOF bool) (int, []byte, error) {
	advance, token, err := bufio.ScanLines(data, atEOF)
	if advance == 0 && token == nil && err == nil && !atEOF && len(data) >= p.bufSize && p.bufSize < maxLineSize {
		grow := min(p.bufSize, maxLineSize-p.bufSize)
		if p.chargeErr = p.charge(0, int64(grow)); p.chargeErr != nil {
			return 0, nil, p.chargeErr
		}
		p.bufSize += grow
	}
	return advance, token, err
}

func (p *parser) errorf(format string, args ...any) error {
	return &ParseError{Line: p.line, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) descriptor(line string) error {
	parts := strings.SplitN(line, " ", 4)
	if len(parts) < 3 || parts[0] != "#" {
		return p.errorf("invalid comment line %q", line)
	}
	kind, name := parts[1], parts[2]
	arg := ""
	if len(parts) == 4 {
		arg = parts[3]
	}
	if !p.scheme.IsValidMetricName(name) {
		return p.errorf("invalid metric name %q", name)
	}
	f := p.fams[name]
	if f == nil {
		if err := p.charge(0, familyCost); err != nil {
			return err
		}
		f = &family{name: name, typ: "unknown", metrics: map[string]*dto.Metric{}}
		p.fams[name] = f
		p.order = append(p.order, f)
	} else if f.sampled || f != p.cur {
		return p.errorf("metadata for family %s must come before its samples, together", name)
	}
	p.cur = f
	switch kind {
	case "TYPE":
		switch arg {
		case "counter", "gauge", "histogram", "gaugehistogram", "stateset", "info", "summary", "unknown":
			f.typ = arg
		default:
			return p.errorf("invalid type %q for family %s", arg, name)
		}
	case "HELP":
		help, err := unescape(arg, false)
		if err != nil {
			return p.errorf("help of %s: %v", name, err)
		}
		f.help = help
	case "UNIT":
		if arg != "" && !strings.HasSuffix(name, "_"+arg) {
			return p.errorf("family %s must have its unit %q as a suffix", name, arg)
		}
	default:
		return p.errorf("invalid comment line %q", line)
	}
	return nil
}

// suffixes lists the sample name suffixes each type allows.
var suffixes = map[string][]string{
	"counter":        {"_total", "_created"},
	"gauge":          {""},
	"unknown":        {""},
	"stateset":       {""},
	"info":           {"_info"},
	"summary":        {"", "_count", "_sum", "_created"},
	"histogram":      {"_bucket", "_count", "_sum", "_created"},
	"gaugehistogram": {"_bucket", "_gcount", "_gsum"},
}

// resolve finds the family a sample name belongs to and the sample's suffix.
func (p *parser) resolve(name string) (*family, string, error) {
	if f := p.cur; f != nil {
		for _, s := range suffixes[f.typ] {
			if name == f.name+s {
				return f, s, nil
			}
		}
	}
	if f := p.fams[name]; f != nil && (f.typ == "unknown" || f.typ == "gauge" || f.typ == "stateset") {
		return f, "", nil
	}
	if err := p.charge(0, familyCost); err != nil {
		return nil, "", err
	}
	f := &family{name: name, typ: "unknown", metrics: map[string]*dto.Metric{}}
	p.fams[name] = f
	p.order = append(p.order, f)
	return f, "", nil
}

func (p *parser) sample(line string) error {
	s, err := parseSample(line, p.scheme)
	if err != nil {
		return p.errorf("%v", err)
	}
	f, suffix, err := p.resolve(s.name)
	if err != nil {
		return err
	}
	if f != p.cur && f.sampled {
		return p.errorf("samples of family %s are not contiguous", f.name)
	}
	p.cur, f.sampled = f, true
	if f.mf == nil {
		f.mf = newFamily(f)
	}

	var special string // le or quantile
	switch {
	case suffix == "_bucket":
		special = "le"
	case f.typ == "summary" && suffix == "":
		special = "quantile"
	}
	var specialValue string
	labels := make([]*dto.LabelPair, 0, len(s.labels))
	for _, l := range s.labels {
		if l[0] == special {
			specialValue = l[1]
			continue
		}
		labels = append(labels, &dto.LabelPair{Name: proto.String(l[0]), Value: proto.String(l[1])})
	}
	if special != "" && specialValue == "" {
		return p.errorf("sample %s has no %q label", s.name, special)
	}
	sig := signature(labels)
	m := f.metrics[sig]
	cost := int64(sampleCost)
	if m == nil {
		cost = seriesCost + labelCost*int64(len(labels)) + int64(len(sig))
	}
	if s.exemplar != nil {
		cost += sampleCost + labelCost*int64(len(s.exemplar.Label))
	}
	if err := p.charge(btoi(m == nil), cost); err != nil {
		return err
	}
	if m == nil {
		m = &dto.Metric{Label: labels}
		f.metrics[sig] = m
		f.mf.Metric = append(f.mf.Metric, m)
	}
	if s.timestamp != nil {
		m.TimestampMs = proto.Int64(int64(*s.timestamp * 1000))
	}
	return p.setValue(f, m, suffix, specialValue, s)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (p *parser) setValue(f *family, m *dto.Metric, suffix, special string, s *sample) error {
	v := s.value
	switch f.typ {
	case "counter":
		if m.Counter == nil {
			m.Counter = &dto.Counter{}
		}
		if suffix == "_created" {
			m.Counter.CreatedTimestamp = secondsToTimestamp(v)
			return nil
		}
		m.Counter.Value = proto.Float64(v)
		m.Counter.Exemplar = s.exemplar
	case "gauge", "stateset", "info":
		m.Gauge = &dto.Gauge{Value: proto.Float64(v)}
	case "unknown":
		m.Untyped = &dto.Untyped{Value: proto.Float64(v)}
	case "summary":
		if m.Summary == nil {
			m.Summary = &dto.Summary{}
		}
		switch suffix {
		case "":
			q, err := strconv.ParseFloat(special, 64)
			if err != nil {
				return p.errorf("invalid quantile %q", special)
			}
			m.Summary.Quantile = append(m.Summary.Quantile, &dto.Quantile{Quantile: proto.Float64(q), Value: proto.Float64(v)})
		case "_count":
			n, err := count(v)
			if err != nil {
				return p.errorf("%s_count: %v", f.name, err)
			}
			m.Summary.SampleCount = proto.Uint64(n)
		case "_sum":
			m.Summary.SampleSum = proto.Float64(v)
		case "_created":
			m.Summary.CreatedTimestamp = secondsToTimestamp(v)
		}
	case "histogram", "gaugehistogram":
		if m.Histogram == nil {
			m.Histogram = &dto.Histogram{}
		}
		switch suffix {
		case "_bucket":
			le, err := strconv.ParseFloat(special, 64)
			if err != nil {
				return p.errorf("invalid le %q", special)
			}
			n, err := count(v)
			if err != nil {
				return p.errorf("%s_bucket: %v", f.name, err)
			}
			m.Histogram.Bucket = append(m.Histogram.Bucket, &dto.Bucket{
				UpperBound: proto.Float64(le), CumulativeCount: proto.Uint64(n), Exemplar: s.exemplar,
			})
		case "_count", "_gcount":
			n, err := count(v)
			if err != nil {
				return p.errorf("%s%s: %v", f.name, suffix, err)
			}
			m.Histogram.SampleCount = proto.Uint64(n)
		case "_sum", "_gsum":
			m.Histogram.SampleSum = proto.Float64(v)
		case "_created":
			m.Histogram.CreatedTimestamp = secondsToTimestamp(v)
		}
	}
	if s.exemplar != nil && f.typ != "counter" && suffix != "_bucket" {
		return p.errorf("exemplars are only allowed on counters and histogram buckets")
	}
	return nil
}

// newFamily starts the MetricFamily of f under the name Prometheus gives it.
func newFamily(f *family) *dto.MetricFamily {
	mf := &dto.MetricFamily{Name: proto.String(f.name)}
	if f.help != "" {
		mf.Help = proto.String(f.help)
	}
	switch f.typ {
	case "counter":
		mf.Name = proto.String(f.name + "_total")
		mf.Type = dto.MetricType_COUNTER.Enum()
	case "info":
		mf.Name = proto.String(f.name + "_info")
		mf.Type = dto.MetricType_GAUGE.Enum()
	case "gauge", "stateset":
		mf.Type = dto.MetricType_GAUGE.Enum()
	case "summary":
		mf.Type = dto.MetricType_SUMMARY.Enum()
	case "histogram":
		mf.Type = dto.MetricType_HISTOGRAM.Enum()
	case "gaugehistogram":
		mf.Type = dto.MetricType_GAUGE_HISTOGRAM.Enum()
	default:
		mf.Type = dto.MetricType_UNTYPED.Enum()
	}
	return mf
}

// finish completes a family: families with metadata only get their type
// and name; histograms without _count take it from the +Inf bucket.
func finish(f *family) error {
	if f.mf == nil {
		f.mf = newFamily(f)
	}
	for _, m := range f.mf.Metric {
		if f.typ == "counter" && m.Counter.Value == nil {
			return fmt.Errorf("openmetrics counter %s has no _total sample", f.name)
		}
		if h := m.Histogram; h != nil && h.SampleCount == nil {
			for _, b := range h.Bucket {
				if math.IsInf(b.GetUpperBound(), 1) {
					h.SampleCount = proto.Uint64(b.GetCumulativeCount())
				}
			}
		}
	}
	return nil
}

func count(v float64) (uint64, error) {
	if v < 0 || v != math.Trunc(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("count must be a non-negative integer, got %v", v)
	}
	return uint64(v), nil
}

func secondsToTimestamp(v float64) *timestamppb.Timestamp {
	sec, frac := math.Modf(v)
	return &timestamppb.Timestamp{Seconds: int64(sec), Nanos: int32(frac * 1e9)}
}

func signature(labels []*dto.LabelPair) string {
	sorted := append([]*dto.LabelPair(nil), labels...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].GetName() < sorted[j].GetName() })
	var sb strings.Builder
	for _, l := range sorted {
		sb.WriteString(l.GetName())
		sb.WriteByte(model.SeparatorByte)
		sb.WriteString(l.GetValue())
		sb.WriteByte(model.SeparatorByte)
	}
	return sb.String()
}

// sample is one parsed sample line.
type sample struct {
	name      string
	labels    [][2]string
	value     float64
	timestamp *float64
	exemplar  *dto.Exemplar
}

// parseSample parses `name{labels} value [timestamp] [# {labels} value [timestamp]]`.
func parseSample(line string, scheme model.ValidationScheme) (*sample, error) {
	s := &sample{}
	i := 0
	for i < len(line) && line[i] != '{' && line[i] != ' ' {
		i++
	}
	s.name = line[:i]
	if !scheme.IsValidMetricName(s.name) {
		return nil, fmt.Errorf("invalid metric name %q", s.name)
	}
	rest := line[i:]
	if strings.HasPrefix(rest, "{") {
		labels, n, err := parseLabels(rest, scheme)
		if err != nil {
			return nil, err
		}
		s.labels, rest = labels, rest[n:]
	}
	body, exemplar, hasExemplar := strings.Cut(rest, " # ")
	fields := strings.Split(body, " ")
	if len(fields) < 2 || fields[0] != "" || len(fields) > 3 {
		return nil, fmt.Errorf("expected ' value [timestamp]' after %s, got %q", s.name, rest)
	}
	v, err := parseNumber(fields[1])
	if err != nil {
		return nil, err
	}
	s.value = v
	if len(fields) == 3 {
		ts, err := parseNumber(fields[2])
		if err != nil {
			return nil, fmt.Errorf("timestamp: %w", err)
		}
		s.timestamp = &ts
	}
	if hasExemplar {
		if s.exemplar, err = parseExemplar(exemplar, scheme); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func parseExemplar(text string, scheme model.ValidationScheme) (*dto.Exemplar, error) {
	if !strings.HasPrefix(text, "{") {
		return nil, errors.New("exemplar must start with a label set")
	}
	labels, n, err := parseLabels(text, scheme)
	if err != nil {
		return nil, fmt.Errorf("exemplar: %w", err)
	}
	runes := 0
	e := &dto.Exemplar{}
	for _, l := range labels {
		runes += len([]rune(l[0])) + len([]rune(l[1]))
		e.Label = append(e.Label, &dto.LabelPair{Name: proto.String(l[0]), Value: proto.String(l[1])})
	}
	if runes > 128 {
		return nil, errors.New("exemplar labels exceed 128 characters")
	}
	fields := strings.Split(text[n:], " ")
	if len(fields) < 2 || fields[0] != "" || len(fields) > 3 {
		return nil, fmt.Errorf("expected ' value [timestamp]' in exemplar, got %q", text[n:])
	}
	v, err := parseNumber(fields[1])
	if err != nil {
		return nil, fmt.Errorf("exemplar: %w", err)
	}
	e.Value = proto.Float64(v)
	if len(fields) == 3 {
		ts, err := parseNumber(fields[2])
		if err != nil {
			return nil, fmt.Errorf("exemplar timestamp: %w", err)
		}
		e.Timestamp = secondsToTimestamp(ts)
	}
	return e, nil
}

// parseLabels parses `{name="value",...}` at the start of s and returns the
// pairs and the number of bytes consumed.
func parseLabels(s string, scheme model.ValidationScheme) ([][2]string, int, error) {
	var out [][2]string
	seen := map[string]bool{}
	i := 1
	for {
		if i < len(s) && s[i] == '}' {
			return out, i + 1, nil
		}
		j := strings.IndexByte(s[i:], '=')
		if j < 0 {
			return nil, 0, errors.New("unterminated label set")
		}
		name := s[i : i+j]
		if !scheme.IsValidLabelName(name) {
			return nil, 0, fmt.Errorf("invalid label name %q", name)
		}
		if seen[name] {
			return nil, 0, fmt.Errorf("duplicate label name %q", name)
		}
		seen[name] = true
		i += j + 1
		if i >= len(s) || s[i] != '"' {
			return nil, 0, fmt.Errorf("label %s: value must be quoted", name)
		}
		i++
		var sb strings.Builder
		for {
			if i >= len(s) {
				return nil, 0, fmt.Errorf("label %s: unterminated value", name)
			}
			c := s[i]
			if c == '"' {
				i++
				break
			}
			if c == '\\' {
				if i+1 >= len(s) {
					return nil, 0, fmt.Errorf("label %s: dangling escape", name)
				}
				switch s[i+1] {
				case '\\':
					sb.WriteByte('\\')
				case '"':
					sb.WriteByte('"')
				case 'n':
					sb.WriteByte('\n')
				default:
					return nil, 0, fmt.Errorf("label %s: invalid escape \\%c", name, s[i+1])
				}
				i += 2
				continue
			}
			sb.WriteByte(c)
			i++
		}
		out = append(out, [2]string{name, sb.String()})
		if i < len(s) && s[i] == ',' {
			i++
			continue
		}
		if i < len(s) && s[i] == '}' {
			return out, i + 1, nil
		}
		return nil, 0, errors.New("expected ',' or '}' in label set")
	}
}

func parseNumber(s string) (float64, error) {
	switch s {
	case "NaN", "+Inf", "-Inf":
	default:
		if s == "" || strings.ContainsAny(s, "_xXpP") || strings.EqualFold(s, "inf") || strings.EqualFold(s, "nan") {
			return 0, fmt.Errorf("invalid number %q", s)
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid number %q", s)
	}
	return v, nil
}

// unescape decodes a HELP text (\\, \n and \").
func unescape(s string, _ bool) (string, error) {
	if !strings.ContainsRune(s, '\\') {
		return s, nil
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			sb.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) {
			return "", errors.New("dangling escape")
		}
		i++
		switch s[i] {
		case '\\':
			sb.WriteByte('\\')
		case 'n':
			sb.WriteByte('\n')
		case '"':
			sb.WriteByte('"')
		default:
			return "", fmt.Errorf("invalid escape \\%c", s[i])
		}
	}
	return sb.String(), nil
}
