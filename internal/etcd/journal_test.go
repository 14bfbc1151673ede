package etcd_test

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

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
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	j, err := etcd.Open(etcd.Config{Endpoints: c.Endpoints(), Prefix: prefix}, etcd.Options{Logger: logger})
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
	want := storetest.Text(t, replicas[0].View(), nil)
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
	fresh, _ := replica(t, c, prefix, opts)
	if got := storetest.Text(t, fresh.View(), nil); got != want {
		t.Errorf("fresh replica differs:\n%s\nwant:\n%s", got, want)
	}
	resp, err := c.Client(t).Get(context.Background(), prefix+"g/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	local := store.New(store.Options{Now: clock.Now})
	for _, kv := range resp.Kvs {
		if err := local.Replay(kv.Value[8:]); err != nil { // past the write nonce
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
