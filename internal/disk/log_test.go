package disk

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type testRecord struct {
	seq        uint64
	op         op
	key, value string
}

func encodeRecords(recs []testRecord) []byte {
	var buf []byte
	for _, r := range recs {
		buf, _ = appendRecord(buf, r.seq, r.op, r.key, []byte(r.value))
	}
	return buf
}

func parseRecords(data []byte) ([]testRecord, int) {
	var out []testRecord
	end := parseLog(data, func(seq uint64, o op, key, value []byte) {
		out = append(out, testRecord{seq, o, string(key), string(value)})
	})
	return out, end
}

func TestParseLog(t *testing.T) {
	recs := []testRecord{
		{7, opPut, "job@base64@", "value one"},
		{8, opDelete, "gone", ""},
		{9, opPut, "k", string(bytes.Repeat([]byte("v"), 300))},
	}
	whole := encodeRecords(recs)
	lastStart := len(encodeRecords(recs[:2]))
	for _, tc := range []struct {
		name string
		data []byte
		want int // records read
	}{
		{"whole", whole, 3},
		{"empty", nil, 0},
		{"torn header", whole[:lastStart+5], 2},
		{"torn payload", whole[:len(whole)-1], 2},
		{"zeros after", append(slices.Clone(whole), make([]byte, 64)...), 3},
		{"flipped bit in the last", func() []byte { b := slices.Clone(whole); b[len(b)-3] ^= 1; return b }(), 2},
		{"flipped sequence number", func() []byte { b := slices.Clone(whole); b[lastStart+8] ^= 1; return b }(), 2},
		{"a gap in the numbers", encodeRecords([]testRecord{recs[0], recs[2]}), 1},
		{"an older record after", append(slices.Clone(whole), encodeRecords(recs[:1])...), 3},
		{"unknown op", encodeRecords([]testRecord{{1, opProbe, "k", ""}}), 0},
		{"deletion with a value", encodeRecords([]testRecord{{1, opDelete, "k", "v"}}), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, end := parseRecords(tc.data)
			if !slices.Equal(got, recs[:min(tc.want, len(got))]) {
				t.Errorf("records %v, want the first %d of %v", got, tc.want, recs)
			}
			if len(got) != tc.want {
				t.Fatalf("%d records read, want %d", len(got), tc.want)
			}
			if wantEnd := len(encodeRecords(got)); end != wantEnd {
				t.Errorf("stopped at %d, want %d (after the records read)", end, wantEnd)
			}
		})
	}
}

// FuzzParseLog: any bytes parse without a panic into records that encode
// back to exactly the bytes before where parsing stopped.
//
//	go test -run='^$' -fuzz=FuzzParseLog -fuzztime=1m ./internal/disk/
func FuzzParseLog(f *testing.F) {
	f.Add(encodeRecords([]testRecord{{1, opPut, "a", "b"}, {2, opDelete, "a", ""}}))
	f.Add([]byte{})
	f.Add(make([]byte, 40))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, end := parseRecords(data)
		if end < 0 || end > len(data) {
			t.Fatalf("stopped at %d of %d bytes", end, len(data))
		}
		if again := encodeRecords(got); !bytes.Equal(again, data[:end]) {
			t.Fatalf("records %v do not encode back to the bytes they were read from", got)
		}
	})
}

func TestReadLogs(t *testing.T) {
	older := encodeRecords([]testRecord{{4, opPut, "a", "a4"}, {5, opPut, "b", "b5"}, {6, opDelete, "c", ""}})
	newer := encodeRecords([]testRecord{{7, opPut, "a", "a7"}, {8, opPut, "d", "d8"}})
	for _, tc := range []struct {
		name    string
		files   [2][]byte
		applied uint64
		want    changes
		last    uint64
		ignored bool
	}{
		{"nothing", [2][]byte{}, 3, changes{}, 3, false},
		{"both files, newer first", [2][]byte{newer, older}, 3,
			changes{"a": []byte("a7"), "b": []byte("b5"), "c": nil, "d": []byte("d8")}, 8, false},
		{"older file checkpointed", [2][]byte{older, newer}, 6,
			changes{"a": []byte("a7"), "d": []byte("d8")}, 8, false},
		{"all checkpointed", [2][]byte{older, newer}, 8, changes{}, 8, false},
		{"partly checkpointed file", [2][]byte{older, nil}, 5, changes{"c": nil}, 6, false},
		{"a torn end", [2][]byte{older, newer[:len(newer)-1]}, 3,
			changes{"a": []byte("a7"), "b": []byte("b5"), "c": nil}, 7, true},
		{"a missing file between", [2][]byte{nil, newer}, 3, changes{}, 3, true},
		{"zeros written ahead", [2][]byte{append(slices.Clone(older), make([]byte, 4096)...), nil}, 3,
			changes{"a": []byte("a4"), "b": []byte("b5"), "c": nil}, 6, false},
		{"a reused file's older records", [2][]byte{append(slices.Clone(newer), older...), nil}, 6,
			changes{"a": []byte("a7"), "d": []byte("d8")}, 8, false},
		// The new records end 5 bytes into an older record: its tail, then
		// more older records, is what the file's previous use left.
		{"new records ending inside an older one", [2][]byte{append(slices.Clone(newer), older[5:]...), nil}, 6,
			changes{"a": []byte("a7"), "d": []byte("d8")}, 8, false},
		{"a torn header", [2][]byte{append(slices.Clone(older), newer[:recordHeaderSize-2]...), nil}, 3,
			changes{"a": []byte("a4"), "b": []byte("b5"), "c": nil}, 6, true},
		{"a torn record after a reused file's records", [2][]byte{append(slices.Clone(newer), encodeRecords([]testRecord{{9, opPut, "e", "e9"}})[:20]...), nil}, 6,
			changes{"a": []byte("a7"), "d": []byte("d8")}, 8, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := readLogs(tc.files, tc.applied)
			if !maps.EqualFunc(r.changes, tc.want, bytes.Equal) || r.last != tc.last {
				t.Errorf("changes %q up to %d, want %q up to %d", r.changes, r.last, tc.want, tc.last)
			}
			if (r.torn != "" || r.gap != "") != tc.ignored {
				t.Errorf("ignored %q and %q, want something ignored: %v", r.torn, r.gap, tc.ignored)
			}
		})
	}
}

// crashImage copies the storage files of the open d as they are on disk
// now, which is what a crash at this moment would leave: no checkpoint is
// half-way through its transaction while dbMu is held.
func crashImage(t *testing.T, d *DB) string {
	t.Helper()
	d.dbMu.Lock()
	defer d.dbMu.Unlock()
	dst := t.TempDir()
	for _, name := range append([]string{FileName}, LogFileNames[:]...) {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(d.path), name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestCrashReplaysLog: acknowledged writes that only the log holds are
// there after a crash, merged with the file's in key order, before and
// after the replay is written into the file; reading them writes nothing.
func TestCrashReplaysLog(t *testing.T) {
	d := openInternal(t, t.TempDir(), Options{})
	for i := range 5 {
		if err := d.Save(fmt.Sprint("g", i), []byte(fmt.Sprint("old", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Len(); err != nil { // into the file
		t.Fatal(err)
	}
	for _, w := range []struct{ key, value string }{{"g1", ""}, {"g3", "new3"}, {"a", "newA"}, {"g9", "new9"}, {"g4", ""}} {
		var err error
		if w.value == "" {
			err = d.Remove(w.key)
		} else {
			err = d.Save(w.key, []byte(w.value))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"newA", "old0", "old2", "new3", "new9"} // in key order
	dir := crashImage(t, d)
	dbBefore, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}

	c := openInternal(t, dir, Options{})
	var got []string
	if err := c.ForEach(func(v []byte) error { got = append(got, string(v)); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("after the crash: %q, want %q", got, want)
	}
	if n, err := c.Len(); err != nil || n != len(want) {
		t.Errorf("Len %d (%v), want %d", n, err, len(want))
	}
	var decoded []string
	if err := ForEachDecoded(c, 2, func(v []byte) (string, error) { return string(v), nil },
		func(s string) error { decoded = append(decoded, s); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(decoded, want) {
		t.Errorf("ForEachDecoded: %q, want %q", decoded, want)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, FileName)); !bytes.Equal(after, dbBefore) {
		t.Error("reading the storage after a crash wrote the database file")
	}

	// Once the read succeeded, the replay goes into the file, after
	// CompactIfWasteful answered.
	if err := c.CompactIfWasteful(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the replay is written into the file", func() bool { return !c.unsettled() })
	if got := values(t, c); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("after the replay was written: %q, want %q", got, want)
	}

	// A write goes on from there; a clean stop leaves no log.
	if err := c.Save("z", []byte("newZ")); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range LogFileNames {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() != 0 {
			t.Errorf("%s after a clean stop: %v, %v", name, fi.Size(), err)
		}
	}
	c = openInternal(t, dir, Options{})
	if got, want := values(t, c), []string{"new3", "new9", "newA", "newZ", "old0", "old2"}; !slices.Equal(got, want) {
		t.Errorf("after a clean stop: %q, want %q", got, want)
	}
}

// TestTornLogEnd: a record cut off by a crash is ignored and the ones
// before it kept; later writes follow them and are kept too.
func TestTornLogEnd(t *testing.T) {
	d := openInternal(t, t.TempDir(), Options{})
	for i := range 3 {
		if err := d.Save(fmt.Sprint("g", i), []byte(fmt.Sprint("v", i))); err != nil {
			t.Fatal(err)
		}
	}
	dir := crashImage(t, d)
	log := filepath.Join(dir, LogFileNames[d.log.cur])
	torn := encodeRecords([]testRecord{{d.log.seq + 1, opPut, "g7", "never acknowledged"}})
	f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(torn[:len(torn)-4]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	c := openInternal(t, dir, Options{})
	if got, want := values(t, c), []string{"v0", "v1", "v2"}; !slices.Equal(got, want) {
		t.Errorf("after a torn write: %q, want %q", got, want)
	}
	if err := c.Save("g8", []byte("v8")); err != nil {
		t.Fatal(err)
	}
	dir2 := crashImage(t, c)
	e := openInternal(t, dir2, Options{})
	if got, want := values(t, e), []string{"v0", "v1", "v2", "v8"}; !slices.Equal(got, want) {
		t.Errorf("after a second crash: %q, want %q", got, want)
	}
}

// TestFailedAppendIsNeverReplayed: a write whose append failed is refused,
// the storage recovers at the next write, and the refused write does not
// come back after a crash even though its bytes may have reached the log.
func TestFailedAppendIsNeverReplayed(t *testing.T) {
	d := openInternal(t, t.TempDir(), Options{ProbeInterval: 10 * time.Millisecond})
	if err := d.Save("a", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	taken := d.log.seq + 1 // the number the failing write takes
	// The committer is idle between writes; swap its file for a closed
	// one under dbMu, which its next commit takes.
	d.dbMu.Lock()
	real := d.log.files[d.log.cur]
	closed, err := os.Open(real.Name())
	if err != nil {
		d.dbMu.Unlock()
		t.Fatal(err)
	}
	closed.Close()
	d.log.files[d.log.cur] = closed
	d.dbMu.Unlock()
	if err := d.Save("b", []byte("refused")); err == nil {
		t.Fatal("a write to a closed log succeeded")
	}
	if d.Healthy() == nil {
		t.Error("healthy after a failed append")
	}
	// What a crash could leave: the refused record complete in the log.
	d.dbMu.Lock()
	d.log.files[d.log.cur] = real
	rec := encodeRecords([]testRecord{{taken, opPut, "b", "refused"}})
	if _, err := real.WriteAt(rec, d.log.size); err != nil {
		d.dbMu.Unlock()
		t.Fatal(err)
	}
	d.dbMu.Unlock()
	waitUntil(t, "the storage recovers", func() bool { return d.Healthy() == nil })
	if err := d.Save("c", []byte("after")); err != nil {
		t.Fatal(err)
	}
	c := openInternal(t, crashImage(t, d), Options{})
	if got, want := values(t, c), []string{"after", "kept"}; !slices.Equal(got, want) {
		t.Errorf("after a crash: %q, want %q", got, want)
	}
}

// TestRefusedWriteFailsAlone: a value bbolt could never hold is refused
// before it reaches the log, where it would fail every checkpoint.
func TestRefusedWriteFailsAlone(t *testing.T) {
	d := openInternal(t, t.TempDir(), Options{})
	if err := d.Save("", []byte("x")); err == nil {
		t.Error("a write with an empty key succeeded")
	}
	if err := d.Save("a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Len(); err != nil {
		t.Fatalf("checkpoint after a refused write: %v", err)
	}
	if err := d.Healthy(); err != nil {
		t.Error(err)
	}
}

// TestCrashImagesThroughRotations writes from several goroutines while
// checkpoints rotate and reuse the log files every few milliseconds, and
// takes crash images along the way: in each, every key is in the state of
// its last acknowledged write before the image or of a write made while
// the image was taken, never older, and never anything not written.
func TestCrashImagesThroughRotations(t *testing.T) {
	d := openInternal(t, t.TempDir(), Options{CheckpointInterval: 3 * time.Millisecond})
	const writers, keysPerWriter = 4, 10
	type keyState struct {
		history        []string // values written, in order; "" = deleted
		acked, started int      // indexes into history
	}
	var mu sync.Mutex
	keys := map[string]*keyState{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d-k%02d", w, i%keysPerWriter)
				value := ""
				if i%7 != 3 {
					value = fmt.Sprintf("%s=%d:%s", key, i, strings.Repeat("x", i%3000))
				}
				mu.Lock()
				ks := keys[key]
				if ks == nil {
					ks = &keyState{history: []string{""}}
					keys[key] = ks
				}
				ks.history = append(ks.history, value)
				ks.started = len(ks.history) - 1
				mu.Unlock()
				var err error
				if value == "" {
					err = d.Remove(key)
				} else {
					err = d.Save(key, []byte(value))
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ks.acked = ks.started
				mu.Unlock()
			}
		}()
	}
	for range 8 {
		time.Sleep(40 * time.Millisecond)
		mu.Lock()
		acked := map[string]int{}
		for k, ks := range keys {
			acked[k] = ks.acked
		}
		mu.Unlock()
		dir := crashImage(t, d)
		c, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		if err := c.ForEach(func(v []byte) error {
			key, _, _ := strings.Cut(string(v), "=")
			got[key] = string(v)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		for k, ks := range keys {
			from, ok := acked[k]
			if !ok {
				from = 0
			}
			if !slices.Contains(ks.history[from:ks.started+1], got[k]) {
				t.Errorf("%s: image has %.40q; acknowledged before it: %.40q", k, got[k], ks.history[from])
			}
		}
		mu.Unlock()
	}
	close(stop)
	wg.Wait()
}
