// Package snapshot handles the reference's persistence file
// (--persistence.file): it imports the file into the store at start and, in
// memory-only mode, rewrites it atomically every --persistence.interval when
// something changed, and once more at shutdown, as prometheus/pushgateway
// does.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/pushgate/pushgate/internal/gobfile"
	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/store"
)

// Store is what snapshots need of the store.
type Store interface {
	View() *store.View
	Import(groups []store.Imported, write func(values map[string][]byte) error) (rejected []error, err error)
}

// Import reads the file at path and imports its groups into s, all in one
// step (store.Store.Import). write stores the groups taken, all or none,
// in the durable storage; nil in memory-only mode. A group that is invalid
// or inconsistent with the others is skipped and reported (the reference
// would load it and fail every scrape); before anything is imported, the
// original is copied to path+".rejected", since the file is rewritten
// without the group in memory-only mode. Any other error imports nothing.
// It returns the number of groups imported.
func Import(s Store, path string, write func(values map[string][]byte) error, logger *slog.Logger) (int, error) {
	if err := gobfile.RemoveStale(path); err != nil {
		logger.Warn("remove stale temporary persistence files", "file", path, "err", err)
	}
	file, err := gobfile.Read(path)
	if err != nil {
		// Never start empty and overwrite what we could not read.
		return 0, err
	}
	// In ID order, so that of two groups that clash the same one is
	// always taken.
	ids := slices.Sorted(maps.Keys(file))
	var (
		groups   []store.Imported
		groupIDs []string
		rejected = map[string]error{}
	)
	for _, id := range ids {
		g, err := importedGroup(file[id])
		if err != nil {
			rejected[id] = err
			continue
		}
		groups = append(groups, g)
		groupIDs = append(groupIDs, id)
	}
	commit := func(values map[string][]byte) error {
		// Keep the original before anything changes, while nothing is
		// imported yet, so that a failure to copy it imports nothing.
		if len(values) < len(file) {
			if err := copyFile(path, path+".rejected"); err != nil {
				return fmt.Errorf("keep a copy of the persistence file with rejected groups: %w", err)
			}
		}
		if write == nil {
			return nil
		}
		return write(values)
	}
	refused, err := s.Import(groups, commit)
	if err != nil {
		return 0, err
	}
	for i, err := range refused {
		if err != nil {
			rejected[groupIDs[i]] = err
		}
	}
	for _, id := range ids {
		if err := rejected[id]; err != nil {
			logger.Error("skipping persisted group", "file", path, "group", id, "labels", fmt.Sprint(file[id].Labels), "err", err)
		}
	}
	if len(rejected) > 0 {
		logger.Warn("kept the original persistence file", "copy", path+".rejected", "rejected_groups", len(rejected))
	}
	return len(file) - len(rejected), nil
}

// importedGroup converts a group of the file into the store's form.
func importedGroup(g gobfile.Group) (store.Imported, error) {
	key, err := grouping.FromMap(g.Labels)
	if err != nil {
		return store.Imported{}, fmt.Errorf("grouping key: %w", err)
	}
	r := store.Imported{
		Key:      key,
		Families: make(map[string]*dto.MetricFamily, len(g.Metrics)),
		Times:    make(map[string]time.Time, len(g.Metrics)),
	}
	for name, tf := range g.Metrics {
		if tf.GobbableMetricFamily == nil {
			return store.Imported{}, fmt.Errorf("family %q has no data", name)
		}
		mf := (*dto.MetricFamily)(tf.GobbableMetricFamily)
		switch name {
		case store.PushTimeName:
			r.PushTime = gaugeTime(mf)
		case store.PushFailureName:
			r.FailTime = gaugeTime(mf)
		default:
			r.Families[name] = mf
			r.Times[name] = tf.Timestamp
		}
	}
	return r, nil
}

// gaugeTime reads a push_time_seconds-style gauge; 0 means never.
func gaugeTime(mf *dto.MetricFamily) time.Time {
	if len(mf.Metric) == 0 {
		return time.Time{}
	}
	v := mf.Metric[0].GetGauge().GetValue()
	if v == 0 {
		return time.Time{}
	}
	sec := int64(v)
	return time.Unix(sec, int64((v-float64(sec))*1e9))
}

// Groups converts a view of the store into the file's form.
func Groups(v *store.View) (gobfile.Groups, error) {
	out := make(gobfile.Groups, len(v.Groups))
	for _, g := range v.Groups {
		metrics := make(map[string]gobfile.TimestampedFamily, g.Families.Len())
		for name, f := range g.Families.All() {
			mf, err := f.Decode()
			if err != nil {
				return nil, err
			}
			metrics[name] = gobfile.TimestampedFamily{Timestamp: f.Time, GobbableMetricFamily: (*gobfile.Family)(mf)}
		}
		out[g.Key.ID()] = gobfile.Group{Labels: g.Key.Map(), Metrics: metrics}
	}
	return out, nil
}

// Persister rewrites the file when the store changed.
type Persister struct {
	store    Store
	path     string
	interval time.Duration
	logger   *slog.Logger
	lastGen  uint64
}

// NewPersister returns a persister for a store just loaded from path.
func NewPersister(s Store, path string, interval time.Duration, logger *slog.Logger) *Persister {
	return &Persister{store: s, path: path, interval: interval, logger: logger, lastGen: s.View().Gen}
}

// Run persists every interval until ctx is done, then once more.
func (p *Persister) Run(ctx context.Context) error {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return p.Persist()
		case <-t.C:
			if err := p.Persist(); err != nil {
				p.logger.Error("persist metrics", "file", p.path, "err", err)
			}
		}
	}
}

// Persist writes the file if the store changed since the last write.
func (p *Persister) Persist() error {
	v := p.store.View()
	if v.Gen == p.lastGen {
		return nil
	}
	groups, err := Groups(v)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := gobfile.Write(p.path, groups); err != nil {
		return err
	}
	p.lastGen = v.Gen
	p.logger.Info("metrics persisted", "file", p.path, "groups", len(groups), "duration", time.Since(start))
	return nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		return errors.Join(err, os.Remove(dst))
	}
	return nil
}
