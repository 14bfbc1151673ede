package etcd_test

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pushgate/pushgate/internal/etcd"
	"github.com/pushgate/pushgate/internal/etcdtest"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/store/storetest"
)

func newPrefix() string {
	b := make([]byte, 6)
	_, _ = crand.Read(b)
	return "/test-" + hex.EncodeToString(b) + "/"
}

// replica is a store following a journal on prefix, as a gateway replica
// runs: loaded, then following the change stream until the test ends.
func replica(t *testing.T, c *etcdtest.Cluster, prefix string, opts store.Options) (*store.Store, *etcd.Journal) {
	t.Helper()
	return replicaOf(t, etcd.Config{Endpoints: c.Endpoints(), Prefix: prefix}, opts, nil)
}

// replicaOf is replica with a journal configuration and a registry for its
// metrics.
func replicaOf(t *testing.T, cfg etcd.Config, opts store.Options, reg prometheus.Registerer) (*store.Store, *etcd.Journal) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	j, err := etcd.Open(cfg, etcd.Options{Logger: logger, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	opts.Shared = j
	opts.Logger = logger
	st := store.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	if err := j.Load(ctx, st); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = j.Follow(ctx, st) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := j.Close(); err != nil {
			t.Error(err)
		}
	})
	return st, j
}

func TestStoreSuite(t *testing.T) {
	// One cluster for the whole suite; every store has its own prefix.
	c := etcdtest.Start(t, etcdtest.Options{})
	storetest.Run(t, func(t *testing.T, opts store.Options) storetest.Store {
		st, _ := replica(t, c, newPrefix(), opts)
		return st
	})
}

// TestReplicasConverge runs random conflicting writes through several
// replicas of one prefix: afterwards all hold the same groups, and what
// they hold loads into a fresh store as a restart would.
func TestReplicasConverge(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	prefix := newPrefix()
	clock := &storetest.Clock{}
	clock.Set(1700000000)
	opts := store.Options{Now: clock.Now}
	var replicas []*store.Store
	for range 3 {
		st, _ := replica(t, c, prefix, opts)
		replicas = append(replicas, st)
	}
	bodies := []string{
		"# TYPE m counter\nm 1\n",
		"# TYPE m gauge\nm 2\n",
		"m_sum 3\n",
		"# TYPE m summary\nm_sum 1\nm_count 2\n",
		"# TYPE x gauge\nx{a=\"1\"} 1\n",
		"# TYPE x gauge\nx{instance=\"i\"} 1\n",
		"# TYPE y histogram\ny_bucket{le=\"+Inf\"} 1\ny_sum 1\ny_count 1\n",
		"y_count 4\n",
	}
	keys := []string{"job=a", "job=b", "job=a,instance=i", "job=c", "job=d,instance="}
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted, rejected := 0, 0
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for range 60 {
				st := replicas[r.IntN(len(replicas))]
				key := storetest.Key(t, keys[r.IntN(len(keys))])
				var err error
				switch op := r.IntN(10); {
				case op == 0:
					err = st.Delete(key)
				default:
					err = st.Push(key, storetest.Families(t, bodies[r.IntN(len(bodies))]), op%2 == 0)
				}
				mu.Lock()
				if err == nil {
					accepted++
				} else {
					rejected++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d writes accepted, %d rejected", accepted, rejected)
	// What etcd holds once the writes stopped, as a fresh replica loads it
	// (a replica that just answered may not have applied the others' last
	// writes yet, so none of them is the reference).
	fresh, _ := replica(t, c, prefix, opts)
	want := storetest.Text(t, fresh.View(), nil)
	deadline := time.Now().Add(10 * time.Second)
	for i, st := range replicas {
		for storetest.Text(t, st.View(), nil) != want && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if got := storetest.Text(t, st.View(), nil); got != want {
			t.Errorf("replica %d differs:\n%s\nwant:\n%s", i, got, want)
		}
	}
	// The union loads into a fresh store through the checked path.
	resp, err := c.Client(t).Get(context.Background(), prefix+"g/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	local := store.New(store.Options{Now: clock.Now})
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for _, kv := range resp.Kvs {
		v, err := dec.DecodeAll(kv.Value[8:], nil) // past the write nonce
		if err != nil {
			t.Fatal(err)
		}
		if err := local.Replay(v); err != nil {
			t.Errorf("group %q does not load into a fresh store: %v", kv.Key, err)
		}
	}
	if got := storetest.Text(t, local.View(), nil); got != want {
		t.Errorf("store loaded from etcd's values differs:\n%s\nwant:\n%s", got, want)
	}
	if accepted == 0 || rejected == 0 {
		t.Errorf("want both accepted and rejected writes, got %d and %d", accepted, rejected)
	}
}

// testWriter logs to the test.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestEtcdLimits: a group whose write would exceed the request limit is
// refused as a limit (413 upstream), and nothing changes.
func TestEtcdLimits(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 1})
	cfg := etcd.Config{Endpoints: c.Endpoints(), Prefix: newPrefix(), MaxRequestBytes: 8192}
	st, _ := replicaOf(t, cfg, store.Options{}, nil)
	key := storetest.Key(t, "job=big")
	if err := st.Push(key, storetest.Families(t, "small 1\n"), true); err != nil {
		t.Fatal(err)
	}
	var body strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&body, "big{i=\"%d\",filler=\"%x\"} %d\n", i, i*7919, i)
	}
	err := st.Push(key, storetest.Families(t, body.String()), true)
	var limit *store.LimitError
	if !errors.As(err, &limit) || limit.Kind != store.StoredBytes {
		t.Fatalf("big push: %v, want a StoredBytes limit", err)
	}
	if g := st.Group(key.ID()); g == nil || g.Families.Get("small") == nil || g.Families.Get("big") != nil {
		t.Errorf("group changed by a refused push")
	}
}

// TestEtcdImport: an import goes into an empty prefix once, never into one
// with groups, and an interrupted one is completed.
func TestEtcdImport(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 1})
	cli := c.Client(t)
	ctx := context.Background()
	values := func(t *testing.T, jobs ...string) map[string][]byte {
		src := store.New(store.Options{})
		for _, job := range jobs {
			if err := src.Push(storetest.Key(t, "job="+job), storetest.Families(t, "m_"+job+" 1\n"), true); err != nil {
				t.Fatal(err)
			}
		}
		// The values a single-node storage would hold.
		j := &memJournal{m: map[string][]byte{}}
		again := store.New(store.Options{Journal: j})
		for _, g := range src.View().Groups {
			if err := again.Push(g.Key, storetest.Families(t, "m_"+g.Key.Labels()[0].Value+" 1\n"), true); err != nil {
				t.Fatal(err)
			}
		}
		return j.m
	}
	t.Run("once", func(t *testing.T) {
		prefix := newPrefix()
		j, err := etcd.Open(etcd.Config{Endpoints: c.Endpoints(), Prefix: prefix}, etcd.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		done, err := j.Import(ctx, values(t, "a", "b"), "file x")
		if err != nil || !done {
			t.Fatalf("first import: %v, %v", done, err)
		}
		done, err = j.Import(ctx, values(t, "c"), "file x")
		if err != nil || done {
			t.Fatalf("second import: %v, %v; want nothing done", done, err)
		}
		st, _ := replica(t, c, prefix, store.Options{})
		if n := len(st.View().Groups); n != 2 {
			t.Errorf("%d groups after import, want 2", n)
		}
	})
	t.Run("not into groups", func(t *testing.T) {
		prefix := newPrefix()
		st, j := replica(t, c, prefix, store.Options{})
		if err := st.Push(storetest.Key(t, "job=live"), storetest.Families(t, "x 1\n"), true); err != nil {
			t.Fatal(err)
		}
		done, err := j.Import(ctx, values(t, "a"), "file y")
		if err != nil || done {
			t.Fatalf("import into a prefix with groups: %v, %v", done, err)
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		prefix := newPrefix()
		// A claim without the done mark: a crash mid-import.
		if _, err := cli.Put(ctx, prefix+"meta/imported", "pending file z"); err != nil {
			t.Fatal(err)
		}
		j, err := etcd.Open(etcd.Config{Endpoints: c.Endpoints(), Prefix: prefix}, etcd.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		if done, err := j.Import(ctx, values(t, "a"), "file other"); err != nil || done {
			t.Fatalf("import of another source over a pending one: %v, %v", done, err)
		}
		if done, err := j.Import(ctx, values(t, "a", "b", "c"), "file z"); err != nil || !done {
			t.Fatalf("completing the import: %v, %v", done, err)
		}
		resp, err := cli.Get(ctx, prefix+"g/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil || resp.Count != 3 {
			t.Fatalf("%v groups (%v), want 3", resp.Count, err)
		}
	})
}

// memJournal is a store.Journal in memory, for values as a disk holds them.
type memJournal struct{ m map[string][]byte }

func (j *memJournal) Save(id string, v []byte) error { j.m[id] = bytes.Clone(v); return nil }
func (j *memJournal) Remove(id string) error         { delete(j.m, id); return nil }
func (j *memJournal) RemoveAll() error               { clear(j.m); return nil }

// TestEtcdReloadAfterCompaction: a replica whose change stream needs
// revisions etcd compacted away loads everything again, and converges.
func TestEtcdReloadAfterCompaction(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 1})
	prefix := newPrefix()
	writer, _ := replica(t, c, prefix, store.Options{})
	// The lagging replica: loaded, but not following yet.
	reg := prometheus.NewRegistry()
	j, err := etcd.Open(etcd.Config{Endpoints: c.Endpoints(), Prefix: prefix}, etcd.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	lagging := store.New(store.Options{Shared: j})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := j.Load(ctx, lagging); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := writer.Push(storetest.Key(t, fmt.Sprintf("job=j%d", i%5)), storetest.Families(t, fmt.Sprintf("v %d\n", i)), true); err != nil {
			t.Fatal(err)
		}
	}
	if err := writer.Delete(storetest.Key(t, "job=j0")); err != nil {
		t.Fatal(err)
	}
	cli := c.Client(t)
	resp, err := cli.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	go func() { _ = j.Follow(ctx, lagging) }()
	want := storetest.Text(t, writer.View(), nil)
	deadline := time.Now().Add(10 * time.Second)
	for storetest.Text(t, lagging.View(), nil) != want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := storetest.Text(t, lagging.View(), nil); got != want {
		t.Errorf("lagging replica after reload:\n%s\nwant:\n%s", got, want)
	}
	if n := counter(t, reg, "pushgate_etcd_reloads_total"); n < 1 {
		t.Errorf("reloads = %v, want at least 1", n)
	}
}

// TestEtcdQuorumLoss: without a quorum nothing is acknowledged and the
// journal reports itself unhealthy; both recover without a restart.
func TestEtcdQuorumLoss(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	cfg := etcd.Config{Endpoints: c.Endpoints(), Prefix: newPrefix()}
	cfg.RequestTimeout = time.Second
	st, j := replicaOf(t, cfg, store.Options{}, nil)
	key := storetest.Key(t, "job=q")
	if err := st.Push(key, storetest.Families(t, "q 1\n"), true); err != nil {
		t.Fatal(err)
	}
	c.Kill(t, 1)
	c.Kill(t, 2)
	if err := st.Push(key, storetest.Families(t, "q 2\n"), true); !errors.Is(err, store.ErrStorage) {
		t.Fatalf("push without quorum: %v, want a storage error", err)
	}
	waitFor(t, 10*time.Second, "unhealthy without quorum", func() bool { return j.Healthy() != nil })
	if g := st.Group(key.ID()); g == nil {
		t.Fatal("group gone")
	}
	c.Restart(t, 1)
	c.Restart(t, 2)
	waitFor(t, 20*time.Second, "healthy again", func() bool { return j.Healthy() == nil })
	if err := st.Push(key, storetest.Families(t, "q 3\n"), true); err != nil {
		t.Fatalf("push after recovery: %v", err)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func counter(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestAcknowledgedWritesSurvive: writes to shared groups through several
// replicas; afterwards each group holds what one of its last acknowledged
// writes left (a write is last if no other acknowledged write to the group
// started after it ended), on every replica.
func TestAcknowledgedWritesSurvive(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	prefix := newPrefix()
	var replicas []*store.Store
	for range 3 {
		st, _ := replica(t, c, prefix, store.Options{})
		replicas = append(replicas, st)
	}
	type op struct {
		start, end time.Time
		value      int // 0: delete
	}
	var mu sync.Mutex
	acked := map[string][]op{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range 40 {
				group := fmt.Sprintf("g%d", r.IntN(4))
				key := storetest.Key(t, "job="+group)
				st := replicas[r.IntN(len(replicas))]
				o := op{start: time.Now(), value: w*1000 + i + 1}
				var err error
				if r.IntN(6) == 0 {
					o.value = 0
					err = st.Delete(key)
				} else {
					err = st.Push(key, storetest.Families(t, fmt.Sprintf("v %d\n", o.value)), true)
				}
				o.end = time.Now()
				if err == nil {
					mu.Lock()
					acked[group] = append(acked[group], o)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for group, ops := range acked {
		var allowed []int
		for _, o := range ops {
			last := true
			for _, p := range ops {
				if p.start.After(o.end) {
					last = false
					break
				}
			}
			if last {
				allowed = append(allowed, o.value)
			}
		}
		key := storetest.Key(t, "job="+group)
		for i, st := range replicas {
			got := 0
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				got = 0
				if g := st.Group(key.ID()); g != nil && g.Families.Get("v") != nil {
					got = int(valueOf(t, g))
				}
				if slices.Contains(allowed, got) {
					break
				}
			}
			if !slices.Contains(allowed, got) {
				t.Errorf("replica %d: group %s holds %d, want one of the last acknowledged writes %v", i, group, got, allowed)
			}
		}
	}
}

func valueOf(t *testing.T, g *store.Group) float64 {
	t.Helper()
	text, err := g.Families.Get("v").AppendText(nil)
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(strings.TrimSpace(string(text)))
	v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestExpiryOnReplicas: with expiry, every replica runs its timer, yet a
// group is deleted once, and a group re-pushed meanwhile is kept.
func TestExpiryOnReplicas(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 1})
	prefix := newPrefix()
	var replicas []*store.Store
	var regs []*prometheus.Registry
	for range 3 {
		reg := prometheus.NewRegistry()
		st, _ := replicaOf(t, etcd.Config{Endpoints: c.Endpoints(), Prefix: prefix}, store.Options{ExpireAfter: 500 * time.Millisecond}, nil)
		st.RegisterMetrics(reg)
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go st.RunExpiry(ctx)
		replicas = append(replicas, st)
		regs = append(regs, reg)
	}
	gone, kept := storetest.Key(t, "job=gone"), storetest.Key(t, "job=kept")
	if err := replicas[0].Push(gone, storetest.Families(t, "x 1\n"), true); err != nil {
		t.Fatal(err)
	}
	if err := replicas[1].Push(kept, storetest.Families(t, "y 1\n"), true); err != nil {
		t.Fatal(err)
	}
	// Keep renewing "kept" through another replica than the one that
	// created it, past the first deadline.
	for range 8 {
		time.Sleep(150 * time.Millisecond)
		if err := replicas[2].Push(kept, storetest.Families(t, "y 2\n"), true); err != nil {
			t.Fatal(err)
		}
	}
	for i, st := range replicas {
		waitFor(t, 5*time.Second, "expired group gone", func() bool { return st.Group(gone.ID()) == nil })
		if st.Group(kept.ID()) == nil {
			t.Errorf("replica %d: renewed group expired", i)
		}
	}
	total := 0.0
	for _, reg := range regs {
		total += counter(t, reg, "pushgate_groups_expired_total")
	}
	if total != 1 {
		t.Errorf("groups expired, summed over replicas: %v, want 1", total)
	}
}
