//go:build linux

package disk

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestReleaseStaysInMapping grows the file past bbolt's AllocSize, where
// bbolt makes the file longer than its mapping, and checks that what
// ReleaseMapped drops lies inside the mapping: MADV_DONTNEED on the
// anonymous memory after it would zero it (this once crashed the process).
func TestReleaseStaysInMapping(t *testing.T) {
	dir := t.TempDir()
	d := openInternal(t, dir, Options{})
	// 56 MiB in one commit: bbolt maps 64 MiB and makes the file 16 MiB
	// longer than the pages it holds.
	vals := map[string][]byte{}
	for i := range 224 {
		vals[fmt.Sprintf("job@%d", i)] = bytes.Repeat([]byte{byte(i)}, 256<<10)
	}
	if err := d.Import(vals, "test"); err != nil {
		t.Fatal(err)
	}

	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	err = d.db.View(func(tx *bolt.Tx) error {
		data, size := mappedSpan(tx)
		start, end := mappingAt(t, data)
		if int64(end-start) >= fi.Size() {
			t.Fatalf("the file (%d bytes) fits its mapping (%d bytes): the case under test did not happen", fi.Size(), end-start)
		}
		if data+uintptr(size) > end {
			t.Errorf("span %#x+%d ends past the mapping's end %#x", data, size, end)
		}
		if size < 56<<20 {
			t.Errorf("span of %d bytes misses the stored pages", size)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	if err := d.ReleaseMapped(); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := d.ForEach(func(v []byte) error {
		if len(v) != 256<<10 || bytes.Count(v, v[:1]) != len(v) {
			return fmt.Errorf("value of %d bytes changed", len(v))
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != len(vals) {
		t.Fatalf("read %d values after the release, want %d", n, len(vals))
	}
}

// mappingAt returns the mapping in /proc/self/maps that starts at addr.
func mappingAt(t *testing.T, addr uintptr) (start, end uintptr) {
	t.Helper()
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rng, _, _ := strings.Cut(sc.Text(), " ")
		lo, hi, _ := strings.Cut(rng, "-")
		s, err1 := strconv.ParseUint(lo, 16, 64)
		e, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil && uintptr(s) == addr {
			return uintptr(s), uintptr(e)
		}
	}
	t.Fatalf("no mapping starts at %#x", addr)
	return 0, 0
}
