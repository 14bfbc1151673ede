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
	"slices"
	"syscall"
	"time"

	// Aliased: run is the name of this program's run function (house style).
	oklogrun "github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/pushgate/pushgate/internal/access"
	"github.com/pushgate/pushgate/internal/api"
	"github.com/pushgate/pushgate/internal/config"
	"github.com/pushgate/pushgate/internal/etcd"
	"github.com/pushgate/pushgate/internal/exposition"
	"github.com/pushgate/pushgate/internal/push"
	"github.com/pushgate/pushgate/internal/rules"
	"github.com/pushgate/pushgate/internal/server"
	"github.com/pushgate/pushgate/internal/startup"
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

	ruleSet, err := rules.NewSet(cfg.RulesFile)
	if err != nil {
		return fmt.Errorf("load --push.rules.file: %w", err)
	}
	if cfg.RulesFile != "" {
		logger.Info("rules loaded", "file", cfg.RulesFile, "rules", len(ruleSet.Rules()))
	}
	// reload re-reads the files that may change at run time; SIGHUP and
	// /-/reload call it. It logs here because the signal has nobody to
	// answer; /-/reload also answers with the error.
	var st *store.Store // set below, before anything can reload
	reload := func() error {
		if err := ruleSet.Reload(); err != nil {
			logger.Error("reload rules; keeping the previous rules", "file", cfg.RulesFile, "err", err)
			return err
		}
		if cfg.RulesFile != "" {
			logger.Info("rules reloaded", "file", cfg.RulesFile, "rules", len(ruleSet.Rules()))
			st.RescheduleExpiry()
		}
		return nil
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
	etcdConfig := etcd.Config{Endpoints: cfg.EtcdEndpoints, Prefix: cfg.EtcdPrefix, MaxRequestBytes: cfg.EtcdMaxRequestBytes}
	if len(cfg.EtcdEndpoints) > 0 {
		if etcdConfig.File, err = etcd.LoadFile(cfg.EtcdConfigFile); err != nil {
			return fmt.Errorf("load --storage.etcd.config.file: %w", err)
		}
	}
	storage, err := startup.Open(startup.Options{
		Dir:                 cfg.StoragePath,
		InMemory:            cfg.InMemory,
		PersistenceFile:     cfg.PersistenceFile,
		PersistenceInterval: cfg.PersistenceInterval,
		Etcd:                etcdConfig,
		Logger:              logger,
		Registerer:          reg,
	})
	if err != nil {
		return err
	}
	// Closed last, once nothing writes any more.
	defer func() { err = errors.Join(err, storage.Close()) }()
	reserved, err := startup.Reserved(reg, slices.Concat(push.Reserved(), server.Reserved(), rules.Reserved())...)
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
		ExpireAfter:         cfg.ExpireAfter,
		ExpireRule:          ruleSet.ExpireAfter,
		Logger:              logger.With("component", "store"),
		Journal:             storage.Journal(),
		Shared:              storage.Shared(),
	}
	st = store.New(storeOpts)
	st.RegisterMetrics(reg)
	reg.MustRegister(rules.NewCollector(ruleSet, st, nil))

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
		Storage:       storage.State,
		Logger:        logger.With("component", "ui"),
	})
	if err != nil {
		return fmt.Errorf("load UI templates: %w", err)
	}
	srv := server.New(server.Options{
		RoutePrefix:     cfg.RoutePrefix,
		TelemetryPath:   cfg.TelemetryPath,
		EnableLifecycle: cfg.EnableLifecycle,
		Reload:          reload,
		Health:          storage.Healthy,
		Access:          guard.Wrap,
	}, server.Parts{
		Put:    pushAPI.Push(true),
		Post:   pushAPI.Push(false),
		Delete: pushAPI.Delete(),
		Scrape: exposition.New(st, reg, logger.With("component", "exposition")),
		API:    jsonAPI.Routes(),
		Pages:  pages.Routes(),
	}, reg)

	httpServer := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelError),
	}

	// The lifetimes: the first actor to return stops them all. The group
	// calls the interrupts one after another, in the order the actors were
	// added ("deterministic teardown"), and that order matters: the HTTP
	// server's interrupt returns only once in-flight requests are answered
	// (or shutdownTimeout passed), so the storage's last snapshot, taken
	// after its interrupt, holds every acknowledged push. The storage is
	// closed after all of them (deferred above). The group returns only the
	// first actor's error; the errors of the shutdown itself are kept here.
	var (
		g                       oklogrun.Group
		shutdownErr, storageErr error
	)
	{
		// SIGINT/SIGTERM, or /-/quit.
		stop, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			select {
			case <-ctx.Done():
				logger.Info("received SIGINT/SIGTERM; exiting gracefully")
			case <-srv.Quit():
				logger.Warn("received termination request via web service, exiting gracefully")
			case <-stop.Done():
			}
			return nil
		}, func(error) { cancel() })
	}
	{
		// SIGHUP reloads, as in Prometheus; a bad file keeps the old
		// rules (reload logs it).
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		stop, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			for {
				select {
				case <-hup:
					_ = reload()
				case <-stop.Done():
					return nil
				}
			}
		}, func(error) {
			signal.Stop(hup)
			cancel()
		})
	}
	{
		// The HTTP server serves /-/healthy at once; /-/ready and writes
		// wait for the restore.
		g.Add(func() error {
			if err := web.ListenAndServe(httpServer, cfg.Web, logger); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve HTTP: %w", err)
			}
			return nil
		}, func(error) {
			shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			if err := httpServer.Shutdown(shutdownCtx); err != nil {
				shutdownErr = fmt.Errorf("shut down HTTP server: %w", err)
				return
			}
			logger.Info("HTTP server stopped")
		})
	}
	{
		// The storage: restore, then its background work until stopped.
		storageCtx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			start := time.Now()
			if err := storage.Restore(storageCtx, st); err != nil {
				return err
			}
			if storageCtx.Err() != nil {
				return nil // stopped during the restore; never ready
			}
			startup.TuneGC(storageCtx, os.Getenv("GOGC"))
			logger.Info("ready", "groups", st.Stats().Groups, "series", st.Stats().Series, "restore_duration", time.Since(start))
			srv.SetReady(true)
			// Expiry writes through the storage, so it starts once the
			// storage is restored (a deadline that passed while the
			// gateway was down expires now) and stops with it.
			expiryCtx, stopExpiry := context.WithCancel(storageCtx)
			expiryDone := make(chan struct{})
			go func() {
				defer close(expiryDone)
				st.RunExpiry(expiryCtx)
			}()
			// Kept aside, not returned: the group drops the errors of
			// all but the first actor, and this one comes at shutdown.
			storageErr = storage.Run(storageCtx)
			stopExpiry()
			<-expiryDone
			return nil
		}, func(error) { cancel() })
	}
	return errors.Join(g.Run(), shutdownErr, storageErr)
}
