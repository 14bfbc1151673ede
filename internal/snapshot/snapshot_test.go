package snapshot_test

import (
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/pushgate/pushgate/internal/gobfile"
	"github.com/pushgate/pushgate/internal/snapshot"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/store/storetest"
)

// file writes a persistence file of three groups, of which job=b clashes
// with job=a (x is a gauge in one, a counter in the other).
func file(t *testing.T) string {
	t.Helper()
	groups := gobfile.Groups{}
	for _, g := range []struct{ key, text string }{
		{"job=a", "# TYPE x gauge\nx{g=\"a\"} 1\n"},
		{"job=b", "# TYPE x counter\nx{g=\"b\"} 1\n"},
		{"job=c", "# TYPE y gauge\ny 1\n"},
	} {
		s := store.New(store.Options{})
		if err := s.Push(storetest.Key(t, g.key), storetest.Families(t, g.text), true); err != nil {
			t.Fatal(err)
		}
		v, err := snapshot.Groups(s.View())
		if err != nil {
			t.Fatal(err)
		}
		maps.Copy(groups, v)
	}
	path := filepath.Join(t.TempDir(), "persistence.gob")
	if err := gobfile.Write(path, groups); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestImport(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	path := file(t)

	t.Run("write fails", func(t *testing.T) {
		s := store.New(store.Options{})
		failed := errors.New("disk full")
		n, err := snapshot.Import(s, path, func(map[string][]byte) error { return failed }, logger)
		if !errors.Is(err, failed) || n != 0 {
			t.Fatalf("Import = %d, %v; want 0 and the write's error", n, err)
		}
		if got := s.Stats().Groups; got != 0 {
			t.Errorf("%d groups in the store after a failed import", got)
		}
	})

	t.Run("one group rejected", func(t *testing.T) {
		s := store.New(store.Options{})
		var written map[string][]byte
		n, err := snapshot.Import(s, path, func(v map[string][]byte) error { written = v; return nil }, logger)
		if err != nil || n != 2 {
			t.Fatalf("Import = %d, %v; want 2 groups", n, err)
		}
		// In ID order: job=a is taken, job=b clashes with it.
		a, c := storetest.Key(t, "job=a").ID(), storetest.Key(t, "job=c").ID()
		if len(written) != 2 || written[a] == nil || written[c] == nil {
			t.Errorf("wrote %d groups, want job=a and job=c", len(written))
		}
		if s.Group(a) == nil || s.Group(c) == nil || s.Stats().Groups != 2 {
			t.Errorf("store holds %d groups, want job=a and job=c", s.Stats().Groups)
		}
		if _, err := os.Stat(path + ".rejected"); err != nil {
			t.Errorf("no copy of the file with the rejected group: %v", err)
		}
	})
}
