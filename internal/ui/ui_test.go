package ui_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/ui"
)

// start is the fixed clock's first reading.
var start = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable clock for the store and the UI.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// families parses the text format.
func families(t testing.TB, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse %q: %v", text, err)
	}
	return mfs
}

func key(t testing.TB, labels ...string) grouping.Key {
	t.Helper()
	m := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		m[labels[i]] = labels[i+1]
	}
	k, err := grouping.FromMap(m)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func push(t testing.TB, st *store.Store, k grouping.Key, fams map[string]*dto.MetricFamily) {
	t.Helper()
	if err := st.Push(k, fams, true); err != nil {
		t.Fatalf("push %s: %v", k, err)
	}
}

const backupText = `# HELP backup_bytes_total Bytes written.
# TYPE backup_bytes_total counter
backup_bytes_total{volume="data"} 12345678900
# TYPE backup_last_success_timestamp_seconds gauge
backup_last_success_timestamp_seconds 1.7e+09
# TYPE backup_duration_seconds histogram
backup_duration_seconds_bucket{le="1"} 2
backup_duration_seconds_bucket{le="10"} 7
backup_duration_seconds_bucket{le="+Inf"} 12
backup_duration_seconds_sum 842.5
backup_duration_seconds_count 12
# TYPE backup_chunk_seconds summary
backup_chunk_seconds{quantile="0.5"} 0.12
backup_chunk_seconds{quantile="0.99"} 1.7
backup_chunk_seconds_sum 96.3
backup_chunk_seconds_count 640
# TYPE backup_state untyped
backup_state 3
`

// nativeFamily is a native histogram with integer counts (deltas) on both
// sides and in the zero bucket, and a float one.
func nativeFamilies() map[string]*dto.MetricFamily {
	return map[string]*dto.MetricFamily{
		"etl_batch_seconds": {
			Name: proto.String("etl_batch_seconds"), Type: dto.MetricType_HISTOGRAM.Enum(),
			Metric: []*dto.Metric{{Histogram: &dto.Histogram{
				SampleCount: proto.Uint64(9), SampleSum: proto.Float64(4.5),
				Schema: proto.Int32(0), ZeroThreshold: proto.Float64(0.001), ZeroCount: proto.Uint64(1),
				PositiveSpan:  []*dto.BucketSpan{{Offset: proto.Int32(0), Length: proto.Uint32(2)}, {Offset: proto.Int32(1), Length: proto.Uint32(1)}},
				PositiveDelta: []int64{1, 2, 1}, // counts 1, 3, 4
				NegativeSpan:  []*dto.BucketSpan{{Offset: proto.Int32(1), Length: proto.Uint32(1)}},
				NegativeDelta: []int64{1},
			}}},
		},
		"etl_load": {
			Name: proto.String("etl_load"), Type: dto.MetricType_GAUGE_HISTOGRAM.Enum(),
			Metric: []*dto.Metric{{Histogram: &dto.Histogram{
				SampleCountFloat: proto.Float64(2.5), SampleSum: proto.Float64(1),
				Schema: proto.Int32(2), ZeroThreshold: proto.Float64(0),
				PositiveSpan:  []*dto.BucketSpan{{Offset: proto.Int32(-1), Length: proto.Uint32(1)}},
				PositiveCount: []float64{2.5},
			}}},
		},
	}
}

type env struct {
	st    *store.Store
	ui    *ui.UI
	mux   *http.ServeMux
	clock *clock
}

type envOpts struct {
	admin   bool
	prefix  string
	storage func() ui.StorageState
}

// newEnv builds a store with fixture groups (pushed a minute apart, in the
// order listed) and the UI's routes on a mux, as the server mounts them.
func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	c := &clock{t: start}
	st := store.New(store.Options{Now: c.now})
	steps := []struct {
		key  grouping.Key
		text string
		fams map[string]*dto.MetricFamily
	}{
		{key: key(t, "job", "backup", "instance", "db-1"), text: backupText},
		{key: key(t, "job", "backup", "instance", "db-2"), text: strings.ReplaceAll(backupText, `"data"`, `"logs"`) + "backup_extra 1\nbackup_extra_two 2\n"},
		{key: key(t, "job", "nightly_etl", "env", "prod"), fams: nativeFamilies()},
		{key: key(t, "job", "report"), text: "# TYPE report_pages gauge\nreport_pages 17\n"},
	}
	for _, s := range steps {
		c.t = c.t.Add(time.Minute)
		fams := s.fams
		if fams == nil {
			fams = families(t, s.text)
		}
		if s.key.Get("job") == "report" {
			// Declared without samples.
			fams["report_empty"] = &dto.MetricFamily{Name: proto.String("report_empty"), Type: dto.MetricType_COUNTER.Enum()}
		}
		push(t, st, s.key, fams)
	}
	// A failed push: inconsistent with the backups' histogram.
	c.t = c.t.Add(time.Minute)
	if err := st.Push(key(t, "job", "report"), families(t, "# TYPE backup_duration_seconds gauge\nbackup_duration_seconds 1\n"), false); err == nil {
		t.Fatal("inconsistent push was accepted")
	}
	c.t = c.t.Add(time.Minute)
	u, err := ui.New(st, ui.Options{
		Prefix:        o.prefix,
		TelemetryPath: "/metrics",
		EnableAdmin:   o.admin,
		Flags:         map[string]string{"web.enable-admin-api": fmt.Sprint(o.admin)},
		BuildInfo:     map[string]string{"version": "1.2.3"},
		StartTime:     start,
		Storage:       o.storage,
		Now:           c.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, r := range u.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
	return &env{st: st, ui: u, mux: mux, clock: c}
}

func (e *env) do(t testing.TB, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	e.mux.ServeHTTP(w, req)
	return w
}

func (e *env) get(t testing.TB, target string) (int, string) {
	t.Helper()
	w := e.do(t, httptest.NewRequest(http.MethodGet, target, nil))
	return w.Code, w.Body.String()
}

var groupLink = regexp.MustCompile(`class="group-link" href="([^"]+)"`)

// rows lists the detail links of the overview's rows, in order, without
// the prefix.
func rows(body, prefix string) []string {
	var out []string
	for _, m := range groupLink.FindAllStringSubmatch(body, -1) {
		out = append(out, strings.TrimPrefix(m[1], prefix+"/groups/"))
	}
	return out
}

const (
	db1    = "job/backup/instance/db-1"
	db2    = "job/backup/instance/db-2"
	etl    = "job/nightly_etl/env/prod"
	report = "job/report"
)

func TestOverviewFilter(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, c := range []struct {
		name, query string
		want        []string
		contains    []string
	}{
		{name: "all", query: "", want: []string{db1, db2, etl, report}, contains: []string{"Showing 1–4 of 4 groups", "4 groups"}},
		{name: "label value", query: "q=db-1", want: []string{db1}, contains: []string{"Showing 1–1 of 1 matching groups (4 in all)"}},
		{name: "job", query: "q=backup", want: []string{db1, db2}},
		{name: "case", query: "q=NIGHTLY", want: []string{etl}},
		{name: "name=value", query: "q=instance%3Ddb", want: []string{db1, db2}},
		{name: "name=value exact name", query: "q=env%3Db", want: nil, contains: []string{"No group matches."}},
		{name: "quoted value", query: "q=job%3D%22report%22", want: []string{report}},
		{name: "all words", query: "q=backup+db-2", want: []string{db2}},
		{name: "metric name", query: "q=chunk", want: []string{db1, db2}, contains: []string{"metric: <code>backup_chunk_seconds</code>"}},
		{name: "several metrics", query: "q=backup_+db-2", want: []string{db2}, contains: []string{"metrics: <code>backup_bytes_total</code>, <code>backup_chunk_seconds</code>, <code>backup_duration_seconds</code>, …"}},
		{name: "empty family name", query: "q=report_empty", want: []string{report}},
		{name: "push time families are not metrics", query: "q=push_time", want: nil},
		{name: "failed only", query: "failed=1", want: []string{report}, contains: []string{`name="failed" value="1" checked`}},
		{name: "failed and filter", query: "failed=1&q=backup", want: nil},
		{name: "no match", query: "q=nothing-like-it", want: nil, contains: []string{"No group matches."}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := e.get(t, "/?"+c.query)
			if code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			if got := rows(body, ""); strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("rows %q, want %q", got, c.want)
			}
			for _, s := range c.contains {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks %q", s)
				}
			}
		})
	}
}

func TestOverviewSort(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, c := range []struct {
		query    string
		want     []string
		ariaSort string
	}{
		{"", []string{db1, db2, etl, report}, `aria-sort="ascending"><a href="/?dir=desc">Group`},
		{"dir=desc", []string{report, etl, db2, db1}, `aria-sort="descending"><a href="/">Group`},
		{"sort=push", []string{report, etl, db2, db1}, `aria-sort="descending"><a href="/?dir=asc&amp;sort=push">Last push`},
		{"sort=push&dir=asc", []string{db1, db2, etl, report}, `aria-sort="ascending"`},
		{"sort=status", []string{report, db1, db2, etl}, `aria-sort="descending"`},
		{"sort=series", []string{db2, db1, etl, report}, `aria-sort="descending"`},
		{"sort=families&dir=asc", []string{etl, report, db1, db2}, `aria-sort="ascending"`},
		{"sort=bogus", []string{db1, db2, etl, report}, `aria-sort="ascending"><a href="/?dir=desc">Group`},
	} {
		t.Run(c.query, func(t *testing.T) {
			_, body := e.get(t, "/?"+c.query)
			if got := rows(body, ""); strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("rows %q, want %q", got, c.want)
			}
			if !strings.Contains(body, c.ariaSort) {
				t.Errorf("page lacks %q", c.ariaSort)
			}
		})
	}
}

func TestOverviewPagination(t *testing.T) {
	c := &clock{t: start}
	st := store.New(store.Options{Now: c.now})
	for i := range 250 {
		push(t, st, key(t, "job", "j", "instance", fmt.Sprintf("i-%03d", i)), families(t, "x 1\n"))
	}
	u, err := ui.New(st, ui.Options{Prefix: "/pg", Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, ui: u, mux: http.NewServeMux(), clock: c}
	for _, r := range u.Routes() {
		e.mux.Handle(r.Pattern, r.Handler)
	}
	inst := func(i int) string { return fmt.Sprintf("job/j/instance/i-%03d", i) }
	for _, tc := range []struct {
		query       string
		n           int
		first, last string
		contains    []string
		lacks       []string
	}{
		{"", 100, inst(0), inst(99), []string{"Showing 1–100 of 250 groups", `href="/pg/?page=2" rel="next"`, `aria-current="page" aria-label="Page 1"`}, []string{`rel="prev"`}},
		{"page=2", 100, inst(100), inst(199), []string{"Showing 101–200 of 250 groups", `href="/pg/" rel="prev"`, `href="/pg/?page=3" rel="next"`}, nil},
		{"page=3", 50, inst(200), inst(249), []string{"Showing 201–250 of 250 groups"}, []string{`rel="next"`}},
		{"page=99", 50, inst(200), inst(249), []string{"Showing 201–250 of 250 groups"}, nil},
		{"page=-1", 100, inst(0), inst(99), nil, nil},
		{"size=10&page=4", 10, inst(30), inst(39), []string{"Showing 31–40 of 250 groups", `href="/pg/?page=5&amp;size=10" rel="next"`, `<span class="gap" aria-hidden="true">…</span>`, `aria-label="Page 25"`}, nil},
		{"size=100000", 250, inst(0), inst(249), nil, []string{`class="pages"`}},
		{"q=i-1&sort=key&dir=desc&page=2&size=10", 10, inst(189), inst(180), []string{"Showing 11–20 of 100 matching groups (250 in all)", `href="/pg/?dir=desc&amp;q=i-1&amp;size=10" rel="prev"`}, nil},
	} {
		t.Run(tc.query, func(t *testing.T) {
			_, body := e.get(t, "/?"+tc.query)
			got := rows(body, "/pg")
			if len(got) != tc.n || got[0] != tc.first || got[len(got)-1] != tc.last {
				t.Errorf("%d rows from %s to %s, want %d from %s to %s", len(got), got[0], got[len(got)-1], tc.n, tc.first, tc.last)
			}
			for _, s := range tc.contains {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			for _, s := range tc.lacks {
				if strings.Contains(body, s) {
					t.Errorf("page has %q", s)
				}
			}
		})
	}
}

func TestGroupPage(t *testing.T) {
	e := newEnv(t, envOpts{prefix: "/pg"})
	for _, c := range []struct {
		name, path string
		status     int
		contains   []string
		lacks      []string
	}{
		{
			name: "counter, gauge, untyped", path: db1, status: 200,
			contains: []string{
				`<span class="ln">job</span>=<span class="lv">backup</span></span><span class="label"><span class="ln">instance</span>`, // job first
				`backup_bytes_total`, `class="type t-counter">counter`, `Bytes written.`, `<span class="ln">volume</span>=<span class="lv">data</span>`, `12345678900`,
				`class="type t-gauge">gauge`, `1700000000<span class="date">2023-11-14 22:13:20 UTC</span>`,
				`class="type t-untyped">untyped`, `>3</td>`,
				`5 families, 5 series`,
			},
			lacks: []string{`push_time_seconds`, `<span class="ln">job</span>=<span class="lv">backup</span></span></span></td>`},
		},
		{
			name: "summary", path: db1, status: 200,
			contains: []string{`class="type t-summary">summary`, `>640</td>`, `>96.3</td>`, `<dt>φ 0.5</dt><dd class="mono">0.12</dd>`, `<dt>φ 0.99</dt><dd class="mono">1.7</dd>`},
		},
		{
			name: "classic histogram", path: db1, status: 200,
			contains: []string{
				`class="type t-histogram">histogram`, `>12</td>`, `>842.5</td>`, `<summary>3 buckets</summary>`,
				`<td class="mono">≤ 1</td><td class="num mono">2</td><td class="num mono">2</td>`,
				`<td class="mono">≤ 10</td><td class="num mono">5</td><td class="num mono">7</td>`,
				`<td class="mono">≤ &#43;Inf</td><td class="num mono">5</td><td class="num mono">12</td>`,
				`<rect width="100" height="10">`, `<rect width="40" height="10">`,
			},
		},
		{
			name: "native histograms", path: etl, status: 200,
			contains: []string{
				`native: schema 0, 5 populated buckets`, `Bucket growth factor 2; zero bucket [−0.001, 0.001] holds 1.`,
				`<td class="mono">[-2, -1)</td><td class="num mono">1</td>`,
				`<td class="mono">[-0.001, 0.001]</td><td class="num mono">1</td>`,
				`<td class="mono">(0.5, 1]</td><td class="num mono">1</td>`,
				`<td class="mono">(1, 2]</td><td class="num mono">3</td>`,
				`<td class="mono">(4, 8]</td><td class="num mono">4</td>`,
				`class="type t-gaugehistogram">gaugehistogram`, `native: schema 2, 1 populated bucket<`, `<td class="mono">(0.707107, 0.840896]</td><td class="num mono">2.5</td>`,
			},
			lacks: []string{`instance</span>=<span class="lv"><i>empty</i>`},
		},
		{
			name: "failed push and empty family", path: report, status: 200,
			contains: []string{`The last push to this group failed`, `Last push failed`, `report_empty`, `No samples`, `>17</td>`},
		},
		{
			name: "commands and delete form", path: db2, status: 200,
			contains: []string{
				`curl --data-binary @metrics.txt &#39;http://example.com/pg/metrics/job/backup/instance/db-2&#39;`,
				`curl -X DELETE &#39;http://example.com/pg/metrics/job/backup/instance/db-2&#39;`,
				`<form method="post" action="/pg/delete">`, `<input type="hidden" name="group" value="job/backup/instance/db-2">`,
				`name="csrf" value="`, `{instance=&#34;db-2&#34;, job=&#34;backup&#34;}`,
			},
		},
		{name: "unknown group", path: "job/nope", status: 404, contains: []string{`There is no group {job=&#34;nope&#34;}`}},
		{name: "not a key", path: "instance/x", status: 404, contains: []string{`Not a grouping key`}},
		{name: "odd path", path: "job/backup/instance", status: 404},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := e.get(t, "/groups/"+c.path)
			if code != c.status {
				t.Fatalf("status %d, want %d", code, c.status)
			}
			for _, s := range c.contains {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			for _, s := range c.lacks {
				if strings.Contains(body, s) {
					t.Errorf("page has %q", s)
				}
			}
		})
	}
}

func TestGroupSeriesLimit(t *testing.T) {
	c := &clock{t: start}
	st := store.New(store.Options{Now: c.now})
	var sb strings.Builder
	sb.WriteString("# TYPE many gauge\n")
	for i := range 250 {
		fmt.Fprintf(&sb, "many{i=\"%d\"} %d\n", i, i)
	}
	push(t, st, key(t, "job", "big"), families(t, sb.String()))
	u, err := ui.New(st, ui.Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, r := range u.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
	count := func(target string) (int, string) {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
		return strings.Count(w.Body.String(), `<span class="ln">i</span>`), w.Body.String()
	}
	if n, body := count("/groups/job/big"); n != 200 || !strings.Contains(body, `Showing 200 of 250 series. <a href="?all=1#f-many">Show all</a>`) {
		t.Errorf("default: %d series shown", n)
	}
	if n, _ := count("/groups/job/big?all=1"); n != 250 {
		t.Errorf("?all=1: %d series shown", n)
	}
}

func TestGroupText(t *testing.T) {
	e := newEnv(t, envOpts{})
	w := e.do(t, httptest.NewRequest(http.MethodGet, "/groups/"+db1+"?format=text", nil))
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("status %d, Content-Type %q", w.Code, w.Header().Get("Content-Type"))
	}
	mfs := families(t, w.Body.String())
	for _, name := range []string{"backup_bytes_total", "backup_duration_seconds", "push_time_seconds", "push_failure_time_seconds"} {
		if mfs[name] == nil {
			t.Errorf("text lacks %s:\n%s", name, w.Body.String())
		}
	}
	if !strings.Contains(w.Body.String(), `backup_bytes_total{instance="db-1",job="backup",volume="data"} 1.23456789e+10`) {
		t.Errorf("text:\n%s", w.Body.String())
	}
}

// token reads the CSRF token of the first form on a page.
func token(t testing.TB, e *env, target string) string {
	t.Helper()
	_, body := e.get(t, target)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no token on %s", target)
	}
	return m[1]
}

func form(method, target string, values url.Values, header map[string]string) *http.Request {
	req := httptest.NewRequest(method, target, strings.NewReader(values.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return req
}

func TestDelete(t *testing.T) {
	sameOrigin := map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://example.com"}
	for _, c := range []struct {
		name     string
		method   string
		group    string
		token    string // "db2", "db1" (another group's), "" or literal
		header   map[string]string
		status   int
		location string
		deleted  bool
	}{
		{name: "same origin with token", method: "POST", group: db2, token: "db2", header: sameOrigin, status: 303, location: "/pg/?deleted=%7Binstance%3D%22db-2%22%2C+job%3D%22backup%22%7D", deleted: true},
		{name: "no browser headers with token", method: "POST", group: db2, token: "db2", status: 303, deleted: true},
		{name: "Origin equal to Host", method: "POST", group: db2, token: "db2", header: map[string]string{"Origin": "http://example.com"}, status: 303, deleted: true},
		{name: "GET", method: "GET", group: db2, token: "db2", header: sameOrigin, status: 405},
		{name: "no token", method: "POST", group: db2, header: sameOrigin, status: 403},
		{name: "bad token", method: "POST", group: db2, token: "AAAA", header: sameOrigin, status: 403},
		{name: "token of another group", method: "POST", group: db2, token: "db1", header: sameOrigin, status: 403},
		{name: "cross-site", method: "POST", group: db2, token: "db2", header: map[string]string{"Sec-Fetch-Site": "cross-site"}, status: 403},
		{name: "same-site other origin", method: "POST", group: db2, token: "db2", header: map[string]string{"Sec-Fetch-Site": "same-site"}, status: 403},
		{name: "foreign Origin", method: "POST", group: db2, token: "db2", header: map[string]string{"Origin": "http://evil.example"}, status: 403},
		{name: "not a key", method: "POST", group: "instance/x", token: "db2", header: sameOrigin, status: 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOpts{prefix: "/pg"})
			tok := c.token
			switch tok {
			case "db2":
				tok = token(t, e, "/groups/"+db2)
			case "db1":
				tok = token(t, e, "/groups/"+db1)
			}
			w := e.do(t, form(c.method, "/delete", url.Values{"group": {c.group}, "csrf": {tok}}, c.header))
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if c.location != "" && w.Header().Get("Location") != c.location {
				t.Errorf("Location %q, want %q", w.Header().Get("Location"), c.location)
			}
			gone := e.st.Group(key(t, "job", "backup", "instance", "db-2").ID()) == nil
			if gone != c.deleted {
				t.Errorf("deleted = %v, want %v", gone, c.deleted)
			}
			if e.st.Group(key(t, "job", "backup", "instance", "db-1").ID()) == nil {
				t.Errorf("another group was deleted")
			}
		})
	}
}

func TestWipe(t *testing.T) {
	sameOrigin := map[string]string{"Sec-Fetch-Site": "same-origin"}
	for _, c := range []struct {
		name   string
		admin  bool
		method string
		token  bool
		header map[string]string
		status int
		wiped  bool
	}{
		{name: "admin, same origin, token", admin: true, method: "POST", token: true, header: sameOrigin, status: 303, wiped: true},
		{name: "admin API disabled", admin: false, method: "POST", header: sameOrigin, status: 403},
		{name: "GET", admin: true, method: "GET", token: true, header: sameOrigin, status: 405},
		{name: "no token", admin: true, method: "POST", header: sameOrigin, status: 403},
		{name: "cross-site", admin: true, method: "POST", token: true, header: map[string]string{"Sec-Fetch-Site": "cross-site"}, status: 403},
		{name: "foreign Origin", admin: true, method: "POST", token: true, header: map[string]string{"Origin": "https://evil.example"}, status: 403},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOpts{admin: c.admin})
			_, overview := e.get(t, "/")
			if got := strings.Contains(overview, `action="/wipe"`); got != c.admin {
				t.Errorf("wipe form offered: %v, want %v", got, c.admin)
			}
			v := url.Values{}
			if c.token {
				v.Set("csrf", token(t, e, "/"))
			}
			w := e.do(t, form(c.method, "/wipe", v, c.header))
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if c.wiped && w.Header().Get("Location") != "/?wiped=4" {
				t.Errorf("Location %q", w.Header().Get("Location"))
			}
			if got := e.st.Stats().Groups == 0; got != c.wiped {
				t.Errorf("wiped = %v, want %v", got, c.wiped)
			}
		})
	}
}

func TestWipeConfirmationNamesCount(t *testing.T) {
	e := newEnv(t, envOpts{admin: true})
	_, body := e.get(t, "/?q=db-1")
	for _, s := range []string{"Delete all 4 groups…", "This deletes <strong>all 4 groups</strong>", "Delete all 4 groups</button>"} {
		if !strings.Contains(body, s) {
			t.Errorf("overview lacks %q", s)
		}
	}
	_, body = e.get(t, "/?wiped=4")
	if !strings.Contains(body, "Deleted all 4 groups.") {
		t.Errorf("no notice after wipe")
	}
}

func TestStatusPage(t *testing.T) {
	for _, c := range []struct {
		name     string
		storage  func() ui.StorageState
		contains []string
	}{
		{
			name: "durable",
			storage: func() ui.StorageState {
				return ui.StorageState{Durable: true, Path: "/var/lib/pushgate/pushgate.db", Size: 3 << 20, Modified: start.Add(5 * time.Minute), LastCompaction: start}
			},
			contains: []string{"Durable: each push", "/var/lib/pushgate/pushgate.db", "3.0 MiB", "Last compaction", "2025-03-01 12:00:00 UTC", "✓</span> Healthy"},
		},
		{
			name: "failing disk",
			storage: func() ui.StorageState {
				return ui.StorageState{Durable: true, Path: "/d/pushgate.db", Size: -1, Err: fmt.Errorf("commit: no space left on device")}
			},
			contains: []string{"Failing", "commit: no space left on device", "unknown"},
		},
		{
			name:     "in memory",
			storage:  func() ui.StorageState { return ui.StorageState{Size: -1} },
			contains: []string{"In memory only"},
		},
		{
			name: "in memory with persistence file",
			storage: func() ui.StorageState {
				return ui.StorageState{Path: "/p/file", Size: 2048, Modified: start}
			},
			contains: []string{"saved periodically to a persistence file", "/p/file", "2.0 KiB", "Last snapshot"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOpts{storage: c.storage})
			code, body := e.get(t, "/status")
			if code != 200 {
				t.Fatalf("status %d", code)
			}
			for _, s := range append(c.contains, `<span class="big">4</span> groups`, "1.2.3", "--web.enable-admin-api", "6 min</span> up since") {
				if !strings.Contains(body, s) {
					t.Errorf("status page lacks %q", s)
				}
			}
		})
	}
}

func TestPrefixLinks(t *testing.T) {
	e := newEnv(t, envOpts{prefix: "/pg", admin: true})
	href := regexp.MustCompile(`(?:href|action|src)="([^"#?][^"]*)"`)
	for _, target := range []string{"/", "/status", "/groups/" + db1, "/groups/job/nope"} {
		_, body := e.get(t, target)
		for _, m := range href.FindAllStringSubmatch(body, -1) {
			if !strings.HasPrefix(m[1], "/pg/") {
				t.Errorf("%s links to %s, outside the prefix", target, m[1])
			}
		}
	}
}

func TestHeadersAndAssets(t *testing.T) {
	e := newEnv(t, envOpts{})
	w := e.do(t, httptest.NewRequest(http.MethodGet, "/", nil))
	for k, want := range map[string]string{
		"Content-Type":    "text/html; charset=utf-8",
		"X-Frame-Options": "DENY",
		"Cache-Control":   "no-store",
	} {
		if got := w.Header().Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "form-action 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	m := regexp.MustCompile(`/static/app\.css\?v=([0-9a-f]+)`).FindStringSubmatch(w.Body.String())
	if m == nil {
		t.Fatal("page does not link its stylesheet")
	}
	for _, c := range []struct {
		target, contentType, cache string
		status                     int
	}{
		{"/static/app.css?v=" + m[1], "text/css; charset=utf-8", "public, max-age=31536000, immutable", 200},
		{"/static/app.js", "text/javascript; charset=utf-8", "no-cache", 200},
		{"/static/favicon.svg", "image/svg+xml", "no-cache", 200},
		{"/static/nope.css", "", "", 404},
	} {
		w := e.do(t, httptest.NewRequest(http.MethodGet, c.target, nil))
		if w.Code != c.status {
			t.Errorf("%s: status %d", c.target, w.Code)
			continue
		}
		if c.status == 200 && (w.Header().Get("Content-Type") != c.contentType || w.Header().Get("Cache-Control") != c.cache) {
			t.Errorf("%s: Content-Type %q, Cache-Control %q", c.target, w.Header().Get("Content-Type"), w.Header().Get("Cache-Control"))
		}
	}
	// Nothing a page loads comes from elsewhere.
	for _, target := range []string{"/", "/status", "/groups/" + db1} {
		_, body := e.get(t, target)
		if strings.Contains(body, "http://") && !strings.Contains(body, "http://example.com") || strings.Contains(body, "https://") {
			t.Errorf("%s refers to another site", target)
		}
	}
	etag := e.do(t, httptest.NewRequest(http.MethodGet, "/static/app.css", nil)).Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag on assets")
	}
	req := httptest.NewRequest(http.MethodGet, "/static/app.css", nil)
	req.Header.Set("If-None-Match", etag)
	if w := e.do(t, req); w.Code != http.StatusNotModified {
		t.Errorf("revalidation: status %d", w.Code)
	}
}

func TestEmptyOverview(t *testing.T) {
	st := store.New(store.Options{})
	u, err := ui.New(st, ui.Options{Prefix: "/pg", EnableAdmin: true})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "https://gw.example:9091/", nil)
	u.Overview(w, req)
	body := w.Body.String()
	for _, s := range []string{"No groups yet.", `curl --data-binary @- &#39;https://gw.example:9091/pg/metrics/job/some_job&#39;`} {
		if !strings.Contains(body, s) {
			t.Errorf("empty overview lacks %q", s)
		}
	}
	if strings.Contains(body, `action="/pg/wipe"`) {
		t.Errorf("empty overview offers a wipe")
	}
}

// TestGroupLinkRoundTrip follows the overview's link to groups whose keys
// need @base64 values, escaped characters and (with UTF-8 names) U__ names.
func TestGroupLinkRoundTrip(t *testing.T) {
	st := store.New(store.Options{UTF8Names: true})
	keys := []grouping.Key{
		key(t, "job", "a/b", "path", "/var/x"),
		key(t, "job", "spaces and ü", "empty", ""),
		key(t, "job", "utf8", "my.label", "v?#%"),
	}
	for _, k := range keys {
		push(t, st, k, families(t, "x 1\n"))
	}
	u, err := ui.New(st, ui.Options{UTF8Names: true, Prefix: "/pg"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, r := range u.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	links := groupLink.FindAllStringSubmatch(w.Body.String(), -1)
	if len(links) != len(keys) {
		t.Fatalf("%d links, want %d", len(links), len(keys))
	}
	for _, m := range links {
		target := strings.TrimPrefix(strings.ReplaceAll(m[1], "&#43;", "+"), "/pg")
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
		if w.Code != http.StatusOK {
			t.Errorf("%s: status %d: %s", target, w.Code, w.Body)
		}
	}
}

// TestExpiresIn: groups with a deadline say when they expire, on the
// overview and on their page; groups without one say nothing.
func TestExpiresIn(t *testing.T) {
	c := &clock{t: start}
	st := store.New(store.Options{Now: c.now, ExpireAfter: time.Hour})
	if err := st.PushExpiring(key(t, "job", "exp"), families(t, "x 1\n"), true, 0); err != nil {
		t.Fatal(err)
	}
	if err := st.PushExpiring(key(t, "job", "never"), families(t, "y 1\n"), true, store.NeverExpire); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(20 * time.Minute)
	u, err := ui.New(st, ui.Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, ui: u, mux: http.NewServeMux(), clock: c}
	for _, r := range u.Routes() {
		e.mux.Handle(r.Pattern, r.Handler)
	}
	if _, body := e.get(t, "/"); strings.Count(body, "expires in 40 min") != 1 {
		t.Errorf("overview does not say once that a group expires in 40 min:\n%s", body)
	}
	if _, body := e.get(t, "/groups/job/exp"); !strings.Contains(body, "expires in 40 min") {
		t.Errorf("group page does not say it expires in 40 min")
	}
	if code, body := e.get(t, "/groups/job/never"); code != http.StatusOK || strings.Contains(body, "expires") {
		t.Errorf("group page of a group that never expires mentions expiry")
	}
}
