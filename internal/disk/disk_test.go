package disk_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/pushgate/pushgate/internal/disk"
)

func open(t testing.TB, dir string) *disk.DB {
	t.Helper()
	d, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func contents(t testing.TB, d *disk.DB) []string {
	t.Helper()
	var out []string
	if err := d.ForEach(func(v []byte) error {
		out = append(out, string(v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSaveRemoveSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir)
	for _, id := range []string{"a", "b", "c"} {
		if err := d.Save(id, []byte("value "+id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Save("b", []byte("value b2")); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove("c"); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove("never-there"); err != nil {
		t.Fatalf("removing an unknown key: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = open(t, dir)
	defer d.Close()
	if got, want := strings.Join(contents(t, d), ","), "value a,value b2"; got != want {
		t.Errorf("after reopen: %q, want %q", got, want)
	}
	if err := d.RemoveAll(); err != nil {
		t.Fatal(err)
	}
	if got := contents(t, d); len(got) != 0 {
		t.Errorf("after RemoveAll: %q", got)
	}
}

func TestConcurrentSaves(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	d, err := disk.Open(dir, disk.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- d.Save(fmt.Sprintf("g%03d", i), bytes.Repeat([]byte{byte(i)}, 4096))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Every write was committed by some commit; commits may be shared.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var writes uint64
	for _, mf := range mfs {
		if mf.GetName() == "pushgate_storage_commit_batch_size" {
			writes = uint64(mf.Metric[0].GetHistogram().GetSampleSum())
		}
	}
	if writes != n {
		t.Errorf("batch sizes add up to %d writes, want %d", writes, n)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = open(t, dir)
	defer d.Close()
	if got := len(contents(t, d)); got != n {
		t.Errorf("%d values after reopen, want %d", got, n)
	}
}

func TestWritesAfterCloseFail(t *testing.T) {
	d := open(t, t.TempDir())
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// At once, every time: nothing is queued that nobody will commit.
	start := time.Now()
	for range 20 {
		if err := d.Save("a", []byte("x")); !errors.Is(err, disk.ErrClosed) {
			t.Fatalf("Save after Close: err = %v, want ErrClosed", err)
		}
	}
	if err := d.Remove("a"); !errors.Is(err, disk.ErrClosed) {
		t.Fatalf("Remove after Close: err = %v, want ErrClosed", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("21 writes after Close took %v to fail", d)
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir)
	defer d.Close()
	_, err := disk.Open(dir, disk.Options{})
	if err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second Open: err = %v, want a lock error", err)
	}
}

func TestForEachDecoded(t *testing.T) {
	d := open(t, t.TempDir())
	defer d.Close()
	const n = 300 // several batches
	for i := range n {
		if err := d.Save(fmt.Sprintf("g%03d", i), []byte(fmt.Sprintf("value %03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	want := contents(t, d)
	decode := func(v []byte) (string, error) {
		switch string(v) {
		case "value 150":
			return "", errors.New("decode failed")
		}
		return string(v), nil
	}
	for _, tc := range []struct {
		name    string
		workers int
		// failApply is the value whose apply fails; "" for none.
		failApply string
		// applied is how many values are applied; wantErr and wantKey
		// the error and the key it names ("" for none).
		applied          int
		wantErr, wantKey string
	}{
		{name: "decode error stops at its value", workers: 4, applied: 150, wantErr: "decode failed", wantKey: `"g150"`},
		{name: "one worker", workers: 1, applied: 150, wantErr: "decode failed", wantKey: `"g150"`},
		{name: "no workers means one", workers: 0, applied: 150, wantErr: "decode failed", wantKey: `"g150"`},
		{name: "earlier apply error wins", workers: 4, failApply: "value 070", applied: 70, wantErr: "apply failed", wantKey: `"g070"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := disk.ForEachDecoded(d, tc.workers, decode, func(v string) error {
				if v == tc.failApply {
					return errors.New("apply failed")
				}
				got = append(got, v)
				return nil
			})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.wantKey) || !strings.Contains(err.Error(), "offset") {
				t.Errorf("err = %v, want %q naming key %s and its offset", err, tc.wantErr, tc.wantKey)
			}
			if !slices.Equal(got, want[:tc.applied]) {
				t.Errorf("applied %d values, want the first %d in key order", len(got), tc.applied)
			}
		})
	}
	t.Run("panic in apply", func(t *testing.T) {
		// Recovered like ForEach's, once the workers are done.
		n := 0
		err := disk.ForEachDecoded(d, 4, func(v []byte) (string, error) { return string(v), nil }, func(string) error {
			if n++; n == 10 {
				panic("apply broke")
			}
			return nil
		})
		if err == nil || !strings.Contains(err.Error(), "apply broke") {
			t.Errorf("err = %v, want the panic as an error", err)
		}
	})
	t.Run("all", func(t *testing.T) {
		var got []string
		if err := disk.ForEachDecoded(d, 3, func(v []byte) (string, error) { return string(v), nil }, func(v string) error {
			got = append(got, v)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("got %d values, want the %d of ForEach in its order", len(got), len(want))
		}
		if l, err := d.Len(); err != nil || l != n {
			t.Errorf("Len = %d, %v; want %d", l, err, n)
		}
	})
}

func TestForEachLocatesBadValues(t *testing.T) {
	d := open(t, t.TempDir())
	defer d.Close()
	if err := d.Save("grp", []byte("payload")); err != nil {
		t.Fatal(err)
	}
	bad := errors.New("bad value")
	err := d.ForEach(func([]byte) error { return bad })
	if !errors.Is(err, bad) {
		t.Fatalf("err = %v, want wrapped %v", err, bad)
	}
	for _, want := range []string{disk.FileName, `"grp"`, "offset"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	// The offset points at the value in the file.
	var off int64
	if _, scanErr := fmt.Sscanf(err.Error()[strings.Index(err.Error(), "offset "):], "offset %d", &off); scanErr != nil {
		t.Fatal(scanErr)
	}
	b, rerr := os.ReadFile(d.Path())
	if rerr != nil {
		t.Fatal(rerr)
	}
	if off <= 0 || int(off)+7 > len(b) || string(b[off:off+7]) != "payload" {
		t.Errorf("offset %d does not point at the value", off)
	}
}

func TestUnknownFormatVersionIsRefused(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, disk.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		return b.Put([]byte("format_version"), []byte("99"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := disk.Open(dir, disk.Options{}); err == nil || !strings.Contains(err.Error(), "version") {
		t.Fatalf("err = %v, want a version error", err)
	}
}

func TestImport(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir)
	if p, err := d.Imported(); err != nil || p != "" {
		t.Fatalf("fresh storage: imported %q, %v", p, err)
	}
	// One value bbolt refuses (an empty key): nothing is written.
	if err := d.Import(map[string][]byte{"a": []byte("1"), "": []byte("2"), "b": []byte("3")}, "/x/y.gob"); err == nil {
		t.Fatal("import with an empty key succeeded")
	}
	if p, err := d.Imported(); err != nil || p != "" || len(contents(t, d)) != 0 {
		t.Fatalf("failed import left marker %q (%v) and values %q", p, err, contents(t, d))
	}
	if err := d.Healthy(); err != nil {
		t.Errorf("a refused import made the storage unhealthy: %v", err)
	}
	if err := d.Import(map[string][]byte{"a": []byte("1"), "b": []byte("3")}, "/x/y.gob"); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = open(t, dir)
	defer d.Close()
	if p, err := d.Imported(); err != nil || p != "/x/y.gob" {
		t.Fatalf("imported %q, %v", p, err)
	}
	if got := strings.Join(contents(t, d), ","); got != "1,3" {
		t.Errorf("imported values %q, want 1,3", got)
	}
}

// TestLongKeys stores group IDs longer than bbolt's largest key.
func TestLongKeys(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir)
	long := func(c string) string { return strings.Repeat(c, bolt.MaxKeySize+1) }
	ids := []string{long("a"), long("b"), long("a") + "x", strings.Repeat("c", bolt.MaxKeySize)}
	for i, id := range ids {
		if err := d.Save(id, []byte(fmt.Sprint("v", i))); err != nil {
			t.Fatalf("save %d-byte ID: %v", len(id), err)
		}
	}
	if err := d.Save(ids[0], []byte("v0 again")); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = open(t, dir)
	defer d.Close()
	got := contents(t, d)
	slices.Sort(got)
	if want := "v0 again,v2,v3"; strings.Join(got, ",") != want {
		t.Errorf("values %q, want %s", got, want)
	}
}

func TestCompactionShrinksFile(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir)
	value := bytes.Repeat([]byte("x"), 64<<10)
	for i := range 600 { // ~40 MiB
		if err := d.Save(fmt.Sprintf("g%04d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	// A read brings the file up to date with the log: the values reach
	// it before they are removed.
	if _, err := d.Len(); err != nil {
		t.Fatal(err)
	}
	for i := range 590 {
		if err := d.Remove(fmt.Sprintf("g%04d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(filepath.Join(dir, disk.FileName))
	if err != nil {
		t.Fatal(err)
	}
	d = open(t, dir)
	defer d.Close()
	if after, _ := os.Stat(filepath.Join(dir, disk.FileName)); after.Size() != before.Size() {
		t.Fatalf("Open changed the file size (%d -> %d): it must not write before the data is read", before.Size(), after.Size())
	}
	if err := d.CompactIfWasteful(); err != nil { // most of the file is free pages
		t.Fatal(err)
	}
	after, err := os.Stat(filepath.Join(dir, disk.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if after.Size()*4 > before.Size() {
		t.Errorf("file is %d bytes after compaction, %d before", after.Size(), before.Size())
	}
	if got := len(contents(t, d)); got != 10 {
		t.Errorf("%d values after compaction, want 10", got)
	}
	if err := d.Save("new", []byte("y")); err != nil {
		t.Errorf("write after compaction: %v", err)
	}
}

// BenchmarkSaveParallel measures durable writes of 20 KiB group values from
// concurrent writers sharing commits (fsync). Run with:
//
//	go test -run=^$ -bench=SaveParallel -benchtime=3s ./internal/disk/
func BenchmarkSaveParallel(b *testing.B) {
	d := open(b, b.TempDir())
	defer d.Close()
	value := bytes.Repeat([]byte("v"), 20<<10)
	var n sync.Mutex
	i := 0
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Lock()
			i++
			id := fmt.Sprintf("g%05d", i%10000)
			n.Unlock()
			if err := d.Save(id, value); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAppendFsync is the floor of a hand-written log for comparison
// with BenchmarkSaveParallel: one append of a 20 KiB record and one
// fdatasync per write, no batching. Run with:
//
//	go test -run=^$ -bench='SaveParallel|AppendFsync' -benchtime=3s ./internal/disk/
func BenchmarkAppendFsync(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	value := bytes.Repeat([]byte("v"), 20<<10)
	b.SetBytes(int64(len(value)))
	for b.Loop() {
		if _, err := f.Write(value); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestOpenDoesNotWriteExistingFile(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir)
	if err := d.Save("a", bytes.Repeat([]byte("x"), 10000)); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, disk.FileName)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d = open(t, dir)
	_ = contents(t, d)
	if _, err := d.Imported(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("opening and reading the storage changed the file")
	}
}

func TestTruncatedFileIsAnError(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir)
	for i := range 200 {
		if err := d.Save(fmt.Sprintf("g%03d", i), bytes.Repeat([]byte{byte(i)}, 8000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, disk.FileName)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{fi.Size() / 2, fi.Size() - 4096, 8192} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			d := t.TempDir()
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, disk.FileName), b[:size], 0o600); err != nil {
				t.Fatal(err)
			}
			// Either an error naming the file, or (when only unused space
			// at the end was cut) every value intact; never a crash.
			n := 0
			db, err := disk.Open(d, disk.Options{})
			if err == nil {
				err = db.ForEach(func([]byte) error { n++; return nil })
				// The same with the decoding on other goroutines,
				// which must not crash on a fault either.
				m := 0
				errDecoded := disk.ForEachDecoded(db, 4, func(v []byte) (int, error) { return len(v), nil }, func(int) error { m++; return nil })
				if (err == nil) != (errDecoded == nil) || m != n {
					t.Errorf("truncated to %d bytes: ForEachDecoded = %v after %d values, ForEach = %v after %d", size, errDecoded, m, err, n)
				}
				_ = db.Close()
			}
			if err == nil && n == 200 {
				return
			}
			if err == nil || !strings.Contains(err.Error(), disk.FileName) {
				t.Fatalf("truncated to %d bytes: err = %v, %d values read, want an error naming the file", size, err, n)
			}
		})
	}
}
