// Package startup brings the gateway's state up: it opens the storage backend
// chosen on the command line, restores the stored groups into the store before
// the gateway turns ready, and owns the backend's lifetime until Close.
//
// Each backend is one implementation of the unexported backend interface,
// chosen in Open: the bbolt journal of package disk (disk.go) and the
// memory-only mode that keeps rewriting the reference's --persistence.file
// (memory.go), and etcd, shared by replicas (etcd.go).
package startup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgate/pushgate/internal/etcd"
	"github.com/pushgate/pushgate/internal/snapshot"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/ui"
)

// Options choose and configure the storage. They mirror the storage flags of
// the command line.
type Options struct {
	// Dir is the directory of the durable storage (--storage.path).
	Dir string
	// InMemory keeps the groups in memory only (--storage.in-memory); Dir
	// is then unused.
	InMemory bool
	// PersistenceFile is the reference's persistence file
	// (--persistence.file); "" if none. The durable storage imports it once,
	// on its first start; in memory only, it is restored at every start and
	// rewritten every PersistenceInterval.
	PersistenceFile string
	// PersistenceInterval (--persistence.interval) is how often the file is
	// rewritten in memory only, and how often the durable storage checks
	// whether its file is worth compacting.
	PersistenceInterval time.Duration
	// Etcd, with endpoints, keeps the groups in etcd, shared with other
	// replicas (--storage.etcd.*). Dir and PersistenceFile are then
	// imported into an empty prefix, once.
	Etcd etcd.Config
	// Logger; nil discards. Each backend logs with its own component.
	Logger *slog.Logger
	// Registerer takes the storage's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Store is what restoring needs of the store (a *store.Store).
type Store interface {
	snapshot.Store
	// DecodeReplay and ApplyReplay are store.Store.Replay in two halves; decoding
	// may run concurrently (see disk.ForEachDecoded).
	DecodeReplay(value []byte) (*store.Replayed, error)
	ApplyReplay(r *store.Replayed) error
	Grow(groups, series int)
	Stats() store.Stats
	// Reset and Apply take the groups and changes of a shared journal.
	Reset(rev int64, groups []store.Change) error
	Apply(rev int64, changes []store.Change) error
}

// backend is one way of keeping the groups. Open picks one; Storage calls its
// methods in this order: journal and healthy at any time after Open, restore
// once, then run once, then close once.
type backend interface {
	// journal makes the store's changes durable; nil keeps them in memory
	// (or shared).
	journal() store.Journal
	// shared is the journal shared with other replicas; nil unless etcd.
	shared() store.Shared
	// healthy returns why the backend cannot take writes, or nil.
	healthy() error
	// restore loads the stored groups into st, which is empty and uses
	// journal. It returns only once every group is in st.
	restore(ctx context.Context, st Store) error
	// run does the backend's background work until ctx is done, and its
	// last work then (such as a final snapshot) before it returns.
	run(ctx context.Context) error
	// state describes the backend for the status page.
	state() ui.StorageState
	// close releases the backend; later writes of the journal fail.
	close() error
}

// Storage is the opened backend. Its methods, apart from Restore and Run,
// are safe for concurrent use.
type Storage struct {
	backend backend
	replay  prometheus.Gauge
}

// Open opens the backend that opts choose and registers its metrics.
func Open(opts Options) (*Storage, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var (
		b   backend
		err error
	)
	switch {
	case opts.InMemory:
		b = newMemory(opts.PersistenceFile, opts.PersistenceInterval, logger)
	case len(opts.Etcd.Endpoints) > 0:
		b, err = openEtcd(opts.Etcd, opts.Dir, opts.PersistenceFile, logger, opts.Registerer)
		if err != nil {
			return nil, err
		}
	default:
		b, err = openDisk(opts.Dir, opts.PersistenceFile, opts.PersistenceInterval, logger, opts.Registerer)
		if err != nil {
			return nil, err
		}
	}
	s := &Storage{
		backend: b,
		replay: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pushgate_storage_replay_duration_seconds",
			Help: "Time it took at start to restore the stored groups.",
		}),
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(s.replay); err != nil {
			return nil, errors.Join(fmt.Errorf("register storage metrics: %w", err), b.close())
		}
	}
	return s, nil
}

// Journal is the store's journal (store.Options.Journal); nil in memory-only
// and etcd mode.
func (s *Storage) Journal() store.Journal { return s.backend.journal() }

// Shared is the store's shared journal (store.Options.Shared); nil unless
// the groups are kept in etcd.
func (s *Storage) Shared() store.Shared { return s.backend.shared() }

// Healthy returns why the storage cannot take writes (for readiness), or
// nil.
func (s *Storage) Healthy() error { return s.backend.healthy() }

// Restore loads the stored groups into st, a new empty store that uses
// Journal, and records how long that took. The gateway must not be ready
// before it returns. An error leaves the stored state as it was: a corrupt
// state is never a reason to start empty and overwrite it. Call it once,
// before Run.
func (s *Storage) Restore(ctx context.Context, st Store) error {
	start := time.Now()
	if err := s.backend.restore(ctx, st); err != nil {
		return err
	}
	s.replay.Set(time.Since(start).Seconds())
	return nil
}

// Run does the storage's background work until ctx is done (in memory-only
// mode with a persistence file: rewriting it), then its final work (the last
// snapshot) before it returns. Call it once, after Restore succeeded, and
// cancel ctx only once no more writes come, so that the last snapshot holds
// every acknowledged push.
func (s *Storage) Run(ctx context.Context) error { return s.backend.run(ctx) }

// State describes the storage for the status page; it fits ui.Options.Storage.
func (s *Storage) State() ui.StorageState { return s.backend.state() }

// Close releases the storage. Call it after Run returned, last: writes of the
// journal fail afterwards.
func (s *Storage) Close() error { return s.backend.close() }
