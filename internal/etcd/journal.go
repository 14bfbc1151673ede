package etcd

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pushgate/pushgate/internal/store"
)

// Keys under the prefix:
//
//	g/<group ID>   a group: an 8-byte write nonce, then the store's value
//	               compressed with zstd
//	guard/<name>   a guard key of the store (see store.Write); empty
//	meta/imported  the file imported into an empty prefix, once
//	meta/tick      written after a delete that found nothing (see tick)
//	meta/probe     read, never written, by the quorum probe
const (
	groupsDir = "g/"
	guardsDir = "guard/"
	metaDir   = "meta/"
	nonceLen  = 8
)

// Limits of one etcd transaction: its operations (etcd's --max-txn-ops
// default), and what a request carries besides the values.
const (
	maxTxnOps       = 128
	requestOverhead = 1024
)

// committers is how many transactions may be in flight at once; writes
// queued meanwhile share the next one. Few, so that writes do share them:
// etcd's cost is per transaction more than per write.
const committers = 2

// commitTimeout bounds one transaction. Short, so that a write lost with
// a failing leader is read back and, if need be, written again soon after
// the new leader is up, well within the request timeout.
const commitTimeout = 2 * time.Second

// Options configure a Journal.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Journal is the store's shared journal on etcd (store.Shared), and follows
// the changes of every replica into the store (Load, Follow).
type Journal struct {
	cli     *clientv3.Client
	prefix  string
	maxReq  int
	timeout time.Duration
	logger  *slog.Logger
	m       metrics

	// zstd on the whole value: the store's value holds s2-compressed
	// families, which zstd's entropy coding still shrinks about 2.5 times
	// (measured on a 10,000-series group: 468 KB to 185 KB), so that
	// larger groups fit etcd's request limit. Both are safe for
	// concurrent use.
	enc *zstd.Encoder
	dec *zstd.Decoder

	queue  chan *request
	stop   chan struct{}
	wg     sync.WaitGroup
	closed sync.Once

	mu       sync.Mutex // guards the fields below
	probeErr error      // the last health probe's failure
	watchErr error      // why the change stream is not live, if it is not
	known    int64      // the newest revision seen in any response
	applied  int64      // the revision applied to the store
}

type request struct {
	w     *store.Write
	nonce []byte
	value []byte // nonce and compressed value, for a put
	ops   int    // operations in the transaction
	size  int    // request bytes
	done  chan result
}

type result struct {
	rev int64
	err error
}

type metrics struct {
	commitDuration prometheus.Histogram
	batchSize      prometheus.Histogram
	unknown        prometheus.Counter
	reloads        prometheus.Counter
	up             prometheus.Gauge
}

// Open connects to the cluster. It does not wait for it to answer; Load
// does.
func Open(cfg Config, opts Options) (*Journal, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("no etcd endpoints")
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = defaultRequestTimeout
	}
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	password, err := cfg.password()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		TLS:         tlsCfg,
		Username:    cfg.Username,
		Password:    password,
		// Room for the largest request we send; loading reads in pages.
		MaxCallSendMsgSize: cfg.MaxRequestBytes + requestOverhead,
		MaxCallRecvMsgSize: math.MaxInt32,
		Logger:             zap.NewNop(),
		// Keep connections to every member, so a failover is quick.
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, errors.Join(err, cli.Close())
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxValueBytes))
	if err != nil {
		return nil, errors.Join(err, cli.Close())
	}
	j := &Journal{
		enc:      enc,
		dec:      dec,
		cli:      cli,
		prefix:   cfg.Prefix,
		maxReq:   cfg.MaxRequestBytes,
		timeout:  cfg.RequestTimeout,
		logger:   opts.Logger,
		queue:    make(chan *request, 1024),
		stop:     make(chan struct{}),
		probeErr: errors.New("etcd not reached yet"),
		watchErr: errors.New("groups not loaded yet"),
	}
	if j.logger == nil {
		j.logger = slog.New(slog.DiscardHandler)
	}
	j.m = j.newMetrics(opts.Registerer)
	for range committers {
		j.wg.Add(1)
		go j.commitLoop()
	}
	j.wg.Add(1)
	go j.probeLoop()
	return j, nil
}

func (j *Journal) newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pushgate_etcd_commit_duration_seconds",
			Help:    "Time an etcd transaction committing writes took, from sending it to its answer.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pushgate_etcd_commit_writes",
			Help:    "Writes that shared one etcd transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}),
		unknown: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushgate_etcd_unknown_outcomes_total",
			Help: "Transactions whose outcome was unknown (timeout, leader change) and had to be read back.",
		}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushgate_etcd_reloads_total",
			Help: "Times all groups were loaded again, after the change stream fell behind etcd's compaction or broke.",
		}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pushgate_etcd_up",
			Help: "1 if etcd has a quorum and the change stream is live, else 0 (and /-/ready answers 503).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.commitDuration, m.batchSize, m.unknown, m.reloads, m.up,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pushgate_etcd_applied_revision",
				Help: "The etcd revision up to which this replica has applied every change.",
			}, func() float64 { return float64(j.Revisions().Applied) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pushgate_etcd_watch_lag_revisions",
				Help: "Revisions etcd has that this replica has not applied yet (changes of other prefixes count too).",
			}, func() float64 { r := j.Revisions(); return float64(max(r.Known-r.Applied, 0)) }),
		)
	}
	return m
}

// Revisions reports how far the replica is: the newest etcd revision seen
// and the revision applied.
type Revisions struct{ Known, Applied int64 }

// Revisions returns the current revisions.
func (j *Journal) Revisions() Revisions {
	j.mu.Lock()
	defer j.mu.Unlock()
	return Revisions{Known: j.known, Applied: j.applied}
}

func (j *Journal) saw(rev int64) {
	j.mu.Lock()
	if rev > j.known {
		j.known = rev
	}
	j.mu.Unlock()
}

func (j *Journal) key(dir, name string) string { return j.prefix + dir + name }

// Commit implements store.Shared.
func (j *Journal) Commit(w *store.Write) (int64, error) {
	r := &request{w: w, done: make(chan result, 1)}
	switch {
	case w.All:
		r.ops, r.size = 1+len(w.Guards), requestOverhead
	case w.Value == nil:
		r.ops, r.size = 1+len(w.Guards), requestOverhead+len(w.ID)
	default:
		r.nonce, r.value = j.encodeNew(w.Value)
		r.ops = 1 + len(w.Guards)
		r.size = requestOverhead + 2*len(w.ID) + len(r.value)
		for _, keys := range [][]string{w.Guards, w.Checks} {
			for _, g := range keys {
				r.size += 2 * (len(j.prefix) + len(guardsDir) + len(g) + 8)
			}
		}
		if r.size > j.maxReq {
			return 0, &store.LimitError{Kind: store.StoredBytes, Got: r.size, Max: j.maxReq}
		}
	}
	// Without a quorum (the probe fails, or the change stream lost its
	// leader) a write could only time out: refuse it at once.
	if err := j.Healthy(); err != nil {
		return 0, err
	}
	select {
	case j.queue <- r:
	case <-j.stop:
		return 0, errClosed
	}
	res := <-r.done
	return res.rev, res.err
}

var errClosed = errors.New("etcd journal closed")

// commitLoop sends queued writes, as many as fit in one transaction.
func (j *Journal) commitLoop() {
	defer j.wg.Done()
	for {
		var first *request
		select {
		case first = <-j.queue:
		case <-j.stop:
			return
		}
		batch := j.gather(first)
		j.commit(batch)
	}
}

// gather adds to first the queued writes that fit beside it: within etcd's
// limits, and touching no key another write of the batch touches (etcd
// refuses a transaction that writes a key twice). A write that does not
// fit waits for the next transaction.
func (j *Journal) gather(first *request) []*request {
	batch := []*request{first}
	if first.w.All {
		return batch
	}
	keys := map[string]bool{}
	touch := func(r *request) bool {
		ks := append([]string{j.key(groupsDir, r.w.ID)}, r.w.Guards...)
		for _, k := range ks {
			if keys[k] {
				return false
			}
		}
		for _, k := range ks {
			keys[k] = true
		}
		return true
	}
	touch(first)
	ops, size := first.ops, first.size
	for {
		select {
		case r := <-j.queue:
			if r.w.All || ops+r.ops > maxTxnOps || size+r.size > j.maxReq || !touch(r) {
				// Back in the queue, behind what came since; order
				// between writes to different groups does not matter,
				// and writes to one group are serialized by the store.
				go func() {
					select {
					case j.queue <- r:
					case <-j.stop:
						r.done <- result{err: errClosed}
					}
				}()
				return batch
			}
			batch = append(batch, r)
			ops += r.ops
			size += r.size
		default:
			return batch
		}
	}
}

// ops returns a write's comparisons and operations.
func (j *Journal) ops(r *request) ([]clientv3.Cmp, []clientv3.Op) {
	w := r.w
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	gk := j.key(groupsDir, w.ID)
	switch {
	case w.All:
		ops = append(ops, clientv3.OpDelete(j.key(groupsDir, ""), clientv3.WithPrefix()))
	case w.Value == nil:
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(gk), "=", w.Rev))
		ops = append(ops, clientv3.OpDelete(gk))
	default:
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(gk), "=", w.Rev))
		ops = append(ops, clientv3.OpPut(gk, string(r.value)))
	}
	for _, g := range w.Guards {
		k := j.key(guardsDir, g)
		if !w.All {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "<", w.Base+1))
		}
		ops = append(ops, clientv3.OpPut(k, ""))
	}
	for _, g := range w.Checks {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(j.key(guardsDir, g)), "<", w.Base+1))
	}
	return cmps, ops
}

// commit sends one transaction: a plain one for a single write, else one
// nested transaction per write, each with its own conditions.
func (j *Journal) commit(batch []*request) {
	ctx, cancel := context.WithTimeout(context.Background(), min(j.timeout, commitTimeout))
	defer cancel()
	var txn clientv3.Txn
	if len(batch) == 1 {
		cmps, ops := j.ops(batch[0])
		txn = j.cli.Txn(ctx).If(cmps...).Then(ops...)
	} else {
		nested := make([]clientv3.Op, len(batch))
		for i, r := range batch {
			cmps, ops := j.ops(r)
			nested[i] = clientv3.OpTxn(cmps, ops, nil)
		}
		txn = j.cli.Txn(ctx).Then(nested...)
	}
	start := time.Now()
	resp, err := txn.Commit()
	j.m.commitDuration.Observe(time.Since(start).Seconds())
	j.m.batchSize.Observe(float64(len(batch)))
	if err != nil {
		// In parallel: each may take up to the request timeout.
		for _, r := range batch {
			go func() { r.done <- j.resolve(r, err) }()
		}
		return
	}
	rev := resp.Header.Revision
	j.saw(rev)
	var nothing []*request
	for i, r := range batch {
		ok, deleted := resp.Succeeded, int64(-1)
		sub := resp.Responses
		if len(batch) > 1 {
			t := resp.Responses[i].GetResponseTxn()
			ok, sub = t.Succeeded, t.Responses
		}
		if len(sub) > 0 && sub[0].GetResponseDeleteRange() != nil {
			deleted = sub[0].GetResponseDeleteRange().Deleted
		}
		switch {
		case !ok:
			r.done <- result{err: &store.ConflictError{Rev: rev}}
		case deleted == 0:
			nothing = append(nothing, r)
		default:
			r.done <- result{rev: rev}
		}
	}
	if len(nothing) > 0 {
		rev := j.tick()
		for _, r := range nothing {
			r.done <- result{rev: rev}
		}
	}
}

// tick is for deletes that found nothing to delete: they make no event, so
// the store, which waits to have applied every change up to its write,
// would wait in vain. The tick is an event at a revision after them. If it
// fails, the store does not wait (0): the delete is done either way.
func (j *Journal) tick() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), j.timeout)
	defer cancel()
	resp, err := j.cli.Put(ctx, j.key(metaDir, "tick"), "")
	if err != nil {
		return 0
	}
	j.saw(resp.Header.Revision)
	return resp.Header.Revision
}

// resolve finds out whether a write whose transaction failed was made.
// A definite refusal is returned as is; after a timeout or a lost leader
// the write may have been committed all the same, so it is read back: its
// nonce in the group's value says it was. A delete is simply made again.
func (j *Journal) resolve(r *request, err error) result {
	if definite(err) {
		if errors.Is(err, rpctypes.ErrRequestTooLarge) {
			return result{err: &store.LimitError{Kind: store.StoredBytes, Got: r.size, Max: j.maxReq}}
		}
		return result{err: fmt.Errorf("etcd refused the write: %w", err)}
	}
	j.m.unknown.Inc()
	deadline := time.Now().Add(j.timeout)
	for {
		// Each attempt is short: one stuck on a member that just died
		// must not use up the time in which another could answer.
		attempt := time.Now().Add(readBackAttempt)
		if attempt.After(deadline) {
			attempt = deadline
		}
		ctx, cancel := context.WithDeadline(context.Background(), attempt)
		res, rerr := j.readBack(ctx, r)
		cancel()
		if rerr == nil {
			return res
		}
		j.mu.Lock()
		down := j.probeErr
		j.mu.Unlock()
		if time.Now().After(deadline) || down != nil {
			// No quorum: 503 now rather than after the timeout. (A
			// write refused so may still land when the quorum is back;
			// 503 says "not acknowledged", and a retry is harmless.)
			return result{err: fmt.Errorf("etcd unavailable, write not acknowledged (%v; reading it back: %v)", err, rerr)}
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-j.stop:
			return result{err: errClosed}
		}
	}
}

func (j *Journal) readBack(ctx context.Context, r *request) (result, error) {
	if r.w.All {
		// A wipe is unconditional: make it again.
		cmps, ops := j.ops(r)
		resp, err := j.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return result{}, err
		}
		j.saw(resp.Header.Revision)
		return result{rev: resp.Header.Revision}, nil
	}
	resp, err := j.cli.Get(ctx, j.key(groupsDir, r.w.ID))
	if err != nil {
		return result{}, err
	}
	j.saw(resp.Header.Revision)
	switch {
	case r.w.Value == nil && len(resp.Kvs) == 0:
		return result{rev: j.tick()}, nil // gone: by this delete or another
	case r.w.Value != nil && len(resp.Kvs) == 1 && bytes.HasPrefix(resp.Kvs[0].Value, r.nonce):
		return result{rev: resp.Kvs[0].ModRevision}, nil
	}
	// Not done (the read is linearizable): not committed so far. The
	// store checks and writes it again, on condition of the group's
	// revision, so should the lost transaction still commit, the new
	// write conflicts with it, and the store sees it before it retries.
	return result{err: &store.ConflictError{Rev: resp.Header.Revision}}, nil
}

// readBackAttempt bounds one attempt to read a write back.
const readBackAttempt = 500 * time.Millisecond

// definite reports whether err is a refusal by etcd, after which the write
// surely was not made, rather than a lost answer.
func definite(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	switch status.Code(rpctypes.Error(err)) {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.PermissionDenied, codes.Unauthenticated, codes.ResourceExhausted, codes.OutOfRange:
		return true
	}
	return false
}

// probeInterval is how often the journal checks that etcd has a quorum.
const probeInterval = time.Second

// probeLoop checks that a linearizable read succeeds, which needs a
// quorum: without one no write can be acknowledged.
func (j *Journal) probeLoop() {
	defer j.wg.Done()
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), min(j.timeout, 2*probeInterval))
		resp, err := j.cli.Get(ctx, j.key(metaDir, "probe"), clientv3.WithCountOnly())
		cancel()
		j.mu.Lock()
		if err != nil {
			if j.probeErr == nil {
				j.logger.Warn("etcd has no quorum or cannot be reached; pushes are refused until it recovers", "err", err)
			}
			j.probeErr = fmt.Errorf("etcd unavailable: %w", err)
		} else {
			if j.probeErr != nil && j.watchErr == nil {
				j.logger.Info("etcd reachable again")
			}
			j.probeErr = nil
			if resp.Header.Revision > j.known {
				j.known = resp.Header.Revision
			}
		}
		j.mu.Unlock()
		j.updateUp()
		select {
		case <-t.C:
		case <-j.stop:
			return
		}
	}
}

// Healthy returns nil if etcd has a quorum and the replica follows its
// changes, else why not.
func (j *Journal) Healthy() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.probeErr != nil {
		return j.probeErr
	}
	return j.watchErr
}

func (j *Journal) updateUp() {
	if j.Healthy() == nil {
		j.m.up.Set(1)
	} else {
		j.m.up.Set(0)
	}
}

// Close stops the journal. Writes queued are refused.
func (j *Journal) Close() error {
	var err error
	j.closed.Do(func() {
		close(j.stop)
		j.wg.Wait()
	drain:
		for {
			select {
			case r := <-j.queue:
				r.done <- result{err: errClosed}
			default:
				break drain
			}
		}
		err = j.cli.Close()
		j.dec.Close()
		_ = j.enc.Close()
	})
	return err
}

// maxValueBytes bounds a group's value once decompressed.
const maxValueBytes = 1 << 30

// encodeNew makes the stored form of a store's value: a new random write
// nonce, then the value compressed. It returns both.
func (j *Journal) encodeNew(value []byte) (nonce, stored []byte) {
	nonce = make([]byte, nonceLen)
	_, _ = rand.Read(nonce)
	return nonce, j.enc.EncodeAll(value, append(make([]byte, 0, nonceLen+len(value)/2+64), nonce...))
}

// decode returns the store's value from its stored form.
func (j *Journal) decode(v []byte) ([]byte, error) {
	if len(v) < nonceLen {
		return nil, fmt.Errorf("%w: value of %d bytes", store.ErrCorrupt, len(v))
	}
	out, err := j.dec.DecodeAll(v[nonceLen:], nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", store.ErrCorrupt, err)
	}
	return out, nil
}
