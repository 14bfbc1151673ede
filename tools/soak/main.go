// Command soak runs pushgate under mixed load for minutes: concurrent pushes
// (PUT, POST), deletes and scrapes, with malformed and oversized requests
// mixed in. It reports throughput, latency percentiles, answers by status,
// resident memory and goroutines over time, and at the end checks that every
// acknowledged change is in the final state, that memory stayed flat and
// that no goroutines leaked. It is not part of `make test`; run it with
//
//	make soak SOAK_ARGS="-duration 5m"
//
// or: go run ./tools/soak -bin ./pushgate -duration 5m
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

type options struct {
	bin                  string
	duration, report     time.Duration
	pushers, scrapers    int
	groupsPerPusher      int
	series               int
	badFraction          float64
	maxRSSGrowth         float64
	maxGoroutineIncrease int
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "./pushgate", "pushgate binary to run")
	flag.DurationVar(&o.duration, "duration", 2*time.Minute, "how long to run the load")
	flag.DurationVar(&o.report, "report", 10*time.Second, "interval of progress lines")
	flag.IntVar(&o.pushers, "pushers", 16, "concurrent pushers")
	flag.IntVar(&o.scrapers, "scrapers", 2, "concurrent scrapers")
	flag.IntVar(&o.groupsPerPusher, "groups", 20, "groups per pusher")
	flag.IntVar(&o.series, "series", 50, "series per push")
	flag.Float64Var(&o.badFraction, "bad", 0.05, "fraction of malformed or oversized requests")
	flag.Float64Var(&o.maxRSSGrowth, "max-rss-growth", 0.25, "allowed RSS growth from the end of the first quarter to the end")
	flag.IntVar(&o.maxGoroutineIncrease, "max-goroutine-increase", 20, "allowed goroutine increase from the first report to the end")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// stats collects what the load saw; all fields are safe for concurrent use.
type stats struct {
	mu        sync.Mutex
	pushLat   []time.Duration
	scrapeLat []time.Duration
	byStatus  map[string]int
	ops       atomic.Int64
}

func (s *stats) record(kind string, status int, d time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := fmt.Sprintf("%s %d", kind, status)
	if err != nil {
		key = kind + " error"
	}
	s.byStatus[key]++
	switch kind {
	case "scrape":
		s.scrapeLat = append(s.scrapeLat, d)
	case "push", "delete":
		s.pushLat = append(s.pushLat, d)
	}
	s.ops.Add(1)
}

// take returns and resets the latencies since the last call.
func (s *stats) take() (push, scrape []time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	push, scrape = s.pushLat, s.scrapeLat
	s.pushLat, s.scrapeLat = nil, nil
	return push, scrape
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// group is the model of one group: its pusher is the only writer.
type group struct {
	job     string
	exists  bool
	value   float64 // of soak_value, set by PUT
	extra   float64 // of soak_extra, set by POST; 0 = absent
	hasExtr bool
}

func run(o options) error {
	dir, err := os.MkdirTemp("", "pushgate-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	cmd := exec.Command(o.bin, "--web.listen-address="+addr, "--storage.path="+filepath.Join(dir, "data"),
		"--push.max-body-size=256KiB", "--log.level=warn")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", o.bin, err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	base := "http://" + addr
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	if err := waitReady(client, base); err != nil {
		return fmt.Errorf("%w\n%s", err, logs.String())
	}

	st := &stats{byStatus: map[string]int{}}
	groups := make([][]*group, o.pushers)
	for p := range groups {
		for i := range o.groupsPerPusher {
			groups[p] = append(groups[p], &group{job: fmt.Sprintf("soak_p%02d_g%03d", p, i)})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	var wg sync.WaitGroup
	var seq atomic.Int64
	failures := make(chan error, 100)
	for p := range o.pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(p), 42))
			for ctx.Err() == nil {
				if err := pushOnce(client, base, groups[p][rng.IntN(len(groups[p]))], rng, o, &seq, st); err != nil {
					select {
					case failures <- err:
					default:
					}
				}
			}
		}()
	}
	for range o.scrapers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				start := time.Now()
				req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
				req.Header.Set("Accept-Encoding", "gzip")
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					st.record("scrape", resp.StatusCode, time.Since(start), err)
				} else if ctx.Err() == nil {
					st.record("scrape", 0, time.Since(start), err)
				}
			}
		}()
	}

	fmt.Printf("%8s %9s %9s %9s %10s %10s %9s %10s\n", "elapsed", "ops/s", "push p50", "push p99", "scrape p50", "scrape p99", "RSS MiB", "goroutines")
	started := time.Now()
	var rssAtQuarter, rssLast float64
	firstGoroutines, lastGoroutines := -1, 0
	ticker := time.NewTicker(o.report)
	lastOps := int64(0)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-failures:
			cancel()
			wg.Wait()
			return err
		case <-ticker.C:
			push, scrape := st.take()
			ops := st.ops.Load()
			rss := rssMiB(cmd.Process.Pid)
			gor := goroutines(client, base)
			if firstGoroutines < 0 {
				firstGoroutines = gor
			}
			el := time.Since(started)
			if rssAtQuarter == 0 && el >= o.duration/4 {
				rssAtQuarter = rss
			}
			rssLast, lastGoroutines = rss, gor
			fmt.Printf("%8s %9.0f %9s %9s %10s %10s %9.1f %10d\n", el.Round(time.Second),
				float64(ops-lastOps)/o.report.Seconds(), pct(push, .5).Round(time.Microsecond*10),
				pct(push, .99).Round(time.Microsecond*10), pct(scrape, .5).Round(time.Millisecond),
				pct(scrape, .99).Round(time.Millisecond), rss, gor)
			lastOps = ops
		}
	}
	wg.Wait()
	ticker.Stop()

	var problems []string
	fmt.Println("\nanswers:")
	keys := make([]string, 0, len(st.byStatus))
	for k := range st.byStatus {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Printf("  %-14s %d\n", k, st.byStatus[k])
		if strings.HasSuffix(k, " error") || strings.HasSuffix(k, " 500") || strings.HasSuffix(k, " 503") {
			problems = append(problems, fmt.Sprintf("%d answers %q", st.byStatus[k], k))
		}
	}
	if n, err := verify(client, base, groups); err != nil {
		problems = append(problems, err.Error())
	} else {
		fmt.Printf("final state: all %d groups match their last acknowledged change\n", n)
	}
	if rssAtQuarter > 0 && rssLast > rssAtQuarter*(1+o.maxRSSGrowth) {
		problems = append(problems, fmt.Sprintf("RSS grew from %.1f MiB (after a quarter) to %.1f MiB", rssAtQuarter, rssLast))
	}
	if firstGoroutines >= 0 && lastGoroutines > firstGoroutines+o.maxGoroutineIncrease {
		problems = append(problems, fmt.Sprintf("goroutines grew from %d to %d", firstGoroutines, lastGoroutines))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d problems:\n  %s", len(problems), strings.Join(problems, "\n  "))
	}
	fmt.Println("OK")
	return nil
}

// pushOnce sends one request for g and updates the model if it was
// acknowledged. Malformed and oversized requests must be refused with
// 400/413 and change nothing.
func pushOnce(c *http.Client, base string, g *group, rng *rand.Rand, o options, seq *atomic.Int64, st *stats) error {
	url := base + "/metrics/job/" + g.job
	n := float64(seq.Add(1))
	var method string
	var body []byte
	want := []int{http.StatusOK}
	r := rng.Float64()
	switch {
	case r < o.badFraction/2:
		method, body, want = http.MethodPut, []byte("soak_value{s=\"0\"} 1 1700000000000\nbroken line\n"), []int{http.StatusBadRequest}
	case r < o.badFraction:
		method, body, want = http.MethodPut, bytes.Repeat([]byte("soak_big 1\n"), 40000), []int{http.StatusRequestEntityTooLarge}
	case r < 0.6:
		method, body = http.MethodPut, valueBody("soak_value", o.series, n)
	case r < 0.85:
		method, body = http.MethodPost, valueBody("soak_extra", 5, n)
	default:
		method, want = http.MethodDelete, []int{http.StatusAccepted}
	}
	var buf bytes.Buffer
	compressed := false
	// A quarter of the good pushes are gzip'd (a compressed oversized body
	// would not be oversized any more).
	if method != http.MethodDelete && want[0] == http.StatusOK && rng.IntN(4) == 0 {
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(body)
		_ = zw.Close()
		compressed = true
	} else {
		buf.Write(body)
	}
	req, _ := http.NewRequest(method, url, &buf)
	if compressed {
		req.Header.Set("Content-Encoding", "gzip")
	}
	start := time.Now()
	resp, err := c.Do(req)
	kind := "push"
	if method == http.MethodDelete {
		kind = "delete"
	}
	if err != nil {
		st.record(kind, 0, time.Since(start), err)
		return nil // counted; a transport error fails the run at the end
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	st.record(kind, resp.StatusCode, time.Since(start), nil)
	if !slices.Contains(want, resp.StatusCode) {
		if resp.StatusCode == http.StatusTooManyRequests {
			return nil // overload is a valid answer; nothing changed
		}
		return fmt.Errorf("%s %s: got %d %q, want %v", method, url, resp.StatusCode, bytes.TrimSpace(msg), want)
	}
	switch {
	case want[0] != http.StatusOK && want[0] != http.StatusAccepted:
		// refused: the model does not change
	case method == http.MethodPut:
		g.exists, g.value, g.hasExtr = true, n, false
	case method == http.MethodPost:
		g.exists, g.extra, g.hasExtr = true, n, true
	case method == http.MethodDelete:
		*g = group{job: g.job}
	}
	return nil
}

func valueBody(name string, series int, v float64) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# TYPE %s gauge\n", name)
	for i := range series {
		fmt.Fprintf(&b, "%s{s=\"%d\"} %g\n", name, i, v)
	}
	return b.Bytes()
}

// verify compares the final exposition with the model of every group.
func verify(c *http.Client, base string, groups [][]*group) (int, error) {
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("final scrape: %w", err)
	}
	got := map[string]map[string]float64{} // job -> family -> value (of every series)
	for _, name := range []string{"soak_value", "soak_extra"} {
		for _, m := range mfs[name].GetMetric() {
			job := ""
			for _, lp := range m.Label {
				if lp.GetName() == "job" {
					job = lp.GetValue()
				}
			}
			if got[job] == nil {
				got[job] = map[string]float64{}
			}
			got[job][name] = m.GetGauge().GetValue()
		}
	}
	n := 0
	var bad []string
	for _, gs := range groups {
		for _, g := range gs {
			n++
			have := got[g.job]
			want := map[string]float64{}
			if g.exists && g.value != 0 {
				want["soak_value"] = g.value
			}
			if g.exists && g.hasExtr {
				want["soak_extra"] = g.extra
			}
			if fmt.Sprint(have) != fmt.Sprint(want) && !(len(have) == 0 && len(want) == 0) {
				bad = append(bad, fmt.Sprintf("%s: have %v, want %v", g.job, have, want))
			}
		}
	}
	if len(bad) > 0 {
		return n, fmt.Errorf("%d groups differ from their last acknowledged change, e.g. %s", len(bad), bad[0])
	}
	return n, nil
}

func rssMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func goroutines(c *http.Client, base string) int {
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return -1
	}
	for _, m := range mfs["go_goroutines"].GetMetric() {
		if len(m.Label) == 0 {
			return int(m.GetGauge().GetValue())
		}
	}
	return -1
}

func waitReady(c *http.Client, base string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := c.Get(base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("gateway did not become ready")
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
