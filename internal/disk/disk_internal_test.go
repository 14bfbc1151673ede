package disk

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openInternal(t *testing.T, dir string, opts Options) *DB {
	t.Helper()
	d, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func values(t *testing.T, d *DB) []string {
	t.Helper()
	var out []string
	if err := d.ForEach(func(v []byte) error {
		out = append(out, string(v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// waitUntil polls cond for up to 5s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// TestBadWriteFailsAlone puts a write that bbolt refuses (an empty key) in
// one commit with good writes: only it fails, and the storage stays healthy.
func TestBadWriteFailsAlone(t *testing.T) {
	d := openInternal(t, t.TempDir(), Options{})
	queue := func(key string) chan error {
		r := &request{op: opPut, key: key, value: []byte("v" + key), done: make(chan error, 1)}
		d.reqs <- r
		return r.done
	}
	// Hold the committer in the commit of a first write, so that the
	// writes after it queue up and share the next commit. (Whichever
	// commits they end up in, only the bad one may fail.)
	d.dbMu.Lock()
	plug := queue("plug")
	waitUntil(t, "the committer takes the first write", func() bool { return len(d.reqs) == 0 })
	time.Sleep(10 * time.Millisecond) // until it waits for the lock
	var good []chan error
	for i := range 5 {
		good = append(good, queue(fmt.Sprint("before", i)))
	}
	bad := queue("") // bbolt: key required
	for i := range 5 {
		good = append(good, queue(fmt.Sprint("after", i)))
	}
	d.dbMu.Unlock()

	if err := <-plug; err != nil {
		t.Fatal(err)
	}
	if err := <-bad; err == nil {
		t.Error("the write with an empty key succeeded")
	}
	for i, done := range good {
		if err := <-done; err != nil {
			t.Errorf("good write %d failed with the bad one: %v", i, err)
		}
	}
	if err := d.Healthy(); err != nil {
		t.Errorf("a write refused by itself made the storage unhealthy: %v", err)
	}
	if n := len(values(t, d)); n != 11 {
		t.Errorf("%d values stored, want 11", n)
	}
}

// TestCloseDuringSlowCommit closes the database while a write is being
// committed, slowly: the write's outcome is what happened on disk.
func TestCloseDuringSlowCommit(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d.dbMu.Lock() // the commit cannot finish until released
	saved := make(chan error, 1)
	go func() { saved <- d.Save("a", []byte("x")) }()
	waitUntil(t, "the committer takes the write", func() bool { return len(d.reqs) == 0 })
	time.Sleep(50 * time.Millisecond) // the write is queued or taken: either must work
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	time.Sleep(1500 * time.Millisecond) // longer than any timeout would wait
	d.dbMu.Unlock()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	saveErr := <-saved

	d = openInternal(t, dir, Options{})
	stored := len(values(t, d)) == 1
	if stored != (saveErr == nil) {
		t.Errorf("Save returned %v, but the value is on disk: %v", saveErr, stored)
	}
}

// TestCompactionReopenFailure makes the reopen after a compaction fail:
// the storage reports it, refuses writes meanwhile, and works again as soon
// as the file can be opened, without losing anything.
func TestCompactionReopenFailure(t *testing.T) {
	d := openInternal(t, t.TempDir(), Options{ProbeInterval: 10 * time.Millisecond})
	value := makeWasteful(t, d, 20, 1<<20, 1)
	var failing atomic.Bool
	failing.Store(true)
	var attempts atomic.Int64
	d.open = func(path string) (*bolt.DB, error) {
		if failing.Load() {
			attempts.Add(1)
			return nil, errors.New("injected open failure")
		}
		return openBolt(path)
	}
	if err := d.CompactIfWasteful(); err == nil {
		t.Fatal("compaction with a failing reopen succeeded")
	}
	if err := d.Healthy(); err == nil {
		t.Error("healthy while the file is closed")
	}
	if err := d.Save("during", []byte("y")); err == nil {
		t.Error("a write succeeded while the file is closed")
	}
	if err := d.ForEach(func([]byte) error { return nil }); err == nil {
		t.Error("ForEach succeeded while the file is closed")
	}
	waitUntil(t, "the probe retries", func() bool { return attempts.Load() >= 3 })

	failing.Store(false)
	waitUntil(t, "the storage is healthy again", func() bool { return d.Healthy() == nil })
	if err := d.Save("after", []byte("z")); err != nil {
		t.Fatalf("write after the file could be opened again: %v", err)
	}
	if got := values(t, d); len(got) != 2 || got[0] != string(value) || got[1] != "z" {
		t.Errorf("%d values after recovery, want the remaining group and the new one", len(got))
	}
}

// BenchmarkCheckpointPages writes what a checkpoint transaction writes at
// 1M series, 16 group values of 7 KiB among 10,000, into files of 4 KiB
// and 16 KiB pages (see pageSize). The difference is in B/op: with 4 KiB
// pages every value's two-page leaf is a fresh buffer. Without fsync, to
// measure the CPU and the allocation alone.
//
//	go test -run='^$' -bench=CheckpointPages -benchmem ./internal/disk/
func BenchmarkCheckpointPages(b *testing.B) {
	value := bytes.Repeat([]byte("7 KiB group value "), 7<<10/18)
	for _, size := range []int{4 << 10, 16 << 10} {
		b.Run(fmt.Sprintf("page=%dKiB", size>>10), func(b *testing.B) {
			db, err := openBoltPages(b.TempDir()+"/bench.db", size)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.NoSync = true
			const groups = 10_000
			key := func(i int) []byte { return fmt.Appendf(nil, "job=bench,instance=worker-%06d", i) }
			for i := 0; i < groups; i += 500 {
				if err := db.Update(func(tx *bolt.Tx) error {
					bk, err := tx.CreateBucketIfNotExists(groupsBucket)
					for j := i; j < i+500 && err == nil; j++ {
						err = bk.Put(key(j), value)
					}
					return err
				}); err != nil {
					b.Fatal(err)
				}
			}
			next := 0
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := db.Update(func(tx *bolt.Tx) error {
					bk := tx.Bucket(groupsBucket)
					for range 16 {
						next = (next + 7919) % groups // spread over the file, as pushes are
						if err := bk.Put(key(next), value); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCompactionRewritesPageSize: a file made before pageSize changed keeps
// its page size when opened (bbolt reads it from the file), and a
// compaction writes the new file with pageSize, keeping every value.
func TestCompactionRewritesPageSize(t *testing.T) {
	dir := t.TempDir()
	old, err := openBoltPages(filepath.Join(dir, FileName), 4<<10)
	if err != nil {
		t.Fatal(err)
	}
	if err := initialize(old); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	d := openInternal(t, dir, Options{})
	if got := d.db.Info().PageSize; got != 4<<10 {
		t.Fatalf("page size %d after opening a 4 KiB-page file", got)
	}
	value := makeWasteful(t, d, 600, 64<<10, 10) // ~40 MiB, so that compaction pays
	if err := d.CompactIfWasteful(); err != nil {
		t.Fatal(err)
	}
	if got := d.db.Info().PageSize; got != pageSize {
		t.Errorf("page size %d after compaction, want %d", got, pageSize)
	}
	if got := values(t, d); len(got) != 10 || got[0] != string(value) {
		t.Errorf("%d values after compaction, want 10", len(got))
	}
}

// makeWasteful saves n values of size bytes, lets them reach the file, and
// removes all but the last keep: a file that compaction shrinks. It
// returns the value.
func makeWasteful(t *testing.T, d *DB, n, size, keep int) []byte {
	t.Helper()
	value := bytes.Repeat([]byte("x"), size)
	for i := range n {
		if err := d.Save(fmt.Sprintf("g%04d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Len(); err != nil { // the values reach the file
		t.Fatal(err)
	}
	for i := range n - keep {
		if err := d.Remove(fmt.Sprintf("g%04d", i)); err != nil {
			t.Fatal(err)
		}
	}
	return value
}
