package startup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgate/pushgate/internal/disk"
	"github.com/pushgate/pushgate/internal/etcd"
	"github.com/pushgate/pushgate/internal/snapshot"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/ui"
)

// etcdBackend keeps the groups in etcd, shared with the other replicas: the
// store commits through it, and it feeds every replica's changes back.
type etcdBackend struct {
	j   *etcd.Journal
	cfg etcd.Config
	// dir and persistenceFile are imported into an empty prefix, once.
	dir, persistenceFile string
	logger               *slog.Logger
	st                   Store // set by restore, followed by run
}

var _ backend = (*etcdBackend)(nil)

func openEtcd(cfg etcd.Config, dir, persistenceFile string, logger *slog.Logger, reg prometheus.Registerer) (*etcdBackend, error) {
	j, err := etcd.Open(cfg, etcd.Options{Logger: logger.With("component", "etcd"), Registerer: reg})
	if err != nil {
		return nil, err
	}
	return &etcdBackend{j: j, cfg: cfg, dir: dir, persistenceFile: persistenceFile, logger: logger}, nil
}

func (e *etcdBackend) journal() store.Journal { return nil }
func (e *etcdBackend) shared() store.Shared   { return e.j }
func (e *etcdBackend) healthy() error         { return e.j.Healthy() }
func (e *etcdBackend) close() error           { return e.j.Close() }

// restore imports what the replica was started with into an empty prefix,
// then loads every group at one revision. It waits for etcd as long as ctx
// allows: a replica without etcd has nothing to serve.
func (e *etcdBackend) restore(ctx context.Context, st Store) error {
	e.st = st
	if err := e.importOnce(ctx, st); err != nil {
		return err
	}
	return e.j.Load(ctx, st)
}

// importOnce moves a single-node gateway in: the groups of its storage
// directory if it has one, else the reference's persistence file.
func (e *etcdBackend) importOnce(ctx context.Context, st Store) error {
	var values map[string][]byte
	var source string
	path := filepath.Join(e.dir, disk.FileName)
	if _, err := os.Stat(path); e.dir != "" && err == nil {
		db, err := disk.Open(e.dir, disk.Options{Logger: e.logger.With("component", "disk")})
		if err != nil {
			return fmt.Errorf("open --storage.path to import it: %w", err)
		}
		values = map[string][]byte{}
		err = db.ForEach(func(v []byte) error {
			id, err := store.ValueID(v)
			if err != nil {
				return err
			}
			values[id] = append([]byte(nil), v...)
			return nil
		})
		if err := errors.Join(err, db.Close()); err != nil {
			return fmt.Errorf("read --storage.path to import it: %w", err)
		}
		source = "storage " + path
	} else if e.persistenceFile != "" {
		// Checked like pushes, against each other, in a scratch store.
		scratch := store.New(store.Options{})
		_, err := snapshot.Import(scratch, e.persistenceFile, func(v map[string][]byte) error {
			values = v
			return nil
		}, e.logger.With("component", "snapshot"))
		if err != nil {
			return fmt.Errorf("import --persistence.file (nothing was imported): %w", err)
		}
		source = "persistence file " + e.persistenceFile
	}
	if values == nil {
		return nil
	}
	done, err := e.j.Import(ctx, values, source)
	if err != nil {
		return fmt.Errorf("import %s into etcd: %w", source, err)
	}
	if done {
		e.logger.Info("imported into etcd; the source is left untouched", "source", source, "groups", len(values), "prefix", e.cfg.Prefix)
	} else {
		e.logger.Debug("etcd prefix has groups or an import already; not importing", "source", source)
	}
	return nil
}

// run follows the changes of every replica until ctx is done.
func (e *etcdBackend) run(ctx context.Context) error {
	return e.j.Follow(ctx, e.st)
}

// state reports the cluster and how far this replica is behind it.
func (e *etcdBackend) state() ui.StorageState {
	r := e.j.Revisions()
	return ui.StorageState{
		Durable: true,
		Path:    "etcd " + strings.Join(e.cfg.Endpoints, ",") + " prefix " + e.cfg.Prefix,
		Size:    -1,
		Err:     e.j.Healthy(),
		Etcd:    &ui.EtcdState{Endpoints: e.cfg.Endpoints, Prefix: e.cfg.Prefix, AppliedRevision: r.Applied, KnownRevision: r.Known},
	}
}
