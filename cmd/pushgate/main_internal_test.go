package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pushgate/pushgate/internal/gobfile"
)

// A signal and /-/quit both end run without an error, and a push answered
// before the shutdown is in memory-only mode's last snapshot. (Whether a push
// still in flight at shutdown makes it too depends on the order of the
// interrupts, which this does not race for.)
func TestRunShutdown(t *testing.T) {
	t.Setenv("GOGC", "100") // leaves the test process's GC target alone
	for _, tc := range []struct {
		name string
		stop func(t *testing.T, addr string, cancel context.CancelFunc)
	}{
		{"signal", func(_ *testing.T, _ string, cancel context.CancelFunc) { cancel() }},
		{"quit", func(t *testing.T, addr string, _ context.CancelFunc) {
			mustDo(t, http.MethodPut, "http://"+addr+"/-/quit", "", http.StatusOK)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "persistence.gob")
			addr := freeAddr(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := start(ctx, "--web.listen-address="+addr, "--storage.in-memory", "--persistence.file="+file,
				"--persistence.interval=1h", "--web.enable-lifecycle")
			waitReady(t, addr, done)
			mustDo(t, http.MethodPut, "http://"+addr+"/metrics/job/j", "x 1\n", http.StatusOK)

			tc.stop(t, addr, cancel)
			if err := wait(t, done); err != nil {
				t.Fatalf("run = %v", err)
			}
			groups, err := gobfile.Read(file)
			if err != nil {
				t.Fatal(err)
			}
			if len(groups) != 1 {
				t.Fatalf("last snapshot holds %d groups, want the one pushed", len(groups))
			}
			for _, g := range groups {
				if g.Labels["job"] != "j" || g.Metrics["x"].GobbableMetricFamily == nil {
					t.Errorf("last snapshot holds %v, want job=j with x", g.Labels)
				}
			}
		})
	}
}

// A failed restore ends run with the restore's error, although the HTTP
// server and the signal actor are still running.
func TestRunRestoreFails(t *testing.T) {
	t.Setenv("GOGC", "100")
	file := filepath.Join(t.TempDir(), "persistence.gob")
	if err := os.WriteFile(file, []byte("not a persistence file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := wait(t, start(context.Background(), "--web.listen-address="+freeAddr(t), "--storage.in-memory", "--persistence.file="+file))
	if err == nil || !strings.Contains(err.Error(), "restore from --persistence.file") {
		t.Errorf("run = %v, want the restore's error", err)
	}
}

func start(ctx context.Context, args ...string) <-chan error {
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, io.Discard, io.Discard) }()
	return done
}

func wait(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("run did not return")
		return nil
	}
}

// waitReady waits until /-/ready answers 200, having seen /-/healthy answer
// 200 first.
func waitReady(t *testing.T, addr string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("run returned before ready: %v", err)
		default:
		}
		if r, err := http.Get("http://" + addr + "/-/ready"); err == nil {
			_ = r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("not ready in time")
}

func mustDo(t *testing.T, method, url, body string, want int) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if r.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, url, r.StatusCode, b, want)
	}
}

// freeAddr returns a local address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
