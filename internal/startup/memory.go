package startup

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/pushgate/pushgate/internal/snapshot"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/ui"
)

// memoryBackend keeps the groups in memory only. With a persistence file it
// behaves as the reference does: it restores the file at start and rewrites
// it every interval and once more at shutdown.
type memoryBackend struct {
	// path is the persistence file; "" if none.
	path       string
	interval   time.Duration
	logger     *slog.Logger // the gateway's, for start-up messages
	snapLogger *slog.Logger
	// persister is set by restore when there is a file; run uses it after.
	persister *snapshot.Persister
}

var _ backend = (*memoryBackend)(nil)

func newMemory(path string, interval time.Duration, logger *slog.Logger) *memoryBackend {
	return &memoryBackend{path: path, interval: interval, logger: logger, snapLogger: logger.With("component", "snapshot")}
}

// journal is nil: without one the store keeps its changes in memory.
func (m *memoryBackend) journal() store.Journal { return nil }

func (*memoryBackend) shared() store.Shared { return nil }

// healthy is always nil: memory does not fail, and a failed rewrite of the
// file is logged by the persister, as the reference does, without making
// the gateway unready.
func (m *memoryBackend) healthy() error { return nil }

func (m *memoryBackend) restore(_ context.Context, st Store) error {
	if m.path == "" {
		return nil
	}
	n, err := snapshot.Import(st, m.path, nil, m.snapLogger)
	if err != nil {
		return fmt.Errorf("restore from --persistence.file: %w", err)
	}
	m.logger.Info("restored persisted groups", "file", m.path, "groups", n)
	m.persister = snapshot.NewPersister(st, m.path, m.interval, m.snapLogger)
	return nil
}

func (m *memoryBackend) run(ctx context.Context) error {
	if m.persister == nil {
		<-ctx.Done()
		return nil
	}
	if err := m.persister.Run(ctx); err != nil {
		return fmt.Errorf("persist metrics at shutdown: %w", err)
	}
	return nil
}

// state reports the persistence file: its size and its last write, which
// is the last snapshot written.
func (m *memoryBackend) state() ui.StorageState {
	st := ui.StorageState{Path: m.path, Size: -1}
	statFile(&st)
	return st
}

func (m *memoryBackend) close() error { return nil }
