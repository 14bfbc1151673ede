// Package exposition serves the scrape endpoint: all pushed groups merged by
// family name, together with the gateway's own metrics.
//
// Pushed families are stored already encoded (see package family), so for
// the formats scrapers use (text 0.0.4 and delimited protobuf) a scrape
// writes a header per family name and copies each group's bytes. Only
// families whose names need escaping, and the rarer formats (OpenMetrics,
// protobuf text), are decoded and encoded per scrape with expfmt.
//
// A gzip scrape does the same with each family's cached deflate fragment
// (see package deflate): it compresses only what it makes itself (headers,
// own metrics, families encoded per scrape) and copies the rest, so it costs
// less than an identity scrape, which decodes the stored forms. Fragments
// are made by the first gzip scrape that needs them.
package exposition

import (
	"bufio"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"weak"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/deflate"
	"github.com/pushgate/pushgate/internal/family"
	"github.com/pushgate/pushgate/internal/store"
)

// Viewer is what a scrape needs of the store.
type Viewer interface {
	View() *store.View
}

// Handler serves scrapes. It is safe for concurrent use.
type Handler struct {
	store    Viewer
	gatherer prometheus.Gatherer
	logger   *slog.Logger

	mu sync.Mutex // guards plan
	// plan is the merged order of pushed families of the last scrape. It
	// is held weakly: concurrent scrapes share it, but between scrapes it
	// must not keep groups alive that pushes have replaced since.
	plan weak.Pointer[plan]
}

// New returns a scrape handler exposing the store's groups and what own
// gathers (the gateway's own metrics; may be nil).
func New(s Viewer, own prometheus.Gatherer, logger *slog.Logger) *Handler {
	if own == nil {
		own = prometheus.Gatherers{}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{store: s, gatherer: own, logger: logger}
}

// plan is the pushed families of one store generation, merged by name.
// It is immutable once built and shared by concurrent scrapes.
type plan struct {
	gen     uint64
	entries []entry // sorted by name
}

type entry struct {
	name string
	help string
	typ  dto.MetricType
	fams []*family.Family // non-empty families, in group order
	// slow is set when a family's names need escaping, so that the
	// cached bytes cannot be used as they are.
	slow bool
}

// currentPlan returns the plan of the store's current view, building it once
// per generation; concurrent scrapes wait for the one that builds it.
func (h *Handler) currentPlan() *plan {
	v := h.store.View()
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.plan.Value(); p != nil && p.gen == v.Gen {
		return p
	}
	byName := map[string]*entry{}
	for _, g := range v.Groups {
		for _, f := range g.Families.All() {
			if f.Series == 0 {
				continue
			}
			e := byName[f.Name]
			if e == nil {
				// The first group in key order gives the help string
				// when groups disagree (the reference picks one too).
				e = &entry{name: f.Name, help: f.Help, typ: f.Type}
				byName[f.Name] = e
			}
			e.fams = append(e.fams, f)
			e.slow = e.slow || !f.HasText()
		}
	}
	p := &plan{gen: v.Gen, entries: make([]entry, 0, len(byName))}
	for _, e := range byName {
		p.entries = append(p.entries, *e)
	}
	sort.Slice(p.entries, func(i, j int) bool { return p.entries[i].name < p.entries[j].name })
	h.plan = weak.Make(p)
	return p
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	own, err := h.gatherer.Gather()
	if err != nil {
		h.logger.Error("gather own metrics", "err", err)
		http.Error(w, "gather own metrics: "+err.Error(), http.StatusInternalServerError)
		return
	}
	format := negotiate(r.Header)
	p := h.currentPlan()

	w.Header().Set("Content-Type", string(format))
	sent := &sentWriter{w: w}
	if gzipAccepted(r.Header) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Add("Vary", "Accept-Encoding")
		z := gzipPool.Get().(*gzipBody)
		z.Reset(sent)
		err = write(z, format, own, p)
		if err == nil {
			err = z.Close()
		}
		z.Reset(io.Discard) // drop any reference to this response
		gzipPool.Put(z)
	} else {
		out := &plainBody{Writer: bufio.NewWriterSize(sent, 64<<10)}
		err = write(out, format, own, p)
		if err == nil {
			err = out.Flush()
		}
	}
	if err == nil {
		return
	}
	if sent.err != nil {
		// The client went away; nothing to tell anyone.
		h.logger.Debug("write scrape response", "err", err)
	} else {
		h.logger.Error("write scrape response", "err", err)
	}
	if sent.n == 0 && sent.err == nil {
		// Nothing is out yet, so the client can still get a clean error.
		w.Header().Del("Content-Encoding")
		http.Error(w, "write scrape response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	// Headers and part of the body are out. Ending the response normally
	// would hand the client a truncated body that still parses (and a valid
	// gzip stream): abort the connection instead, so the scrape fails.
	panic(http.ErrAbortHandler)
}

// sentWriter counts the bytes that reached the response and keeps the
// first error writing it (the client's side).
type sentWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (s *sentWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.n += int64(n)
	if err != nil && s.err == nil {
		s.err = err
	}
	return n, err
}

// body is where a scrape writes: fresh bytes, and the stored forms of
// pushed families.
type body interface {
	io.Writer
	AvailableBuffer() []byte
	// text writes f's text lines.
	text(f *family.Family) error
	// metrics writes f's protobuf metric entries.
	metrics(f *family.Family) error
}

// plainBody is an identity response: stored forms are decoded into a
// scratch buffer and copied.
type plainBody struct {
	*bufio.Writer
	scratch []byte
}

func (b *plainBody) text(f *family.Family) error    { return b.decoded(f.AppendText) }
func (b *plainBody) metrics(f *family.Family) error { return b.decoded(f.AppendMetrics) }

// decoded writes a stored form, decoded into the scratch buffer.
func (b *plainBody) decoded(appendTo func([]byte) ([]byte, error)) error {
	var err error
	if b.scratch, err = appendTo(b.scratch[:0]); err != nil {
		return err
	}
	_, err = b.Write(b.scratch)
	return err
}

// gzipBody is a gzip response: stored forms go out as the families' cached
// deflate fragments, and only what is made per scrape (headers, own
// metrics, families encoded per scrape) is compressed on the fly.
type gzipBody struct {
	*deflate.Writer
}

func (b gzipBody) text(f *family.Family) error {
	fr, err := f.TextFragment()
	if err != nil {
		return err
	}
	return b.WriteFragment(fr)
}

func (b gzipBody) metrics(f *family.Family) error {
	fr, err := f.MetricsFragment()
	if err != nil {
		return err
	}
	return b.WriteFragment(fr)
}

var gzipPool = sync.Pool{New: func() any {
	return &gzipBody{deflate.NewWriter(io.Discard)}
}}

// write merges own (sorted by name, as Gather returns them) and the plan.
func write(out body, format expfmt.Format, own []*dto.MetricFamily, p *plan) error {
	fast := format.FormatType() == expfmt.TypeTextPlain || format.FormatType() == expfmt.TypeProtoDelim
	// The encoder is for the rare formats, where it handles everything
	// (OpenMetrics also needs it to close with # EOF), and in the fast ones
	// for families whose names need escaping: made when first needed.
	var enc expfmt.Encoder
	if !fast {
		enc = expfmt.NewEncoder(out, format)
	}
	encode := func(mf *dto.MetricFamily) error {
		if enc == nil {
			enc = expfmt.NewEncoder(out, format)
		}
		return enc.Encode(mf)
	}
	i, j := 0, 0
	for i < len(own) || j < len(p.entries) {
		var o *dto.MetricFamily
		var e *entry
		switch {
		case j == len(p.entries) || (i < len(own) && own[i].GetName() < p.entries[j].name):
			o = own[i]
			i++
		case i == len(own) || p.entries[j].name < own[i].GetName():
			e = &p.entries[j]
			j++
		default:
			o, e = own[i], &p.entries[j]
			i++
			j++
		}
		if err := writeFamily(out, format, encode, fast, o, e); err != nil {
			return err
		}
	}
	if closer, ok := enc.(expfmt.Closer); ok {
		return closer.Close()
	}
	return nil
}

// writeFamily writes one family name: the own family o and/or the pushed
// entry e, either of which may be nil. Own help and type win: the store
// guarantees pushed types match them.
func writeFamily(out body, format expfmt.Format, encode func(*dto.MetricFamily) error, fast bool, o *dto.MetricFamily, e *entry) error {
	name, help, typ := "", "", dto.MetricType_UNTYPED
	if e != nil {
		name, help, typ = e.name, e.help, e.typ
	}
	if o != nil {
		name, help, typ = o.GetName(), o.GetHelp(), o.GetType()
	}
	if !fast || (e != nil && e.slow) || (o != nil && family.NeedsEscaping(o)) {
		mf, err := merged(name, help, typ, o, e)
		if err != nil {
			return err
		}
		return encode(mf)
	}
	if format.FormatType() == expfmt.TypeTextPlain {
		b := family.AppendTextHeader(out.AvailableBuffer(), name, help, typ)
		if _, err := out.Write(b); err != nil {
			return err
		}
		if o != nil {
			lines, err := family.TextLines(o)
			if err != nil {
				return err
			}
			if _, err := out.Write(lines); err != nil {
				return err
			}
		}
		if e != nil {
			for _, f := range e.fams {
				if err := out.text(f); err != nil {
					return err
				}
			}
		}
		return nil
	}
	// Delimited protobuf: one message whose metric entries are the own
	// metrics followed by each group's encoded metrics.
	var ownMetrics []byte
	if o != nil {
		var err error
		if ownMetrics, err = proto.Marshal(&dto.MetricFamily{Metric: o.Metric}); err != nil {
			return err
		}
	}
	size := len(ownMetrics)
	if e != nil {
		for _, f := range e.fams {
			size += f.MetricsLen()
		}
	}
	head, err := family.AppendDelimitedHeader(out.AvailableBuffer(), name, help, typ, size)
	if err != nil {
		return err
	}
	if _, err := out.Write(head); err != nil {
		return err
	}
	if _, err := out.Write(ownMetrics); err != nil {
		return err
	}
	if e != nil {
		for _, f := range e.fams {
			if err := out.metrics(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// merged decodes a family name into one MetricFamily, for the encoder.
func merged(name, help string, typ dto.MetricType, o *dto.MetricFamily, e *entry) (*dto.MetricFamily, error) {
	mf := &dto.MetricFamily{Name: proto.String(name), Type: typ.Enum()}
	if help != "" {
		mf.Help = proto.String(help)
	}
	if o != nil {
		mf.Metric = append(mf.Metric, o.Metric...)
	}
	if e != nil {
		for _, f := range e.fams {
			d, err := f.Decode()
			if err != nil {
				return nil, err
			}
			mf.Metric = append(mf.Metric, d.Metric...)
		}
	}
	return mf, nil
}

// negotiate picks the exposition format as the reference does (text 0.0.4
// or protobuf, never OpenMetrics, for any Accept header that allows them),
// and OpenMetrics only for a client that accepts nothing else. Prometheus
// prefers OpenMetrics but also accepts text; serving it OpenMetrics would
// rename every counter to *_total and break queries written against the
// reference.
func negotiate(h http.Header) expfmt.Format {
	if onlyOpenMetrics(h.Get("Accept")) {
		return expfmt.NegotiateAccept(h, expfmt.FmtOpenMetrics_1_0_0, expfmt.FmtOpenMetrics_0_0_1)
	}
	return expfmt.NegotiateAccept(h, expfmt.FmtProtoDelim, expfmt.FmtProtoText, expfmt.FmtProtoCompact, expfmt.FmtText)
}

// onlyOpenMetrics reports whether the Accept header names OpenMetrics and no
// other media type that we serve.
func onlyOpenMetrics(accept string) bool {
	om := false
	for _, clause := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(clause))
		if err != nil || params["q"] == "0" {
			continue
		}
		switch mt {
		case expfmt.OpenMetricsType:
			om = true
		case "text/plain", "text/*", "application/*", "*/*", expfmt.ProtoType:
			return false
		}
	}
	return om
}

// gzipAccepted reports whether the client accepts a gzip response.
func gzipAccepted(h http.Header) bool {
	for _, clause := range strings.Split(h.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(clause), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q, found := strings.CutPrefix(strings.ToLower(strings.TrimSpace(params)), "q=")
		if !found {
			return true
		}
		v, err := strconv.ParseFloat(q, 64)
		return err == nil && v > 0
	}
	return false
}
