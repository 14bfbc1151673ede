// Command habench measures pushgate replicas that share their groups through
// etcd: push throughput and latency with pushers spread over the replicas,
// and the propagation delay from a push acknowledged by one replica until
// another replica serves it. It talks plain HTTP to the URLs it is given, so
// the same runs measure a single gateway (such as the reference) for
// comparison. Scrape time and single-gateway comparisons are
// ../shared/pushbench's job.
//
// Local setup (3 etcd members, 3 replicas; see cluster.sh for the ports):
//
//	make build && tools/habench/cluster.sh start
//	go build -o /tmp/habench ./tools/habench
//	R=http://127.0.0.1:32391,http://127.0.0.1:32392,http://127.0.0.1:32393
//
//	# push: fill -groups groups once, then PUT random ones for -duration
//	# with 4 and then 16 pushers; pusher i talks to replica i mod 3
//	/tmp/habench push -urls $R -groups 1000 -pushers 4,16 -duration 20s
//
//	# propagation: on a small store (wipe first), for every ordered pair
//	# (A, B) of replicas push a new value to a probe group on A, then poll
//	# B's /metrics every -interval until it shows the value
//	curl -X PUT http://127.0.0.1:32391/api/v1/admin/wipe
//	/tmp/habench prop -urls $R -samples 200
//	/tmp/habench prop -urls $R -samples 200 -load 4   # with 4 pushers busy
//
//	tools/habench/cluster.sh stop
//
// Bodies are text exposition of 100 series per push (a 10-bucket histogram,
// two counter and two gauge families, labels of realistic length), values
// changing on every push, every group with the same families, so a gateway
// with the reference's consistency check accepts them. Latency is from
// sending a request to reading the last byte of its answer. Percentiles are
// nearest rank over all samples. Any non-2xx answer is counted, printed and
// makes the exit status 2.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: habench push|prop -urls URL[,URL...] [flags]; habench push -h for the flags")
		os.Exit(1)
	}
	var err error
	switch os.Args[1] {
	case "push":
		err = runPush(os.Args[2:])
	case "prop":
		err = runProp(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (want push or prop)", os.Args[1])
	}
	if errors.Is(err, errInvalid) {
		fmt.Fprintln(os.Stderr, "!!!", err)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "habench:", err)
		os.Exit(1)
	}
}

// errInvalid marks a run that finished with failed requests.
var errInvalid = errors.New("requests failed: results are NOT valid")

func splitURLs(s string) []string {
	var urls []string
	for u := range strings.SplitSeq(s, ",") {
		if u = strings.TrimRight(strings.TrimSpace(u), "/"); u != "" {
			urls = append(urls, u)
		}
	}
	return urls
}

func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: conns,
			DisableCompression:  true,
		},
	}
}

// failures counts failed requests and keeps the first few messages.
type failures struct {
	n    atomic.Int64
	mu   sync.Mutex // guards first
	kept []string
}

func (f *failures) add(err error) {
	if f.n.Add(1) <= 5 {
		f.mu.Lock()
		f.kept = append(f.kept, err.Error())
		f.mu.Unlock()
	}
}

func (f *failures) check() error {
	if n := f.n.Load(); n > 0 {
		f.mu.Lock()
		defer f.mu.Unlock()
		return fmt.Errorf("%d %w; first: %s", n, errInvalid, strings.Join(f.kept, " | "))
	}
	return nil
}

// do sends a request and reads the whole answer; a non-2xx answer is an
// error that carries the status and the body's first line.
func do(c *http.Client, method, url string, body []byte) ([]byte, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		line, _, _ := bytes.Cut(b, []byte("\n"))
		return nil, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, line)
	}
	return b, nil
}

// groupPath is the grouping key of group i.
func groupPath(i int) string {
	jobs := [...]string{"nightly-etl-export", "hourly-billing-rollup", "inventory-sync", "report-mailer", "cache-warmer"}
	return fmt.Sprintf("/metrics/job/habench-%s/instance/batch-worker-%05d.eu-west-1.compute.internal:9100/shard/shard-%03d",
		jobs[i%len(jobs)], i, i%1000)
}

// body renders a 100-series push; n changes every value.
func body(b *bytes.Buffer, n int) []byte {
	b.Reset()
	b.WriteString("# HELP habench_phase_duration_seconds Duration of the phases of the last batch job run, in seconds.\n")
	b.WriteString("# TYPE habench_phase_duration_seconds histogram\n")
	bounds := [...]string{"0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "+Inf"}
	for _, phase := range [...]string{"extract-source-snapshots", "load-warehouse-partitions"} {
		for k, le := range bounds {
			fmt.Fprintf(b, "habench_phase_duration_seconds_bucket{phase=%q,le=%q} %d\n", phase, le, n+k)
		}
		fmt.Fprintf(b, "habench_phase_duration_seconds_sum{phase=%q} %d.5\n", phase, 3*n)
		fmt.Fprintf(b, "habench_phase_duration_seconds_count{phase=%q} %d\n", phase, n+len(bounds)-1)
	}
	b.WriteString("# HELP habench_records_processed_total Total number of records processed by the batch job, by source table.\n")
	b.WriteString("# TYPE habench_records_processed_total counter\n")
	for k := range 20 {
		fmt.Fprintf(b, "habench_records_processed_total{source_table=\"analytics.customer_orders_v2_part_%03d\",status=\"success\"} %d\n", k, n*(k+1))
	}
	b.WriteString("# HELP habench_bytes_written_total Total number of bytes written to the destination object store.\n")
	b.WriteString("# TYPE habench_bytes_written_total counter\n")
	for k := range 20 {
		fmt.Fprintf(b, "habench_bytes_written_total{destination=\"s3://data-lake-prod-eu-west-1/warehouse/orders/part-%03d\",compression=\"zstd\"} %d\n", k, 1000*n+k)
	}
	b.WriteString("# HELP habench_partition_lag_seconds Lag of the processed partition behind the source, in seconds.\n")
	b.WriteString("# TYPE habench_partition_lag_seconds gauge\n")
	for k := range 20 {
		fmt.Fprintf(b, "habench_partition_lag_seconds{consumer_group=\"warehouse-loader-eu-west-1\",partition=\"orders-events-%03d\"} %d.25\n", k, (n+k)%10000)
	}
	b.WriteString("# HELP habench_last_success_timestamp_seconds Unix timestamp of the last successful completion of a step.\n")
	b.WriteString("# TYPE habench_last_success_timestamp_seconds gauge\n")
	for k := range 14 {
		fmt.Fprintf(b, "habench_last_success_timestamp_seconds{step=\"step-%03d\"} %d\n", k, 1700000000+n+k)
	}
	return b.Bytes()
}

// percentile returns the nearest-rank p-th percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) }

func runPush(args []string) error {
	fs := flag.NewFlagSet("push", flag.ExitOnError)
	urls := fs.String("urls", "", "comma-separated gateway URLs; pusher i uses URL i mod N")
	groups := fs.Int("groups", 1000, "groups (100 series each) pushed to")
	pushers := fs.String("pushers", "4,16", "comma-separated pusher counts, one measured phase each")
	duration := fs.Duration("duration", 20*time.Second, "measured time per phase")
	warmup := fs.Duration("warmup", 3*time.Second, "unmeasured time before each phase")
	fill := fs.Bool("fill", true, "push every group once before measuring (false: the store already holds them)")
	_ = fs.Parse(args)
	targets := splitURLs(*urls)
	if len(targets) == 0 {
		return errors.New("-urls is required")
	}
	var counts []int
	for s := range strings.SplitSeq(*pushers, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c < 1 {
			return fmt.Errorf("-pushers: bad count %q", s)
		}
		counts = append(counts, c)
	}
	client := newClient(slices.Max(counts))
	var fails failures
	var seq atomic.Int64 // makes every body's values new

	if *fill {
		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for p := range 4 {
			wg.Go(func() {
				var buf bytes.Buffer
				for i := int(next.Add(1)) - 1; i < *groups; i = int(next.Add(1)) - 1 {
					u := targets[p%len(targets)] + groupPath(i)
					if _, err := do(client, http.MethodPut, u, body(&buf, int(seq.Add(1)))); err != nil {
						fails.add(err)
					}
				}
			})
		}
		wg.Wait()
		el := time.Since(start)
		fmt.Printf("fill: %d groups in %.1f s (%.0f pushes/s, 4 pushers)\n", *groups, el.Seconds(), float64(*groups)/el.Seconds())
	}

	fmt.Printf("%-8s %10s %8s %8s %8s %8s %7s\n", "pushers", "pushes/s", "p50 ms", "p90 ms", "p99 ms", "pushes", "errors")
	for _, c := range counts {
		before := commitStats(client, targets)
		var mu sync.Mutex // guards lat
		var lat []time.Duration
		failsBefore := fails.n.Load()
		ctx, cancel := context.WithTimeout(context.Background(), *warmup+*duration)
		measureFrom := time.Now().Add(*warmup)
		var wg sync.WaitGroup
		for p := range c {
			wg.Go(func() {
				var buf bytes.Buffer
				var mine []time.Duration
				rng := rand.New(rand.NewPCG(uint64(p), uint64(time.Now().UnixNano())))
				for ctx.Err() == nil {
					u := targets[p%len(targets)] + groupPath(rng.IntN(*groups))
					b := body(&buf, int(seq.Add(1)))
					t0 := time.Now()
					_, err := do(client, http.MethodPut, u, b)
					t1 := time.Now()
					if err != nil {
						fails.add(err)
						continue
					}
					// Count what completed inside the measured window.
					if t1.After(measureFrom) && ctx.Err() == nil {
						mine = append(mine, t1.Sub(t0))
					}
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
		}
		wg.Wait()
		cancel()
		slices.Sort(lat)
		fmt.Printf("%-8d %10.1f %8s %8s %8s %8d %7d\n", c, float64(len(lat))/duration.Seconds(),
			ms(percentile(lat, 50)), ms(percentile(lat, 90)), ms(percentile(lat, 99)), len(lat), fails.n.Load()-failsBefore)
		after := commitStats(client, targets)
		for i, u := range targets {
			if after[i].txns == 0 {
				continue // not an etcd replica
			}
			d := after[i].sub(before[i])
			if d.txns > 0 {
				fmt.Printf("         %s: %.0f etcd txns/s, %.2f writes/txn, %.2f ms/txn\n",
					u, d.txns/(warmup.Seconds()+duration.Seconds()), d.writes/d.txns, 1000*d.seconds/d.txns)
			}
		}
	}
	return fails.check()
}

// commits holds a replica's counters of etcd transactions.
type commits struct{ txns, writes, seconds float64 }

func (a commits) sub(b commits) commits {
	return commits{a.txns - b.txns, a.writes - b.writes, a.seconds - b.seconds}
}

// commitStats reads pushgate_etcd_commit_writes (writes per transaction)
// and pushgate_etcd_commit_duration_seconds from each URL's /metrics;
// zero for a gateway without them.
func commitStats(c *http.Client, urls []string) []commits {
	out := make([]commits, len(urls))
	for i, u := range urls {
		b, err := do(c, http.MethodGet, u+"/metrics", nil)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			name, v, ok := strings.Cut(sc.Text(), " ")
			if !ok || !strings.HasPrefix(name, "pushgate_etcd_commit_") {
				continue
			}
			f, _ := strconv.ParseFloat(v, 64)
			switch name {
			case "pushgate_etcd_commit_writes_count":
				out[i].txns = f
			case "pushgate_etcd_commit_writes_sum":
				out[i].writes = f
			case "pushgate_etcd_commit_duration_seconds_sum":
				out[i].seconds = f
			}
		}
	}
	return out
}

func runProp(args []string) error {
	fs := flag.NewFlagSet("prop", flag.ExitOnError)
	urls := fs.String("urls", "", "comma-separated replica URLs; every ordered pair is measured")
	samples := fs.Int("samples", 200, "pushes timed per pair (as many again check read-your-writes on the pushing replica)")
	interval := fs.Duration("interval", time.Millisecond, "pause between two polls of the other replica")
	timeout := fs.Duration("timeout", 5*time.Second, "give up on a sample after this long")
	load := fs.Int("load", 0, "background pushers (100-series PUTs to 10 groups, spread over the replicas)")
	_ = fs.Parse(args)
	targets := splitURLs(*urls)
	if len(targets) < 2 {
		return errors.New("-urls needs at least two replicas")
	}
	client := newClient(4 + *load)
	var fails failures

	ctx, stopLoad := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	var bgPushes atomic.Int64
	for p := range *load {
		bg.Go(func() {
			var buf bytes.Buffer
			for n := 0; ctx.Err() == nil; n++ {
				u := targets[p%len(targets)] + groupPath(900000+(p+n)%10)
				if _, err := do(client, http.MethodPut, u, body(&buf, n)); err != nil && ctx.Err() == nil {
					fails.add(err)
				}
				bgPushes.Add(1)
			}
		})
	}
	defer func() { stopLoad(); bg.Wait() }()

	// A large store makes every poll a large scrape: say so.
	if b, err := do(client, http.MethodGet, targets[1]+"/metrics", nil); err == nil && len(b) > 1<<20 {
		fmt.Fprintf(os.Stderr, "warning: %s/metrics is %d KiB; polls are slow on a large store (wipe it first)\n", targets[1], len(b)>>10)
	}

	fmt.Printf("%-6s %-6s %8s %8s %8s %8s %8s %9s %7s\n", "from", "to", "p50 ms", "p90 ms", "p99 ms", "max ms", "samples", "polls/smp", "stale A")
	start := time.Now()
	run := rand.IntN(1_000_000) + 1
	var all []time.Duration
	for a := range targets {
		for b := range targets {
			if a == b {
				continue
			}
			var lat []time.Duration
			var polls, stale int
			group := fmt.Sprintf("/metrics/job/habench-probe/pair/%d-%d", a, b)
			// Odd pushes check read-your-writes on A: an acknowledged push
			// shows there at once (else it counts in "stale A"). Even pushes are timed on B, with no
			// request to A in between.
			for n := 1; n <= 2**samples; n++ {
				// New in this run too: the group may hold an older run's value.
				value := float64(run*100000 + n)
				line := "habench_probe_value " + strconv.FormatFloat(value, 'f', -1, 64) + "\n"
				if _, err := do(client, http.MethodPut, targets[a]+group, []byte(line)); err != nil {
					fails.add(err)
					continue
				}
				acked := time.Now()
				if n%2 == 1 {
					if body, err := do(client, http.MethodGet, targets[a]+"/metrics", nil); err != nil {
						fails.add(err)
					} else if !probeShows(body, group, value) {
						stale++
					}
					continue
				}
				seenAfter := time.Duration(-1)
				for p := 1; time.Since(acked) < *timeout; p++ {
					body, err := do(client, http.MethodGet, targets[b]+"/metrics", nil)
					if err != nil {
						fails.add(err)
						break
					}
					if probeShows(body, group, value) {
						seenAfter, polls = time.Since(acked), polls+p
						break
					}
					time.Sleep(*interval)
				}
				if seenAfter < 0 {
					fails.add(fmt.Errorf("%s: value %v pushed to %s not seen after %s", targets[b], value, targets[a], *timeout))
					continue
				}
				lat = append(lat, seenAfter)
			}
			all = append(all, lat...)
			slices.Sort(lat)
			fmt.Printf("%-6d %-6d %8s %8s %8s %8s %8d %9.1f %7d\n", a, b, ms(percentile(lat, 50)), ms(percentile(lat, 90)),
				ms(percentile(lat, 99)), ms(percentile(lat, 100)), len(lat), float64(polls)/float64(max(len(lat), 1)), stale)
		}
	}
	slices.Sort(all)
	fmt.Printf("%-13s %8s %8s %8s %8s %8d\n", "all pairs", ms(percentile(all, 50)), ms(percentile(all, 90)),
		ms(percentile(all, 99)), ms(percentile(all, 100)), len(all))
	if *load > 0 {
		fmt.Printf("background: %d pushers, %.0f pushes/s\n", *load, float64(bgPushes.Load())/time.Since(start).Seconds())
	}
	return fails.check()
}

// probeShows reports whether a scrape holds the probe sample of group with
// the wanted value (compared as a number: the exposition may write it as
// 1.2e+06).
func probeShows(scrape []byte, group string, want float64) bool {
	pair := []byte(`pair="` + group[strings.LastIndexByte(group, '/')+1:] + `"`)
	for line := range bytes.SplitSeq(scrape, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("habench_probe_value{")) && bytes.Contains(line, pair) {
			v, err := strconv.ParseFloat(string(line[bytes.LastIndexByte(line, ' ')+1:]), 64)
			return err == nil && v == want
		}
	}
	return false
}
