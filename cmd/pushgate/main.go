// Command pushgate is a Prometheus Pushgateway: a drop-in replacement for
// prometheus/pushgateway.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/pushgate/pushgate/internal/access"
	"github.com/pushgate/pushgate/internal/api"
	"github.com/pushgate/pushgate/internal/config"
	"github.com/pushgate/pushgate/internal/disk"
	"github.com/pushgate/pushgate/internal/exposition"
	"github.com/pushgate/pushgate/internal/push"
	"github.com/pushgate/pushgate/internal/server"
	"github.com/pushgate/pushgate/internal/snapshot"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/ui"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, config.ErrExit) {
		fmt.Fprintln(os.Stderr, "pushgate:", err)
		os.Exit(1)
	}
}

// shutdownTimeout bounds how long in-flight requests may take at shutdown.
const shutdownTimeout = 30 * time.Second

// defaultGCPercent is the GC target unless GOGC is set. The heap is mostly
// pointer-free byte slices (the stored families), which the collector does
// not scan, so collecting more often is cheap, and a heap that may grow to
// twice the live data (Go's default) would double the resident memory.
const defaultGCPercent = 25

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	cfg, err := config.Parse(args, stdout)
	if err != nil {
		return err
	}

	cfg.Log.Writer = stderr
	logger := promslog.New(&cfg.Log)
	logger.Info("starting pushgate", "version", version.Info())
	logger.Info("build context", "build_context", version.BuildContext())
	policy, err := access.Load(cfg.AccessConfig)
	if err != nil {
		return fmt.Errorf("load --web.access-config: %w", err)
	}
	if policy != nil {
		logger.Info("access control enabled", "file", cfg.AccessConfig, "principals", policy.Describe())
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("pushgateway"),
	)
	guard := access.NewGuard(policy, access.Options{
		UTF8Names:  cfg.EnableUTF8Names,
		Logger:     logger.With("component", "access"),
		Registerer: reg,
	})
	var db *disk.DB
	if !cfg.InMemory {
		db, err = disk.Open(cfg.StoragePath, disk.Options{
			CompactInterval: cfg.PersistenceInterval,
			Logger:          logger.With("component", "disk"),
			Registerer:      reg,
		})
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, db.Close()) }()
	}
	replay := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pushgate_storage_replay_duration_seconds",
		Help: "Time it took at start to restore the stored groups.",
	})
	reg.MustRegister(replay)
	reserved, err := reservedFamilies(reg)
	if err != nil {
		return err
	}

	storeOpts := store.Options{
		UTF8Names:           cfg.EnableUTF8Names,
		Reserved:            reserved,
		MaxSeriesPerPush:    cfg.MaxSeriesPerPush,
		MaxSeries:           cfg.MaxSeries,
		MaxGroups:           cfg.MaxGroups,
		MaxLabelsPerSeries:  cfg.MaxLabelsPerSeries,
		MaxLabelNameLength:  cfg.MaxLabelNameLength,
		MaxLabelValueLength: cfg.MaxLabelValueLength,
		Logger:              logger.With("component", "store"),
	}
	if db != nil {
		storeOpts.Journal = db
	}
	st := store.New(storeOpts)
	st.RegisterMetrics(reg)

	pushAPI := push.New(st, push.Options{
		UTF8Names:               cfg.EnableUTF8Names,
		DisableConsistencyCheck: cfg.DisableConsistencyCheck,
		MaxBodyBytes:            cfg.MaxBodySize,
		MaxDecompressedBytes:    cfg.MaxDecompressedSize,
		MaxInFlight:             cfg.MaxConcurrentPushes,
		MaxSeriesPerPush:        cfg.MaxSeriesPerPush,
		MaxDecodingBytes:        cfg.MaxDecodingMemory,
		Logger:                  logger.With("component", "push"),
	}, reg)
	buildInfo := map[string]string{
		"version":   version.Version,
		"revision":  version.Revision,
		"branch":    version.Branch,
		"buildUser": version.BuildUser,
		"buildDate": version.BuildDate,
		"goVersion": version.GoVersion,
	}
	startTime := time.Now()
	jsonAPI := api.New(st, api.Options{
		Flags:       cfg.Flags,
		BuildInfo:   buildInfo,
		StartTime:   startTime,
		EnableAdmin: cfg.EnableAdminAPI,
		Logger:      logger.With("component", "api"),
	})
	// Links follow --web.external-url; without it, the gateway is reached
	// directly, at the route prefix.
	uiPrefix := cfg.ExternalPathPrefix
	if cfg.ExternalURL == nil || cfg.ExternalURL.Host == "" {
		uiPrefix = cfg.RoutePrefix
	}
	pages, err := ui.New(st, ui.Options{
		Prefix:        uiPrefix,
		ExternalURL:   cfg.ExternalURL,
		TelemetryPath: cfg.TelemetryPath,
		UTF8Names:     cfg.EnableUTF8Names,
		EnableAdmin:   cfg.EnableAdminAPI,
		Flags:         cfg.Flags,
		BuildInfo:     buildInfo,
		StartTime:     startTime,
		Storage:       storageState(cfg, db),
		Logger:        logger.With("component", "ui"),
	})
	if err != nil {
		return fmt.Errorf("load UI templates: %w", err)
	}
	var health func() error
	if db != nil {
		health = db.Healthy
	}
	srv := server.New(server.Options{
		RoutePrefix:     cfg.RoutePrefix,
		TelemetryPath:   cfg.TelemetryPath,
		EnableLifecycle: cfg.EnableLifecycle,
		Health:          health,
		Access:          guard.Wrap,
	}, server.Parts{
		Put:    pushAPI.Push(true),
		Post:   pushAPI.Push(false),
		Delete: pushAPI.Delete(),
		Scrape: exposition.New(st, reg, logger.With("component", "exposition")),
		API:    jsonAPI.Routes(),
		Pages:  pages.Routes(),
	}, reg)

	// Serve /-/healthy at once; /-/ready and writes wait for the restore.
	httpServer := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelError),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- web.ListenAndServe(httpServer, cfg.Web, logger) }()
	start := time.Now()
	persister, err := loadState(cfg, st, db, logger)
	if err != nil {
		_ = httpServer.Close()
		return err
	}
	replay.Set(time.Since(start).Seconds())
	// The restore allocates the whole store at once; only afterwards is
	// the tighter target worth its extra collections.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	logger.Info("ready", "groups", st.Stats().Groups, "series", st.Stats().Series, "restore_duration", time.Since(start))
	srv.SetReady(true)
	persistCtx, stopPersisting := context.WithCancel(context.Background())
	persistDone := make(chan error, 1)
	if persister != nil {
		go func() { persistDone <- persister.Run(persistCtx) }()
	} else {
		persistDone <- nil
	}
	defer func() {
		stopPersisting()
		if perr := <-persistDone; perr != nil {
			err = errors.Join(err, fmt.Errorf("persist metrics at shutdown: %w", perr))
		}
	}()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve HTTP: %w", err)
	case <-ctx.Done():
		logger.Info("received SIGINT/SIGTERM; exiting gracefully")
	case <-srv.Quit():
		logger.Warn("received termination request via web service, exiting gracefully")
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := httpServer.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down HTTP server: %w", err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve HTTP: %w", err)
	}
	logger.Info("HTTP server stopped")
	return nil
}

// loadState brings back the stored groups: it replays the durable storage
// (and, on its first start, imports a reference persistence file), or, in
// memory-only mode, imports the persistence file that it then keeps
// rewriting.
func loadState(cfg *config.Config, st *store.Store, db *disk.DB, logger *slog.Logger) (*snapshot.Persister, error) {
	snapLogger := logger.With("component", "snapshot")
	if db == nil {
		if cfg.PersistenceFile == "" {
			return nil, nil
		}
		n, err := snapshot.Import(st, cfg.PersistenceFile, nil, snapLogger)
		if err != nil {
			return nil, fmt.Errorf("restore from --persistence.file: %w", err)
		}
		logger.Info("restored persisted groups", "file", cfg.PersistenceFile, "groups", n)
		return snapshot.NewPersister(st, cfg.PersistenceFile, cfg.PersistenceInterval, snapLogger), nil
	}
	if err := db.ForEach(st.Replay); err != nil {
		return nil, fmt.Errorf("restore from storage (the file is left as it is; move it away to start empty): %w", err)
	}
	// Only now that the file is known to be good may it be replaced.
	if err := db.CompactIfWasteful(); err != nil {
		// The file is intact; running on it beats not starting
		// (compaction needs room for a copy, which a full disk lacks).
		logger.Error("compaction failed; continuing with the uncompacted file", "file", db.Path(), "err", err)
	}
	if err := db.ReleaseMapped(); err != nil {
		logger.Debug("release mapped pages of the storage file", "err", err)
	}
	if cfg.PersistenceFile == "" {
		return nil, nil
	}
	imported, err := db.Imported()
	if err != nil {
		return nil, fmt.Errorf("read storage metadata: %w", err)
	}
	switch {
	case imported != "":
		logger.Debug("persistence file was imported before; ignoring it", "file", cfg.PersistenceFile, "imported", imported)
	case st.Stats().Groups > 0:
		logger.Warn("storage has data; not importing --persistence.file", "file", cfg.PersistenceFile, "storage", db.Path())
	default:
		// The groups and the record that the file was imported go in one
		// commit: a failure or a crash leaves all of them or none, and a
		// start after none imports again.
		n, err := snapshot.Import(st, cfg.PersistenceFile, func(values map[string][]byte) error {
			return db.Import(values, cfg.PersistenceFile)
		}, snapLogger)
		if err != nil {
			return nil, fmt.Errorf("import --persistence.file (nothing was imported): %w", err)
		}
		logger.Info("imported reference persistence file; it is left untouched", "file", cfg.PersistenceFile, "groups", n, "storage", db.Path())
	}
	return nil, nil
}

// storageState reports the storage for the UI's status page: the database
// file (or, in memory, the persistence file), its size and last write, and
// the last compaction, read from the disk's own gauge.
func storageState(cfg *config.Config, db *disk.DB) func() ui.StorageState {
	return func() ui.StorageState {
		st := ui.StorageState{Size: -1, Path: cfg.PersistenceFile}
		if db != nil {
			st.Durable, st.Path, st.Err = true, db.Path(), db.Healthy()
			if abs, err := filepath.Abs(st.Path); err == nil {
				st.Path = abs
			}
			st.LastCompaction = db.LastCompaction()
		}
		if st.Path != "" {
			if fi, err := os.Stat(st.Path); err == nil {
				st.Size, st.Modified = fi.Size(), fi.ModTime()
			}
		}
		return st
	}
}

// reservedFamilies lists the gateway's own metric families, which pushed
// families of the same name must match in type: what the registry gathers
// now, plus the vectors that have no series until first used.
func reservedFamilies(g prometheus.Gatherer) ([]store.Reserved, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, fmt.Errorf("gather own metrics: %w", err)
	}
	reserved := append(push.Reserved(), server.Reserved()...)
	for _, mf := range mfs {
		reserved = append(reserved, store.Reserved{Name: mf.GetName(), Type: mf.GetType()})
	}
	return reserved, nil
}
