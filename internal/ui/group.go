package ui

import (
	"bytes"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/pushgate/pushgate/internal/family"
	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/histogram"
	"github.com/pushgate/pushgate/internal/store"
)

// seriesLimit is how many series of a family the detail page shows unless
// asked for all (?all=1): enough to read, bounded for huge groups.
const seriesLimit = 200

// groupPage is the data of a group's detail page.
type groupPage struct {
	Key         grouping.Key
	Path        string // detail page path below the prefix
	KeyPath     string // grouping key path as the push API takes it
	FormKey     string // KeyPath without "/metrics/", as the delete form sends it
	PushTime    time.Time
	FailTime    time.Time
	Expires     time.Time // zero: never
	Failed      bool
	Series      int
	Families    []familyView
	All         bool
	PushCommand string
	DelCommand  string
	DeleteToken string
}

// familyView is one family as the page shows it.
type familyView struct {
	Name      string
	Help      string
	Type      string
	Anchor    string
	Series    int
	Pushed    time.Time
	Samples   []sampleView
	Truncated bool
	Err       string
}

// sampleView is one series (label set) of a family.
type sampleView struct {
	// Labels are those not in the grouping key (which every series has).
	Labels []grouping.Label
	// Value is set for counters, gauges and untyped metrics.
	Value string
	// Date is Value as a time, for metrics named like Unix timestamps.
	Date string
	// Count and Sum are set for summaries and histograms.
	Count, Sum string
	Quantiles  []quantileView
	// Buckets are a classic histogram's buckets.
	Buckets []bucketView
	Native  *nativeView
	// Open renders bucket tables expanded (few series).
	Open bool
}

type quantileView struct {
	Quantile, Value string
}

// bucketView is one histogram bucket: its range, the observations in it
// (not cumulative), and for classic buckets the cumulative count.
type bucketView struct {
	Range      string
	Count      string
	Cumulative string
	// Width is the bar width in percent of the fullest bucket.
	Width float64
}

type nativeView struct {
	Schema        int32
	Factor        string
	ZeroThreshold string
	ZeroCount     string
	Buckets       []bucketView
}

// Group serves the detail page of the group at /groups/job/<job>/...: the
// grouping key path of the push API. With ?format=text it serves the
// group's metrics in the text exposition format.
func (u *UI) Group(w http.ResponseWriter, r *http.Request) {
	key, err := grouping.ParsePath(r.PathValue("key"), u.gopts)
	if err != nil {
		u.fail(w, http.StatusNotFound, "Not a grouping key: "+err.Error()+".")
		return
	}
	g := u.store.Group(key.ID())
	if g == nil {
		u.fail(w, http.StatusNotFound, "There is no group "+key.String()+". It may have been deleted, or never pushed.")
		return
	}
	if r.URL.Query().Get("format") == "text" {
		u.groupText(w, g)
		return
	}
	all := r.URL.Query().Get("all") != ""
	d := &groupPage{
		Key:      key,
		Path:     u.groupPath(key),
		KeyPath:  key.Path(u.gopts),
		FormKey:  strings.TrimPrefix(key.Path(u.gopts), "/metrics/"),
		PushTime: g.PushTime,
		FailTime: g.FailTime,
		Failed:   !g.LastPushSuccessful(),
		All:      all,
	}
	d.Expires, _ = u.store.Deadline(g)
	for name, f := range g.Families.All() { // in the order of their names
		if isTimestampFamily(name) {
			continue
		}
		fv := u.familyView(g, f, all)
		d.Series += fv.Series
		d.Families = append(d.Families, fv)
	}
	base := u.baseURL(r) + d.KeyPath
	user := ""
	if name, _, ok := r.BasicAuth(); ok {
		user = " -u " + shellQuote(name)
	}
	d.PushCommand = "curl" + user + " --data-binary @metrics.txt " + shellQuote(base)
	d.DelCommand = "curl" + user + " -X DELETE " + shellQuote(base)
	d.DeleteToken = u.token(actionDelete, key.ID())
	u.render(w, http.StatusOK, "group.html", u.newPage(key.String(), "groups", d))
}

func (u *UI) familyView(g *store.Group, f *family.Family, all bool) familyView {
	fv := familyView{
		Name:   f.Name,
		Help:   f.Help,
		Type:   typeName(f.Type),
		Anchor: "f-" + f.Name,
		Series: f.Series,
		Pushed: f.Time,
	}
	if f.Series == 0 {
		return fv
	}
	mf, err := f.Decode()
	if err != nil {
		u.logger.Error("decode stored family", "grouping_key", g.Key.String(), "family", f.Name, "err", err)
		fv.Err = err.Error()
		return fv
	}
	metrics := mf.Metric
	if !all && len(metrics) > seriesLimit {
		metrics, fv.Truncated = metrics[:seriesLimit], true
	}
	open := len(metrics) <= 3
	for _, m := range metrics {
		s := sampleView{Open: open}
		for _, lp := range m.Label {
			name := lp.GetName()
			// Every series carries the grouping labels, and instance=""
			// when the key has no instance; neither says anything here.
			if g.Key.Has(name) || name == "instance" && lp.GetValue() == "" {
				continue
			}
			s.Labels = append(s.Labels, grouping.Label{Name: name, Value: lp.GetValue()})
		}
		switch f.Type {
		case dto.MetricType_COUNTER:
			s.Value = formatFloat(m.GetCounter().GetValue())
		case dto.MetricType_GAUGE:
			v := m.GetGauge().GetValue()
			s.Value = formatFloat(v)
			if timestampName(f.Name) && v > 0 && v < 1e11 {
				s.Date = time.Unix(0, int64(v*1e9)).UTC().Format("2006-01-02 15:04:05 UTC")
			}
		case dto.MetricType_SUMMARY:
			sm := m.GetSummary()
			s.Count = strconv.FormatUint(sm.GetSampleCount(), 10)
			s.Sum = formatFloat(sm.GetSampleSum())
			for _, q := range sm.GetQuantile() {
				s.Quantiles = append(s.Quantiles, quantileView{formatFloat(q.GetQuantile()), formatFloat(q.GetValue())})
			}
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			h := m.GetHistogram()
			s.Count = strconv.FormatUint(h.GetSampleCount(), 10)
			if h.GetSampleCountFloat() > 0 {
				s.Count = formatFloat(h.GetSampleCountFloat())
			}
			s.Sum = formatFloat(h.GetSampleSum())
			s.Buckets = classicBuckets(h)
			if histogram.IsNative(h) {
				s.Native = native(h)
			}
		default:
			s.Value = formatFloat(m.GetUntyped().GetValue())
		}
		fv.Samples = append(fv.Samples, s)
	}
	return fv
}

// typeName is the type as users know it from the exposition formats.
func typeName(t dto.MetricType) string {
	if t == dto.MetricType_GAUGE_HISTOGRAM {
		return "gaugehistogram"
	}
	return family.TypeName(t)
}

// classicBuckets lists a histogram's buckets with the observations in each.
func classicBuckets(h *dto.Histogram) []bucketView {
	bs := h.GetBucket()
	if len(bs) == 0 {
		return nil
	}
	out := make([]bucketView, 0, len(bs)+1)
	counts := make([]float64, 0, len(bs)+1)
	prev := 0.0
	for _, b := range bs {
		cum := float64(b.GetCumulativeCount())
		if b.GetCumulativeCountFloat() > 0 {
			cum = b.GetCumulativeCountFloat()
		}
		out = append(out, bucketView{Range: "≤ " + formatFloat(b.GetUpperBound()), Cumulative: formatFloat(cum)})
		counts = append(counts, cum-prev)
		prev = cum
	}
	// The +Inf bucket is optional in the exposition but always in the data.
	if !math.IsInf(bs[len(bs)-1].GetUpperBound(), 1) {
		total := float64(h.GetSampleCount())
		if h.GetSampleCountFloat() > 0 {
			total = h.GetSampleCountFloat()
		}
		out = append(out, bucketView{Range: "≤ +Inf", Cumulative: formatFloat(total)})
		counts = append(counts, total-prev)
	}
	setWidths(out, counts)
	return out
}

func setWidths(out []bucketView, counts []float64) {
	peak := 0.0
	for _, c := range counts {
		peak = max(peak, c)
	}
	for i, c := range counts {
		out[i].Count = formatFloat(c)
		if peak > 0 && c > 0 {
			out[i].Width = math.Round(c/peak*1000) / 10
		}
	}
}

// native lists the populated buckets of a native histogram from the most
// negative to the most positive.
func native(h *dto.Histogram) *nativeView {
	nv := &nativeView{
		Schema:        h.GetSchema(),
		Factor:        strconv.FormatFloat(histogram.Factor(h), 'g', 6, 64),
		ZeroThreshold: formatFloat(h.GetZeroThreshold()),
		ZeroCount:     formatFloat(histogram.ZeroCount(h)),
	}
	var counts []float64
	for _, b := range histogram.Buckets(h) {
		var r string
		switch b.Kind {
		case histogram.Negative:
			r = "[" + formatBound(b.Lower) + ", " + formatBound(b.Upper) + ")"
		case histogram.Zero:
			r = "[" + formatFloat(b.Lower) + ", " + formatFloat(b.Upper) + "]"
		default:
			r = "(" + formatBound(b.Lower) + ", " + formatBound(b.Upper) + "]"
		}
		nv.Buckets = append(nv.Buckets, bucketView{Range: r})
		counts = append(counts, b.Count)
	}
	setWidths(nv.Buckets, counts)
	return nv
}

// groupText serves the group's families in the text format 0.0.4 (with
// the push time families), encoded by expfmt as a scrape would.
func (u *UI) groupText(w http.ResponseWriter, g *store.Group) {
	var buf bytes.Buffer
	for name, f := range g.Families.All() { // in the order of their names
		if f.Series == 0 {
			continue
		}
		mf, err := f.Decode()
		if err != nil {
			u.logger.Error("decode stored family", "grouping_key", g.Key.String(), "family", name, "err", err)
			continue
		}
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			u.logger.Error("encode family as text", "grouping_key", g.Key.String(), "family", name, "err", err)
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(buf.Bytes())
}

// baseURL is the gateway's URL as the user reached it, without a final
// slash: --web.external-url if given, else the request's scheme and host
// with the prefix.
func (u *UI) baseURL(r *http.Request) string {
	if e := u.opts.ExternalURL; e != nil && e.Host != "" {
		return e.Scheme + "://" + e.Host + u.opts.Prefix
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + u.opts.Prefix
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// formatFloat formats a sample value exactly, integers without an
// exponent up to 1e15 (12345678900, not 1.23456789e+10).
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// formatBound formats a computed bucket boundary to 6 significant digits;
// native histogram boundaries are powers of 2 with long fractions.
func formatBound(v float64) string {
	if math.IsInf(v, 0) {
		return formatFloat(v)
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// timestampName reports whether a metric's name says it holds a Unix time
// in seconds, by the Prometheus naming conventions.
func timestampName(name string) bool {
	return strings.HasSuffix(name, "_timestamp_seconds") || strings.HasSuffix(name, "_time_seconds")
}
