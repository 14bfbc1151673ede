package exposition_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/exposition"
	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var now = time.Date(2024, 5, 6, 7, 8, 9, 500_000_000, time.UTC)

const (
	acceptProto       = `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited`
	acceptOM          = `application/openmetrics-text;version=1.0.0`
	acceptText        = `text/plain;version=0.0.4`
	acceptTextUTF8    = `text/plain;version=0.0.4;escaping=allow-utf-8`
	acceptProtoUTF8   = acceptProto + `;escaping=allow-utf-8`
	prometheus3Accept = `application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2`
)

func key(t testing.TB, kv ...string) grouping.Key {
	t.Helper()
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	k, err := grouping.FromMap(m)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func parseText(t testing.TB, scheme model.ValidationScheme, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(scheme)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse %q: %v", text, err)
	}
	return fams
}

func push(t testing.TB, st *store.Store, k grouping.Key, fams map[string]*dto.MetricFamily) {
	t.Helper()
	if err := st.Push(k, fams, true); err != nil {
		t.Fatalf("push to %s: %v", k, err)
	}
}

// newFixture returns a handler over a store with several groups and a
// registry of fixed own gauges, so that scrapes are reproducible.
func newFixture(t testing.TB) (*exposition.Handler, *store.Store) {
	t.Helper()
	reg := ownRegistry()
	st := store.New(store.Options{
		Now: func() time.Time { return now },
		Reserved: []store.Reserved{
			{Name: "own_gauge", Type: dto.MetricType_GAUGE},
			{Name: "shared_gauge", Type: dto.MetricType_GAUGE},
		},
	})
	push(t, st, key(t, "job", "batch", "instance", "a"), parseText(t, model.LegacyValidation, `# HELP jobs_total Jobs processed (group a).
# TYPE jobs_total counter
jobs_total{result="ok"} 10
jobs_total{result="fail"} 1
# HELP shared_gauge Pushed help loses.
# TYPE shared_gauge gauge
shared_gauge{source="pushed"} 2
# HELP duration_seconds A classic histogram.
# TYPE duration_seconds histogram
duration_seconds_bucket{le="0.1"} 3
duration_seconds_bucket{le="1"} 5
duration_seconds_bucket{le="+Inf"} 6
duration_seconds_sum 4.5
duration_seconds_count 6
# HELP rpc_seconds A summary.
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.5"} 0.25
rpc_seconds{quantile="0.99"} NaN
rpc_seconds_sum 12
rpc_seconds_count 40
# TYPE tricky gauge
tricky{v="quote \" backslash \\ newline \n ünï"} 1
`))
	push(t, st, key(t, "job", "batch", "instance", "b"), parseText(t, model.LegacyValidation, `# HELP jobs_total Jobs processed (group b).
# TYPE jobs_total counter
jobs_total{result="ok"} 20
untyped_value 3
# TYPE duration_seconds histogram
duration_seconds_bucket{le="0.1"} 0
duration_seconds_bucket{le="1"} 1
duration_seconds_bucket{le="+Inf"} 1
duration_seconds_sum 0.5
duration_seconds_count 1
`))
	push(t, st, key(t, "job", "other"), map[string]*dto.MetricFamily{
		"empty_family": {Name: proto.String("empty_family"), Help: proto.String("Never exposed."), Type: dto.MetricType_GAUGE.Enum()},
		"native_seconds": {
			Name: proto.String("native_seconds"),
			Help: proto.String("A native histogram."),
			Type: dto.MetricType_HISTOGRAM.Enum(),
			Metric: []*dto.Metric{{Histogram: &dto.Histogram{
				SampleCount:   proto.Uint64(5),
				SampleSum:     proto.Float64(2.5),
				Schema:        proto.Int32(0),
				ZeroThreshold: proto.Float64(1e-128),
				ZeroCount:     proto.Uint64(1),
				PositiveSpan:  []*dto.BucketSpan{{Offset: proto.Int32(0), Length: proto.Uint32(2)}},
				PositiveDelta: []int64{1, 2},
			}}},
		},
	})
	return exposition.New(st, reg, nil), st
}

type scrape struct {
	header http.Header
	body   []byte
}

func get(t testing.TB, h http.Handler, accept, acceptEncoding string) scrape {
	t.Helper()
	s, err := tryGet(h, accept, acceptEncoding)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tryGet(h http.Handler, accept, acceptEncoding string) (scrape, error) {
	r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	if acceptEncoding != "" {
		r.Header.Set("Accept-Encoding", acceptEncoding)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		return scrape{}, fmt.Errorf("scrape: status %d: %s", w.Code, w.Body)
	}
	return scrape{header: w.Header(), body: w.Body.Bytes()}, nil
}

// decodeScrape parses a scrape with expfmt's decoder for its content type
// and fails on any family name that appears twice.
func decodeScrape(t testing.TB, s scrape) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := tryDecodeScrape(s)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

func tryDecodeScrape(s scrape) (map[string]*dto.MetricFamily, error) {
	format := expfmt.Format(s.header.Get("Content-Type"))
	switch format.FormatType() {
	case expfmt.TypeTextPlain:
		// The text parser rejects a second HELP or TYPE line of a name.
		scheme := model.LegacyValidation
		if format.ToEscapingScheme() == model.NoEscaping {
			scheme = model.UTF8Validation
		}
		p := expfmt.NewTextParser(scheme)
		fams, err := p.TextToMetricFamilies(bytes.NewReader(s.body))
		if err != nil {
			return nil, fmt.Errorf("text scrape does not parse: %w\n%s", err, s.body)
		}
		return fams, nil
	case expfmt.TypeProtoDelim:
		dec := expfmt.NewDecoder(bytes.NewReader(s.body), format)
		fams := map[string]*dto.MetricFamily{}
		for {
			mf := &dto.MetricFamily{}
			err := dec.Decode(mf)
			if errors.Is(err, io.EOF) {
				return fams, nil
			}
			if err != nil {
				return nil, fmt.Errorf("protobuf scrape does not decode: %w", err)
			}
			if fams[mf.GetName()] != nil {
				return nil, fmt.Errorf("family %s appears twice", mf.GetName())
			}
			fams[mf.GetName()] = mf
		}
	default:
		return nil, fmt.Errorf("unexpected format %q", format)
	}
}

// seriesOf lists the series of the families as name{labels}, sorted, one
// entry per metric, so that duplicates show.
func seriesOf(fams map[string]*dto.MetricFamily) []string {
	var out []string
	for name, mf := range fams {
		for _, m := range mf.Metric {
			var ls []string
			for _, lp := range m.Label {
				ls = append(ls, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			sort.Strings(ls)
			out = append(out, name+"{"+strings.Join(ls, ",")+"}")
		}
	}
	sort.Strings(out)
	return out
}

// wantSeries is every series the fixture must expose: the non-empty pushed
// families of all groups (as stored) and the own metrics.
func wantSeries(t testing.TB, st *store.Store, own prometheus.Gatherer) []string {
	t.Helper()
	all := map[string]*dto.MetricFamily{}
	add := func(mf *dto.MetricFamily) {
		if all[mf.GetName()] == nil {
			all[mf.GetName()] = &dto.MetricFamily{Name: mf.Name}
		}
		all[mf.GetName()].Metric = append(all[mf.GetName()].Metric, mf.Metric...)
	}
	for _, g := range st.View().Groups {
		for _, f := range g.Families.All() {
			mf, err := f.Decode()
			if err != nil {
				t.Fatal(err)
			}
			add(mf)
		}
	}
	if own != nil {
		mfs, err := own.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			add(mf)
		}
	}
	return seriesOf(all)
}

func TestScrape(t *testing.T) {
	h, st := newFixture(t)
	reg := prometheus.NewRegistry()
	own := prometheus.NewGauge(prometheus.GaugeOpts{Name: "own_gauge", Help: "An own gauge."})
	shared := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shared_gauge", Help: "Own help wins."}, []string{"source"})
	shared.WithLabelValues("own")
	reg.MustRegister(own, shared)
	want := wantSeries(t, st, reg)

	tests := []struct {
		name           string
		accept         string
		acceptEncoding string
		wantType       expfmt.FormatType
	}{
		{"no accept header", "", "", expfmt.TypeTextPlain},
		{"text", acceptText, "", expfmt.TypeTextPlain},
		{"prometheus 3", prometheus3Accept, "", expfmt.TypeTextPlain},
		{"protobuf", acceptProto, "", expfmt.TypeProtoDelim},
		{"text gzip", acceptText, "gzip", expfmt.TypeTextPlain},
		{"protobuf gzip", acceptProto, "gzip", expfmt.TypeProtoDelim},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := get(t, h, tt.accept, tt.acceptEncoding)
			if got := expfmt.Format(s.header.Get("Content-Type")).FormatType(); got != tt.wantType {
				t.Fatalf("Content-Type %q, want type %v", s.header.Get("Content-Type"), tt.wantType)
			}
			if tt.acceptEncoding == "gzip" {
				if s.header.Get("Content-Encoding") != "gzip" {
					t.Fatalf("Content-Encoding = %q, want gzip", s.header.Get("Content-Encoding"))
				}
				if !slices.Contains(s.header.Values("Vary"), "Accept-Encoding") {
					t.Errorf("Vary = %q, want Accept-Encoding", s.header.Values("Vary"))
				}
				zr, err := gzip.NewReader(bytes.NewReader(s.body))
				if err != nil {
					t.Fatal(err)
				}
				if s.body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			} else if s.header.Get("Content-Encoding") != "" {
				t.Fatalf("Content-Encoding = %q without Accept-Encoding", s.header.Get("Content-Encoding"))
			}
			fams := decodeScrape(t, s)

			if got := seriesOf(fams); !slices.Equal(got, want) {
				t.Errorf("series =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if fams["empty_family"] != nil {
				t.Error("empty pushed family is exposed")
			}
			checkFamily(t, fams, "shared_gauge", "Own help wins.", dto.MetricType_GAUGE, 2)
			checkFamily(t, fams, "own_gauge", "An own gauge.", dto.MetricType_GAUGE, 1)
			checkFamily(t, fams, "jobs_total", "Jobs processed (group a).", dto.MetricType_COUNTER, 3)
			checkFamily(t, fams, "duration_seconds", "A classic histogram.", dto.MetricType_HISTOGRAM, 2)
			checkFamily(t, fams, "push_time_seconds", "Last Unix time when changing this group in the Pushgateway succeeded.", dto.MetricType_GAUGE, 3)
			checkFamily(t, fams, "push_failure_time_seconds", "Last Unix time when changing this group in the Pushgateway failed.", dto.MetricType_GAUGE, 3)
			checkFamily(t, fams, "native_seconds", "A native histogram.", dto.MetricType_HISTOGRAM, 1)
			if tt.wantType == expfmt.TypeProtoDelim {
				h := fams["native_seconds"].Metric[0].GetHistogram()
				if h.GetSchema() != 0 || len(h.PositiveSpan) != 1 || !slices.Equal(h.PositiveDelta, []int64{1, 2}) {
					t.Errorf("native histogram lost its buckets: %v", h)
				}
			}
			for _, m := range fams["push_time_seconds"].Metric {
				if v := m.GetGauge().GetValue(); math.Abs(v-float64(now.UnixNano())/1e9) > 1e-3 {
					t.Errorf("push_time_seconds = %v, want %v", v, float64(now.UnixNano())/1e9)
				}
			}
		})
	}
}

func checkFamily(t *testing.T, fams map[string]*dto.MetricFamily, name, help string, typ dto.MetricType, series int) {
	t.Helper()
	mf := fams[name]
	if mf == nil {
		t.Errorf("family %s missing", name)
		return
	}
	if mf.GetHelp() != help || mf.GetType() != typ || len(mf.Metric) != series {
		t.Errorf("family %s: help %q type %v series %d, want %q %v %d", name, mf.GetHelp(), mf.GetType(), len(mf.Metric), help, typ, series)
	}
}

func TestScrapeTextGolden(t *testing.T) {
	h, _ := newFixture(t)
	s := get(t, h, acceptText, "")
	golden := filepath.Join("testdata", "scrape.golden.txt")
	if *update {
		if err := os.WriteFile(golden, s.body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(s.body, want) {
		t.Errorf("text scrape differs from %s (run with -update after checking):\n%s", golden, s.body)
	}
	if ct, want := s.header.Get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"; ct != want {
		t.Errorf("Content-Type = %q, want %q", ct, want)
	}
}

func TestScrapeOpenMetricsOnly(t *testing.T) {
	h, _ := newFixture(t)
	s := get(t, h, acceptOM, "")
	if ct := s.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text; version=1.0.0") {
		t.Fatalf("Content-Type = %q", ct)
	}
	body := string(s.body)
	if !strings.HasSuffix(body, "# EOF\n") || strings.Count(body, "# EOF") != 1 {
		t.Errorf("body does not end with a single # EOF:\n%s", body)
	}
	types := map[string]int{}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			types[strings.Fields(line)[2]]++
		}
	}
	for name, n := range types {
		if n != 1 {
			t.Errorf("%d TYPE lines for %s", n, name)
		}
	}
	for _, want := range []string{
		"# TYPE jobs counter\n",
		"# HELP shared_gauge Own help wins.\n",
		`jobs_total{instance="a",job="batch",result="ok"} 10`,
		`jobs_total{instance="b",job="batch",result="ok"} 20`,
		`shared_gauge{source="own"} 1`,
		`shared_gauge{instance="a",job="batch",source="pushed"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("OpenMetrics body lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "empty_family") {
		t.Error("empty family exposed")
	}
}

// TestScrapeUTF8 pushes UTF-8 names and checks they are escaped for
// scrapers that do not ask for UTF-8, and kept for those that do.
func TestScrapeUTF8(t *testing.T) {
	st := store.New(store.Options{UTF8Names: true, Now: func() time.Time { return now }})
	push(t, st, key(t, "job", "j", "key.label", "k"), parseText(t, model.UTF8Validation, `# HELP "my.metric" A UTF-8 name.
# TYPE "my.metric" counter
{"my.metric", "lab.el"="v"} 1
# TYPE plain_metric gauge
plain_metric 2
`))
	h := exposition.New(st, prometheus.NewRegistry(), nil)

	tests := []struct {
		name       string
		accept     string
		wantEscape model.EscapingScheme
		wantNames  []string
		wantLabel  [2]string // a label name of my.metric and of plain_metric
	}{
		{"no accept header", "", model.UnderscoreEscaping, []string{"my_metric", "plain_metric"}, [2]string{"lab_el", "key_label"}},
		{"text", acceptText, model.UnderscoreEscaping, []string{"my_metric", "plain_metric"}, [2]string{"lab_el", "key_label"}},
		{"protobuf", acceptProto, model.UnderscoreEscaping, []string{"my_metric", "plain_metric"}, [2]string{"lab_el", "key_label"}},
		{"text allow-utf-8", acceptTextUTF8, model.NoEscaping, []string{"my.metric", "plain_metric"}, [2]string{"lab.el", "key.label"}},
		{"protobuf allow-utf-8", acceptProtoUTF8, model.NoEscaping, []string{"my.metric", "plain_metric"}, [2]string{"lab.el", "key.label"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := get(t, h, tt.accept, "")
			if got := expfmt.Format(s.header.Get("Content-Type")).ToEscapingScheme(); got != tt.wantEscape {
				t.Errorf("Content-Type %q, want escaping %v", s.header.Get("Content-Type"), tt.wantEscape)
			}
			fams := decodeScrape(t, s)
			var names []string
			for n := range fams {
				if !strings.HasPrefix(n, "push_") {
					names = append(names, n)
				}
			}
			sort.Strings(names)
			if !slices.Equal(names, tt.wantNames) {
				t.Fatalf("families %v, want %v\n%s", names, tt.wantNames, s.body)
			}
			if mf := fams[tt.wantNames[0]]; mf.GetHelp() != "A UTF-8 name." || mf.GetType() != dto.MetricType_COUNTER {
				t.Errorf("%s: help %q type %v", tt.wantNames[0], mf.GetHelp(), mf.GetType())
			}
			for i, name := range tt.wantNames {
				if !hasLabel(fams[name].Metric[0], tt.wantLabel[i]) {
					t.Errorf("%s has no label %s: %v", name, tt.wantLabel[i], fams[name].Metric[0])
				}
			}
			if tt.wantEscape != model.NoEscaping && expfmt.Format(s.header.Get("Content-Type")).FormatType() == expfmt.TypeTextPlain &&
				bytes.ContainsRune(s.body, '"') && bytes.Contains(s.body, []byte(`{"`)) {
				t.Errorf("escaped text contains quoted names:\n%s", s.body)
			}
		})
	}
}

// TestScrapeUTF8EscapedCollision: "my.metric" and "my_metric" are distinct
// names to the store, but the same name once escaped with underscores (the
// default for scrapers that do not ask for UTF-8). One such push must not
// make every legacy scrape fail with a second TYPE line.
func TestScrapeUTF8EscapedCollision(t *testing.T) {
	st := store.New(store.Options{UTF8Names: true, Now: func() time.Time { return now }})
	err := st.Push(key(t, "job", "j"), parseText(t, model.UTF8Validation, "{\"my.metric\"} 1\nmy_metric 2\n"), true)
	if err != nil {
		return // rejecting the push is a fine answer too
	}
	h := exposition.New(st, prometheus.NewRegistry(), nil)
	for _, accept := range []string{"", acceptProto} {
		if _, err := tryDecodeScrape(get(t, h, accept, "")); err != nil {
			t.Errorf("Accept %q: %v", accept, err)
		}
	}
}

func hasLabel(m *dto.Metric, name string) bool {
	for _, lp := range m.Label {
		if lp.GetName() == name {
			return true
		}
	}
	return false
}

func TestScrapeEmptyStore(t *testing.T) {
	tests := []struct {
		name string
		own  prometheus.Gatherer
	}{
		{"nil gatherer", nil},
		{"empty registry", prometheus.NewRegistry()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := exposition.New(store.New(store.Options{}), tt.own, nil)
			for _, accept := range []string{acceptText, acceptProto} {
				if s := get(t, h, accept, ""); len(s.body) != 0 {
					t.Errorf("%s: body %q, want empty", accept, s.body)
				}
			}
			if s := get(t, h, acceptOM, ""); string(s.body) != "# EOF\n" {
				t.Errorf("OpenMetrics body %q, want # EOF", s.body)
			}
		})
	}
}

type failingGatherer struct{}

func (failingGatherer) Gather() ([]*dto.MetricFamily, error) {
	return nil, errors.New("collector broke")
}

func TestScrapeGatherError(t *testing.T) {
	h := exposition.New(store.New(store.Options{}), failingGatherer{}, nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "collector broke") {
		t.Errorf("status %d body %q", w.Code, w.Body)
	}
}

// TestScrapeFollowsStore checks that a scrape after a change shows it (the
// handler caches its merge plan per store generation).
func TestScrapeFollowsStore(t *testing.T) {
	h, st := newFixture(t)
	before := decodeScrape(t, get(t, h, acceptText, ""))
	if before["untyped_value"] == nil {
		t.Fatal("untyped_value missing")
	}
	if err := st.Delete(key(t, "job", "batch", "instance", "b")); err != nil {
		t.Fatal(err)
	}
	after := decodeScrape(t, get(t, h, acceptText, ""))
	if after["untyped_value"] != nil {
		t.Error("untyped_value still exposed after its group was deleted")
	}
	if n := len(after["jobs_total"].GetMetric()); n != 2 {
		t.Errorf("jobs_total has %d series after the delete, want 2", n)
	}
	push(t, st, key(t, "job", "new"), parseText(t, model.LegacyValidation, "# TYPE jobs_total counter\njobs_total{result=\"x\"} 1\n"))
	again := decodeScrape(t, get(t, h, acceptProto, ""))
	if n := len(again["jobs_total"].GetMetric()); n != 3 {
		t.Errorf("jobs_total has %d series after a push, want 3", n)
	}
}

// TestScrapeConcurrent scrapes while pushing; run with -race.
func TestScrapeConcurrent(t *testing.T) {
	h, st := newFixture(t)
	keys := make([]grouping.Key, 5)
	for i := range keys {
		keys[i] = key(t, "job", "churn", "n", fmt.Sprint(i))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			k := keys[i%len(keys)]
			fams := map[string]*dto.MetricFamily{"jobs_total": {
				Name: proto.String("jobs_total"),
				Type: dto.MetricType_COUNTER.Enum(),
				Metric: []*dto.Metric{{
					Label:   []*dto.LabelPair{{Name: proto.String("result"), Value: proto.String("c")}},
					Counter: &dto.Counter{Value: proto.Float64(float64(i))},
				}},
			}}
			if err := st.Push(k, fams, i%2 == 0); err != nil {
				t.Errorf("push: %v", err)
				return
			}
			if i%7 == 0 {
				if err := st.Delete(k); err != nil {
					t.Errorf("delete: %v", err)
					return
				}
			}
		}
	}()
	var scrapers sync.WaitGroup
	for _, accept := range []string{acceptText, acceptProto, acceptOM, acceptText} {
		scrapers.Add(1)
		go func() {
			defer scrapers.Done()
			for range 50 {
				s, err := tryGet(h, accept, "gzip")
				if err != nil {
					t.Error(err)
					return
				}
				zr, err := gzip.NewReader(bytes.NewReader(s.body))
				if err != nil {
					t.Error(err)
					return
				}
				if s.body, err = io.ReadAll(zr); err != nil {
					t.Error(err)
					return
				}
				if accept == acceptOM {
					continue
				}
				if _, err := tryDecodeScrape(s); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	scrapers.Wait()
	close(stop)
	wg.Wait()
}
