package e2e

// Storage edges: grouping keys longer than the storage engine's key limit,
// writes during the restore, and the import of a reference persistence file
// interrupted by a full disk or a crash.

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// bigKeyPath is a push path whose grouping key is about 45 KB: each label
// value stays under --push.max-label-value-length (16384 bytes), the key
// as a whole is longer than bbolt's largest key (32 KiB).
func bigKeyPath(i int) string {
	v := func(c string) string { return fmt.Sprintf("%s%05d", strings.Repeat(c, 15000), i) }
	return "/metrics/job/bigkey/instance/" + v("i") + "/a/" + v("a") + "/b/" + v("b")
}

// TestBigGroupingKeys pushes groups with very long grouping keys while
// ordinary pushes run: the long keys are stored like any other, and they
// never fail an ordinary push or make the gateway unready.
func TestBigGroupingKeys(t *testing.T) {
	t.Parallel()
	requirePushgate(t, "durable storage")
	const (
		big      = 20
		ordinary = 600
		workers  = 30
	)
	dir := filepath.Join(t.TempDir(), "storage")
	g := startDurable(t, dir)

	var (
		bigStatus  = make([]int, big)
		failed     atomic.Int64 // ordinary pushes not answered 200
		firstError atomic.Value
		unready    atomic.Int64 // polls of /-/ready that did not answer 200
		next       atomic.Int64
		wg         sync.WaitGroup
	)
	stopPolling := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-stopPolling:
				return
			default:
			}
			if r, err := g.tryDo(http.MethodGet, "/-/ready", nil, nil); err != nil || r.status != http.StatusOK {
				unready.Add(1)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w < big {
				r, err := g.tryDo(http.MethodPut, bigKeyPath(w), nil, []byte("bigkey_gauge 1\n"))
				if err == nil {
					bigStatus[w] = r.status
				}
			}
			for {
				i := int(next.Add(1)) - 1
				if i >= ordinary {
					return
				}
				path := fmt.Sprintf("/metrics/job/ordinary_%03d", i)
				r, err := g.tryDo(http.MethodPut, path, nil, gaugeBody("ordinary_gauge", 5, float64(i)))
				if err == nil && r.status != http.StatusOK {
					err = fmt.Errorf("PUT %s: got %s", path, r)
				}
				if err != nil {
					failed.Add(1)
					firstError.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	wg.Wait()
	close(stopPolling)
	<-polled
	t.Logf("%d of %d ordinary pushes failed, /-/ready answered non-200 %d times; long-key pushes answered %v",
		failed.Load(), ordinary, unready.Load(), bigStatus)
	if n := failed.Load(); n != 0 {
		t.Errorf("%d ordinary pushes failed next to long-key pushes; first: %v", n, firstError.Load())
	}
	if n := unready.Load(); n != 0 {
		t.Errorf("/-/ready answered non-200 %d times while long-key pushes were refused", n)
	}
	for i, s := range bigStatus {
		if s != http.StatusOK {
			t.Errorf("long-key push %d answered %d, want 200", i, s)
		}
	}

	// They survive a restart, and a delete removes them for good.
	mustStatus(t, g, http.MethodDelete, bigKeyPath(0), nil, http.StatusAccepted)
	want := g.pushed(t)
	if n := strings.Count(want, "bigkey_gauge{"); n != big-1 {
		t.Errorf("%d long-key groups exposed, want %d", n, big-1)
	}
	g.terminate(t)
	g = startDurable(t, dir)
	if got := g.pushed(t); got != want {
		t.Errorf("after a restart (- before, + after):\n%s", diffLines(want, got))
	}
}

// TestWipeWaitsForRestore sends the admin wipe while the stored groups are
// being restored: it must wait (503) like every other write, or the memory
// would keep groups the disk no longer has.
func TestWipeWaitsForRestore(t *testing.T) {
	t.Parallel()
	requirePushgate(t, "durable storage")
	const groups, series = 2000, 50
	dir := filepath.Join(t.TempDir(), "storage")
	g := startDurable(t, dir)
	pushParallel(t, g, groups, 8, func(i int) (string, []byte) {
		return fmt.Sprintf("/metrics/job/wipe_%04d", i), gaugeBody("wipe_gauge", series, float64(i))
	})
	g.terminate(t)

	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	g = &gateway{addr: addr}
	g.process = startProcess(t, "subject", subjectBin, "--web.listen-address="+addr, "--storage.path="+dir, "--web.enable-admin-api")
	statuses := map[int]int{}
	deadline := time.Now().Add(readyTimeout)
	for {
		if g.exited() || time.Now().After(deadline) {
			t.Fatalf("not ready after %v; output:\n%s", readyTimeout, g.out)
		}
		wipe, err := g.tryDo(http.MethodPut, "/api/v1/admin/wipe", nil, nil)
		if err != nil {
			continue // not listening yet
		}
		statuses[wipe.status]++
		ready, err := g.tryDo(http.MethodGet, "/-/ready", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case wipe.status == http.StatusServiceUnavailable:
			requireOneLine(t, "wipe during the restore", wipe, "not ready")
		case ready.status != http.StatusOK:
			t.Errorf("wipe answered %s while /-/ready still answered %d afterwards", wipe, ready.status)
		}
		if ready.status == http.StatusOK {
			break
		}
	}
	t.Logf("wipes during the restore answered %v", statuses)
	if len(statuses) == 0 {
		t.Log("no wipe reached the gateway during the restore")
	}
	// What is served is what is stored.
	want := g.pushed(t)
	g.terminate(t)
	g = startDurable(t, dir)
	if got := g.pushed(t); got != want {
		t.Errorf("served before the restart and stored differ (- served, + stored): %d vs %d lines\n%s",
			strings.Count(want, "\n"), strings.Count(got, "\n"), truncate(diffLines(want, got), 3000))
	}
}

// referenceFile writes a persistence file in the reference's format with
// the given groups, using pushgate's memory-only mode, and returns what was
// served from it. Label values and samples are random, so that the storage
// cannot compress them much.
func referenceFile(t *testing.T, file string, groups, series int) string {
	t.Helper()
	g := startGateway(t, subject, "--storage.in-memory", "--persistence.file="+file)
	pushParallel(t, g, groups, 8, func(i int) (string, []byte) {
		rng := rand.New(rand.NewPCG(uint64(i), 1))
		var b bytes.Buffer
		b.WriteString("# TYPE import_gauge gauge\n")
		for range series {
			fmt.Fprintf(&b, "import_gauge{id=\"%016x%016x\"} %g\n", rng.Uint64(), rng.Uint64(), rng.Float64())
		}
		return fmt.Sprintf("/metrics/job/import_%04d", i), b.Bytes()
	})
	want := g.pushed(t)
	g.terminate(t)
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("the persistence file was not written: %v", err)
	}
	return want
}

// TestImportOnFullDisk imports a persistence file that does not fit on the
// disk: the start fails and imports nothing, and once there is room the
// next start imports all of it.
func TestImportOnFullDisk(t *testing.T) {
	t.Parallel()
	requirePushgate(t, "durable storage")
	file := filepath.Join(t.TempDir(), "reference.gob")
	want := referenceFile(t, file, 400, 200) // ~15 MB in the storage
	mnt := mountTmpfs(t, "4m")
	dir := filepath.Join(mnt, "storage")

	out := runToExit(t, "--storage.path="+dir, "--persistence.file="+file)
	requireNoCrash(t, out)
	if !strings.Contains(out, "no space left on device") {
		t.Errorf("output should give the cause; got:\n%s", truncate(out, 3000))
	}
	if err := remount(t, mnt, "size=64m"); err != nil {
		t.Fatal(err)
	}
	g := startDurable(t, dir, "--persistence.file="+file)
	if got := g.pushed(t); got != want {
		t.Errorf("after the disk has room (- file, + imported): %d vs %d lines\n%s",
			strings.Count(want, "\n"), strings.Count(got, "\n"), truncate(diffLines(want, got), 3000))
	}
}

// TestImportCrash kills pushgate while it imports a persistence file: the
// next start has all of it, never a part.
func TestImportCrash(t *testing.T) {
	t.Parallel()
	requirePushgate(t, "durable storage")
	file := filepath.Join(t.TempDir(), "reference.gob")
	want := referenceFile(t, file, 1000, 50)
	dir := filepath.Join(t.TempDir(), "storage")
	db := filepath.Join(dir, storageFile)

	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	g := &gateway{addr: addr}
	g.process = startProcess(t, "subject", subjectBin, "--web.listen-address="+addr, "--storage.path="+dir, "--persistence.file="+file)
	// Kill it once the import has written a part (the whole is ~2 MB).
	for deadline := time.Now().Add(readyTimeout); ; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) || g.exited() {
			t.Fatalf("the import never wrote; output:\n%s", g.out)
		}
		if fi, err := os.Stat(db); err == nil && fi.Size() > 256<<10 {
			break
		}
	}
	g.sigkill(t)
	if fi, err := os.Stat(db); err == nil {
		t.Logf("killed with %d bytes in %s", fi.Size(), db)
	}

	g = startDurable(t, dir, "--persistence.file="+file)
	if fi, err := os.Stat(db); err == nil {
		t.Logf("%d bytes after the import", fi.Size())
	}
	if got := g.pushed(t); got != want {
		t.Errorf("after a crash during the import (- file, + imported): %d vs %d lines\n%s",
			strings.Count(want, "\n"), strings.Count(got, "\n"), truncate(diffLines(want, got), 3000))
	}
}
