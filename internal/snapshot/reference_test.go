package snapshot_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pushgate/pushgate/internal/gobfile"
	"github.com/pushgate/pushgate/internal/snapshot"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/store/storetest"
)

// referenceFile was written by prometheus/pushgateway v1.5.1; gobfile's
// tests say which pushes it holds. It lives with the format's package.
const referenceFile = "../gobfile/testdata/reference-v1.5.1.good.gob"

var discard = slog.New(slog.DiscardHandler)

// copyReference puts a copy of the reference's file in a fresh directory,
// since Import may write next to it.
func copyReference(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(referenceFile)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "persistence.gob")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestImportReference pins the switch from the reference: every group of
// its file comes back with its families and its last push time, and the
// file is left as it was.
func TestImportReference(t *testing.T) {
	path := copyReference(t)
	before, _ := os.ReadFile(path)
	s := store.New(store.Options{})
	var written map[string][]byte
	n, err := snapshot.Import(s, path, func(v map[string][]byte) error { written = v; return nil }, discard)
	if err != nil || n != 3 {
		t.Fatalf("Import = %d, %v; want 3 groups", n, err)
	}
	if len(written) != 3 {
		t.Errorf("durable write got %d groups, want all 3 in one call", len(written))
	}
	want := map[string][]string{
		"instance=host-1,job=batch": {"jobs_done", "latency_seconds", "size_bytes", "temperature"},
		"job=backup,path=/var/tmp":  {"backup_ok"},
		"job=sensor":                {"temperature"},
	}
	for key, fams := range want {
		g := s.Group(storetest.Key(t, key).ID())
		if g == nil {
			t.Errorf("group %s not imported", key)
			continue
		}
		for _, name := range fams {
			if g.Families.Get(name) == nil {
				t.Errorf("group %s: family %s missing", key, name)
			}
		}
		// The file was written in 2026 by a real gateway: the time of the
		// last push is a plausible Unix time, and no push failed.
		if g.PushTime.Year() < 2020 || !g.FailTime.IsZero() || !g.LastPushSuccessful() {
			t.Errorf("group %s: push time %v, failure time %v", key, g.PushTime, g.FailTime)
		}
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("Import changed the file")
	}
	if _, err := os.Stat(path + ".rejected"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a .rejected copy exists though nothing was rejected: %v", err)
	}
}

// TestImportUnreadable pins that a file that cannot be read imports
// nothing and is an error (never an empty start that would overwrite it),
// while a missing file is a first start.
func TestImportUnreadable(t *testing.T) {
	good, err := os.ReadFile(referenceFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content []byte // nil: no file
		wantErr bool
	}{
		{"missing", nil, false},
		{"empty", []byte{}, true},
		{"truncated", good[:len(good)-10], true},
		{"garbage", []byte("garbage"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "persistence.gob")
			if tt.content != nil {
				if err := os.WriteFile(path, tt.content, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			// A temporary file of an interrupted write is cleared either way.
			stale := path + ".in_progress.42"
			if err := os.WriteFile(stale, []byte("torn"), 0o600); err != nil {
				t.Fatal(err)
			}
			s := store.New(store.Options{})
			wrote := false
			n, err := snapshot.Import(s, path, func(map[string][]byte) error { wrote = true; return nil }, discard)
			if (err != nil) != tt.wantErr || n != 0 {
				t.Errorf("Import = %d, %v; want 0 and error %v", n, err, tt.wantErr)
			}
			if tt.wantErr && (wrote || s.Stats().Groups != 0) {
				t.Errorf("a failed import wrote %v and left %d groups", wrote, s.Stats().Groups)
			}
			if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("stale temporary file left: %v", err)
			}
		})
	}
}

// TestPersister pins the memory-only mode: the file is rewritten only when
// the store changed, atomically, in a form Import reads back, and once more
// when Run stops.
func TestPersister(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "persistence.gob")
	now := time.Unix(1700000000, 250000000)
	s := store.New(store.Options{Now: func() time.Time { return now }})
	p := snapshot.NewPersister(s, path, time.Hour, discard)

	if err := p.Persist(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Persist wrote a file though nothing changed: %v", err)
	}

	if err := s.Push(storetest.Key(t, "job=a"), storetest.Families(t, "# TYPE x gauge\nx 1\n"), true); err != nil {
		t.Fatal(err)
	}
	if err := p.Persist(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// Unchanged store: the file is not rewritten (same inode and time).
	if err := p.Persist(); err != nil {
		t.Fatal(err)
	}
	if fi2, err := os.Stat(path); err != nil || !os.SameFile(fi, fi2) || !fi2.ModTime().Equal(fi.ModTime()) {
		t.Errorf("file rewritten without a change: %v", err)
	}

	// Run persists once more when stopped: a push just before shutdown is
	// not lost.
	if err := s.Push(storetest.Key(t, "job=b"), storetest.Families(t, "# TYPE y counter\ny 2\n"), true); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	des, _ := os.ReadDir(dir)
	if len(des) != 1 {
		var names []string
		for _, de := range des {
			names = append(names, de.Name())
		}
		t.Errorf("directory holds %q, want only the file", names)
	}

	// What was written reads back as the same groups, push times included.
	back := store.New(store.Options{})
	if n, err := snapshot.Import(back, path, nil, discard); err != nil || n != 2 {
		t.Fatalf("Import of the persisted file = %d, %v; want 2", n, err)
	}
	if got, want := storetest.Text(t, back.View(), nil), storetest.Text(t, s.View(), nil); got != want {
		t.Errorf("persisted and imported:\n%s\nwant:\n%s", got, want)
	}
}

// A failed write is retried at the next tick: the persister does not
// believe it wrote what it did not.
func TestPersisterRetriesAfterFailure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "later")
	path := filepath.Join(dir, "persistence.gob")
	s := store.New(store.Options{})
	p := snapshot.NewPersister(s, path, time.Hour, discard)
	if err := s.Push(storetest.Key(t, "job=a"), storetest.Families(t, "# TYPE x gauge\nx 1\n"), true); err != nil {
		t.Fatal(err)
	}
	if err := p.Persist(); err == nil || !strings.Contains(err.Error(), "persistence file") {
		t.Fatalf("Persist into a missing directory: %v, want an error", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := p.Persist(); err != nil {
		t.Fatal(err)
	}
	if groups, err := gobfile.Read(path); err != nil || len(groups) != 1 {
		t.Errorf("file after the retry: %d groups, %v", len(groups), err)
	}
}
