// Package etcdtest runs real etcd clusters for tests: every member is a
// child process listening on 127.0.0.1 with its own client and peer port
// and a data directory under the test's TempDir. The etcd-backed journal's
// tests and the end-to-end replication tests use it to kill, stop and
// restart members while clients keep working.
//
// It is an ordinary package, not a _test file, so that tests in other
// packages and in ./e2e can import it. Nothing outside tests should.
//
// Which etcd runs is chosen by Options.Binary, else $PUSHGATE_ETCD_BIN,
// else etcd on PATH (Debian's etcd-server). Binaries lists every version
// that replication must be tested against, building etcd v3.7 on demand. A
// missing etcd skips the test, except under CI=true, where it fails.
package etcdtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Options configures a cluster. The zero value is a 3-member cluster of the
// default binary with fast elections.
type Options struct {
	// Members is the cluster size; 0 means 3.
	Members int
	// Binary is the etcd executable; "" means DefaultBinary.
	Binary string
	// MaxRequestBytes is passed as --max-request-bytes; 0 keeps etcd's
	// default (1.5 MiB).
	MaxRequestBytes int
	// HeartbeatInterval and ElectionTimeout are raft's timing; 0 means 50ms
	// and 500ms, ten times faster than etcd's defaults so failover tests
	// take about a second, yet slow enough not to flap on a busy 2-core CI
	// machine.
	HeartbeatInterval time.Duration
	ElectionTimeout   time.Duration
	// StartTimeout bounds how long Start waits for a leader and Restart for
	// the member to answer; 0 means 30s.
	StartTimeout time.Duration
	// ExtraArgs are appended to every member's command line, such as
	// "--quota-backend-bytes=..." or "--auto-compaction-retention=...".
	ExtraArgs []string
}

func (o Options) withDefaults() Options {
	if o.Members == 0 {
		o.Members = 3
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 50 * time.Millisecond
	}
	if o.ElectionTimeout == 0 {
		o.ElectionTimeout = 500 * time.Millisecond
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 30 * time.Second
	}
	return o
}

// Validate reports every problem with o at once. Zero fields are valid:
// they mean the defaults.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	if o.Members < 1 {
		errs = append(errs, fmt.Errorf("members %d: need at least 1", o.Members))
	}
	if o.MaxRequestBytes < 0 {
		errs = append(errs, fmt.Errorf("max request bytes %d: negative", o.MaxRequestBytes))
	}
	if o.HeartbeatInterval < time.Millisecond || o.ElectionTimeout < time.Millisecond {
		errs = append(errs, errors.New("heartbeat interval and election timeout must be at least 1ms"))
	}
	// etcd itself refuses to start otherwise.
	if o.ElectionTimeout < 5*o.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("election timeout %v: must be at least 5 heartbeat intervals (%v)", o.ElectionTimeout, o.HeartbeatInterval))
	}
	if o.StartTimeout < 0 {
		errs = append(errs, fmt.Errorf("start timeout %v: negative", o.StartTimeout))
	}
	return errors.Join(errs...)
}

// Cluster is a running etcd cluster. Its methods may be called from several
// goroutines, but Kill, Stop and Restart of the same member must not race
// each other. Member indexes run from 0 to Options.Members-1.
type Cluster struct {
	opts    Options
	token   string
	initial string // --initial-cluster
	probe   *clientv3.Client
	members []*member

	mu sync.Mutex // guards every member's proc

	closeOnce sync.Once
	closeErr  error

	// tailsShown is set once a failure message carried the log tails, so
	// the cleanup does not print them twice.
	tailsShown atomic.Bool
}

type member struct {
	name      string
	dir       string // holds data/ and etcd.log
	clientURL string
	peerURL   string
	id        uint64 // raft member ID; set during Start, fixed afterwards

	proc *process // nil or exited when the member is down; see Cluster.mu
}

// process is one run of a member.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process is reaped
}

func (p *process) running() bool {
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// errAddrInUse marks a start that lost a port to another process between
// picking and binding it; Start then tries again with new ports.
var errAddrInUse = errors.New("address already in use")

// startAttempts bounds retries after errAddrInUse.
const startAttempts = 3

// Start starts a cluster and returns once every member answers and they
// agree on a leader. A cleanup registered on tb kills every member and
// reaps it, and logs each member's log tail if the test failed. Start fails
// tb, with each member's log tail, if the cluster does not come up within
// Options.StartTimeout.
func Start(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		tb.Fatalf("etcdtest: %v", err)
	}
	if opts.Binary == "" {
		opts.Binary = DefaultBinary(tb)
	}
	base := tb.TempDir()
	for attempt := 1; ; attempt++ {
		dir, err := os.MkdirTemp(base, "cluster-")
		if err != nil {
			tb.Fatalf("etcdtest: %v", err)
		}
		c, err := newCluster(opts, dir)
		if err != nil {
			tb.Fatalf("etcdtest: %v", err)
		}
		tb.Cleanup(func() {
			if err := c.close(); err != nil {
				tb.Errorf("etcdtest: %v", err)
			}
			if tb.Failed() && !c.tailsShown.Load() {
				for i := range c.members {
					tb.Logf("etcd member %d log tail:\n%s", i, c.logTail(i))
				}
			}
		})
		ctx, cancel := context.WithTimeout(context.Background(), opts.StartTimeout)
		err = c.start(ctx)
		cancel()
		if err == nil {
			return c
		}
		if errors.Is(err, errAddrInUse) && attempt < startAttempts {
			tb.Logf("etcdtest: start attempt %d: %v; retrying with new ports", attempt, err)
			if err := c.close(); err != nil {
				tb.Fatalf("etcdtest: %v", err)
			}
			continue
		}
		tb.Fatalf("etcdtest: start %d members of %s: %v%s", opts.Members, opts.Binary, err, c.logTails())
	}
}

func newCluster(opts Options, dir string) (*Cluster, error) {
	ports, err := freePorts(2 * opts.Members)
	if err != nil {
		return nil, err
	}
	var tok [6]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, token: "pushgate-etcdtest-" + hex.EncodeToString(tok[:])}
	var initial []string
	for i := range opts.Members {
		m := &member{
			name:      "m" + strconv.Itoa(i),
			dir:       filepath.Join(dir, "m"+strconv.Itoa(i)),
			clientURL: "http://127.0.0.1:" + strconv.Itoa(ports[2*i]),
			peerURL:   "http://127.0.0.1:" + strconv.Itoa(ports[2*i+1]),
		}
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return nil, err
		}
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peerURL)
	}
	c.initial = strings.Join(initial, ",")
	c.probe, err = clientv3.New(c.ClientConfig())
	if err != nil {
		return nil, fmt.Errorf("probe client: %w", err)
	}
	return c, nil
}

// freePorts returns n distinct ports that were free a moment ago. They are
// held open together so the kernel cannot hand out one twice; another
// process can still take one before etcd binds it, which Start retries.
func freePorts(n int) (ports []int, err error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			err = errors.Join(err, l.Close())
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// start launches every member as a new cluster and waits for a leader.
func (c *Cluster) start(ctx context.Context) error {
	for i := range c.members {
		if err := c.launch(i, "new"); err != nil {
			return err
		}
	}
	for i, m := range c.members {
		id, err := c.waitAnswer(ctx, i)
		if err != nil {
			return err
		}
		m.id = id
	}
	_, err := c.Leader(ctx)
	return err
}

// launch starts member i's process. state is --initial-cluster-state: "new"
// on first start, "existing" on restart (etcd then reads its membership
// from the data directory).
func (c *Cluster) launch(i int, state string) (err error) {
	m := c.members[i]
	args := []string{
		"--name=" + m.name,
		"--data-dir=" + filepath.Join(m.dir, "data"),
		"--listen-client-urls=" + m.clientURL,
		"--advertise-client-urls=" + m.clientURL,
		"--listen-peer-urls=" + m.peerURL,
		"--initial-advertise-peer-urls=" + m.peerURL,
		"--initial-cluster=" + c.initial,
		"--initial-cluster-state=" + state,
		"--initial-cluster-token=" + c.token,
		"--heartbeat-interval=" + strconv.FormatInt(c.opts.HeartbeatInterval.Milliseconds(), 10),
		"--election-timeout=" + strconv.FormatInt(c.opts.ElectionTimeout.Milliseconds(), 10),
		// 3.4 defaults to the deprecated capnslog; zap works in 3.4 and 3.7.
		"--logger=zap",
		"--log-outputs=stderr",
	}
	if c.opts.MaxRequestBytes > 0 {
		args = append(args, "--max-request-bytes="+strconv.Itoa(c.opts.MaxRequestBytes))
	}
	args = append(args, c.opts.ExtraArgs...)

	logf, err := os.OpenFile(c.logPath(i), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("member %d log: %w", i, err)
	}
	// The child keeps its own descriptor; ours is not needed after Start.
	defer func() { err = errors.Join(err, logf.Close()) }()
	fmt.Fprintf(logf, "=== etcdtest: %s %s\n", c.opts.Binary, strings.Join(args, " "))

	cmd := exec.Command(c.opts.Binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = memberEnv()
	setParentDeath(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("member %d: %w", i, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the exit status says nothing the log does not
		close(p.done)
	}()
	c.mu.Lock()
	m.proc = p
	c.mu.Unlock()
	return nil
}

// memberEnv is the environment without ETCD_* variables, which etcd reads
// as flags; a developer's own settings must not change the test cluster.
// ETCD_UNSUPPORTED_ARCH stays: etcd 3.4 needs it on some architectures.
func memberEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "ETCD_") && !strings.HasPrefix(kv, "ETCD_UNSUPPORTED_ARCH=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// waitAnswer polls member i's Status until it answers, and returns its
// raft member ID. It fails early if the process exits.
func (c *Cluster) waitAnswer(ctx context.Context, i int) (uint64, error) {
	m := c.members[i]
	for {
		if !c.running(i) {
			err := fmt.Errorf("member %d exited", i)
			if strings.Contains(c.MemberLog(i), "address already in use") {
				err = fmt.Errorf("%w: %w", err, errAddrInUse)
			}
			return 0, err
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := c.probe.Status(sctx, m.clientURL)
		cancel()
		if err == nil {
			return st.Header.MemberId, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("member %d does not answer: %w (last: %w)", i, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// close kills every member and reaps it, then closes the probe client. It
// runs once; a failed start attempt closes early and the cleanup again.
func (c *Cluster) close() error {
	c.closeOnce.Do(func() {
		for i := range c.members {
			c.signal(i, syscall.SIGKILL)
			c.wait(i)
		}
		c.closeErr = c.probe.Close()
	})
	return c.closeErr
}

// Endpoints returns every member's client URL ("http://127.0.0.1:port") in
// member order. The slice is the caller's.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.clientURL
	}
	return eps
}

// Endpoint returns member i's client URL.
func (c *Cluster) Endpoint(i int) string { return c.members[i].clientURL }

// Members returns the cluster size.
func (c *Cluster) Members() int { return len(c.members) }

// DataDir returns member i's data directory.
func (c *Cluster) DataDir(i int) string { return filepath.Join(c.members[i].dir, "data") }

// ClientConfig returns a client configuration for all endpoints, with a
// short dial timeout and no client logging, for callers that want to change
// it before clientv3.New.
func (c *Cluster) ClientConfig() clientv3.Config {
	return clientv3.Config{
		Endpoints:   c.Endpoints(),
		DialTimeout: 5 * time.Second,
		// The client logs every retry against a killed member at warn level;
		// the member logs say more.
		Logger: zap.NewNop(),
	}
}

// Client returns a client of all endpoints, closed by a cleanup on tb.
func (c *Cluster) Client(tb testing.TB) *clientv3.Client {
	tb.Helper()
	cli, err := clientv3.New(c.ClientConfig())
	if err != nil {
		tb.Fatalf("etcdtest: client: %v", err)
	}
	tb.Cleanup(func() { _ = cli.Close() })
	return cli
}

// Leader waits until every running member names the same running member as
// leader, and returns its index. It keeps polling until ctx is done: right
// after the leader dies the survivors still name it for up to an election
// timeout.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	for {
		i, err := c.leaderOnce(ctx)
		if err == nil {
			return i, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("no agreed leader: %w (last: %w)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) leaderOnce(ctx context.Context) (int, error) {
	var lead uint64
	asked := 0
	for i, m := range c.members {
		if !c.running(i) {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := c.probe.Status(sctx, m.clientURL)
		cancel()
		if err != nil {
			return -1, fmt.Errorf("member %d status: %w", i, err)
		}
		if st.Leader == 0 {
			return -1, fmt.Errorf("member %d knows no leader", i)
		}
		if asked > 0 && st.Leader != lead {
			return -1, fmt.Errorf("members disagree on the leader (%x, %x)", lead, st.Leader)
		}
		lead = st.Leader
		asked++
	}
	if asked == 0 {
		return -1, errors.New("no member is running")
	}
	for i, m := range c.members {
		if m.id == lead && c.running(i) {
			return i, nil
		}
	}
	return -1, fmt.Errorf("leader %x is not a running member", lead)
}

// Kill sends SIGKILL to member i and waits until it is reaped. Killing a
// member that is down does nothing.
func (c *Cluster) Kill(tb testing.TB, i int) {
	tb.Helper()
	c.signal(i, syscall.SIGKILL)
	c.wait(i)
}

// stopTimeout is how long Stop waits after SIGTERM before it uses SIGKILL.
const stopTimeout = 10 * time.Second

// Stop sends SIGTERM to member i, so it shuts down cleanly (a leader hands
// over leadership first), and waits until it is reaped. It fails tb if the
// member needs SIGKILL after 10s.
func (c *Cluster) Stop(tb testing.TB, i int) {
	tb.Helper()
	c.signal(i, syscall.SIGTERM)
	c.mu.Lock()
	p := c.members[i].proc
	c.mu.Unlock()
	if p == nil {
		return
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		c.Kill(tb, i)
		tb.Fatalf("etcdtest: member %d ignored SIGTERM for %v%s", i, stopTimeout, c.logTails())
	}
}

// Restart starts member i again, after Kill or Stop, with the same data
// directory and ports, so it rejoins as the member it was. It waits until
// the member answers clients, which etcd does only once it has joined a
// quorum: restart enough members for one before waiting on the last. Whether
// it has caught up is for the test to check (Leader, or a serializable read
// at Endpoint(i)).
func (c *Cluster) Restart(tb testing.TB, i int) {
	tb.Helper()
	if c.running(i) {
		tb.Fatalf("etcdtest: restart member %d: still running", i)
	}
	if err := c.launch(i, "existing"); err != nil {
		tb.Fatalf("etcdtest: restart: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.StartTimeout)
	defer cancel()
	// The member ID comes from the data directory, so it is unchanged.
	if _, err := c.waitAnswer(ctx, i); err != nil {
		tb.Fatalf("etcdtest: restart: %v%s", err, c.logTails())
	}
}

// Running reports whether member i's process is alive.
func (c *Cluster) Running(i int) bool { return c.running(i) }

func (c *Cluster) running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[i].proc.running()
}

func (c *Cluster) signal(i int, sig syscall.Signal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.members[i].proc; p.running() {
		// An error means it exited meanwhile; wait sees to the rest.
		_ = p.cmd.Process.Signal(sig)
	}
}

func (c *Cluster) wait(i int) {
	c.mu.Lock()
	p := c.members[i].proc
	c.mu.Unlock()
	if p != nil {
		<-p.done
	}
}

func (c *Cluster) logPath(i int) string { return filepath.Join(c.members[i].dir, "etcd.log") }

// MemberLog returns everything member i wrote, across restarts; each run
// starts with a line "=== etcdtest: <command line>".
func (c *Cluster) MemberLog(i int) string {
	b, err := os.ReadFile(c.logPath(i))
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	return string(b)
}

// logTailLines is how much of each member's log goes into a failure.
const logTailLines = 25

func (c *Cluster) logTail(i int) string {
	lines := strings.SplitAfter(c.MemberLog(i), "\n")
	return strings.Join(lines[max(0, len(lines)-logTailLines):], "")
}

func (c *Cluster) logTails() string {
	c.tailsShown.Store(true)
	var b strings.Builder
	for i := range c.members {
		fmt.Fprintf(&b, "\n--- member %d (%s) log tail:\n%s", i, c.members[i].clientURL, c.logTail(i))
	}
	return b.String()
}
