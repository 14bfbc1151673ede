package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pushgate/pushgate/internal/store"
)

// Target is what the journal feeds: a replica's store.
type Target interface {
	Reset(rev int64, groups []store.Change) error
	Apply(rev int64, changes []store.Change) error
}

// loadPage is how many groups one read of a load returns.
const loadPage = 500

// Load replaces the target's groups by all groups in etcd, read at one
// revision, and returns it. It retries until ctx ends.
func (j *Journal) Load(ctx context.Context, t Target) error {
	for {
		err := j.load(ctx, t)
		if err == nil || ctx.Err() != nil {
			return err
		}
		j.setWatchErr(fmt.Errorf("load groups: %w", err))
		j.logger.Warn("loading groups from etcd failed; retrying", "err", err)
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (j *Journal) load(ctx context.Context, t Target) error {
	start := j.key(groupsDir, "")
	end := clientv3.GetPrefixRangeEnd(start)
	var rev int64
	var groups []store.Change
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(loadPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		rctx, cancel := context.WithTimeout(ctx, j.timeout)
		resp, err := j.cli.Get(rctx, start, opts...)
		cancel()
		if err != nil {
			return err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			c, err := j.change(kv)
			if err != nil {
				return err
			}
			groups = append(groups, c)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	if err := t.Reset(rev, groups); err != nil {
		j.logger.Error("some groups in etcd could not be loaded", "err", err)
	}
	j.saw(rev)
	j.mu.Lock()
	j.applied = rev
	j.watchErr = nil
	j.probeErr = nil // the linearizable reads took a quorum
	j.mu.Unlock()
	j.updateUp()
	j.logger.Info("loaded groups from etcd", "groups", len(groups), "revision", rev)
	return nil
}

// change turns a key-value into a group change.
func (j *Journal) change(kv *mvccpb.KeyValue) (store.Change, error) {
	id, ok := strings.CutPrefix(string(kv.Key), j.key(groupsDir, ""))
	if !ok {
		return store.Change{}, fmt.Errorf("key %q outside the groups", kv.Key)
	}
	v, err := j.decode(kv.Value)
	if err != nil {
		return store.Change{}, fmt.Errorf("group %q: %w", id, err)
	}
	return store.Change{ID: id, Rev: kv.ModRevision, Value: v}, nil
}

// Follow applies every change after the last Load to the target, in
// etcd's order, until ctx ends. When the stream breaks it resumes where it
// was; when etcd has compacted the revisions it needs, it loads again.
func (j *Journal) Follow(ctx context.Context, t Target) error {
	pause := minPause
	for {
		err := j.follow(ctx, t)
		if ctx.Err() != nil {
			return nil
		}
		j.mu.Lock()
		wasLive := j.watchErr == nil
		j.mu.Unlock()
		j.setWatchErr(fmt.Errorf("change stream: %w", err))
		if errors.Is(err, errCompacted) {
			j.logger.Warn("change stream fell behind etcd's compaction; loading all groups again", "err", err)
			j.m.reloads.Inc()
			if err := j.Load(ctx, t); err != nil {
				return nil // ctx ended
			}
			continue
		}
		// Said once per outage, not at every attempt.
		if wasLive {
			j.logger.Warn("change stream broke; resuming", "err", err)
			pause = minPause
		} else {
			j.logger.Debug("change stream still broken; resuming", "err", err)
			pause = min(2*pause, maxPause)
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return nil
		}
	}
}

// Pauses between attempts to resume the change stream.
const (
	minPause = 100 * time.Millisecond
	maxPause = 2 * time.Second
)

var errCompacted = errors.New("revisions compacted")

func (j *Journal) follow(ctx context.Context, t Target) error {
	// A watch that requires a leader is cancelled when its member loses
	// the quorum, instead of waiting silently.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	j.mu.Lock()
	from := j.applied + 1
	j.mu.Unlock()
	// The whole prefix, not only the groups: every write of this journal
	// changes a key under it, so the revision of its last event is the
	// revision up to which all changes are applied. (Progress reports
	// cannot tell that: etcd before 3.5.8 and 3.4.25 may send them ahead
	// of events.)
	wch := j.cli.Watch(wctx, j.prefix, clientv3.WithPrefix(), clientv3.WithRev(from))
	// Without traffic no response would come to show that the stream is
	// live (after an outage, say); a progress report does.
	var live atomic.Bool
	go func() {
		for !live.Load() && wctx.Err() == nil {
			_ = j.cli.RequestProgress(wctx)
			select {
			case <-time.After(300 * time.Millisecond):
			case <-wctx.Done():
			}
		}
	}()
	for resp := range wch {
		if resp.CompactRevision != 0 {
			return fmt.Errorf("%w: need revision %d, compacted up to %d", errCompacted, from, resp.CompactRevision)
		}
		if err := resp.Err(); err != nil {
			return err
		}
		if !live.Load() {
			live.Store(true)
			j.setWatchErr(nil)
		}
		j.saw(resp.Header.Revision)
		if len(resp.Events) == 0 {
			continue
		}
		changes := make([]store.Change, 0, len(resp.Events))
		for _, ev := range resp.Events {
			id, ok := strings.CutPrefix(string(ev.Kv.Key), j.key(groupsDir, ""))
			if !ok {
				continue // a guard or the tick: only its revision counts
			}
			c := store.Change{ID: id, Rev: ev.Kv.ModRevision}
			if ev.Type == clientv3.EventTypePut {
				var err error
				if c, err = j.change(ev.Kv); err != nil {
					j.logger.Error("skipping a group change that does not decode", "revision", ev.Kv.ModRevision, "err", err)
					continue
				}
			}
			changes = append(changes, c)
		}
		// All events of a revision come in one response.
		applied := resp.Events[len(resp.Events)-1].Kv.ModRevision
		if err := t.Apply(applied, changes); err != nil {
			j.logger.Error("some group changes could not be applied", "revision", applied, "err", err)
		}
		j.mu.Lock()
		if applied > j.applied {
			j.applied = applied
		}
		from = j.applied + 1
		j.mu.Unlock()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("watch closed")
}

func (j *Journal) setWatchErr(err error) {
	j.mu.Lock()
	j.watchErr = err
	j.mu.Unlock()
	j.updateUp()
}
