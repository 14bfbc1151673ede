package etcdtest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/pushgate/pushgate/internal/etcdtest"
)

// TestFailover runs the failures replication must survive against every
// etcd version we support: losing the leader, a member rejoining, and
// losing then regaining quorum.
func TestFailover(t *testing.T) {
	for _, bin := range etcdtest.Binaries(t) {
		t.Run(bin.Name, func(t *testing.T) {
			start := time.Now()
			c := etcdtest.Start(t, etcdtest.Options{Binary: bin.Path})
			t.Logf("%d members up in %v", c.Members(), time.Since(start).Round(time.Millisecond))
			cli := c.Client(t)
			put(t, cli, "k", "v0")

			// The leader dies: the other two elect one of themselves and
			// still accept writes.
			old := leader(t, c)
			c.Kill(t, old)
			if now := leader(t, c); now == old {
				t.Fatalf("leader is still the killed member %d", old)
			}
			put(t, cli, "k", "v1")

			// It comes back with its data and catches up on what it missed.
			c.Restart(t, old)
			waitLocalValue(t, c.Endpoint(old), "k", "v1")
			leader(t, c)

			// Two of three die: no quorum, so a write cannot commit.
			a, b := (old+1)%3, (old+2)%3
			c.Kill(t, a)
			c.Kill(t, b)
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			_, err := cli.Put(ctx, "k", "lost")
			cancel()
			if err == nil || ctx.Err() == nil {
				t.Fatalf("put without quorum: got %v, want a context timeout", err)
			}
			t.Logf("put without quorum: %v", err)

			// Quorum returns with the first restarted member.
			c.Restart(t, a)
			c.Restart(t, b)
			put(t, cli, "k", "v2")
			leader(t, c)
			waitLocalValue(t, c.Endpoint(b), "k", "v2")
			t.Logf("%s: done in %v", bin.Name, time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestMaxRequestBytes checks that the option reaches etcd: a put over the
// limit is refused.
func TestMaxRequestBytes(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 1, MaxRequestBytes: 64 << 10})
	cli := c.Client(t)
	put(t, cli, "small", strings.Repeat("x", 32<<10))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := cli.Put(ctx, "big", strings.Repeat("x", 128<<10))
	if err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("put of 128 KiB with a 64 KiB limit: got %v, want request too large", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts etcdtest.Options
		want string // substring of the error; "" means valid
	}{
		{"zero value", etcdtest.Options{}, ""},
		{"negative members", etcdtest.Options{Members: -1}, "members -1"},
		{"negative max request bytes", etcdtest.Options{MaxRequestBytes: -1}, "max request bytes"},
		{"election too short", etcdtest.Options{HeartbeatInterval: 100 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond}, "5 heartbeat intervals"},
		{"every problem at once", etcdtest.Options{Members: -1, MaxRequestBytes: -1}, "max request bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate: got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// put writes k=v, retrying for a while: right after a failure the client may
// first try a dead member, or the cluster may still be electing.
func put(t *testing.T, cli *clientv3.Client, k, v string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		_, err := cli.Put(ctx, k, v)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("put %s=%s: %v", k, v, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func leader(t *testing.T, c *etcdtest.Cluster) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	i, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// waitLocalValue waits until the member at endpoint holds k=v in its own
// copy: a serializable read is answered locally, so it shows whether that
// member has caught up, not what the leader knows.
func waitLocalValue(t *testing.T, endpoint, k, v string) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	deadline := time.Now().Add(10 * time.Second)
	var got string
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		resp, err := cli.Get(ctx, k, clientv3.WithSerializable())
		cancel()
		if err == nil && len(resp.Kvs) == 1 {
			got = string(resp.Kvs[0].Value)
			if got == v {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s=%q, want %q (last error: %v)", endpoint, k, got, v, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
