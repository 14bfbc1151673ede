package startup

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgate/pushgate/internal/disk"
	"github.com/pushgate/pushgate/internal/snapshot"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/ui"
)

// diskBackend is the durable local storage (a write-ahead log in front of a
// bbolt file) that the store writes through, replayed at start.
type diskBackend struct {
	db *disk.DB
	// persistenceFile is the reference's file to import on the first start;
	// "" if none.
	persistenceFile string
	logger          *slog.Logger // the gateway's, for start-up messages
	snapLogger      *slog.Logger
}

var _ backend = (*diskBackend)(nil)

func openDisk(dir, persistenceFile string, compactInterval time.Duration, logger *slog.Logger, reg prometheus.Registerer) (*diskBackend, error) {
	db, err := disk.Open(dir, disk.Options{
		CompactInterval: compactInterval,
		Logger:          logger.With("component", "disk"),
		Registerer:      reg,
	})
	if err != nil {
		return nil, err
	}
	return &diskBackend{
		db:              db,
		persistenceFile: persistenceFile,
		logger:          logger,
		snapLogger:      logger.With("component", "snapshot"),
	}, nil
}

func (d *diskBackend) journal() store.Journal { return d.db }

func (*diskBackend) shared() store.Shared { return nil }

func (d *diskBackend) healthy() error { return d.db.Healthy() }

// restore replays the journal, compacts it if that is worth it, and on the
// first start imports the reference's persistence file. ctx is not
// consulted: a replay is quick next to a shutdown's patience, and half of one
// is of no use.
func (d *diskBackend) restore(_ context.Context, st Store) error {
	const failed = "restore from storage (" + disk.LeftAsIs + "): %w"
	groups, err := d.db.Len()
	if err != nil {
		return fmt.Errorf(failed, err)
	}
	apply := st.ApplyReplay
	if groups > 0 {
		// Size the indexes once, by the first group, rather than
		// rehashing them all along: the series of a gateway's groups
		// are of one order. Each stored series holds an 8-byte hash, so
		// the file's size bounds a bad guess.
		maxSeries := 2 * groups
		if fi, err := os.Stat(d.db.Path()); err == nil {
			maxSeries += int(fi.Size() / 8)
		}
		sized := false
		apply = func(r *store.Replayed) error {
			if !sized {
				st.Grow(groups, min(groups*r.Series(), maxSeries))
				sized = true
			}
			return st.ApplyReplay(r)
		}
	}
	// Decoding is most of a replay, and needs no other group: it runs on
	// every core while the groups are added in key order.
	if err := disk.ForEachDecoded(d.db, runtime.GOMAXPROCS(0), st.DecodeReplay, apply); err != nil {
		return fmt.Errorf(failed, err)
	}
	// Only now that the file is known to be good may it be written: the
	// log's records after a crash go into it, then it may be compacted.
	if err := d.db.CompactIfWasteful(); err != nil {
		// The file is intact; running on it beats not starting
		// (compaction needs room for a copy, which a full disk lacks).
		d.logger.Error("compaction failed; continuing with the uncompacted file", "file", d.db.Path(), "err", err)
	}
	if err := d.db.ReleaseMapped(); err != nil {
		d.logger.Debug("release mapped pages of the storage file", "err", err)
	}
	if d.persistenceFile == "" {
		return nil
	}
	return d.importOnce(st)
}

// importOnce imports the persistence file into a storage that never imported
// one and holds nothing: a user switching from the reference keeps the flag,
// and the file, which the reference no longer updates, must neither undo
// later changes at every restart nor mix with groups pushed meanwhile.
func (d *diskBackend) importOnce(st Store) error {
	imported, err := d.db.Imported()
	if err != nil {
		return fmt.Errorf("read storage metadata: %w", err)
	}
	switch {
	case imported != "":
		d.logger.Debug("persistence file was imported before; ignoring it", "file", d.persistenceFile, "imported", imported)
	case st.Stats().Groups > 0:
		d.logger.Warn("storage has data; not importing --persistence.file", "file", d.persistenceFile, "storage", d.db.Path())
	default:
		// The groups and the record that the file was imported go in one
		// commit: a failure or a crash leaves all of them or none, and a
		// start after none imports again.
		n, err := snapshot.Import(st, d.persistenceFile, func(values map[string][]byte) error {
			return d.db.Import(values, d.persistenceFile)
		}, d.snapLogger)
		if err != nil {
			return fmt.Errorf("import --persistence.file (nothing was imported): %w", err)
		}
		d.logger.Info("imported reference persistence file; it is left untouched", "file", d.persistenceFile, "groups", n, "storage", d.db.Path())
	}
	return nil
}

// run has nothing to do: the journal commits as writes come, and disk.DB
// runs its own checkpoints and compaction checks until close.
func (d *diskBackend) run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// state reports the database file, its size and last write, and the last
// compaction, read from the disk's own record of it.
func (d *diskBackend) state() ui.StorageState {
	st := ui.StorageState{Durable: true, Path: d.db.Path(), Size: -1, Err: d.db.Healthy(), LastCompaction: d.db.LastCompaction()}
	if abs, err := filepath.Abs(st.Path); err == nil {
		st.Path = abs
	}
	statFile(&st)
	return st
}

func (d *diskBackend) close() error { return d.db.Close() }

// statFile fills in the size and last write of st.Path, if there is one.
func statFile(st *ui.StorageState) {
	if st.Path == "" {
		return
	}
	if fi, err := os.Stat(st.Path); err == nil {
		st.Size, st.Modified = fi.Size(), fi.ModTime()
	}
}
