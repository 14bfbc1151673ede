package e2e

// End-to-end tests of the web UI in a real headless Chromium (Debian package
// chromium), driven with chromedp. They push groups over HTTP, use the pages
// as a person would (filter, open, delete, wipe, keyboard only), check the
// result in /metrics, and save screenshots of every page in light and dark
// mode and on a phone-sized screen to e2e/artifacts/ui/.
//
//	go test ./e2e/ -run TestUI -count=1 -v

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"
)

const (
	chromiumBin  = "/usr/bin/chromium"
	artifactsDir = "artifacts/ui"
	// stepTimeout bounds each browser step; a selector that never shows
	// up fails the test instead of hanging it.
	stepTimeout = 20 * time.Second
)

// browser is a headless Chromium with one tab, closed in t.Cleanup.
type browser struct {
	t   testing.TB
	ctx context.Context
}

// newBrowser starts Chromium with a fresh profile. It skips the test (fails
// it in CI) without Chromium, and skips it when the subject is the
// reference, whose UI is not what these tests describe.
func newBrowser(t testing.TB, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	requirePushgate(t, "pushgate UI")
	requireBinary(t, chromiumBin)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumBin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	}
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	// The first call starts the browser; it must not carry a timeout, or
	// the browser would end with it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", chromiumBin, err)
	}
	return &browser{t: t, ctx: ctx}
}

// do runs steps with a timeout.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		b.t.Fatalf("browser (at %s): %v", loc, err)
	}
}

// get runs one action that returns a value.
func bget[T any](b *browser, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("browser: %v", err)
	}
	return v
}

// eval evaluates a JavaScript expression.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	return bget(b, chromedp.Evaluate[T](expr))
}

// waitFor evaluates a JavaScript condition until it is true. It survives
// navigations (an evaluation in a document that goes away just fails and
// is retried), so it can follow a click that submits a form.
func (b *browser) waitFor(cond string) {
	b.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.readyState === 'complete' && (`+cond+`)`))
		cancel()
		if err == nil && ok {
			return
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	loc, _ := chromedp.Run(b.ctx, chromedp.Location())
	text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	b.t.Fatalf("waiting for %s at %s (last error: %v); page text:\n%s", cond, loc, lastErr, truncate(text, 2000))
}

// submit clicks a form's button and waits for the page it leads to, in
// which cond holds.
func (b *browser) submit(button, cond string) {
	b.t.Helper()
	b.do(chromedp.Click(chromedp.CSS(button)))
	b.waitFor(cond)
}

// mainText is the text of the page's main element.
func (b *browser) mainText() string {
	b.t.Helper()
	return eval[string](b, `document.querySelector('main') ? document.querySelector('main').innerText : document.body.innerText`)
}

// shot saves a full-page PNG screenshot as artifacts/ui/<name>.png.
func (b *browser) shot(name string) {
	b.t.Helper()
	b.save(name, bget(b, chromedp.FullScreenshot(100)))
}

// screen saves what the viewport shows, as a person first sees the page.
func (b *browser) screen(name string) {
	b.t.Helper()
	b.save(name, bget(b, chromedp.CaptureScreenshot()))
}

func (b *browser) save(name string, png []byte) {
	b.t.Helper()
	if err := os.MkdirAll(artifactsDir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	p := filepath.Join(artifactsDir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", p)
}

// colorScheme emulates prefers-color-scheme ("light" or "dark").
func (b *browser) colorScheme(scheme string) {
	b.t.Helper()
	b.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	}))
}

// phone emulates a phone-sized touch screen; desktop returns to the window.
func (b *browser) phone() {
	b.t.Helper()
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch))
}

func (b *browser) desktop() {
	b.t.Helper()
	b.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, emulation.ClearDeviceMetricsOverride, cdp.Empty{}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, emulation.SetTouchEmulationEnabled, emulation.SetTouchEmulationEnabledParams{Enabled: false})
		return err
	}))
	if w := eval[int](b, `window.innerWidth`); w < 1000 {
		b.t.Fatalf("viewport still %d px wide after leaving phone emulation", w)
	}
}

// noHorizontalScroll checks that the page fits the viewport's width.
func (b *browser) noHorizontalScroll(page string) {
	b.t.Helper()
	if w := eval[[]int](b, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
		b.t.Errorf("%s: page is %d px wide in a %d px viewport (scrolls sideways)", page, w[0], w[1])
	}
}

// rows is the number of group rows on the overview.
const rowsJS = `document.querySelectorAll('#results tbody tr').length`

// uiGateway starts the subject with the admin API, which the UI's wipe
// needs.
func uiGateway(t testing.TB, args ...string) *gateway {
	t.Helper()
	requirePushgate(t, "pushgate UI")
	return startGateway(t, subject, append([]string{"--web.enable-admin-api"}, args...)...)
}

func mustPush(t testing.TB, g *gateway, method, path string, body []byte, header map[string]string, want int) {
	t.Helper()
	if r := g.do(t, method, g.prefix+path, header, body); r.status != want {
		t.Fatalf("%s %s: %s, want %d", method, path, r, want)
	}
}

const (
	backupBody = `# HELP backup_last_success_timestamp_seconds When the last backup finished.
# TYPE backup_last_success_timestamp_seconds gauge
backup_last_success_timestamp_seconds 1.7e+09
# HELP backup_bytes_total Bytes written by the backup.
# TYPE backup_bytes_total counter
backup_bytes_total{volume="data"} 1.23456789e+10
backup_bytes_total{volume="logs"} 2.5e+08
# HELP backup_duration_seconds How long the backup took.
# TYPE backup_duration_seconds histogram
backup_duration_seconds_bucket{le="1"} 2
backup_duration_seconds_bucket{le="10"} 7
backup_duration_seconds_bucket{le="60"} 11
backup_duration_seconds_bucket{le="300"} 12
backup_duration_seconds_bucket{le="+Inf"} 12
backup_duration_seconds_sum 842.5
backup_duration_seconds_count 12
# HELP backup_chunk_seconds Time per chunk.
# TYPE backup_chunk_seconds summary
backup_chunk_seconds{quantile="0.5"} 0.12
backup_chunk_seconds{quantile="0.9"} 0.4
backup_chunk_seconds{quantile="0.99"} 1.7
backup_chunk_seconds_sum 96.3
backup_chunk_seconds_count 640
`
	fillerBody = "# TYPE filler_up gauge\nfiller_up 1\n"
)

// etlFamilies are pushed as protobuf: a native histogram and a gauge.
func etlFamilies() []*dto.MetricFamily {
	return []*dto.MetricFamily{
		{
			Name: proto.String("etl_batch_seconds"), Help: proto.String("Duration of ETL batches."),
			Type: dto.MetricType_HISTOGRAM.Enum(),
			Metric: []*dto.Metric{{Histogram: &dto.Histogram{
				SampleCount: proto.Uint64(20), SampleSum: proto.Float64(31.5),
				Schema: proto.Int32(1), ZeroThreshold: proto.Float64(0.001), ZeroCount: proto.Uint64(1),
				PositiveSpan:  []*dto.BucketSpan{{Offset: proto.Int32(0), Length: proto.Uint32(4)}, {Offset: proto.Int32(2), Length: proto.Uint32(1)}},
				PositiveDelta: []int64{2, 3, 2, -4, -2},
			}}},
		},
		{
			Name: proto.String("etl_rows_processed"), Help: proto.String("Rows the last run processed."),
			Type:   dto.MetricType_GAUGE.Enum(),
			Metric: []*dto.Metric{{Label: []*dto.LabelPair{lp("table", "orders")}, Gauge: &dto.Gauge{Value: proto.Float64(48213)}}},
		},
	}
}

const fillers = 30

// pushFixtures pushes the groups the UI tests look at: two backups with
// every classic type, an ETL job with a native histogram, a group whose
// last push failed, and fillers. It returns the number of groups.
func pushFixtures(t testing.TB, g *gateway) int {
	t.Helper()
	mustPush(t, g, http.MethodPut, "/metrics/job/backup/instance/db-1", []byte(backupBody), nil, http.StatusOK)
	mustPush(t, g, http.MethodPut, "/metrics/job/backup/instance/db-2", []byte(strings.ReplaceAll(backupBody, "1.7e+09", "1.71e+09")), nil, http.StatusOK)
	mustPush(t, g, http.MethodPut, "/metrics/job/nightly_etl/env/prod", protoBody(etlFamilies()...),
		map[string]string{"Content-Type": `application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited`}, http.StatusOK)
	mustPush(t, g, http.MethodPut, "/metrics/job/report", []byte("# TYPE report_pages gauge\nreport_pages 17\n"), nil, http.StatusOK)
	// Inconsistent with the backups' histogram: refused, recorded as failed.
	mustPush(t, g, http.MethodPost, "/metrics/job/report", []byte("# TYPE backup_duration_seconds gauge\nbackup_duration_seconds 3\n"), nil, http.StatusBadRequest)
	for i := range fillers {
		mustPush(t, g, http.MethodPut, fmt.Sprintf("/metrics/job/filler/instance/host-%02d", i), []byte(fillerBody), nil, http.StatusOK)
	}
	return 4 + fillers
}

// hasGroupSeries reports whether the exposition has a series with all the
// given labels.
func hasGroupSeries(mfs map[string]*dto.MetricFamily, labels map[string]string) bool {
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			n := 0
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v == l.GetValue() {
					n++
				}
			}
			if n == len(labels) {
				return true
			}
		}
	}
	return false
}

// TestUI walks through the UI: overview, filter, group page, delete, status,
// delete the matching groups and wipe, at the root and under a route prefix or external URL, and
// checks that every link and asset stays below the prefix.
func TestUI(t *testing.T) {
	for _, c := range []struct {
		name  string
		args  []string
		shots bool
	}{
		{name: "root", shots: true},
		{name: "route-prefix", args: []string{"--web.route-prefix=/pg"}},
		{name: "external-url", args: []string{"--web.external-url=http://{addr}/pg/"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := uiGateway(t, c.args...)
			b := newBrowser(t)
			total := pushFixtures(t, g)
			base := g.url()

			// Overview: every group on one page, links and assets below
			// the prefix, nothing from elsewhere.
			b.do(chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("table.groups")))
			if n := eval[int](b, rowsJS); n != total {
				t.Errorf("overview shows %d rows, want %d", n, total)
			}
			for _, u := range eval[[]string](b, `performance.getEntriesByType('resource').map(e => e.name)`) {
				if !strings.HasPrefix(u, base+"/static/") {
					t.Errorf("page loaded %s, want only assets below %s/static/", u, base)
				}
			}
			for _, u := range eval[[]string](b, `[...document.querySelectorAll('a[href]')].map(a => a.href)`) {
				if !strings.HasPrefix(u, base+"/") {
					t.Errorf("link %s leaves %s/", u, base)
				}
			}
			text := b.mainText()
			for _, want := range []string{"backup", "db-1", "nightly_etl", "Failed", "OK", fmt.Sprintf("Delete all %d groups", total)} {
				if !strings.Contains(text, want) {
					t.Errorf("overview lacks %q:\n%s", want, truncate(text, 1500))
				}
			}
			if c.shots {
				b.shot("overview-light")
				uiScreenshots(t, b, base)
			}

			// The live filter narrows to one group without a page load.
			b.do(chromedp.Click(chromedp.CSS("#q")), chromedp.SendKeys(chromedp.CSS("#q"), "etl"))
			b.waitFor(rowsJS + ` === 1`)
			if loc := bget(b, chromedp.Location()); !strings.HasPrefix(loc, base+"/?q=etl") {
				t.Errorf("after filtering, location is %s, want %s/?q=etl", loc, base)
			}
			// A metric name finds its groups, and the row says which
			// metric matched.
			b.do(chromedp.Navigate(base+"/?q=chunk"), chromedp.WaitVisible(chromedp.CSS("table.groups")))
			if n := eval[int](b, rowsJS); n != 2 {
				t.Errorf("?q=chunk shows %d rows, want the 2 backups", n)
			}
			if text := b.mainText(); !strings.Contains(text, "metric: backup_chunk_seconds") {
				t.Errorf("?q=chunk does not name the matching metric:\n%s", truncate(text, 1500))
			}

			// Open the ETL group from the filtered list.
			b.do(chromedp.Navigate(base+"/?q=etl"), chromedp.WaitVisible(chromedp.CSS("table.groups")))
			b.submit("#results a.group-link", `!!document.querySelector('h1.key')`)
			text = b.mainText()
			for _, want := range []string{"nightly_etl", "prod", "etl_batch_seconds", "native: schema 1", "etl_rows_processed", "48213", "table=orders"} {
				if !strings.Contains(text, want) {
					t.Errorf("group page lacks %q:\n%s", want, truncate(text, 3000))
				}
			}
			wantCmd := "curl --data-binary @metrics.txt '" + base + "/metrics/job/nightly_etl/env/prod'"
			if cmd := bget(b, chromedp.TextContent(chromedp.CSS("#cmd-push"))); cmd != wantCmd {
				t.Errorf("push command is %q, want %q", cmd, wantCmd)
			}
			if c.shots {
				b.shot("group-native-light")
			}

			// Delete it, confirming in the form.
			b.do(chromedp.Click(chromedp.CSS(".danger-zone summary")), chromedp.WaitVisible(chromedp.CSS(".danger-zone button[type=submit]")))
			b.submit(".danger-zone button[type=submit]", `!!document.querySelector('.notice.ok')`)
			if got := bget(b, chromedp.Text(chromedp.CSS(".notice.ok"))); !strings.Contains(got, `{env="prod", job="nightly_etl"}`) {
				t.Errorf("after delete, notice is %q", got)
			}
			if loc := bget(b, chromedp.Location()); !strings.HasPrefix(loc, base+"/?deleted=") {
				t.Errorf("after delete, location is %s", loc)
			}
			if n := eval[int](b, rowsJS); n != total-1 {
				t.Errorf("after delete, overview shows %d rows, want %d", n, total-1)
			}
			mfs := g.scrape(t)
			if hasGroupSeries(mfs, map[string]string{"job": "nightly_etl"}) {
				t.Errorf("deleted group is still in /metrics")
			}
			if !hasGroupSeries(mfs, map[string]string{"job": "backup", "instance": "db-1"}) {
				t.Errorf("another group is gone from /metrics")
			}
			b.do(chromedp.Navigate(base + "/groups/job/nightly_etl/env/prod"))
			b.waitFor(`!!document.querySelector('h1')`)
			if text := b.mainText(); !strings.Contains(text, "There is no group") {
				t.Errorf("the deleted group's page still shows it:\n%s", truncate(text, 800))
			}

			// Status page.
			b.do(chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("nav")))
			b.submit(`nav a[href$="/status"]`, `!!document.getElementById('storage-h')`)
			text = b.mainText()
			for _, want := range []string{"Storage", "Durable", "pushgate.db", "Size on disk", "Build", "Flags", "--web.enable-admin-api", fmt.Sprintf("%d\ngroups", total-1)} {
				if !strings.Contains(text, want) {
					t.Errorf("status page lacks %q:\n%s", want, truncate(text, 3000))
				}
			}
			if c.shots {
				b.shot("status-light")
			}

			// Delete the groups a filter matches: filter live, follow the
			// offer, confirm a list that names them. A group that starts
			// matching after the confirmation was shown makes the gateway
			// refuse and ask again; the second confirmation deletes all.
			b.do(chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("table.groups")))
			b.do(chromedp.Click(chromedp.CSS("#q")), chromedp.SendKeys(chromedp.CSS("#q"), "filler"))
			b.waitFor(rowsJS + fmt.Sprintf(` === %d`, fillers))
			if got, want := bget(b, chromedp.Text(chromedp.CSS("#delete-matching"))), fmt.Sprintf("Delete the %d matching groups…", fillers); got != want {
				t.Errorf("delete-matching offer says %q, want %q", got, want)
			}
			b.submit("#delete-matching", `!!document.getElementById('confirm-delete-matching')`)
			if n := eval[int](b, `document.querySelectorAll('#matching-groups li').length`); n != fillers {
				t.Errorf("confirmation lists %d groups, want %d", n, fillers)
			}
			if text := b.mainText(); !strings.Contains(text, fmt.Sprintf("Delete the %d matching groups?", fillers)) || !strings.Contains(text, "instance=host-00") {
				t.Errorf("confirmation:\n%s", truncate(text, 1500))
			}
			if c.shots {
				b.shot("delete-matching-light")
			}
			mustPush(t, g, http.MethodPut, "/metrics/job/filler/instance/host-99", []byte(fillerBody), nil, http.StatusOK)
			b.submit("#confirm-delete-matching", `!!document.querySelector('.notice.error')`)
			if text := b.mainText(); !strings.Contains(text, fmt.Sprintf("Nothing was deleted: the groups matching the filter changed after you confirmed (you confirmed %d, %d match now)", fillers, fillers+1)) {
				t.Errorf("after a change, the confirmation says:\n%s", truncate(text, 1500))
			}
			if mfs := g.scrape(t); !hasGroupSeries(mfs, map[string]string{"job": "filler", "instance": "host-00"}) {
				t.Errorf("a refused delete-matching deleted groups")
			}
			b.submit("#confirm-delete-matching", `!!document.querySelector('.notice.ok')`)
			if text := b.mainText(); !strings.Contains(text, fmt.Sprintf("Deleted the %d matching groups.", fillers+1)) || !strings.Contains(text, "No group matches.") {
				t.Errorf("after delete-matching:\n%s", truncate(text, 1500))
			}
			if loc := bget(b, chromedp.Location()); !strings.HasPrefix(loc, base+"/?") || !strings.Contains(loc, "q=filler") {
				t.Errorf("after delete-matching, location is %s", loc)
			}
			mfs = g.scrape(t)
			if hasGroupSeries(mfs, map[string]string{"job": "filler"}) {
				t.Errorf("deleted groups are still in /metrics")
			}
			if !hasGroupSeries(mfs, map[string]string{"job": "backup", "instance": "db-1"}) {
				t.Errorf("a group that did not match is gone from /metrics")
			}
			left := total - 1 - fillers

			// Wipe, confirming a count that names every group.
			b.do(chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("table.groups")))
			b.do(chromedp.Click(chromedp.CSS(".danger-zone summary")), chromedp.WaitVisible(chromedp.CSS(".danger-zone button[type=submit]")))
			if got, want := bget(b, chromedp.Text(chromedp.CSS(".danger-zone button[type=submit]"))), fmt.Sprintf("Delete all %d groups", left); got != want {
				t.Errorf("wipe button says %q, want %q", got, want)
			}
			b.submit(".danger-zone button[type=submit]", `!!document.querySelector('.notice.ok')`)
			if text := b.mainText(); !strings.Contains(text, fmt.Sprintf("Deleted all %d groups", left)) || !strings.Contains(text, "No groups yet") {
				t.Errorf("after wipe:\n%s", truncate(text, 1500))
			}
			if mfs := g.scrape(t); mfs[pushTimeName] != nil {
				t.Errorf("after wipe, /metrics still has %s", pushTimeName)
			}
			if c.shots {
				b.shot("overview-empty-light")
			}
		})
	}
}

// uiScreenshots saves the main pages in dark mode and on a phone, and
// checks that nothing scrolls sideways on the phone.
func uiScreenshots(t *testing.T, b *browser, base string) {
	t.Helper()
	group := base + "/groups/job/backup/instance/db-1"
	failed := base + "/groups/job/report"
	b.do(chromedp.Navigate(group), chromedp.WaitVisible(chromedp.CSS("h1.key")))
	b.shot("group-light")
	b.do(chromedp.Navigate(failed), chromedp.WaitVisible(chromedp.CSS("h1.key")))
	b.shot("group-failed-light")

	b.colorScheme("dark")
	for _, p := range []struct{ name, url, sel string }{
		{"overview-dark", base + "/", "table.groups"},
		{"group-dark", group, "h1.key"},
		{"group-native-dark", base + "/groups/job/nightly_etl/env/prod", "h1.key"},
		{"status-dark", base + "/status", "#storage-h"},
	} {
		b.do(chromedp.Navigate(p.url), chromedp.WaitVisible(chromedp.CSS(p.sel)))
		if bg := eval[string](b, `getComputedStyle(document.body).backgroundColor`); bg == "rgb(255, 255, 255)" {
			t.Errorf("%s: background is white in dark mode", p.name)
		}
		b.shot(p.name)
	}
	b.colorScheme("light")

	b.phone()
	for _, p := range []struct{ name, url, sel string }{
		{"overview-phone", base + "/", "table.groups"},
		{"group-phone", group, "h1.key"},
		{"status-phone", base + "/status", "#storage-h"},
	} {
		b.do(chromedp.Navigate(p.url), chromedp.WaitVisible(chromedp.CSS(p.sel)))
		b.noHorizontalScroll(p.name)
		b.screen(p.name)
	}
	b.do(chromedp.Navigate(base+"/groups/job/nightly_etl/env/prod"), chromedp.WaitVisible(chromedp.CSS("h1.key")))
	eval[any](b, `document.getElementById('fam-h').scrollIntoView()`)
	b.screen("group-native-phone")
	b.colorScheme("dark")
	b.do(chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("table.groups")))
	b.screen("overview-phone-dark")
	b.colorScheme("light")
	b.desktop()
}

// TestUIKeyboard uses the UI with the keyboard only: "/" to filter, Tab to
// the group, Enter to open it, and Tab/Enter through the delete
// confirmation.
func TestUIKeyboard(t *testing.T) {
	g := uiGateway(t)
	b := newBrowser(t)
	pushFixtures(t, g)
	base := g.url()
	b.do(chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("table.groups")))

	// The first Tab reaches the skip link, which becomes visible.
	b.do(chromedp.KeyEvent(kb.Tab))
	if got := eval[string](b, `document.activeElement.className + " " + (document.activeElement.getBoundingClientRect().left >= 0)`); got != "skip true" {
		t.Errorf("first Tab focuses %q, want the visible skip link", got)
	}

	b.pressSlash()
	if got := eval[string](b, `document.activeElement.id + ":" + document.activeElement.value`); got != "q:" {
		t.Fatalf(`"/" focuses %q, want the empty filter box`, got)
	}
	b.do(chromedp.KeyEvent("db-2"))
	b.waitFor(rowsJS + ` === 1`)
	tabTo(t, b, `document.activeElement.matches('a.group-link')`, 20)
	b.do(chromedp.KeyEvent(kb.Enter))
	b.waitFor(`!!document.querySelector('h1.key')`)
	if loc := bget(b, chromedp.Location()); loc != base+"/groups/job/backup/instance/db-2" {
		t.Fatalf("Enter on the group opened %s", loc)
	}
	// A visible focus ring on the focused control.
	tabTo(t, b, `document.activeElement.matches('.danger-zone summary')`, 80)
	if o := eval[string](b, `getComputedStyle(document.activeElement).outlineStyle`); o == "none" {
		t.Errorf("the focused delete button shows no outline")
	}
	b.do(chromedp.KeyEvent(kb.Enter))
	tabTo(t, b, `document.activeElement.matches('.danger-zone button[type=submit]')`, 3)
	b.do(chromedp.KeyEvent(kb.Enter))
	b.waitFor(`!!document.querySelector('.notice.ok')`)
	if hasGroupSeries(g.scrape(t), map[string]string{"job": "backup", "instance": "db-2"}) {
		t.Errorf("group deleted with the keyboard is still in /metrics")
	}
}

// pressSlash presses "/" as a keyboard does: one keyDown that carries the
// text, so that a page that cancels the keydown gets no input. (KeyEvent
// sends the text as a separate char event, which a page cannot cancel.)
func (b *browser) pressSlash() {
	b.t.Helper()
	b.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeKeyDown, input.DispatchKeyEventTypeKeyUp} {
			p := input.DispatchKeyEventParams{Type: typ, Key: "/", Code: "Slash", WindowsVirtualKeyCode: 191, NativeVirtualKeyCode: 191}
			if typ == input.DispatchKeyEventTypeKeyDown {
				p.Text, p.UnmodifiedText = "/", "/"
			}
			if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, p); err != nil {
				return err
			}
		}
		return nil
	}))
}

// tabTo presses Tab until cond holds, at most max times.
func tabTo(t *testing.T, b *browser, cond string, max int) {
	t.Helper()
	for range max {
		if eval[bool](b, cond) {
			return
		}
		b.do(chromedp.KeyEvent(kb.Tab))
	}
	if !eval[bool](b, cond) {
		t.Fatalf("%d Tabs did not reach %s; focus is on %s", max, cond, eval[string](b, `document.activeElement.outerHTML.slice(0, 200)`))
	}
}

// TestUICrossSiteForm submits the delete form from another site, with a
// valid token even: the browser marks it cross-site and the gateway refuses
// it, so the group stays.
func TestUICrossSiteForm(t *testing.T) {
	g := uiGateway(t)
	b := newBrowser(t)
	pushFixtures(t, g)
	page := g.do(t, http.MethodGet, g.prefix+"/groups/job/backup/instance/db-2", nil, nil)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page.body)
	if m == nil {
		t.Fatalf("no token on the group page: %s", page)
	}
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `<!DOCTYPE html><form id="f" method="post" action="%s/delete">
<input name="group" value="job/backup/instance/db-2"><input name="csrf" value="%s"></form>
<script>document.getElementById('f').submit()</script>`, html.EscapeString(g.url()), html.EscapeString(string(m[1])))
	}))
	t.Cleanup(evil.Close)
	// localhost is another site than 127.0.0.1.
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)
	b.do(chromedp.Navigate(evilURL))
	b.waitFor(`location.href.startsWith(` + jsString(g.url()) + `) && document.readyState === 'complete'`)
	if text := b.mainText(); !strings.Contains(text, "Refused") {
		t.Errorf("cross-site delete was not refused:\n%s", truncate(text, 1000))
	}
	if !hasGroupSeries(g.scrape(t), map[string]string{"job": "backup", "instance": "db-2"}) {
		t.Errorf("a cross-site form deleted the group")
	}
}

func jsString(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }

// TestUITLSBasicAuth uses the UI over HTTPS behind basic auth (exporter
// toolkit web config): pages, the copyable command and delete all work.
func TestUITLSBasicAuth(t *testing.T) {
	requirePushgate(t, "pushgate UI")
	requireBinary(t, chromiumBin)
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(webConfig, fmt.Appendf(nil, "tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  admin: %s\n", certFile, keyFile, hash), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startProcess(t, "subject", subjectBin, "--web.listen-address="+addr, "--web.config.file="+webConfig, "--storage.in-memory", "--web.enable-admin-api")
	base := "https://" + addr
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	send := func(method, path, body string) (int, string) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("admin", "s3cret")
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for deadline := time.Now().Add(readyTimeout); ; time.Sleep(50 * time.Millisecond) {
		if code, _ := send(http.MethodGet, "/-/ready", ""); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway with TLS did not become ready")
		}
	}
	if code, body := send(http.MethodPut, "/metrics/job/backup/instance/db-1", backupBody); code != http.StatusOK {
		t.Fatalf("push over TLS: %d %s", code, body)
	}
	if code, _ := send(http.MethodGet, "/", ""); code != http.StatusOK {
		t.Fatalf("overview with basic auth: %d", code)
	}

	b := newBrowser(t, chromedp.IgnoreCertErrors)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:s3cret"))
	b.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}})
		return err
	}))
	b.do(chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("table.groups")))
	b.submit("a.group-link", `!!document.querySelector('h1.key')`)
	want := "curl -u 'admin' --data-binary @metrics.txt '" + base + "/metrics/job/backup/instance/db-1'"
	if cmd := bget(b, chromedp.TextContent(chromedp.CSS("#cmd-push"))); cmd != want {
		t.Errorf("push command is %q, want %q", cmd, want)
	}
	// A secure context: the Clipboard API path of the copy button.
	if !eval[bool](b, `window.isSecureContext && !document.querySelector('[data-copy]').hidden`) {
		t.Errorf("copy button not offered over HTTPS")
	}
	b.shot("group-tls")
	b.do(chromedp.Click(chromedp.CSS(".danger-zone summary")), chromedp.WaitVisible(chromedp.CSS(".danger-zone button[type=submit]")))
	b.submit(".danger-zone button[type=submit]", `!!document.querySelector('.notice.ok')`)
	if _, body := send(http.MethodGet, "/metrics", ""); strings.Contains(body, `job="backup"`) {
		t.Errorf("group deleted over TLS is still in /metrics")
	}
}

// writeSelfSigned writes a certificate for 127.0.0.1 and its key.
func writeSelfSigned(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	return writeSignedCert(t, dir, "server", nil, nil, x509.ExtKeyUsageServerAuth)
}

// TestUIOverview10kGroups loads the overview of 10,000 groups in the
// browser and logs how long it took (the budget is checked by
// BenchmarkOverview10k in internal/ui, not by a timed assertion here).
func TestUIOverview10kGroups(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes 10,000 groups")
	}
	g := uiGateway(t, "--storage.in-memory")
	b := newBrowser(t)
	const n = 10000
	var wg sync.WaitGroup
	work := make(chan int)
	errs := make(chan error, 1)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				r, err := g.tryDo(http.MethodPut, fmt.Sprintf("%s/metrics/job/load/instance/i-%05d", g.prefix, i), nil, []byte(fillerBody+fmt.Sprintf("# TYPE load_items gauge\nload_items{shard=\"a\"} %d\nload_items{shard=\"b\"} %d\n", i, i*2)))
				if err == nil && r.status != http.StatusOK {
					err = fmt.Errorf("push %d: %s", i, r)
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}

	start := time.Now()
	b.do(chromedp.Navigate(g.url()+"/"), chromedp.WaitVisible(chromedp.CSS("table.groups")))
	loaded := time.Since(start)
	timing := eval[map[string]float64](b, `(() => {
		const nav = performance.getEntriesByType('navigation')[0];
		const fcp = performance.getEntriesByName('first-contentful-paint')[0];
		return {responseEnd: nav.responseEnd, domContentLoaded: nav.domContentLoadedEventEnd, fcp: fcp ? fcp.startTime : -1, bytes: nav.transferSize};
	})()`)
	t.Logf("overview of %d groups: loaded in %v; response end %.0f ms, first contentful paint %.0f ms, DOMContentLoaded %.0f ms, %.0f bytes",
		n, loaded, timing["responseEnd"], timing["fcp"], timing["domContentLoaded"], timing["bytes"])
	if text := b.mainText(); !strings.Contains(text, "of 10,000 groups") {
		t.Errorf("overview does not count 10,000 groups:\n%s", truncate(text, 500))
	}
	if rows := eval[int](b, rowsJS); rows != 100 {
		t.Errorf("overview renders %d rows, want one page of 100", rows)
	}
	b.shot("overview-10k")

	start = time.Now()
	b.do(chromedp.SendKeys(chromedp.CSS("#q"), "i-09999"))
	b.waitFor(rowsJS + ` === 1`)
	t.Logf("live filter to 1 of %d groups: %v (incl. 250 ms debounce)", n, time.Since(start))

	// The last page, sorted by series.
	b.do(chromedp.Navigate(g.url()+"/?sort=series&page=100"), chromedp.WaitVisible(chromedp.CSS("table.groups")))
	if text := b.mainText(); !strings.Contains(text, "Showing 9,901–10,000 of 10,000 groups") {
		t.Errorf("last page:\n%s", truncate(text, 500))
	}
}
