// Replication end to end (issue #10): three pushgate replicas, each a real
// process, share their groups through a real three-member etcd cluster
// (internal/etcdtest). The tests push through random replicas while etcd
// members and replicas are killed, stopped, compacted and restarted, and
// check what the issue promises: every replica converges to the same
// exposition, no acknowledged write is lost, conflicting pushes on two
// replicas never both succeed, a replica without quorum refuses writes but
// keeps serving reads, and a watch that falls behind compaction reloads.
//
// Run only these tests:
//
//	go test -count=1 -run TestReplication -v ./e2e/
package e2e

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pushgate/pushgate/internal/etcdtest"
)

// Pushed metric names in these tests all start with haPrefix, so the
// pushed part of an exposition is easy to cut out of the gateway's own.
const haPrefix = "ha_"

const (
	// haConverge bounds how long replicas may take to agree after the
	// writes stop.
	haConverge = 15 * time.Second
	// haRequestTimeout is longer than the gateway's etcd request timeout
	// (5s), so a push that waits for etcd is answered, not cut off.
	haRequestTimeout = 15 * time.Second
)

// haClient is used for every request to a replica.
var haClient = &http.Client{
	Timeout:   haRequestTimeout,
	Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// replica is one pushgate process in etcd mode. It can be killed and
// started again on the same address.
type replica struct {
	*gateway
	name string
	args []string // without --web.listen-address
}

// haCluster is an etcd cluster and the replicas that share it.
type haCluster struct {
	etcd *etcdtest.Cluster
	reps []*replica
}

// startHA starts an etcd cluster with opts and n replicas on it, and waits
// until every replica is ready.
func startHA(t *testing.T, opts etcdtest.Options, n int) *haCluster {
	t.Helper()
	requirePushgate(t, "etcd mode")
	c := &haCluster{etcd: etcdtest.Start(t, opts)}
	args := []string{"--storage.etcd.endpoints=" + strings.Join(c.etcd.Endpoints(), ",")}
	for i := range n {
		r := &replica{name: "replica" + strconv.Itoa(i), args: args}
		r.start(t, "")
		if !r.waitReady(t) {
			t.Fatalf("%s did not become ready; output:\n%s", r.name, r.out)
		}
		c.reps = append(c.reps, r)
	}
	return c
}

// start runs the replica's process on addr, or on a free port if addr is
// empty. It does not wait for readiness.
func (r *replica) start(t testing.TB, addr string) {
	t.Helper()
	if addr == "" {
		addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	}
	full := append([]string{"--web.listen-address=" + addr}, r.args...)
	r.gateway = &gateway{bin: subjectBin, addr: addr}
	r.process = startProcess(t, r.name, subjectBin, full...)
}

// restart starts the replica again on the address it had, after kill. It
// does not wait for readiness.
func (r *replica) restart(t testing.TB) {
	t.Helper()
	if !r.exited() {
		t.Fatalf("restart %s: still running", r.name)
	}
	r.start(t, r.addr)
}

// req sends one request and reads the whole answer; an error means no
// answer (refused, cut off, timed out).
func (r *replica) req(method, path string, body []byte) (response, error) {
	return send(context.Background(), haClient, method, "http://"+r.addr+path, nil, body)
}

func (r *replica) mustReq(t testing.TB, method, path string, body []byte) response {
	t.Helper()
	resp, err := r.req(method, path, body)
	if err != nil {
		t.Fatalf("%s: %s %s: %v", r.name, method, path, err)
	}
	return resp
}

// pushedText returns the lines of /metrics (text format, as served) that
// belong to pushed families: those named haPrefix..., push_time_seconds and
// push_failure_time_seconds.
func (r *replica) pushedText(t testing.TB) string {
	t.Helper()
	resp := r.mustReq(t, http.MethodGet, "/metrics", nil)
	if resp.status != http.StatusOK {
		t.Fatalf("%s: /metrics: %s", r.name, resp)
	}
	return pushedLines(resp.body)
}

func pushedLines(exposition []byte) string {
	var b strings.Builder
	for line := range strings.Lines(string(exposition)) {
		var name string
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			f := strings.Fields(rest)
			if len(f) < 2 {
				continue
			}
			name = f[1]
		} else {
			name, _, _ = strings.Cut(line, " ")
			name, _, _ = strings.Cut(name, "{")
		}
		if strings.HasPrefix(name, haPrefix) || name == pushTimeName || name == pushFailureTimeName {
			b.WriteString(line)
		}
	}
	return b.String()
}

// families scrapes and parses /metrics.
func (r *replica) families(t testing.TB) map[string]*dto.MetricFamily {
	t.Helper()
	resp := r.mustReq(t, http.MethodGet, "/metrics", nil)
	if resp.status != http.StatusOK {
		t.Fatalf("%s: /metrics: %s", r.name, resp)
	}
	mfs, err := parseText(resp.body)
	if err != nil {
		t.Fatalf("%s: /metrics does not parse: %v", r.name, err)
	}
	return mfs
}

// ownValue returns the value of one of the replica's own unlabelled
// counters or gauges, or -1 if it is missing.
func (r *replica) ownValue(t testing.TB, name string) float64 {
	t.Helper()
	mf := r.families(t)[name]
	if mf == nil || len(mf.GetMetric()) == 0 {
		return -1
	}
	m := mf.GetMetric()[0]
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return m.GetUntyped().GetValue()
}

// converge waits until every replica in reps serves the same pushed part
// of /metrics, and returns it. It fails with a diff after haConverge.
func converge(t testing.TB, reps []*replica) string {
	t.Helper()
	deadline := time.Now().Add(haConverge)
	for {
		texts := make([]string, len(reps))
		same := true
		for i, r := range reps {
			texts[i] = r.pushedText(t)
			same = same && texts[i] == texts[0]
		}
		if same {
			return texts[0]
		}
		if time.Now().After(deadline) {
			for i := 1; i < len(reps); i++ {
				if texts[i] != texts[0] {
					t.Fatalf("%s and %s did not converge within %v (- %s, + %s):\n%s",
						reps[0].name, reps[i].name, haConverge, reps[0].name, reps[i].name, diffLines(texts[0], texts[i]))
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReadyStatus polls /-/ready until it answers want (an unanswered
// request counts as no status) and returns how long that took, or an error
// after d. It may run in any goroutine.
func (r *replica) waitReadyStatus(want int, d time.Duration) (time.Duration, error) {
	start := time.Now()
	var last string
	for time.Since(start) < d {
		resp, err := r.req(http.MethodGet, "/-/ready", nil)
		if err == nil && resp.status == want {
			return time.Since(start), nil
		}
		last = fmt.Sprint(resp, err)
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("%s: /-/ready did not answer %d within %v; last: %s", r.name, want, d, last)
}

// ---------------------------------------------------------------------------
// A record of single-writer groups, to check that acknowledged writes
// survive.

// absent is the state of a group that does not exist (values pushed are
// always positive).
const absent = -1.0

// op is one write to a group and how it was answered.
type op struct {
	del    bool
	val    float64
	status int    // 0: no answer
	reason string // the body of an answer other than 200 or 202, or why there was none
	took   time.Duration
}

func (o op) String() string {
	s := "PUT " + formatValue(o.val)
	if o.del {
		s = "DELETE"
	}
	s += " -> " + strconv.Itoa(o.status) + " in " + o.took.Round(time.Millisecond).String()
	if o.reason != "" {
		s += " " + strconv.Quote(truncate(o.reason, 200))
	}
	return s
}

func (o op) state() float64 {
	if o.del {
		return absent
	}
	return o.val
}

func acked(status int) bool { return status == http.StatusOK || status == http.StatusAccepted }

// groupLog is every write to one group, in order. One goroutine writes a
// group, and waits for each answer, so "the last acknowledged write" is
// well defined.
type groupLog struct {
	id  string // the value of the grouping label g
	ops []op
}

// acceptable returns the states the group may end in: the state after its
// last acknowledged write (absent if none), or after any later write that
// was not answered or answered with an error other than 400, since such a
// write may or may not have been committed. A 400 rejects for sure.
func (l *groupLog) acceptable() []float64 {
	last := -1
	for i, o := range l.ops {
		if acked(o.status) {
			last = i
		}
	}
	out := []float64{absent}
	if last >= 0 {
		out[0] = l.ops[last].state()
	}
	for _, o := range l.ops[last+1:] {
		if o.status != http.StatusBadRequest {
			out = append(out, o.state())
		}
	}
	return out
}

// writeLoad has writers goroutines write their own groups (family ha_w,
// job job, label g) through random replicas until ctx ends, and returns
// the log of every group.
func writeLoad(ctx context.Context, reps []*replica, job string, writers, groupsEach int) []*groupLog {
	logs := make([]*groupLog, writers*groupsEach)
	for i := range logs {
		logs[i] = &groupLog{id: strconv.Itoa(i)}
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			own := logs[w*groupsEach : (w+1)*groupsEach]
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for seq := 1; ctx.Err() == nil; seq++ {
				l := own[rng.IntN(len(own))]
				r := reps[rng.IntN(len(reps))]
				path := "/metrics/job/" + job + "/g/" + l.id
				o := op{del: rng.IntN(4) == 0, val: float64(seq)}
				var resp response
				var err error
				start := time.Now()
				if o.del {
					resp, err = r.req(http.MethodDelete, path, nil)
				} else {
					resp, err = r.req(http.MethodPut, path, fmt.Appendf(nil, "# TYPE ha_w gauge\nha_w %d\n", seq))
				}
				o.took = time.Since(start)
				switch {
				case err != nil:
					o.reason = err.Error()
				case !acked(resp.status):
					o.status, o.reason = resp.status, strings.TrimSpace(string(resp.body))
				default:
					o.status = resp.status
				}
				l.ops = append(l.ops, o)
			}
		})
	}
	wg.Wait()
	return logs
}

// tally counts the answers of every op in logs by status (0: none), lists
// the first few that were not acknowledged, and finds the slowest
// acknowledged one.
func tally(logs []*groupLog) (byStatus map[int]int, failed []string, slowest op) {
	byStatus = map[int]int{}
	for _, l := range logs {
		for _, o := range l.ops {
			byStatus[o.status]++
			if !acked(o.status) && len(failed) < 5 {
				failed = append(failed, "g="+l.id+": "+o.String())
			}
			if acked(o.status) && o.took > slowest.took {
				slowest = o
			}
		}
	}
	return byStatus, failed, slowest
}

func logTally(t testing.TB, logs []*groupLog) {
	t.Helper()
	n, failed, slowest := tally(logs)
	t.Logf("answers by status (0: none): %v; slowest acknowledged: %s", n, slowest)
	for _, f := range failed {
		t.Logf("  not acknowledged: %s", f)
	}
}

// checkLogs compares every replica's groups with the logs: each group must
// be in one of its acceptable states.
func checkLogs(t *testing.T, reps []*replica, job string, logs []*groupLog) {
	t.Helper()
	for _, r := range reps {
		got := map[string]float64{}
		if mf := r.families(t)["ha_w"]; mf != nil {
			for _, m := range mf.GetMetric() {
				if labelValue(m, "job") == job {
					got[labelValue(m, "g")] = m.GetGauge().GetValue()
				}
			}
		}
		for _, l := range logs {
			state, ok := got[l.id]
			if !ok {
				state = absent
			}
			if ok := slices.Contains(l.acceptable(), state); !ok {
				t.Errorf("%s: group g=%s is %s, want one of %v (-1: absent); its writes: %v",
					r.name, l.id, formatValue(state), l.acceptable(), l.ops)
			}
		}
	}
}

// ---------------------------------------------------------------------------
// Scenarios.

// TestReplicationConcurrentWrites: PUT, POST and DELETE from several
// goroutines through random replicas on a few shared groups; once the
// writes stop, every replica serves byte-identical pushed metrics.
func TestReplicationConcurrentWrites(t *testing.T) {
	t.Parallel()
	c := startHA(t, etcdtest.Options{}, 3)
	const (
		writers = 4
		opsEach = 60
		groups  = 8
	)
	var mu sync.Mutex
	statuses := map[string]int{} // "METHOD status" -> count
	raced := 0                   // writes refused after losing 8 races
	var wg sync.WaitGroup
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range opsEach {
				r := c.reps[rng.IntN(len(c.reps))]
				path := fmt.Sprintf("/metrics/job/ha1/g/%d", rng.IntN(groups))
				var method string
				var body []byte
				switch rng.IntN(5) {
				case 0, 1:
					method = http.MethodPut
					body = fmt.Appendf(nil, "# TYPE ha_c counter\nha_c{w=\"%d\"} %d\n# TYPE ha_g gauge\nha_g %d\n", w, i, i)
				case 2, 3:
					method = http.MethodPost
					body = fmt.Appendf(nil, "# TYPE ha_p gauge\n# HELP ha_p posted\nha_p{w=\"%d\"} %d\n", w, i)
				default:
					method = http.MethodDelete
				}
				resp, err := r.req(method, path, body)
				key := method + " "
				if err != nil {
					key += "no answer"
				} else {
					key += strconv.Itoa(resp.status)
				}
				lostRaces := err == nil && resp.status == http.StatusServiceUnavailable && strings.Contains(string(resp.body), "conflicting writes")
				switch {
				case lostRaces:
					// Several writers on one group through different
					// replicas: after 8 lost races the documented
					// answer is 503 (retry); rare, counted below.
					t.Logf("%s %s on %s: %v", method, path, r.name, resp)
				case err != nil || !acked(resp.status):
					t.Errorf("%s %s on %s: %v %v", method, path, r.name, resp, err)
				}
				mu.Lock()
				statuses[key]++
				if lostRaces {
					raced++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d writes in %v: %v", writers*opsEach, time.Since(start).Round(time.Millisecond), statuses)
	if raced > writers*opsEach/20 {
		t.Errorf("%d of %d writes lost 8 races in a row; want at most 5%%", raced, writers*opsEach)
	}
	start = time.Now()
	got := converge(t, c.reps)
	t.Logf("converged %v after the writes stopped; %d pushed lines", time.Since(start).Round(time.Millisecond), strings.Count(got, "\n"))
	if !strings.Contains(got, pushTimeName) {
		t.Errorf("no group left after the writes; the test proves little:\n%s", got)
	}
}

// TestReplicationLeaderFailover: SIGKILL of the etcd leader under load
// loses no acknowledged write, against every etcd version we support.
func TestReplicationLeaderFailover(t *testing.T) {
	t.Parallel()
	for _, b := range etcdtest.Binaries(t) {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			c := startHA(t, etcdtest.Options{Binary: b.Path}, 3)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var logs []*groupLog
			done := make(chan struct{})
			go func() {
				defer close(done)
				logs = writeLoad(ctx, c.reps, "ha2", 4, 3)
			}()
			time.Sleep(time.Second)
			lctx, lcancel := context.WithTimeout(context.Background(), 10*time.Second)
			leader, err := c.etcd.Leader(lctx)
			lcancel()
			if err != nil {
				cancel()
				<-done
				t.Fatal(err)
			}
			c.etcd.Kill(t, leader)
			killed := time.Now()
			lctx, lcancel = context.WithTimeout(context.Background(), 10*time.Second)
			next, err := c.etcd.Leader(lctx)
			lcancel()
			if err != nil {
				t.Errorf("after killing member %d: %v", leader, err)
			}
			t.Logf("killed leader %d; member %d leads after %v", leader, next, time.Since(killed).Round(time.Millisecond))
			time.Sleep(2 * time.Second)
			cancel()
			<-done
			c.etcd.Restart(t, leader)
			logTally(t, logs)
			converge(t, c.reps)
			checkLogs(t, c.reps, "ha2", logs)
		})
	}
}

// TestReplicationReplicaRestart: a replica killed under load and started
// again on its port is ready only once it has caught up, and then serves
// what the others serve.
func TestReplicationReplicaRestart(t *testing.T) {
	t.Parallel()
	c := startHA(t, etcdtest.Options{}, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs []*groupLog
	done := make(chan struct{})
	go func() {
		defer close(done)
		logs = writeLoad(ctx, c.reps, "ha3", 3, 4)
	}()
	time.Sleep(time.Second)
	victim := c.reps[2]
	victim.sigkill(t)
	// The others keep taking writes the victim must catch up on.
	time.Sleep(1500 * time.Millisecond)
	cancel()
	<-done
	logTally(t, logs)
	want := converge(t, c.reps[:2])
	cli := c.etcd.Client(t)
	gctx, gcancel := context.WithTimeout(context.Background(), 5*time.Second)
	head, err := cli.Get(gctx, "/pushgate/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	gcancel()
	if err != nil {
		t.Fatal(err)
	}

	victim.restart(t)
	took, err := victim.waitReadyStatus(http.StatusOK, readyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	// No waiting from here on: ready means caught up.
	got := victim.pushedText(t)
	applied := victim.ownValue(t, "pushgate_etcd_applied_revision")
	t.Logf("restarted %s ready after %v at applied revision %v (etcd at %d)", victim.name, took.Round(time.Millisecond), applied, head.Header.Revision)
	if got != want {
		t.Errorf("%s was ready before it caught up (- others, + %s):\n%s", victim.name, victim.name, diffLines(want, got))
	}
	if applied < float64(head.Header.Revision) {
		t.Errorf("%s ready at applied revision %v, before etcd's revision %d at restart", victim.name, applied, head.Header.Revision)
	}
	converge(t, c.reps)
	checkLogs(t, c.reps, "ha3", logs)
}

// TestReplicationConflictRace: two groups that would make the exposition
// inconsistent, pushed at the same instant on two replicas: never both
// accepted.
func TestReplicationConflictRace(t *testing.T) {
	t.Parallel()
	c := startHA(t, etcdtest.Options{}, 3)
	const rounds = 45
	// Each kind is a pair of pushes that cannot both be in the gateway.
	type push struct{ path, body string }
	kinds := []struct {
		name string
		a, b func(i int) push
	}{
		{
			"counter vs gauge",
			func(i int) push {
				return push{fmt.Sprintf("/metrics/job/ha4a/round/%d", i), fmt.Sprintf("# TYPE ha_t%d counter\nha_t%d 1\n", i, i)}
			},
			func(i int) push {
				return push{fmt.Sprintf("/metrics/job/ha4b/round/%d", i), fmt.Sprintf("# TYPE ha_t%d gauge\nha_t%d 2\n", i, i)}
			},
		},
		{
			// Both groups yield ha_s{instance="x",job="ha4s<i>"}.
			"same series in two groups",
			func(i int) push {
				return push{fmt.Sprintf("/metrics/job/ha4s%d/instance/x", i), fmt.Sprintf("# TYPE ha_s%d gauge\nha_s%d 1\n", i, i)}
			},
			func(i int) push {
				return push{fmt.Sprintf("/metrics/job/ha4s%d", i), fmt.Sprintf("# TYPE ha_s%d gauge\nha_s%d{instance=\"x\"} 2\n", i, i)}
			},
		},
		{
			"histogram suffix collision",
			func(i int) push {
				return push{fmt.Sprintf("/metrics/job/ha4a/round/%d", i), fmt.Sprintf(
					"# TYPE ha_h%d histogram\nha_h%d_bucket{le=\"1\"} 1\nha_h%d_bucket{le=\"+Inf\"} 1\nha_h%d_sum 0.5\nha_h%d_count 1\n", i, i, i, i, i)}
			},
			func(i int) push {
				return push{fmt.Sprintf("/metrics/job/ha4b/round/%d", i), fmt.Sprintf("# TYPE ha_h%d_count gauge\nha_h%d_count 2\n", i, i)}
			},
		},
	}
	outcomes := map[string]int{} // "kind: statusA/statusB" -> rounds
	decided := 0
	start := time.Now()
	for i := range rounds {
		k := kinds[i%len(kinds)]
		pa, pb := k.a(i), k.b(i)
		// Alternate which replica gets which side.
		ra, rb := c.reps[i%2], c.reps[1-i%2]
		var sa, sb int
		var ea, eb error
		var bodyA, bodyB []byte
		barrier := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			<-barrier
			resp, err := ra.req(http.MethodPut, pa.path, []byte(pa.body))
			sa, ea, bodyA = resp.status, err, resp.body
		})
		wg.Go(func() {
			<-barrier
			resp, err := rb.req(http.MethodPut, pb.path, []byte(pb.body))
			sb, eb, bodyB = resp.status, err, resp.body
		})
		close(barrier)
		wg.Wait()
		if ea != nil || eb != nil {
			t.Errorf("round %d (%s): no answer: %v / %v", i, k.name, ea, eb)
		}
		outcomes[fmt.Sprintf("%s: %d/%d", k.name, sa, sb)]++
		switch {
		case acked(sa) && acked(sb):
			t.Errorf("round %d (%s): both accepted: %s on %s and %s on %s", i, k.name, pa.path, ra.name, pb.path, rb.name)
		case sa == http.StatusBadRequest && sb == http.StatusBadRequest:
			t.Errorf("round %d (%s): both refused: %q / %q", i, k.name, bodyA, bodyB)
		case acked(sa) != (sb == http.StatusBadRequest) && acked(sb) != (sa == http.StatusBadRequest):
			// Neither 200/400 nor 400/200: some 503 or other.
			t.Logf("round %d (%s): %d %q / %d %q", i, k.name, sa, bodyA, sb, bodyB)
		default:
			decided++
		}
	}
	t.Logf("%d rounds in %v: %v", rounds, time.Since(start).Round(time.Millisecond), outcomes)
	// Every replica must still serve an exposition that parses and agrees.
	converge(t, c.reps)
	for _, r := range c.reps {
		t.Logf("%s: pushgate_etcd_conflicts_total %v", r.name, r.ownValue(t, "pushgate_etcd_conflicts_total"))
	}
	// Rounds that end in 503s prove nothing either way: most must be
	// decided, one push accepted and the other refused.
	if decided < rounds/2 {
		t.Errorf("only %d of %d rounds ended in one 200 and one 400", decided, rounds)
	}
}

// TestReplicationQuorumLoss: with 2 of 3 etcd members down, pushes get 503
// with one line, reads still serve the last state, /-/ready turns 503; once
// the members are back, all recovers without restarting a replica.
func TestReplicationQuorumLoss(t *testing.T) {
	t.Parallel()
	c := startHA(t, etcdtest.Options{}, 3)
	for i := range 5 {
		resp := c.reps[i%3].mustReq(t, http.MethodPut, fmt.Sprintf("/metrics/job/ha5/g/%d", i), fmt.Appendf(nil, "# TYPE ha_q gauge\nha_q %d\n", i+1))
		if !acked(resp.status) {
			t.Fatalf("push before the outage: %s", resp)
		}
	}
	before := converge(t, c.reps)
	apiBefore := c.reps[0].mustReq(t, http.MethodGet, "/api/v1/metrics", nil)

	lctx, lcancel := context.WithTimeout(context.Background(), 10*time.Second)
	leader, err := c.etcd.Leader(lctx)
	lcancel()
	if err != nil {
		t.Fatal(err)
	}
	down := []int{leader, (leader + 1) % 3}
	for _, i := range down {
		c.etcd.Kill(t, i)
	}
	lost := time.Now()

	var wg sync.WaitGroup
	for _, r := range c.reps {
		wg.Go(func() {
			took, err := r.waitReadyStatus(http.StatusServiceUnavailable, 10*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			t.Logf("%s: /-/ready 503 %v after the quorum was lost", r.name, took.Round(time.Millisecond))
		})
	}
	wg.Wait()
	// The pushes wait for etcd, so the replicas are asked at once.
	for i, r := range c.reps {
		wg.Go(func() {
			pstart := time.Now()
			resp, err := r.req(http.MethodPut, "/metrics/job/ha5/g/new", []byte("# TYPE ha_q gauge\nha_q 9\n"))
			took := time.Since(pstart).Round(time.Millisecond)
			switch {
			case err != nil:
				t.Errorf("%s: push without quorum: no answer after %v: %v", r.name, took, err)
			case resp.status != http.StatusServiceUnavailable:
				t.Errorf("%s: push without quorum: %s after %v, want 503", r.name, resp, took)
			default:
				t.Logf("%s: push without quorum: %s after %v", r.name, resp, took)
				requireOneLine(t, r.name+": push without quorum", resp)
			}
		})
		wg.Go(func() {
			pstart := time.Now()
			resp, err := r.req(http.MethodDelete, fmt.Sprintf("/metrics/job/ha5/g/%d", i), nil)
			took := time.Since(pstart).Round(time.Millisecond)
			switch {
			case err != nil:
				t.Errorf("%s: delete without quorum: no answer after %v: %v", r.name, took, err)
			case resp.status != http.StatusServiceUnavailable:
				t.Errorf("%s: delete without quorum: %s after %v, want 503", r.name, resp, took)
			default:
				t.Logf("%s: delete without quorum: %s after %v", r.name, resp, took)
				requireOneLine(t, r.name+": delete without quorum", resp)
			}
		})
	}
	// Reads meanwhile, and after the writes were refused.
	for range 2 {
		for _, r := range c.reps {
			if got := r.pushedText(t); got != before {
				t.Errorf("%s: /metrics without quorum changed (- before, + now):\n%s", r.name, diffLines(before, got))
			}
			api := r.mustReq(t, http.MethodGet, "/api/v1/metrics", nil)
			if api.status != http.StatusOK || !bytes.Contains(api.body, []byte("ha_q")) {
				t.Errorf("%s: /api/v1/metrics without quorum: %s, want 200 with the groups (before: %s)", r.name, api, apiBefore)
			}
			if ui := r.mustReq(t, http.MethodGet, "/", nil); ui.status != http.StatusOK {
				t.Errorf("%s: status page without quorum: %d", r.name, ui.status)
			}
			if up := r.ownValue(t, "pushgate_etcd_up"); up != 0 {
				t.Errorf("%s: pushgate_etcd_up %v without quorum, want 0", r.name, up)
			}
		}
		wg.Wait()
	}
	t.Logf("checked the outage for %v", time.Since(lost).Round(time.Millisecond))

	back := time.Now()
	for _, i := range down {
		c.etcd.Restart(t, i)
	}
	t.Logf("members %v answer again after %v", down, time.Since(back).Round(time.Millisecond))
	for _, r := range c.reps {
		took, err := r.waitReadyStatus(http.StatusOK, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: /-/ready 200 again %v later", r.name, took.Round(time.Millisecond))
	}
	for i, r := range c.reps {
		resp := r.mustReq(t, http.MethodPut, fmt.Sprintf("/metrics/job/ha5/g/after%d", i), fmt.Appendf(nil, "# TYPE ha_q gauge\nha_q %d\n", 100+i))
		if resp.status != http.StatusOK {
			t.Errorf("%s: push after recovery: %s, want 200", r.name, resp)
		}
	}
	after := converge(t, c.reps)
	for i := range c.reps {
		if !strings.Contains(after, fmt.Sprintf("g=\"after%d\"", i)) {
			t.Errorf("push after%d missing after recovery:\n%s", i, after)
		}
	}
	// A 503 says "not acknowledged", not "not made": a write whose
	// outcome was unknown may still land. Here the survivor had no leader
	// and dropped it, so it should not; note it if it does.
	if strings.Contains(after, `g="new"`) {
		t.Logf("NOTE: a push answered 503 during the outage is in the state after recovery:\n%s", after)
	}
	t.Logf("recovered in %v", time.Since(back).Round(time.Millisecond))
}

// TestReplicationCompactionReload: a replica stopped (SIGSTOP) while many
// writes happen and etcd compacts past them must load all groups again
// when it resumes, and then agree with the others.
func TestReplicationCompactionReload(t *testing.T) {
	t.Parallel()
	c := startHA(t, etcdtest.Options{}, 3)
	writer, victim := c.reps[0], c.reps[2]
	// put may run in any goroutine; it reports a failure with Errorf.
	put := func(g, seq int) {
		// About 8 KiB a group, random so that compression cannot shrink
		// it, so that the writes overflow what etcd (128 responses a
		// watcher) and the connection (gRPC's flow-control window)
		// buffer for a watcher that does not read.
		var b bytes.Buffer
		b.WriteString("# TYPE ha_cp gauge\n")
		for s := range 100 {
			pad := make([]byte, 24)
			_, _ = crand.Read(pad)
			fmt.Fprintf(&b, "ha_cp{series=\"s%03d\",pad=\"%x\"} %d\n", s, pad, seq)
		}
		resp, err := writer.req(http.MethodPut, fmt.Sprintf("/metrics/job/ha6/g/%d", g), b.Bytes())
		if err != nil || resp.status != http.StatusOK {
			t.Errorf("push %d: %v %v", seq, resp, err)
		}
	}
	for g := range 10 {
		put(g, 0)
	}
	if t.Failed() {
		t.FailNow()
	}
	converge(t, c.reps)
	if n := victim.ownValue(t, "pushgate_etcd_reloads_total"); n != 0 {
		t.Fatalf("%s: pushgate_etcd_reloads_total %v before the test", victim.name, n)
	}

	pid := victim.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	const writes = 400
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for seq := w; seq < writes; seq += 4 {
				put(seq%10, seq+1)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	cli := c.etcd.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	head, err := cli.Get(ctx, "/pushgate/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, head.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writes in %v while %s was stopped; compacted at revision %d", writes, time.Since(start).Round(time.Millisecond), victim.name, head.Header.Revision)

	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	resumed := time.Now()
	deadline := resumed.Add(haConverge)
	for {
		n := victim.ownValue(t, "pushgate_etcd_reloads_total")
		if n >= 1 {
			t.Logf("%s: pushgate_etcd_reloads_total %v after %v", victim.name, n, time.Since(resumed).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: pushgate_etcd_reloads_total %v %v after SIGCONT, want >= 1", victim.name, n, haConverge)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	converge(t, c.reps)
	if up := victim.ownValue(t, "pushgate_etcd_up"); up != 1 {
		t.Errorf("%s: pushgate_etcd_up %v after the reload, want 1", victim.name, up)
	}
}
