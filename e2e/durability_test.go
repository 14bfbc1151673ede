package e2e

// Durability end to end: what pushgate acknowledged survives SIGKILL, a full
// disk refuses writes without changing anything and recovers without a
// restart, a read-only or corrupt storage stops the start with a clear
// error, and a reference persistence file is imported once.

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/pushgate/pushgate/internal/testenv"
)

// storageFile is the database file in --storage.path.
const storageFile = "pushgate.db"

// startDurable starts the subject on the storage directory dir.
func startDurable(t testing.TB, dir string, args ...string) *gateway {
	t.Helper()
	return startGateway(t, subject, append([]string{"--storage.path=" + dir}, args...)...)
}

// sigkill kills the process with SIGKILL and waits for it to be gone.
func (p *process) sigkill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !p.exited() {
		t.Fatalf("SIGKILL %s: %v", p.name, err)
	}
	if err := p.waitExit(stopTimeout); err != nil {
		t.Fatal(err)
	}
}

// terminate stops the process with SIGTERM and requires a clean exit.
func (p *process) terminate(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !p.exited() {
		t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	if err := p.waitExit(2 * stopTimeout); err != nil {
		t.Fatal(err)
	}
	if p.err != nil {
		t.Fatalf("%s did not exit cleanly after SIGTERM: %v\noutput:\n%s", p.name, p.err, p.out)
	}
}

// startOrExit starts the subject with args and waits until it is ready
// (true) or has exited (false). A process that does neither within 10s
// fails the test with its goroutines.
func startOrExit(t testing.TB, args ...string) (*gateway, bool) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	g := &gateway{addr: addr}
	g.process = startProcess(t, "subject", subjectBin, append([]string{"--web.listen-address=" + addr}, args...)...)
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if g.exited() {
			return g, false
		}
		if resp, err := client.Get("http://" + addr + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g, true
			}
		}
	}
	// Ask the Go runtime where it hangs.
	_ = g.cmd.Process.Signal(syscall.SIGQUIT)
	_ = g.waitExit(2 * time.Second)
	t.Fatalf("neither ready nor exited after 10s (hangs); output with goroutines after SIGQUIT:\n%s", truncate(g.out.String(), 6000))
	return nil, false
}

// requireFailedStart checks that g exited on its own with an error status,
// and returns its output.
func requireFailedStart(t testing.TB, g *gateway, ready bool) string {
	t.Helper()
	out := g.out.String()
	if ready {
		t.Fatalf("the start succeeded, want a failure; output:\n%s", out)
	}
	var exit *exec.ExitError
	switch {
	case g.err == nil:
		t.Errorf("exit status 0, want a failure; output:\n%s", out)
	case !errors.As(g.err, &exit):
		t.Errorf("wait: %v", g.err)
	case exit.ExitCode() < 0:
		t.Errorf("killed by a signal (%v), want an exit with an error; output:\n%s", g.err, out)
	}
	return out
}

// runToExit starts the subject with args, expects it to exit on its own
// with an error, and returns its output.
func runToExit(t testing.TB, args ...string) string {
	t.Helper()
	g, ready := startOrExit(t, args...)
	return requireFailedStart(t, g, ready)
}

var crashMarkers = regexp.MustCompile(`(?m)^panic: |^goroutine \d+|^fatal error:|unexpected fault address|SIGSEGV|SIGBUS`)

// requireNoCrash fails if out shows a panic or a fatal runtime error.
func requireNoCrash(t testing.TB, out string) {
	t.Helper()
	if loc := crashMarkers.FindStringIndex(out); loc != nil {
		start := max(0, loc[0]-300)
		t.Errorf("the process crashed instead of exiting with an error:\n%s", truncate(out[start:], 2500))
	}
}

// mountTmpfs mounts a tmpfs of the given size (e.g. "4m") on a fresh
// directory and unmounts it in t.Cleanup. It needs root: elsewhere the test
// is skipped (failed in CI).
func mountTmpfs(t testing.TB, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "mounting a tmpfs needs root")
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		testenv.Missing(t, "mount -t tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		// Processes using it were registered later, so they are stopped.
		_ = exec.Command("mount", "-o", "remount,rw", dir).Run()
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func remount(t testing.TB, dir, opts string) error {
	t.Helper()
	out, err := exec.Command("mount", "-o", "remount,"+opts, dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mount -o remount,%s %s: %v: %s", opts, dir, err, bytes.TrimSpace(out))
	}
	return nil
}

// gaugeBody is a text body of one gauge family with n series.
func gaugeBody(name string, n int, value float64) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# TYPE %s gauge\n", name)
	for i := range n {
		fmt.Fprintf(&b, "%s{series=\"s%04d\"} %g\n", name, i, value)
	}
	return b.Bytes()
}

// mustStatus sends a request and fails unless the answer has one of want.
func mustStatus(t testing.TB, g *gateway, method, path string, body []byte, want ...int) response {
	t.Helper()
	r := g.do(t, method, g.prefix+path, nil, body)
	if !slices.Contains(want, r.status) {
		t.Fatalf("%s %s: got %s, want status %v", method, path, r, want)
	}
	return r
}

func status(t testing.TB, g *gateway, path string) response {
	t.Helper()
	return g.do(t, http.MethodGet, g.prefix+path, nil, nil)
}

// waitStatus polls path until it answers want or d passes.
func waitStatus(t testing.TB, g *gateway, path string, want int, d time.Duration) response {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		r := status(t, g, path)
		if r.status == want || time.Now().After(deadline) {
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// Crash test.

const (
	crashPushers       = 5
	crashGroupsPerUser = 3
	crashCycles        = 5
	crashSeries        = 3 // series per family: a family must be all old or all new
)

// crashFamilies are the families a group may hold, with their types.
var crashFamilies = []struct{ name, typ string }{
	{"dur_a", "gauge"},
	{"dur_b", "gauge"},
	{"dur_c_total", "counter"},
}

// crashState is a group's content: family name → the sequence number all its
// series carry. nil means the group does not exist.
type crashState map[string]float64

func (s crashState) String() string {
	if s == nil {
		return "<absent>"
	}
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%g", k, s[k])
	}
	return "{" + strings.Join(parts, " ") + "}"
}

func (s crashState) equal(o crashState) bool {
	if (s == nil) != (o == nil) || len(s) != len(o) {
		return false
	}
	for k, v := range s {
		if w, ok := o[k]; !ok || w != v {
			return false
		}
	}
	return true
}

type crashOp struct {
	method string
	fams   []string // for PUT and POST
	seq    float64
}

func (o crashOp) String() string {
	if o.method == http.MethodDelete {
		return "DELETE"
	}
	return fmt.Sprintf("%s %v seq %g", o.method, o.fams, o.seq)
}

func (o crashOp) apply(s crashState) crashState {
	switch o.method {
	case http.MethodDelete:
		return nil
	case http.MethodPut:
		s = nil
	}
	n := crashState{}
	for k, v := range s {
		n[k] = v
	}
	for _, f := range o.fams {
		n[f] = o.seq
	}
	return n
}

func (o crashOp) body() []byte {
	var b bytes.Buffer
	for _, name := range o.fams {
		typ := ""
		for _, f := range crashFamilies {
			if f.name == name {
				typ = f.typ
			}
		}
		fmt.Fprintf(&b, "# TYPE %s %s\n", name, typ)
		for i := range crashSeries {
			fmt.Fprintf(&b, "%s{s=\"%d\"} %g\n", name, i, o.seq)
		}
	}
	return b.Bytes()
}

// crashGroup is the model of one group; only its pusher touches it while
// pushers run.
type crashGroup struct {
	job      string
	state    crashState // after the last acknowledged op
	ackedAt  time.Time  // when the last acknowledged PUT/POST was sent
	inflight *crashOp   // sent, no answer (the kill came first)
	sentAt   time.Time  // when inflight was sent
}

func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	t.Parallel()
	requirePushgate(t, "durable storage")
	interruptUnderLoad(t, crashCycles, "kill", func(t *testing.T, g *gateway) { g.sigkill(t) }, nil)
}

// TestGracefulShutdownUnderLoad stops the gateway with SIGTERM while pushers
// run: it must exit cleanly, every answered push must be kept, and every
// push must either be answered with success or fail to connect (no push is
// cut off half-way with an error answer).
func TestGracefulShutdownUnderLoad(t *testing.T) {
	t.Parallel()
	requirePushgate(t, "durable storage")
	interruptUnderLoad(t, 3, "SIGTERM", func(t *testing.T, g *gateway) { g.terminate(t) },
		func(t *testing.T, r response) {
			t.Errorf("during graceful shutdown a push got %s; want success, or no connection", r)
		})
}

// interruptUnderLoad runs cycles of concurrent pushers that stop() interrupts
// at a random moment, restarts the gateway on the same storage and checks
// every group against the model. onError, if set, is called for an error
// answer received after the interruption began (nil: such answers fail the
// test anyway).
func interruptUnderLoad(t *testing.T, cycles int, what string, stop func(*testing.T, *gateway), onError func(*testing.T, response)) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PUSHGATE_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("PUSHGATE_CRASH_SEED: %v", err)
		}
	}
	t.Logf("seed %d (set PUSHGATE_CRASH_SEED to repeat)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := filepath.Join(t.TempDir(), "storage")

	groups := make([][]*crashGroup, crashPushers)
	for p := range groups {
		for i := range crashGroupsPerUser {
			groups[p] = append(groups[p], &crashGroup{job: fmt.Sprintf("crash_p%d_g%d", p, i)})
		}
	}
	var seq atomic.Int64
	g := startDurable(t, dir)
	for cycle := range cycles {
		var killed atomic.Bool
		var wg sync.WaitGroup
		var acked atomic.Int64
		for p := range crashPushers {
			prng := rand.New(rand.NewPCG(rng.Uint64(), uint64(p)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					cg := groups[p][prng.IntN(len(groups[p]))]
					op := crashOp{seq: float64(seq.Add(1))}
					switch r := prng.IntN(10); {
					case r < 4:
						op.method = http.MethodPut
					case r < 8:
						op.method = http.MethodPost
					default:
						op.method = http.MethodDelete
					}
					if op.method != http.MethodDelete {
						for _, f := range crashFamilies {
							if prng.IntN(2) == 0 {
								op.fams = append(op.fams, f.name)
							}
						}
						if len(op.fams) == 0 {
							op.fams = []string{crashFamilies[prng.IntN(len(crashFamilies))].name}
						}
					}
					var body []byte
					if op.method != http.MethodDelete {
						body = op.body()
					}
					sent := time.Now()
					cg.inflight, cg.sentAt = &op, sent
					r, err := g.tryDo(op.method, "/metrics/job/"+cg.job, nil, body)
					if err != nil {
						if !killed.Load() {
							t.Errorf("cycle %d: %s %s before the kill: %v", cycle, op, cg.job, err)
						}
						return // inflight stays: it may or may not have been committed
					}
					if r.status != http.StatusOK && r.status != http.StatusAccepted {
						if killed.Load() && onError != nil {
							onError(t, r)
						} else {
							t.Errorf("cycle %d: %s %s: got %s", cycle, op, cg.job, r)
						}
						cg.inflight = nil // refused: not applied
						return
					}
					cg.state = op.apply(cg.state)
					if op.method != http.MethodDelete {
						cg.ackedAt = sent
					}
					cg.inflight = nil
					acked.Add(1)
				}
			}()
		}
		time.Sleep(time.Duration(100+rng.IntN(701)) * time.Millisecond)
		killed.Store(true)
		stop(t, g)
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		inflight := 0
		for _, gs := range groups {
			for _, cg := range gs {
				if cg.inflight != nil {
					inflight++
				}
			}
		}
		t.Logf("cycle %d: %s after %d acknowledged ops, %d in flight", cycle, what, acked.Load(), inflight)

		g = startDurable(t, dir)
		applied := verifyCrashState(t, g, cycle, groups)
		t.Logf("cycle %d: %d of the ops in flight were found applied", cycle, applied)
		if t.Failed() {
			t.FailNow()
		}
	}
}

// verifyCrashState checks every group of the restarted gateway against the
// model and settles the ops that were in flight at the kill. It returns how
// many of those were found applied.
func verifyCrashState(t *testing.T, g *gateway, cycle int, groups [][]*crashGroup) (applied int) {
	t.Helper()
	mfs := g.scrape(t)
	type seen struct {
		fams     map[string]map[string]float64 // family → s label → value
		pushTime float64
		hasPush  bool
		failTime float64
		hasFail  bool
	}
	byJob := map[string]*seen{}
	get := func(job string) *seen {
		if byJob[job] == nil {
			byJob[job] = &seen{fams: map[string]map[string]float64{}}
		}
		return byJob[job]
	}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			job, ok := labels["job"]
			if !ok {
				continue
			}
			if !strings.HasPrefix(job, "crash_") {
				t.Errorf("cycle %d: unexpected series %s%v", cycle, name, labels)
				continue
			}
			s := get(job)
			v := m.GetGauge().GetValue()
			if mf.GetType() == dto.MetricType_COUNTER {
				v = m.GetCounter().GetValue()
			}
			switch name {
			case pushTimeName:
				s.pushTime, s.hasPush = v, true
			case pushFailureTimeName:
				s.failTime, s.hasFail = v, true
			default:
				if s.fams[name] == nil {
					s.fams[name] = map[string]float64{}
				}
				s.fams[name][labels["s"]] = v
			}
		}
	}
	known := map[string]bool{}
	for _, gs := range groups {
		for _, cg := range gs {
			known[cg.job] = true
			s := byJob[cg.job]
			var got crashState
			if s != nil {
				got = crashState{}
				for name, series := range s.fams {
					vals := make([]float64, 0, len(series))
					for _, v := range series {
						vals = append(vals, v)
					}
					if len(series) != crashSeries || slices.Min(vals) != slices.Max(vals) {
						t.Errorf("cycle %d: group %s: family %s is torn: %v", cycle, cg.job, name, series)
					}
					got[name] = vals[0]
				}
			}
			want := cg.state
			var alt crashState
			desc := fmt.Sprintf("last acknowledged state %v", want)
			if cg.inflight != nil {
				alt = cg.inflight.apply(cg.state)
				desc += fmt.Sprintf(", or %v after the op in flight (%s)", alt, *cg.inflight)
			}
			switch {
			case got.equal(want):
			case cg.inflight != nil && got.equal(alt):
				applied++
				cg.state = alt
				if cg.inflight.method != http.MethodDelete {
					cg.ackedAt = cg.sentAt
				}
			default:
				t.Errorf("cycle %d: group %s after restart: got %v, want %s", cycle, cg.job, got, desc)
			}
			cg.inflight = nil
			if s == nil {
				continue
			}
			if !s.hasPush || !s.hasFail {
				t.Errorf("cycle %d: group %s lacks push_time_seconds or push_failure_time_seconds", cycle, cg.job)
			}
			if s.failTime != 0 {
				t.Errorf("cycle %d: group %s: push_failure_time_seconds %v, but no push failed", cycle, cg.job, s.failTime)
			}
			acked := float64(cg.ackedAt.UnixNano()) / 1e9
			if s.pushTime < acked-0.001 || s.pushTime > float64(time.Now().UnixNano())/1e9 {
				t.Errorf("cycle %d: group %s: push_time_seconds %.6f, but its last acknowledged push was sent at %.6f",
					cycle, cg.job, s.pushTime, acked)
			}
		}
	}
	for job := range byJob {
		if !known[job] {
			t.Errorf("cycle %d: unknown group %s", cycle, job)
		}
	}
	return applied
}

// ---------------------------------------------------------------------------
// Full and read-only disks.

func TestDiskFull(t *testing.T) {
	t.Parallel()
	requirePushgate(t, "durable storage")
	mnt := mountTmpfs(t, "4m")
	dir := filepath.Join(mnt, "storage")
	g := startDurable(t, dir)
	for i := range 3 {
		mustStatus(t, g, http.MethodPut, fmt.Sprintf("/metrics/job/full_%d", i), gaugeBody("full_small", 20, float64(i)), http.StatusOK)
	}
	before := g.pushed(t)
	filler := filepath.Join(mnt, "filler")
	big := gaugeBody("full_big", 5000, 1) // far more than the free pages of the file

	// A push that needs new space is refused and changes nothing.
	fillDisk(t, filler)
	r := mustStatus(t, g, http.MethodPut, "/metrics/job/full_big", big, http.StatusServiceUnavailable)
	requireOneLine(t, "push on a full disk", r, "no space left on device", "storage")
	if r := status(t, g, "/-/ready"); r.status != http.StatusServiceUnavailable {
		t.Errorf("/-/ready after a failed commit: got %s, want 503", r)
	}
	if r := status(t, g, "/-/healthy"); r.status != http.StatusOK {
		t.Errorf("/-/healthy after a failed commit: got %s, want 200", r)
	}
	if got := g.pushed(t); got != before {
		t.Errorf("exposition changed by a refused push (- before, + after):\n%s", diffLines(before, got))
	}

	// Freeing space makes it ready again without a restart.
	freeDisk(t, filler)
	start := time.Now()
	if r := waitStatus(t, g, "/-/ready", http.StatusOK, 5*time.Second); r.status != http.StatusOK {
		t.Fatalf("/-/ready %v after space was freed: %s, want 200 without a restart", time.Since(start).Round(time.Millisecond), r)
	}
	t.Logf("ready again %v after space was freed", time.Since(start).Round(time.Millisecond))
	mustStatus(t, g, http.MethodPut, "/metrics/job/full_big", big, http.StatusOK)
	before = g.pushed(t)
	if !strings.Contains(before, `job="full_big",series="s4999"} 1`) {
		t.Errorf("the big group is not exposed after its push succeeded")
	}

	// Full again: a delete may or may not need new pages; either way what
	// is served must match the answer.
	fillDisk(t, filler)
	mustStatus(t, g, http.MethodPut, "/metrics/job/full_big2", big, http.StatusServiceUnavailable)
	r = mustStatus(t, g, http.MethodDelete, "/metrics/job/full_0", nil, http.StatusAccepted, http.StatusServiceUnavailable)
	t.Logf("DELETE on the full disk: %s", r)
	after := g.pushed(t)
	if r.status == http.StatusServiceUnavailable {
		requireOneLine(t, "delete on a full disk", r, "no space left on device", "storage")
		if after != before {
			t.Errorf("exposition changed by a refused delete (- before, + after):\n%s", diffLines(before, after))
		}
	} else if strings.Contains(after, `job="full_0"`) {
		t.Errorf("delete answered 202 but the group is still there:\n%s", after)
	}
	time.Sleep(2500 * time.Millisecond) // one probe while still full
	t.Logf("/-/ready after a probe with the disk still full: %s", status(t, g, "/-/ready"))

	freeDisk(t, filler)
	if r := waitStatus(t, g, "/-/ready", http.StatusOK, 5*time.Second); r.status != http.StatusOK {
		t.Fatalf("/-/ready after space was freed again: %s, want 200", r)
	}
	mustStatus(t, g, http.MethodPut, "/metrics/job/full_after", gaugeBody("full_small", 20, 9), http.StatusOK)
	want := g.pushed(t)
	g.terminate(t)
	g = startDurable(t, dir)
	if got := g.pushed(t); got != want {
		t.Errorf("after restart (- before, + after):\n%s", diffLines(want, got))
	}
}

func freeDisk(t testing.TB, filler string) {
	t.Helper()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
}

// fillDisk writes path until the file system is full.
func fillDisk(t testing.TB, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte{0xaa}, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	// The last partial chunk may leave less than a page; take that too.
	for _, err := f.Write(chunk[:512]); err == nil; _, err = f.Write(chunk[:512]) {
	}
}

// requireOneLine checks that an error answer is one line containing all of
// subs.
func requireOneLine(t testing.TB, what string, r response, subs ...string) {
	t.Helper()
	body := strings.TrimSuffix(string(r.body), "\n")
	if body == "" || strings.Contains(body, "\n") {
		t.Errorf("%s: body should be one line, got %q", what, r.body)
	}
	for _, s := range subs {
		if !strings.Contains(body, s) {
			t.Errorf("%s: body %q does not mention %q", what, body, s)
		}
	}
}

func TestReadOnlyStorage(t *testing.T) {
	t.Parallel()
	requirePushgate(t, "durable storage")
	mnt := mountTmpfs(t, "8m")
	dir := filepath.Join(mnt, "storage")
	g := startDurable(t, dir)
	mustStatus(t, g, http.MethodPut, "/metrics/job/ro_0", gaugeBody("ro_gauge", 10, 1), http.StatusOK)
	want := g.pushed(t)

	// Linux refuses to make a file system read-only while a file on it is
	// open for writing (EBUSY), which pushgate's storage file is. If the
	// kernel allows it, check the live behaviour; else check the start on
	// a read-only file system.
	if err := remount(t, mnt, "ro"); err == nil {
		r := mustStatus(t, g, http.MethodPut, "/metrics/job/ro_1", gaugeBody("ro_gauge", 10, 2), http.StatusServiceUnavailable)
		requireOneLine(t, "push on a read-only disk", r, "storage")
		if r := status(t, g, "/-/ready"); r.status != http.StatusServiceUnavailable {
			t.Errorf("/-/ready on a read-only disk: got %s, want 503", r)
		}
		if got := g.pushed(t); got != want {
			t.Errorf("exposition changed by a refused push (- before, + after):\n%s", diffLines(want, got))
		}
		if err := remount(t, mnt, "rw"); err != nil {
			t.Fatal(err)
		}
		if r := waitStatus(t, g, "/-/ready", http.StatusOK, 5*time.Second); r.status != http.StatusOK {
			t.Fatalf("/-/ready after remount,rw: %s, want 200 without a restart", r)
		}
		mustStatus(t, g, http.MethodPut, "/metrics/job/ro_1", gaugeBody("ro_gauge", 10, 2), http.StatusOK)
		want = g.pushed(t)
	} else {
		t.Logf("live read-only remount not possible while pushgate runs (%v); checking a start on a read-only disk instead", err)
	}

	g.terminate(t)
	if err := remount(t, mnt, "ro"); err != nil {
		t.Fatal(err)
	}
	out := runToExit(t, "--storage.path="+dir)
	requireNoCrash(t, out)
	if !strings.Contains(out, filepath.Join(dir, storageFile)) || !strings.Contains(out, "read-only file system") {
		t.Errorf("start on a read-only disk: output should name %s and the cause; got:\n%s", filepath.Join(dir, storageFile), out)
	}
	if err := remount(t, mnt, "rw"); err != nil {
		t.Fatal(err)
	}
	g = startDurable(t, dir)
	if got := g.pushed(t); got != want {
		t.Errorf("after the disk is writable again (- want, + got):\n%s", diffLines(want, got))
	}
	mustStatus(t, g, http.MethodPut, "/metrics/job/ro_2", gaugeBody("ro_gauge", 10, 3), http.StatusOK)
}

// ---------------------------------------------------------------------------
// Corruption.

func TestCorruptStorage(t *testing.T) {
	t.Parallel()
	requirePushgate(t, "durable storage")

	t.Run("flipped byte in a group", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "storage")
		const marker = "durability-marker-5e1f0c7a"
		g := startDurable(t, dir)
		for i := range 5 {
			mustStatus(t, g, http.MethodPut, fmt.Sprintf("/metrics/job/corrupt_%d", i), gaugeBody("corrupt_gauge", 20, float64(i)), http.StatusOK)
		}
		mustStatus(t, g, http.MethodPut, "/metrics/job/corrupt_marked",
			[]byte("# TYPE corrupt_marked gauge\ncorrupt_marked{tag=\""+marker+"\"} 1\n"), http.StatusOK)
		g.terminate(t)

		path := filepath.Join(dir, storageFile)
		data := readFile(t, path)
		// Old copies of the page may remain on free pages: flip every one.
		var flipped []int
		for from := 0; ; {
			i := bytes.Index(data[from:], []byte(marker))
			if i < 0 {
				break
			}
			pos := from + i + len(marker)/2
			data[pos] ^= 0x01
			flipped = append(flipped, pos)
			from = pos
		}
		if len(flipped) == 0 {
			t.Fatalf("marker %q not found in %s", marker, path)
		}
		writeFile(t, path, data)

		out := runToExit(t, "--storage.path="+dir)
		requireNoCrash(t, out)
		m := regexp.MustCompile(`offset (\d+)`).FindStringSubmatch(out)
		if !strings.Contains(out, path) || m == nil {
			t.Fatalf("output should name %s and an offset; got:\n%s", path, out)
		}
		offset, _ := strconv.Atoi(m[1])
		ok := offset+3 <= len(data) && string(data[offset:offset+3]) == "PGG"
		near := slices.ContainsFunc(flipped, func(p int) bool { return offset <= p && p-offset < 64<<10 })
		if !ok || !near {
			t.Errorf("offset %d does not point at the corrupt value (flipped bytes at %v)", offset, flipped)
		}
		requireUnchanged(t, path, data)
	})

	t.Run("truncated to half", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "storage")
		g := startDurable(t, dir)
		pushParallel(t, g, 60, 4, func(i int) (string, []byte) {
			return fmt.Sprintf("/metrics/job/trunc_%03d", i), gaugeBody("trunc_gauge", 100, float64(i))
		})
		// Last, a value larger than any run of free pages: bbolt puts it
		// at the end of the pages in use, where the cut goes.
		mustStatus(t, g, http.MethodPut, "/metrics/job/trunc_last", gaugeBody("trunc_gauge", 2000, -1), http.StatusOK)
		before := g.pushed(t)
		g.terminate(t)

		path := filepath.Join(dir, storageFile)
		data := readFile(t, path)
		// bbolt preallocates: the file can be twice the pages in use, and
		// cutting only unused pages is no corruption.
		cut := len(data) / 2
		if used := boltUsedBytes(t, data); used <= cut {
			t.Logf("%s: %d bytes, %d in use; truncating to half of those", path, len(data), used)
			cut = used / 2
		}
		if err := os.Truncate(path, int64(cut)); err != nil {
			t.Fatal(err)
		}
		g2, ready := startOrExit(t, "--storage.path="+dir)
		if ready {
			// Legitimate only if the cut pages were all free.
			if got := g2.pushed(t); got != before {
				t.Errorf("started on a truncated file and serves other data (- before, + after):\n%s", diffLines(before, got))
			} else {
				t.Logf("started on the truncated file with all data: only free pages were cut")
			}
			return
		}
		out := requireFailedStart(t, g2, ready)
		requireNoCrash(t, out)
		if !strings.Contains(out, path) {
			t.Errorf("output should name %s; got:\n%s", path, truncate(out, 3000))
		} else {
			t.Logf("start refused: %s", lastLine(out))
		}
	})

	t.Run("unreadable persistence file", func(t *testing.T) {
		t.Parallel()
		tmp := t.TempDir()
		dir := filepath.Join(tmp, "storage")
		file := filepath.Join(tmp, "garbage.gob")
		rng := rand.New(rand.NewPCG(1, 2))
		garbage := []byte("this is not a gob file\x00\xff")
		for range 4096 {
			garbage = append(garbage, byte(rng.Uint32()))
		}
		writeFile(t, file, garbage)
		out := runToExit(t, "--storage.path="+dir, "--persistence.file="+file)
		requireNoCrash(t, out)
		if !strings.Contains(out, file) {
			t.Errorf("output should name %s; got:\n%s", file, out)
		}
		requireUnchanged(t, file, garbage)
		// Nothing was imported: the storage starts empty, without the flag.
		g := startDurable(t, dir)
		if got := g.pushed(t); got != "" {
			t.Errorf("storage is not empty after a failed import:\n%s", got)
		}
	})
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// requireUnchanged checks that path still holds want, listing the 4 KiB
// pages that differ.
func requireUnchanged(t testing.TB, path string, want []byte) {
	t.Helper()
	got := readFile(t, path)
	if bytes.Equal(got, want) {
		return
	}
	var pages []int
	for i := 0; i < max(len(got), len(want)); i++ {
		if i >= len(got) || i >= len(want) || got[i] != want[i] {
			if p := i / 4096; len(pages) == 0 || pages[len(pages)-1] != p {
				pages = append(pages, p)
			}
		}
	}
	t.Errorf("%s was modified (size %d → %d, differing 4 KiB pages %v); it must be left as it was",
		path, len(want), len(got), pages)
}

// pushParallel PUTs n groups with the given number of workers; gen returns
// the path and body of group i.
func pushParallel(t testing.TB, g *gateway, n, workers int, gen func(i int) (string, []byte)) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				path, body := gen(i)
				r, err := g.tryDo(http.MethodPut, g.prefix+path, nil, body)
				if err == nil && r.status != http.StatusOK {
					err = fmt.Errorf("PUT %s: got %s", path, r)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------
// Migration from the reference's persistence file.

func TestMigrationFromReference(t *testing.T) {
	t.Parallel()
	requirePushgate(t, "durable storage")
	requireBinary(t, referenceBin)
	tmp := t.TempDir()
	file := filepath.Join(tmp, "reference.gob")
	dir := filepath.Join(tmp, "storage")

	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ref := &gateway{addr: addr}
	ref.process = startProcess(t, "reference", referenceBin,
		"--web.listen-address="+addr, "--persistence.file="+file, "--persistence.interval=1s")
	if !ref.waitReady(t) {
		t.Fatalf("reference did not become ready; output:\n%s", ref.out)
	}
	steps := []struct {
		method, path, body string
		status             int
	}{
		{http.MethodPut, "/metrics/job/mig_counter/instance/i1", lines(
			"# HELP mig_requests_total Requests served.",
			"# TYPE mig_requests_total counter",
			`mig_requests_total{code="200"} 42`,
			`mig_requests_total{code="500"} 3`), http.StatusOK},
		{http.MethodPost, "/metrics/job/mig_counter/instance/i1", lines(
			"# TYPE mig_up untyped",
			"mig_up 1"), http.StatusOK},
		{http.MethodPut, "/metrics/job/mig_gauge", lines(
			"# HELP mig_temperature Temperature in degrees.",
			"# TYPE mig_temperature gauge",
			`mig_temperature{room="a"} 21.5`,
			`mig_temperature{room="b"} -3.25`), http.StatusOK},
		{http.MethodPut, "/metrics/job/mig_hist", lines(
			"# HELP mig_latency_seconds Latency.",
			"# TYPE mig_latency_seconds histogram",
			`mig_latency_seconds_bucket{le="0.1"} 3`,
			`mig_latency_seconds_bucket{le="0.5"} 7`,
			`mig_latency_seconds_bucket{le="+Inf"} 9`,
			"mig_latency_seconds_sum 2.5",
			"mig_latency_seconds_count 9"), http.StatusOK},
		{http.MethodPut, "/metrics/job/mig_summary/instance/s1", lines(
			"# TYPE mig_rpc_seconds summary",
			`mig_rpc_seconds{quantile="0.5"} 0.2`,
			`mig_rpc_seconds{quantile="0.99"} 0.9`,
			"mig_rpc_seconds_sum 12",
			"mig_rpc_seconds_count 40"), http.StatusOK},
		// path="/var/tmp", instance="" (base64 of the empty string is "=").
		{http.MethodPut, "/metrics/job/mig_b64/path@base64/L3Zhci90bXA=/instance@base64/=", lines(
			"# TYPE mig_b64_files gauge",
			"mig_b64_files 17"), http.StatusOK},
		{http.MethodPut, "/metrics/job/mig_fail", lines(
			"# TYPE mig_fail_last gauge",
			"mig_fail_last 1"), http.StatusOK},
		// Type conflict with mig_gauge: refused, recorded as a failure.
		{http.MethodPut, "/metrics/job/mig_fail", lines(
			"# TYPE mig_temperature counter",
			"mig_temperature 5"), http.StatusBadRequest},
	}
	for _, s := range steps {
		if r := ref.do(t, s.method, s.path, nil, []byte(s.body)); r.status != s.status {
			t.Fatalf("reference: %s %s: got %s, want %d", s.method, s.path, r, s.status)
		}
	}
	want := ref.pushed(t)
	for _, sub := range []string{`job="mig_b64",path="/var/tmp"`, pushFailureTimeName + `{instance="",job="mig_fail"} 1`, "mig_latency_seconds_bucket", `quantile="0.99"`} {
		if !strings.Contains(want, sub) {
			t.Fatalf("reference exposition lacks %q:\n%s", sub, want)
		}
	}
	t.Logf("reference served %d lines of pushed families", strings.Count(want, "\n"))
	ref.terminate(t)
	orig := readFile(t, file)

	args := []string{"--persistence.file=" + file}
	g := startDurable(t, dir, args...)
	if got := g.pushed(t); got != want {
		t.Errorf("imported exposition differs from the reference's (- reference, + pushgate):\n%s", diffLines(want, got))
	}
	requireUnchanged(t, file, orig)

	// Changes after the import must survive a restart with the same flag:
	// the file is not imported again.
	mustStatus(t, g, http.MethodDelete, "/metrics/job/mig_gauge", nil, http.StatusAccepted)
	mustStatus(t, g, http.MethodPut, "/metrics/job/mig_new", []byte("# TYPE mig_new gauge\nmig_new 7\n"), http.StatusOK)
	mustStatus(t, g, http.MethodPost, "/metrics/job/mig_counter/instance/i1", []byte("# TYPE mig_up untyped\nmig_up 0\n"), http.StatusOK)
	before := g.pushed(t)
	g.terminate(t)
	g = startDurable(t, dir, args...)
	if got := g.pushed(t); got != before {
		t.Errorf("after a restart with the same --persistence.file (- before, + after):\n%s", diffLines(before, got))
	}
	requireUnchanged(t, file, orig)
}

// ---------------------------------------------------------------------------
// Readiness during the restore.

func TestRestoreReadiness(t *testing.T) {
	t.Parallel()
	requirePushgate(t, "durable storage")
	const groups, series = 2000, 50
	dir := filepath.Join(t.TempDir(), "storage")
	g := startDurable(t, dir)
	start := time.Now()
	pushParallel(t, g, groups, 8, func(i int) (string, []byte) {
		return fmt.Sprintf("/metrics/job/restore_%04d", i), gaugeBody("restore_gauge", series, float64(i))
	})
	t.Logf("pushed %d groups x %d series in %v", groups, series, time.Since(start).Round(time.Millisecond))
	g.terminate(t)

	start = time.Now()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	g = &gateway{addr: addr}
	g.process = startProcess(t, "subject", subjectBin, "--web.listen-address="+addr, "--storage.path="+dir)
	client := &http.Client{Timeout: 2 * time.Second}
	get := func(path string) int {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	var accepted []string
	window := 0 // polls that saw healthy 200 while ready was 503
	deadline := time.Now().Add(readyTimeout)
	for n := 0; ; n++ {
		if g.exited() || time.Now().After(deadline) {
			t.Fatalf("not ready after %v; output:\n%s", readyTimeout, g.out)
		}
		healthy := get("/-/healthy")
		path := fmt.Sprintf("/metrics/job/restore_probe_%d", n)
		pushStatus := 0
		if r, err := g.tryDo(http.MethodPut, path, nil, []byte("restore_probe 1\n")); err == nil {
			pushStatus = r.status
			if r.status == http.StatusOK {
				accepted = append(accepted, path)
			}
		}
		ready := get("/-/ready")
		if healthy != 0 && healthy != http.StatusOK {
			t.Errorf("/-/healthy answered %d during the restore, want 200", healthy)
		}
		if pushStatus != 0 && pushStatus != http.StatusOK && pushStatus != http.StatusServiceUnavailable {
			t.Errorf("push during the restore answered %d, want 503 (or 200 once ready)", pushStatus)
		}
		if pushStatus == http.StatusOK && ready != http.StatusOK {
			t.Errorf("push accepted while /-/ready still answered %d afterwards", ready)
		}
		if healthy == http.StatusOK && ready == http.StatusServiceUnavailable {
			window++
		}
		if ready == http.StatusOK {
			break
		}
		if ready != 0 && ready != http.StatusServiceUnavailable {
			t.Errorf("/-/ready answered %d during the restore, want 503", ready)
		}
	}
	t.Logf("ready %v after the start; %d polls saw /-/healthy 200 while /-/ready was 503", time.Since(start).Round(time.Millisecond), window)

	mfs := g.scrape(t)
	times := map[string]bool{}
	for _, m := range mfs[pushTimeName].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "job" {
				times[l.GetValue()] = true
			}
		}
	}
	restored := 0
	for job := range times {
		if strings.HasPrefix(job, "restore_") && !strings.HasPrefix(job, "restore_probe_") {
			restored++
		}
	}
	if restored != groups {
		t.Errorf("restored %d groups, want %d", restored, groups)
	}
	if n := len(mfs["restore_gauge"].GetMetric()); n != groups*series {
		t.Errorf("restored %d series of restore_gauge, want %d", n, groups*series)
	}
	for _, p := range accepted {
		if !times[strings.TrimPrefix(p, "/metrics/job/")] {
			t.Errorf("push %s was acknowledged but is not exposed", p)
		}
	}
	if d := replayDuration(mfs); d > 0.3 && window == 0 {
		t.Errorf("the restore took %.3fs but /-/healthy never answered 200 before /-/ready", d)
	}
}

// replayDuration is pushgate_storage_replay_duration_seconds, or NaN.
func replayDuration(mfs map[string]*dto.MetricFamily) float64 {
	mf := mfs["pushgate_storage_replay_duration_seconds"]
	if mf == nil || len(mf.GetMetric()) == 0 {
		return math.NaN()
	}
	return mf.GetMetric()[0].GetGauge().GetValue()
}

// boltUsedBytes reads the high-water mark of a bbolt file: the number of
// pages in use (free or not) times the page size, from the newer of the two
// meta pages (page header 16 bytes; meta: magic, version, page size, flags
// as uint32, root bucket 16 bytes, freelist, pgid and txid as uint64).
func boltUsedBytes(t testing.TB, data []byte) int {
	t.Helper()
	le := func(b []byte) uint64 {
		var v uint64
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		return v
	}
	if len(data) < 4096 {
		t.Fatalf("bbolt file of %d bytes", len(data))
	}
	pageSize := int(le(data[24:28]))
	var pgid, txid uint64
	for _, off := range []int{0, pageSize} {
		m := data[off+16:]
		if le(m[0:4]) != 0xED0CDAED {
			continue
		}
		if tx := le(m[48:56]); tx >= txid {
			pgid, txid = le(m[40:48]), tx
		}
	}
	if pgid == 0 {
		t.Fatalf("no valid bbolt meta page")
	}
	return int(pgid) * pageSize
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}
