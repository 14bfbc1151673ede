// Package e2e is pushgate's black-box end-to-end suite. It starts real gateway
// processes (the reference prometheus-pushgateway and the subject under test),
// drives them over HTTP and with real clients, and compares what they expose.
//
// Run it against a freshly built pushgate:
//
//	go test ./e2e/ -count=1
//
// or against any binary, e.g. the reference itself as the subject:
//
//	PUSHGATE_BIN=/usr/bin/prometheus-pushgateway go test ./e2e/ -count=1
//
// The reference is Debian's prometheus-pushgateway (v1.5.1) unless
// PUSHGATE_REFERENCE_BIN names another build, such as v1.11 built from
// source. Where v1.5 and v1.11 differ, the compat cases expect v1.11 and
// accept v1.5's answer from a v1.5 reference (see binInfo):
//
//	PUSHGATE_REFERENCE_BIN=/path/to/pushgateway-v1.11 go test ./e2e/ -count=1
//
// Missing external programs (reference gateway, Prometheus, node exporter,
// Python prometheus_client) skip the tests that need them, except with
// CI=true, where they fail.
package e2e

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pushgate/pushgate/internal/testenv"
)

// referenceBin is the reference gateway; PUSHGATE_REFERENCE_BIN overrides it.
var referenceBin = cmp.Or(os.Getenv("PUSHGATE_REFERENCE_BIN"), "/usr/bin/prometheus-pushgateway")

const (
	prometheusBin = "/usr/bin/prometheus"
	nodeExpBin    = "/usr/bin/prometheus-node-exporter"
	pythonBin     = "/usr/bin/python3"

	readyTimeout = 15 * time.Second
	stopTimeout  = 5 * time.Second
)

// subjectBin is the binary under test, set by TestMain.
var subjectBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if bin := os.Getenv("PUSHGATE_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: PUSHGATE_BIN: %v\n", err)
			return 1
		}
		subjectBin = abs
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "pushgate-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	subjectBin = filepath.Join(dir, "pushgate")
	// The test runs in the package directory, so the module root is "..".
	build := exec.Command("go", "build", "-o", subjectBin, "./cmd/pushgate")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building ./cmd/pushgate: %v (set PUSHGATE_BIN to test another binary)\n", err)
		return 1
	}
	return m.Run()
}

// requirePushgate skips a test of a pushgate feature (what: the feature)
// when the subject is the reference, which the suite can also run against
// to validate its compatibility cases. In CI the subject is always pushgate.
func requirePushgate(t testing.TB, what string) {
	t.Helper()
	if isReferenceBinary(subjectBin) {
		t.Skipf("the subject is the reference, which has no %s", what)
	}
}

// requireBinary skips the test (fails it in CI) when path is not an
// executable file.
func requireBinary(t testing.TB, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return
	}
	testenv.Missing(t, "required program %s is not installed (Debian package providing it)", path)
}

// requirePythonModule skips (fails in CI) unless pythonBin can import mod.
func requirePythonModule(t testing.TB, mod string) {
	t.Helper()
	requireBinary(t, pythonBin)
	out, err := exec.Command(pythonBin, "-c", "import "+mod).CombinedOutput()
	if err != nil {
		testenv.Missing(t, "%s cannot import %s (Debian package python3-prometheus-client): %v\n%s", pythonBin, mod, err, out)
	}
}

// process is a started child program that is stopped in t.Cleanup.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *testenv.SyncBuffer
	done chan struct{} // closed once the process has exited
	err  error         // Wait's result, valid after done is closed
}

// startProcess runs bin with args in a fresh temporary working directory,
// captures its output, and registers a cleanup that stops it (SIGTERM, then
// SIGKILL) and logs its output if the test failed.
func startProcess(t testing.TB, name, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, out: &testenv.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	// Each process runs in its own empty directory, so that default
	// relative paths (e.g. a storage directory) are never shared.
	p.cmd.Dir = t.TempDir()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s (%s %s) output:\n%s", name, bin, strings.Join(args, " "), p.out)
		}
	})
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process: SIGTERM, and SIGKILL after stopTimeout.
func (p *process) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// gateway is a running pushgateway-compatible server.
type gateway struct {
	*process
	bin    string
	addr   string // host:port
	prefix string // route prefix without a final slash, e.g. "" or "/pg"
}

// url is the base URL including the route prefix, e.g.
// "http://127.0.0.1:1234/pg", for clients that take a gateway URL.
func (g *gateway) url() string { return "http://" + g.addr + g.prefix }

// gatewayKind selects which binary a test drives.
type gatewayKind int

const (
	reference gatewayKind = iota
	subject
)

func (k gatewayKind) String() string {
	if k == reference {
		return "reference"
	}
	return "subject"
}

// startGateway starts the binary of the given kind on a free port. In args,
// "{addr}" is replaced by the chosen host:port (for --web.external-url). The
// subject gets exactly args plus the listen address; the reference binary
// (also when it is the subject) additionally gets --persistence.file=.
func startGateway(t testing.TB, kind gatewayKind, args ...string) *gateway {
	t.Helper()
	bin := subjectBin
	if kind == reference {
		bin = referenceBin
		requireBinary(t, bin)
	}
	// The port can be taken between freePort and the child's bind; retry.
	var lastOut string
	for range 3 {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		full := make([]string, 0, len(args)+2)
		full = append(full, "--web.listen-address="+addr)
		if isReferenceBinary(bin) {
			full = append(full, "--persistence.file=")
		}
		for _, a := range args {
			full = append(full, strings.ReplaceAll(a, "{addr}", addr))
		}
		g := &gateway{bin: bin, addr: addr, prefix: routePrefix(full)}
		g.process = startProcess(t, kind.String(), bin, full...)
		if g.waitReady(t) {
			return g
		}
		lastOut = g.out.String()
		if !strings.Contains(lastOut, "address already in use") {
			t.Fatalf("%s gateway did not become ready (%s %s); output:\n%s", kind, bin, strings.Join(full, " "), lastOut)
		}
	}
	t.Fatalf("%s gateway: no free port after 3 tries; last output:\n%s", kind, lastOut)
	return nil
}

// refInfo describes the reference binary, from its --version output.
type refInfo struct {
	// legacy is true for releases before v1.11 (Debian ships v1.5.1).
	legacy bool
	// redirect is the status its ServeMux answers for a path that is not
	// clean: 301 when built with Go before 1.26, 307 from Go 1.26 on.
	redirect int
}

var (
	refInfoMu    sync.Mutex
	refInfoCache = map[string]refInfo{} // by binary path; guarded by refInfoMu
)

// binInfo inspects a reference binary once. An unparseable version counts
// as legacy built with old Go (the Debian package).
func binInfo(bin string) refInfo {
	refInfoMu.Lock()
	defer refInfoMu.Unlock()
	if info, ok := refInfoCache[bin]; ok {
		return info
	}
	info := refInfo{legacy: true, redirect: http.StatusMovedPermanently}
	if out, err := exec.Command(bin, "--version").CombinedOutput(); err == nil {
		var major, minor, goMinor int
		for _, l := range strings.Split(string(out), "\n") {
			if _, v, ok := strings.Cut(l, ", version "); ok {
				_, _ = fmt.Sscanf(v, "%d.%d", &major, &minor)
			}
			if _, v, ok := strings.Cut(l, "go version:"); ok {
				_, _ = fmt.Sscanf(strings.TrimSpace(v), "go1.%d", &goMinor)
			}
		}
		info.legacy = major < 1 || (major == 1 && minor < 11)
		if goMinor >= 26 {
			info.redirect = http.StatusTemporaryRedirect
		}
	}
	refInfoCache[bin] = info
	return info
}

// isReferenceBinary reports whether bin is the Debian reference, whose
// default --persistence.file is under /var/lib (shared by every instance and
// written at shutdown); it must always run in memory.
func isReferenceBinary(bin string) bool {
	a, errA := filepath.EvalSymlinks(bin)
	b, errB := filepath.EvalSymlinks(referenceBin)
	return errA == nil && errB == nil && a == b
}

// routePrefix derives the route prefix the way the reference does: the flag
// if given, else the path of --web.external-url.
func routePrefix(args []string) string {
	var prefix, external string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--web.route-prefix="); ok {
			prefix = v
		}
		if v, ok := strings.CutPrefix(a, "--web.external-url="); ok {
			external = v
		}
	}
	if prefix == "" && external != "" {
		if u, err := url.Parse(external); err == nil {
			prefix = u.Path
		}
	}
	return strings.TrimRight(prefix, "/")
}

// waitReady polls /-/ready until 200; false if the process exited or the
// timeout passed.
func (g *gateway) waitReady(t testing.TB) bool {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		if g.exited() {
			return false
		}
		resp, err := client.Get(g.url() + "/-/ready")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// httpClient does not follow redirects, so tests see the status codes the
// gateway really answers (the reference redirects some paths).
var httpClient = &http.Client{
	Timeout: 5 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
	Transport: &http.Transport{DisableCompression: true},
}

// response is a fully read HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string {
	return fmt.Sprintf("%d %q", r.status, truncate(string(r.body), 500))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// do sends one request to the gateway; path is absolute (it includes any
// route prefix).
func (g *gateway) do(t testing.TB, method, path string, header map[string]string, body []byte) response {
	t.Helper()
	r, err := g.tryDo(method, path, header, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (g *gateway) tryDo(method, path string, header map[string]string, body []byte) (response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return send(ctx, httpClient, method, "http://"+g.addr+path, header, body)
}

// send sends one request with client and reads the whole answer; an error
// means no answer (refused, cut off, timed out).
func send(ctx context.Context, client *http.Client, method, url string, header map[string]string, body []byte) (response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return response{}, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("read body: %w", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// scrape fetches /metrics as text and parses it.
func (g *gateway) scrape(t testing.TB) map[string]*dto.MetricFamily {
	t.Helper()
	r := g.do(t, http.MethodGet, g.prefix+"/metrics", nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("scrape: %s", r)
	}
	mfs, err := parseText(r.body)
	if err != nil {
		t.Fatalf("scrape: parse exposition: %v\n%s", err, r.body)
	}
	return mfs
}

// pushed scrapes and returns the normalized exposition of pushed families.
func (g *gateway) pushed(t testing.TB) string {
	t.Helper()
	return normalize(g.scrape(t), nil)
}

// waitPushed scrapes until the normalized exposition equals want or a short
// deadline passes, and returns the last one. The reference answers DELETE
// (and unchecked pushes, and wipe) with 202 before it has applied them, so a
// scrape right after may still see the old state.
func (g *gateway) waitPushed(t testing.TB, want string, opts *normOpts) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		got := normalize(g.scrape(t), opts)
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func parseText(b []byte) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(bytes.NewReader(b))
}

// Families the gateways expose about themselves. Series of these families
// are dropped unless they carry a job label (i.e. were pushed).
var telemetryPrefixes = []string{"go_", "process_", "promhttp_", "pushgateway_", "pushgate_"}

const (
	pushTimeName        = "push_time_seconds"
	pushFailureTimeName = "push_failure_time_seconds"
	pushTimeHelp        = "Last Unix time when changing this group in the Pushgateway succeeded."
	pushFailureTimeHelp = "Last Unix time when changing this group in the Pushgateway failed."
)

func isTelemetry(name string) bool {
	for _, p := range telemetryPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// normOpts tunes normalize.
type normOpts struct {
	// ignoreHelp lists families whose HELP is not compared (groups disagree
	// on it, and which one wins is not specified).
	ignoreHelp map[string]bool
	// helpAnyOf maps a family to the HELP strings that are all acceptable;
	// the normalized HELP becomes the first of them if the actual one is in
	// the list.
	helpAnyOf map[string][]string
}

// normalize renders the pushed families canonically: one line per family
// header and per sample, families by name, samples by sorted label set.
// Telemetry series without a job label are dropped (telemetry HELP too),
// push_time_seconds and push_failure_time_seconds values become 0 or 1
// (zero or not).
func normalize(mfs map[string]*dto.MetricFamily, opts *normOpts) string {
	if opts == nil {
		opts = &normOpts{}
	}
	names := make([]string, 0, len(mfs))
	for n := range mfs {
		names = append(names, n)
	}
	sort.Strings(names)
	var sb strings.Builder
	for _, name := range names {
		mf := mfs[name]
		tele := isTelemetry(name)
		var lines []string
		for _, m := range mf.GetMetric() {
			if tele && !hasLabel(m, "job") {
				continue
			}
			lines = append(lines, sampleLines(mf, m)...)
		}
		if len(lines) == 0 {
			continue
		}
		sort.Strings(lines)
		help := mf.GetHelp()
		switch {
		case tele || opts.ignoreHelp[name]:
			help = "<any>"
		case len(opts.helpAnyOf[name]) > 0:
			if slices.Contains(opts.helpAnyOf[name], help) {
				help = opts.helpAnyOf[name][0]
			}
		}
		if help != "" {
			fmt.Fprintf(&sb, "# HELP %s %s\n", name, help)
		}
		fmt.Fprintf(&sb, "# TYPE %s %s\n", name, strings.ToLower(mf.GetType().String()))
		for _, l := range lines {
			sb.WriteString(l)
			sb.WriteByte('\n')
		}
	}
	return sb.String()
}

// labelValue is the value of m's label name, "" if it has none.
func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func hasLabel(m *dto.Metric, name string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return true
		}
	}
	return false
}

func sampleLines(mf *dto.MetricFamily, m *dto.Metric) []string {
	name := mf.GetName()
	labels := m.GetLabel()
	ts := ""
	if m.TimestampMs != nil {
		ts = " @" + strconv.FormatInt(m.GetTimestampMs(), 10)
	}
	line := func(suffix string, v float64, extra ...string) string {
		return name + suffix + labelString(labels, extra...) + " " + formatValue(v) + ts
	}
	switch mf.GetType() {
	case dto.MetricType_COUNTER:
		return []string{line("", m.GetCounter().GetValue())}
	case dto.MetricType_GAUGE:
		v := m.GetGauge().GetValue()
		if name == pushTimeName || name == pushFailureTimeName {
			v = nonZero(v)
		}
		return []string{line("", v)}
	case dto.MetricType_SUMMARY:
		s := m.GetSummary()
		out := []string{line("_sum", s.GetSampleSum()), line("_count", float64(s.GetSampleCount()))}
		for _, q := range s.GetQuantile() {
			out = append(out, line("", q.GetValue(), "quantile", formatValue(q.GetQuantile())))
		}
		return out
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		h := m.GetHistogram()
		out := []string{line("_sum", h.GetSampleSum()), line("_count", float64(h.GetSampleCount()))}
		for _, b := range h.GetBucket() {
			out = append(out, line("_bucket", float64(b.GetCumulativeCount()), "le", formatValue(b.GetUpperBound())))
		}
		return out
	default:
		v := m.GetUntyped().GetValue()
		if name == pushTimeName || name == pushFailureTimeName {
			v = nonZero(v)
		}
		return []string{line("", v)}
	}
}

func nonZero(v float64) float64 {
	if v != 0 {
		return 1
	}
	return 0
}

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func labelString(labels []*dto.LabelPair, extra ...string) string {
	pairs := make([]string, 0, len(labels)+1)
	for _, l := range labels {
		pairs = append(pairs, l.GetName()+"="+strconv.Quote(l.GetValue()))
	}
	for i := 0; i+1 < len(extra); i += 2 {
		pairs = append(pairs, extra[i]+"="+strconv.Quote(extra[i+1]))
	}
	if len(pairs) == 0 {
		return ""
	}
	sort.Strings(pairs)
	return "{" + strings.Join(pairs, ",") + "}"
}

// normalizeExpected parses an expected exposition written by hand and
// renders it like normalize. push_time_seconds and push_failure_time_seconds
// need no HELP/TYPE lines: they are filled in; their values only matter as
// zero or non-zero. Lines may be indented.
func normalizeExpected(t testing.TB, text string, opts *normOpts) string {
	t.Helper()
	var sb strings.Builder
	if strings.Contains(text, pushTimeName) && !strings.Contains(text, "# TYPE "+pushTimeName) {
		fmt.Fprintf(&sb, "# HELP %s %s\n# TYPE %s gauge\n", pushTimeName, pushTimeHelp, pushTimeName)
	}
	if strings.Contains(text, pushFailureTimeName) && !strings.Contains(text, "# TYPE "+pushFailureTimeName) {
		fmt.Fprintf(&sb, "# HELP %s %s\n# TYPE %s gauge\n", pushFailureTimeName, pushFailureTimeHelp, pushFailureTimeName)
	}
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			sb.WriteString(l + "\n")
		}
	}
	mfs, err := parseText([]byte(sb.String()))
	if err != nil {
		t.Fatalf("bad expected exposition in test: %v\n%s", err, sb.String())
	}
	return normalize(mfs, opts)
}

// diffLines returns a readable line diff of want and got.
func diffLines(want, got string) string {
	w := strings.Split(strings.TrimSuffix(want, "\n"), "\n")
	g := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	inW := map[string]int{}
	for _, l := range w {
		inW[l]++
	}
	inG := map[string]int{}
	for _, l := range g {
		inG[l]++
	}
	var sb strings.Builder
	for _, l := range w {
		if inG[l] == 0 {
			sb.WriteString("- " + l + "\n")
		} else {
			inG[l]--
		}
	}
	for _, l := range g {
		if inW[l] == 0 {
			sb.WriteString("+ " + l + "\n")
		} else {
			inW[l]--
		}
	}
	return sb.String()
}

// waitExit waits up to d for the process to exit.
func (p *process) waitExit(d time.Duration) error {
	select {
	case <-p.done:
		return nil
	case <-time.After(d):
		return fmt.Errorf("%s still running after %v", p.name, d)
	}
}
