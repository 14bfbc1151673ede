package startup_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgate/pushgate/internal/disk"
	"github.com/pushgate/pushgate/internal/startup"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/store/storetest"
)

// The groups of testdata/reference.good.gob, as Key.String spells them.
const (
	fixtureA = `{job="fixture_a"}`
	fixtureB = `{instance="i1", job="fixture_b"}`
	other    = `{job="other"}`
)

// start is one start of the gateway on the same storage: open, restore,
// then optionally change the store, then close.
type start struct {
	// file is the fixture in testdata copied to the persistence file before
	// the start; "" starts without --persistence.file.
	file string
	// push and remove are grouping keys (storetest.Key syntax) pushed to
	// and deleted from the store after the restore; "" for none.
	push, remove string
	// wantErr is part of the restore's error; "" expects none.
	wantErr string
	// wantGroups are the groups after the restore, as Key.String spells
	// them.
	wantGroups []string
	// wantLog is part of what the start logged; "" checks nothing.
	wantLog string
}

func TestDiskImportOnce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		starts []start
	}{{
		name: "fresh storage imports the file",
		starts: []start{
			{file: "reference.good.gob", wantGroups: []string{fixtureA, fixtureB}, wantLog: "imported reference persistence file"},
		},
	}, {
		// Otherwise a group deleted after the switch would come back at
		// every restart.
		name: "second start ignores the file",
		starts: []start{
			{file: "reference.good.gob", remove: "job=fixture_a", wantGroups: []string{fixtureA, fixtureB}},
			{file: "reference.good.gob", wantGroups: []string{fixtureB}, wantLog: "persistence file was imported before; ignoring it"},
		},
	}, {
		name: "storage with data is not imported",
		starts: []start{
			{push: "job=other", wantGroups: []string{}},
			{file: "reference.good.gob", wantGroups: []string{other}, wantLog: `level=WARN msg="storage has data; not importing --persistence.file"`},
		},
	}, {
		// Nothing recorded the file as imported, so the next start, with a
		// good file, imports it.
		name: "truncated file imports nothing",
		starts: []start{
			{file: "truncated.bad.gob", wantErr: "import --persistence.file (nothing was imported)", wantGroups: []string{}},
			{file: "reference.good.gob", wantGroups: []string{fixtureA, fixtureB}},
		},
	}, {
		name: "text file imports nothing",
		starts: []start{
			{file: "text.bad.gob", wantErr: "import --persistence.file (nothing was imported)", wantGroups: []string{}},
			{wantGroups: []string{}},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			dir, file := filepath.Join(tmp, "storage"), filepath.Join(tmp, "persistence.gob")
			for i, s := range tc.starts {
				opts := startup.Options{Dir: dir}
				if s.file != "" {
					opts.PersistenceFile = file
					copyFixture(t, s.file, file)
				}
				got, log := restart(t, opts, s)
				if want := slices.Sorted(slices.Values(s.wantGroups)); !slices.Equal(got, want) {
					t.Errorf("start %d: groups %q, want %q", i+1, got, want)
				}
				if !strings.Contains(log, s.wantLog) {
					t.Errorf("start %d: log lacks %q:\n%s", i+1, s.wantLog, log)
				}
				if s.file != "" && !bytes.Equal(readFile(t, file), readFile(t, filepath.Join("testdata", s.file))) {
					t.Errorf("start %d: the persistence file changed; durable storage must leave it untouched", i+1)
				}
			}
		})
	}
}

func TestMemoryRestore(t *testing.T) {
	for _, tc := range []struct {
		name   string
		starts []start
	}{{
		name:   "no file starts empty",
		starts: []start{{push: "job=other", wantGroups: []string{}}},
	}, {
		name: "file restored and rewritten at shutdown",
		starts: []start{
			{file: "reference.good.gob", push: "job=other", remove: "job=fixture_a", wantGroups: []string{fixtureA, fixtureB}, wantLog: "restored persisted groups"},
			// Copies nothing: "" keeps the file as the first start left it.
			{wantGroups: []string{fixtureB, other}, wantLog: "restored persisted groups"},
		},
	}, {
		// A corrupt file is an error, not an empty start that the next
		// snapshot would write over it.
		name: "truncated file is an error",
		starts: []start{
			{file: "truncated.bad.gob", wantErr: "restore from --persistence.file", wantGroups: []string{}},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "persistence.gob")
			hasFile := false
			for i, s := range tc.starts {
				if s.file != "" {
					copyFixture(t, s.file, file)
					hasFile = true
				}
				opts := startup.Options{InMemory: true, PersistenceInterval: time.Hour}
				if hasFile {
					opts.PersistenceFile = file
				}
				got, log := restart(t, opts, s)
				if want := slices.Sorted(slices.Values(s.wantGroups)); !slices.Equal(got, want) {
					t.Errorf("start %d: groups %q, want %q", i+1, got, want)
				}
				if !strings.Contains(log, s.wantLog) {
					t.Errorf("start %d: log lacks %q:\n%s", i+1, s.wantLog, log)
				}
				if s.wantErr != "" && !bytes.Equal(readFile(t, file), readFile(t, filepath.Join("testdata", s.file))) {
					t.Errorf("start %d: a failed restore changed the persistence file", i+1)
				}
			}
		})
	}
}

// restart opens the storage, restores it into a new store, applies s.push
// and s.remove, runs the storage briefly and closes it. It returns the groups
// right after the restore and what was logged.
func restart(t *testing.T, opts startup.Options, s start) (groups []string, log string) {
	t.Helper()
	var buf bytes.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	storage, err := startup.Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer func() {
		if err := storage.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	st := store.New(store.Options{Journal: storage.Journal(), Shared: storage.Shared()})
	err = storage.Restore(context.Background(), st)
	groups = groupKeys(st)
	switch {
	case s.wantErr == "" && err != nil:
		t.Fatalf("Restore: %v", err)
	case s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr)):
		t.Fatalf("Restore = %v, want an error with %q", err, s.wantErr)
	case err != nil:
		return groups, buf.String()
	}
	// Run goes on beside the writes, as in the gateway (in etcd mode it
	// is what applies them); a cancel makes it do its last work (the
	// final snapshot in memory-only mode) and return.
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- storage.Run(ctx) }()
	if s.push != "" {
		if err := st.Push(storetest.Key(t, s.push), storetest.Families(t, "# TYPE other_value gauge\nother_value 1\n"), true); err != nil {
			t.Errorf("Push: %v", err)
		}
	}
	if s.remove != "" {
		if err := st.Delete(storetest.Key(t, s.remove)); err != nil {
			t.Errorf("Delete: %v", err)
		}
	}
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	return groups, buf.String()
}

func TestReplayError(t *testing.T) {
	dir := t.TempDir()
	// A value the store cannot decode, written where a group belongs.
	db, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(db.Save("job\xffbroken", []byte("not a group")), db.Close()); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, filepath.Join(dir, disk.FileName))

	storage, err := startup.Open(startup.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(store.Options{Journal: storage.Journal(), Shared: storage.Shared()})
	err = storage.Restore(context.Background(), st)
	const want = "restore from storage (the file is left as it is; move it away, with the pushgate.wal.* files beside it, to start empty): "
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("Restore = %v; want %q wrapping store.ErrCorrupt", err, want)
	}
	if err := storage.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, filepath.Join(dir, disk.FileName)), before) {
		t.Error("a failed replay changed the storage file")
	}
}

func TestState(t *testing.T) {
	t.Run("disk", func(t *testing.T) {
		dir := t.TempDir()
		storage, err := startup.Open(startup.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		got := storage.State()
		if !got.Durable || got.Path != filepath.Join(dir, disk.FileName) || got.Size <= 0 || got.Modified.IsZero() || got.Err != nil {
			t.Errorf("State = %+v; want the durable, healthy file %s with its size", got, filepath.Join(dir, disk.FileName))
		}
		if err := storage.Healthy(); err != nil {
			t.Errorf("Healthy = %v", err)
		}
		if err := storage.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("memory", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "persistence.gob")
		copyFixture(t, "reference.good.gob", file)
		for _, tc := range []struct {
			name, file string
			wantSize   int64
		}{
			{"no file", "", -1},
			{"file", file, int64(len(readFile(t, file)))},
		} {
			storage, err := startup.Open(startup.Options{InMemory: true, PersistenceFile: tc.file})
			if err != nil {
				t.Fatal(err)
			}
			got := storage.State()
			if got.Durable || got.Path != tc.file || got.Size != tc.wantSize || got.Err != nil {
				t.Errorf("%s: State = %+v; want path %q of size %d", tc.name, got, tc.file, tc.wantSize)
			}
			if storage.Journal() != nil || storage.Healthy() != nil {
				t.Errorf("%s: memory-only storage has a journal or is unhealthy", tc.name)
			}
			if err := storage.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// A failed Open must close the backend it opened, or the file lock stays
// held until the process exits.
func TestOpenRegisterFails(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "pushgate_storage_replay_duration_seconds", Help: "taken"}))
	if _, err := startup.Open(startup.Options{Dir: dir, Registerer: reg}); err == nil {
		t.Fatal("Open registered a metric that is already registered")
	}
	storage, err := startup.Open(startup.Options{Dir: dir})
	if err != nil {
		t.Fatalf("Open after a failed Open: %v", err)
	}
	if err := storage.Close(); err != nil {
		t.Fatal(err)
	}
}

func groupKeys(st *store.Store) []string {
	keys := []string{}
	for _, g := range st.View().Groups {
		keys = append(keys, g.Key.String())
	}
	slices.Sort(keys)
	return keys
}

func copyFixture(t *testing.T, name, dst string) {
	t.Helper()
	if err := os.WriteFile(dst, readFile(t, filepath.Join("testdata", name)), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
