// Package disk keeps the durable copy of the store in an embedded bbolt
// database (go.etcd.io/bbolt): one key per group, holding the store's
// checksummed encoding of it. bbolt writes copy-on-write pages and switches
// to a new root with one meta page write, so a crash at any moment leaves
// the last committed state, never a torn one; its meta pages are
// checksummed, our values are too.
//
// Writes are group-committed by a single committer goroutine: a write that
// arrives while a commit (and its fsync) runs joins the next one, so
// concurrent pushes share fsyncs without an artificial delay, and a push is
// acknowledged only after its commit returned. A write that bbolt refuses
// by itself fails alone; the others of its commit are committed without it.
//
// A group ID longer than bbolt's largest key (MaxKeySize, 32 KiB) is stored
// under a hash of it (see boltKey); the value holds the full grouping key.
package disk

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileName is the database file inside the storage directory.
const FileName = "pushgate.db"

var (
	groupsBucket = []byte("groups")
	metaBucket   = []byte("meta")
	versionKey   = []byte("format_version")
	importedKey  = []byte("imported_persistence_file")
)

// formatVersion is the layout of the database (buckets and keys); values
// carry their own version.
const formatVersion = "1"

// maxBatch bounds how many writes share one commit.
const maxBatch = 4096

// releaseInterval is how often mapped pages are released (ReleaseMapped).
// Every commit reads a few pages of the mapping (meta, branches, the leaf
// it replaces), and the kernel maps each fault's neighbours with it (fault
// around, 64 KiB): under 1000 pushes/s at 1M series the file's pages
// filled the mapping, 100 MB of RSS, within 3 s. Released every second,
// peak RSS during pushbench push at 1M series was 246 MB instead of 272.
const releaseInterval = time.Second

// Options configure the database.
type Options struct {
	// ProbeInterval is how often a failing database is probed for
	// recovery; 0 means 2s.
	ProbeInterval time.Duration
	// CompactInterval is how often the file is checked for compaction
	// (--persistence.interval); 0 means only at Open.
	CompactInterval time.Duration
	Logger          *slog.Logger
	Registerer      prometheus.Registerer
}

// DB is the durable copy of the groups. Its methods are safe for concurrent use.
type DB struct {
	// dbMu guards db, which compaction replaces. The committer and
	// compaction run on the same goroutine; others take it shared. db is
	// nil while the file is closed because reopening it after a
	// compaction failed (see ensureOpen).
	dbMu sync.RWMutex
	db   *bolt.DB
	// open opens the file; a field so that tests can make it fail.
	open    func(path string) (*bolt.DB, error)
	path    string
	logger  *slog.Logger
	metrics *metrics

	reqs       chan *request
	compactReq chan chan error // compaction on the committer goroutine
	stop       chan struct{}
	wg         sync.WaitGroup
	closeOnce  sync.Once

	// closeMu orders writes and Close: submit holds it shared while it
	// queues a write, Close exclusively while it sets closed. So a write
	// is either queued before Close, and then committed and answered, or
	// refused with ErrClosed; none is left waiting.
	closeMu sync.RWMutex
	closed  bool // guarded by closeMu

	// failure is why the storage does not work (the last commit failed,
	// or the file is closed), else nil.
	failure atomic.Pointer[error]
	// lastCompaction is the Unix time in nanoseconds of the last compaction.
	lastCompaction atomic.Int64
}

type op int

const (
	opPut op = iota
	opDelete
	opDeleteAll
	opProbe
	opImport
)

type request struct {
	op    op
	key   []byte // bbolt key (boltKey of the group ID)
	value []byte
	// values and source are those of an import: group ID -> value, and
	// the imported file.
	values map[string][]byte
	source string
	// done receives the outcome, once. Every queued request gets it.
	done chan error
}

type metrics struct {
	commitDuration     prometheus.Histogram
	batchSize          prometheus.Histogram
	failures           prometheus.Counter
	compactionDuration prometheus.Gauge
}

// Open opens or creates the database in dir.
func Open(dir string, opts Options) (*DB, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create storage directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := openChecked(path, openBolt)
	if err != nil {
		return nil, err
	}
	if err := initialize(db); err != nil {
		return nil, errors.Join(fmt.Errorf("initialize storage %s: %w", path, err), db.Close())
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &DB{
		db:         db,
		open:       openBolt,
		path:       path,
		logger:     logger,
		reqs:       make(chan *request, maxBatch),
		compactReq: make(chan chan error),
		stop:       make(chan struct{}),
	}
	d.metrics = d.newMetrics(opts.Registerer)
	// A compaction that crashed before its rename left only a temporary file.
	if err := os.Remove(path + compactSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, errors.Join(fmt.Errorf("remove stale compaction file: %w", err), db.Close())
	}
	probe := opts.ProbeInterval
	if probe <= 0 {
		probe = 2 * time.Second
	}
	d.wg.Add(2)
	go d.commitLoop(opts.CompactInterval)
	go d.probeLoop(probe)
	return d, nil
}

// openChecked opens the file and checks it is as long as its header says,
// before anything reads through the memory map: a truncated file would
// otherwise fault. bbolt reports some corruption by panicking; that becomes
// an error naming the file too.
func openChecked(path string, open func(string) (*bolt.DB, error)) (db *bolt.DB, err error) {
	defer guard(path, &err)()
	db, err = open(path)
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			err = errors.New("it is locked by another process (is another pushgate using the same --storage.path?)")
		}
		return nil, fmt.Errorf("open storage %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("stat storage: %w", err), db.Close())
	}
	var want int64
	if err := db.View(func(tx *bolt.Tx) error { want = tx.Size(); return nil }); err != nil {
		return nil, errors.Join(fmt.Errorf("read storage %s: %w", path, err), db.Close())
	}
	if fi.Size() < want {
		return nil, errors.Join(fmt.Errorf("storage %s is truncated: it has %d bytes, its header says %d (the file is left as it is; move it away to start empty)", path, fi.Size(), want), db.Close())
	}
	return db, nil
}

// guard turns a panic, or a memory fault while reading the mapped file,
// into an error, for the function that defers the function it returns:
//
//	defer guard(path, &err)()
//
// Faults become panics only while the guard is up, and only in this goroutine.
func guard(path string, err *error) func() {
	old := debug.SetPanicOnFault(true)
	return func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			*err = corruptError(path, r)
		}
	}
}

// initialize creates the buckets of a new file and checks the format
// version of an existing one. An existing file is not written to: a start
// must not change a file it has not validated yet (bbolt rewrites its meta
// and freelist pages on every commit, even an empty one).
func initialize(db *bolt.DB) error {
	var version []byte
	fresh := false
	if err := db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(metaBucket)
		if meta == nil || tx.Bucket(groupsBucket) == nil {
			fresh = true
			return nil
		}
		version = append(version, meta.Get(versionKey)...)
		return nil
	}); err != nil {
		return err
	}
	if !fresh {
		if string(version) != formatVersion {
			return fmt.Errorf("unknown storage format version %q (this pushgate reads %q)", version, formatVersion)
		}
		return nil
	}
	return db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		if v := meta.Get(versionKey); v != nil && string(v) != formatVersion {
			return fmt.Errorf("unknown storage format version %q (this pushgate reads %q)", v, formatVersion)
		}
		if err := meta.Put(versionKey, []byte(formatVersion)); err != nil {
			return err
		}
		_, err = tx.CreateBucketIfNotExists(groupsBucket)
		return err
	})
}

func openBolt(path string) (*bolt.DB, error) {
	return bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      2 * time.Second, // another process holds the file lock
		FreelistType: bolt.FreelistMapType,
	})
}

const (
	compactSuffix = ".compact"
	// compactMinSize is the file size below which compaction never pays.
	compactMinSize = 16 << 20
)

// ReleaseMapped drops the file's pages from the process's resident memory
// (see dropMapped); call it after reading everything at start.
func (d *DB) ReleaseMapped() error {
	d.dbMu.RLock()
	defer d.dbMu.RUnlock()
	if d.db == nil {
		return d.unavailable()
	}
	return d.db.View(func(tx *bolt.Tx) error {
		data, size := mappedSpan(tx)
		return dropMapped(data, size)
	})
}

// mappedSpan is the part of bbolt's mapping that holds the database's pages,
// as seen by tx: its start and length. While tx is open bbolt cannot remap,
// so the span stays valid until it ends.
//
// The length is the pages allocated so far, never the file's size: once
// the file is past bbolt's AllocSize it grows the file AllocSize beyond its
// mapping, and MADV_DONTNEED past the mapping's end would zero whatever
// anonymous memory the process has mapped there (a C library arena took a
// SIGSEGV from exactly that).
func mappedSpan(tx *bolt.Tx) (uintptr, int) {
	return tx.DB().Info().Data, int(tx.Size())
}

// CompactIfWasteful compacts the file if most of it is free pages. Call it
// after the stored data was read successfully, never before: compacting
// replaces the file.
func (d *DB) CompactIfWasteful() error {
	done := make(chan error, 1)
	select {
	case d.compactReq <- done:
		return <-done
	case <-d.stop:
		return ErrClosed
	}
}

// maybeCompact rewrites the file without its free pages when they make up
// more than half of it: bbolt reuses freed pages but never shrinks its
// file, so after many groups were deleted the file would stay at its peak.
// It runs on the committer goroutine (or before it starts), so no write
// interleaves; writes arriving meanwhile wait.
func (d *DB) maybeCompact() error {
	if err := d.ensureOpen(); err != nil {
		return err
	}
	fi, err := os.Stat(d.path)
	if err != nil {
		return fmt.Errorf("stat storage: %w", err)
	}
	if fi.Size() < compactMinSize {
		return nil
	}
	// bbolt's freelist statistics are only updated by write transactions,
	// so measure what the buckets use instead.
	var used int64
	d.dbMu.RLock()
	err = d.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			st := b.Stats()
			used += int64(st.BranchAlloc + st.LeafAlloc)
			return nil
		})
	})
	d.dbMu.RUnlock()
	if err != nil {
		return fmt.Errorf("measure storage: %w", err)
	}
	if used*2 > fi.Size() {
		return nil
	}
	start := time.Now()
	if err := d.compact(); err != nil {
		return fmt.Errorf("compact storage %s: %w", d.path, err)
	}
	after, _ := os.Stat(d.path)
	d.lastCompaction.Store(time.Now().UnixNano())
	d.metrics.compactionDuration.Set(time.Since(start).Seconds())
	if after != nil {
		d.logger.Info("compacted storage", "file", d.path, "bytes_before", fi.Size(), "bytes_after", after.Size(), "duration", time.Since(start))
	}
	return nil
}

// compact copies the live data into a new file, syncs it and renames it
// over the old one; a crash at any point leaves a complete file in place.
func (d *DB) compact() error {
	tmp := d.path + compactSuffix
	dst, err := openBolt(tmp)
	if err != nil {
		return err
	}
	d.dbMu.Lock()
	defer d.dbMu.Unlock()
	if err := bolt.Compact(dst, d.db, 64<<20); err != nil {
		return errors.Join(err, dst.Close(), os.Remove(tmp))
	}
	if err := dst.Close(); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	if err := d.db.Close(); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	renameErr := os.Rename(tmp, d.path)
	if renameErr == nil {
		renameErr = syncDir(filepath.Dir(d.path))
	}
	// Reopen whichever file is in place now. If that fails, the file
	// stays closed until ensureOpen succeeds: each write and each probe
	// tries again, and Healthy reports the failure meanwhile.
	db, err := d.open(d.path)
	if err != nil {
		d.db = nil
		err = fmt.Errorf("reopen after compaction: %w", err)
		d.setFailure(err)
		return errors.Join(renameErr, err)
	}
	d.db = db
	return renameErr
}

// ensureOpen reopens the file if a compaction left it closed. It runs on
// the committer goroutine.
func (d *DB) ensureOpen() error {
	d.dbMu.RLock()
	open := d.db != nil
	d.dbMu.RUnlock()
	if open {
		return nil
	}
	db, err := openChecked(d.path, d.open)
	if err == nil {
		if err = initialize(db); err != nil {
			err = errors.Join(fmt.Errorf("reopen storage %s: %w", d.path, err), db.Close())
		}
	}
	if err != nil {
		return fmt.Errorf("storage is closed (a compaction could not reopen it): %w", err)
	}
	d.dbMu.Lock()
	d.db = db
	d.dbMu.Unlock()
	d.logger.Info("reopened storage", "file", d.path)
	return nil
}

// unavailable is the error of a read while the file is closed; the caller
// holds dbMu.
func (d *DB) unavailable() error {
	return fmt.Errorf("storage %s is closed (a compaction could not reopen it; retrying)", d.path)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

func (d *DB) newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pushgate_storage_commit_duration_seconds",
			Help:    "Duration of storage commits, including fsync.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pushgate_storage_commit_batch_size",
			Help:    "Number of writes that shared one storage commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushgate_storage_commit_failures_total",
			Help: "Storage commits that failed; their writes were refused.",
		}),
		compactionDuration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pushgate_storage_last_compaction_duration_seconds",
			Help: "Duration of the last compaction of the storage file.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.commitDuration, m.batchSize, m.failures, m.compactionDuration,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pushgate_storage_last_compaction_timestamp_seconds",
				Help: "Unix time of the last compaction of the storage file; 0 if none ran.",
			}, func() float64 {
				if t := d.LastCompaction(); !t.IsZero() {
					return float64(t.Unix())
				}
				return 0
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pushgate_storage_bytes",
				Help: "Size of the storage file on disk.",
			}, func() float64 {
				fi, err := os.Stat(d.path)
				if err != nil {
					return 0
				}
				return float64(fi.Size())
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pushgate_storage_healthy",
				Help: "1 if the last storage commit succeeded, 0 if it failed.",
			}, func() float64 {
				if d.Healthy() != nil {
					return 0
				}
				return 1
			}),
		)
	}
	return m
}

// LastCompaction is when the file was last compacted; zero if never.
func (d *DB) LastCompaction() time.Time {
	if n := d.lastCompaction.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Path is the database file.
func (d *DB) Path() string { return d.path }

// Save stores a group value; it returns once the value is on disk.
func (d *DB) Save(id string, value []byte) error {
	return d.submit(&request{op: opPut, key: boltKey(id), value: value})
}

// Remove deletes a group; it returns once the deletion is on disk.
func (d *DB) Remove(id string) error {
	return d.submit(&request{op: opDelete, key: boltKey(id)})
}

// RemoveAll deletes all groups; it returns once the deletion is on disk.
func (d *DB) RemoveAll() error {
	return d.submit(&request{op: opDeleteAll})
}

// Import stores the groups of an imported persistence file (group ID ->
// value) and records source as imported (see Imported), all in one
// commit: after a failure or a crash, either all of it is on disk or
// nothing is.
func (d *DB) Import(values map[string][]byte, source string) error {
	return d.submit(&request{op: opImport, values: values, source: source})
}

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("storage is closed")

// hashedKeyPrefix starts the bbolt key of a group ID too long to be one.
// No group ID starts with it: an ID starts with a label name, which is
// valid UTF-8, and 0xff never occurs in UTF-8.
const hashedKeyPrefix = "\xffsha256:"

// boltKey is the bbolt key of a group ID: the ID itself, or, if it is
// longer than bbolt's largest key, its SHA-256 after hashedKeyPrefix.
// Values hold their full grouping key, so nothing needs the ID back from
// the key. The ID is kept whenever it fits, so files written before long
// IDs were hashed read the same (no group ID that bbolt could hold changes
// its key).
func boltKey(id string) []byte {
	if len(id) <= bolt.MaxKeySize {
		return []byte(id)
	}
	sum := sha256.Sum256([]byte(id))
	return append([]byte(hashedKeyPrefix), sum[:]...)
}

// submit queues r for the committer and returns its outcome: nil only if
// it is on disk, an error only if it is not. It never gives up waiting:
// the committer answers every request it was given, also at Close.
func (d *DB) submit(r *request) error {
	r.done = make(chan error, 1)
	d.closeMu.RLock()
	if d.closed {
		d.closeMu.RUnlock()
		return ErrClosed
	}
	// The committer runs until Close, which waits for this lock.
	d.reqs <- r
	d.closeMu.RUnlock()
	return <-r.done
}

// commitLoop is the only writer: it commits whatever writes are waiting,
// then the ones that arrived meanwhile.
func (d *DB) commitLoop(compactInterval time.Duration) {
	defer d.wg.Done()
	var compact <-chan time.Time
	if compactInterval > 0 {
		t := time.NewTicker(compactInterval)
		defer t.Stop()
		compact = t.C
	}
	// Writes read the pages of the values they replace through the
	// mapping; release them regularly so they do not add up to the file.
	release := time.NewTicker(releaseInterval)
	defer release.Stop()
	batch := make([]*request, 0, maxBatch)
	stopping := false
	for {
		if stopping {
			// Close has refused new writes, so the queue only shrinks:
			// commit what was queued before, then stop.
			select {
			case r := <-d.reqs:
				batch = append(batch[:0], r)
			default:
				return
			}
		} else {
			select {
			case <-release.C:
				if err := d.ReleaseMapped(); err != nil {
					d.logger.Debug("release mapped pages", "file", d.path, "err", err)
				}
				continue
			case <-compact:
				if err := d.maybeCompact(); err != nil {
					d.logger.Error("compaction failed", "file", d.path, "err", err)
				}
				continue
			case done := <-d.compactReq:
				done <- d.maybeCompact()
				continue
			case r := <-d.reqs:
				batch = append(batch[:0], r)
			case <-d.stop:
				stopping = true
				continue
			}
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case r := <-d.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		d.commitBatch(batch)
		clear(batch) // do not keep values alive until the next batch
	}
}

// commitBatch commits the requests, answers each, and updates the health.
func (d *DB) commitBatch(batch []*request) {
	if err := d.ensureOpen(); err != nil {
		d.metrics.failures.Inc()
		d.setFailure(err)
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	committed, err := d.commit(batch)
	switch {
	case err != nil:
		d.setFailure(err)
	case committed:
		d.setFailure(nil)
	}
	// Else every write was refused by itself: that says nothing about the
	// storage.
}

// commit commits the requests in one transaction if it can and answers
// each. It reports whether a transaction committed, and the error of the
// first commit that failed.
//
// If the transaction of several writes fails, for whatever reason, each
// is retried alone, so that no write fails because of another one: a
// write that bbolt refuses by itself (apply's error, such as a value over
// its size limit) fails alone and says nothing about the storage; a commit
// that fails (a full, read-only or failing disk, or one value too large
// for the space left) does.
func (d *DB) commit(batch []*request) (committed bool, failure error) {
	refused, err := d.update(batch)
	switch {
	case err == nil:
		for _, r := range batch {
			r.done <- nil
		}
		return true, nil
	case len(batch) > 1:
		for _, r := range batch {
			ok, err := d.commit([]*request{r})
			committed = committed || ok
			if failure == nil {
				failure = err
			}
		}
		return committed, failure
	case refused:
		batch[0].done <- fmt.Errorf("write to %s: %w", d.path, err)
		return false, nil
	}
	err = fmt.Errorf("commit to %s: %w", d.path, err)
	batch[0].done <- err
	return false, err
}

// update applies the requests in one transaction and commits it. refused
// reports that a request failed, and so nothing was committed.
func (d *DB) update(batch []*request) (refused bool, err error) {
	start := time.Now()
	d.dbMu.RLock()
	err = d.db.Update(func(tx *bolt.Tx) error {
		for _, r := range batch {
			if err := apply(tx, r); err != nil {
				refused = true
				return err
			}
		}
		return nil
	})
	d.dbMu.RUnlock()
	if !refused {
		d.metrics.commitDuration.Observe(time.Since(start).Seconds())
		d.metrics.batchSize.Observe(float64(len(batch)))
		if err != nil {
			d.metrics.failures.Inc()
		}
	}
	return refused, err
}

func apply(tx *bolt.Tx, r *request) error {
	switch r.op {
	case opPut:
		return tx.Bucket(groupsBucket).Put(r.key, r.value)
	case opDelete:
		return tx.Bucket(groupsBucket).Delete(r.key)
	case opDeleteAll:
		if err := tx.DeleteBucket(groupsBucket); err != nil {
			return err
		}
		_, err := tx.CreateBucket(groupsBucket)
		return err
	case opProbe:
		// Rewrite the format version: a real write that changes nothing.
		return tx.Bucket(metaBucket).Put(versionKey, []byte(formatVersion))
	case opImport:
		groups := tx.Bucket(groupsBucket)
		// In key order, which is how bbolt fills its pages best.
		ids := make([]string, 0, len(r.values))
		for id := range r.values {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			if err := groups.Put(boltKey(id), r.values[id]); err != nil {
				return err
			}
		}
		return tx.Bucket(metaBucket).Put(importedKey, []byte(r.source))
	}
	return fmt.Errorf("unknown storage operation %d", r.op)
}

// setFailure records whether the storage works: nil after a successful
// commit, else the error that shows it does not.
func (d *DB) setFailure(err error) {
	if err == nil {
		if d.failure.Swap(nil) != nil {
			d.logger.Info("storage works again", "file", d.path)
		}
		return
	}
	if d.failure.Swap(&err) == nil {
		d.logger.Error("storage failed; writes are refused until it recovers", "file", d.path, "err", err)
	}
}

// Healthy returns why the storage does not work (its last commit failed,
// or its file is closed), or nil. A write refused by itself, such as a
// value too large for bbolt, does not make the storage unhealthy.
func (d *DB) Healthy() error {
	if p := d.failure.Load(); p != nil {
		return fmt.Errorf("storage %s: %w", d.path, *p)
	}
	return nil
}

// probeLoop commits a no-op write while the database fails, so that it is
// found healthy again once the disk recovers, without waiting for a push.
func (d *DB) probeLoop(interval time.Duration) {
	defer d.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			if d.Healthy() != nil {
				_ = d.submit(&request{op: opProbe})
			}
		}
	}
}

// ForEach calls fn with every stored group value, in key order. The value
// is only valid during the call. An error of fn is returned with the
// position of the value in the file, so corruption can be located.
func (d *DB) ForEach(fn func(value []byte) error) (err error) {
	defer guard(d.path, &err)()
	d.dbMu.RLock()
	defer d.dbMu.RUnlock()
	if d.db == nil {
		return d.unavailable()
	}
	base := d.db.Info().Data
	return d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(groupsBucket).ForEach(func(k, v []byte) error {
			if err := fn(v); err != nil {
				return d.valueError(base, k, v, err)
			}
			return nil
		})
	})
}

// corruptError is the error of a walk over a file that bbolt found corrupt
// (r is what it panicked with).
func corruptError(path string, r any) error {
	return fmt.Errorf("storage %s is corrupt (the file is left as it is; move it away to start empty): %v", path, r)
}

// valueError is the error of a stored value that failed to load.
func (d *DB) valueError(base uintptr, k, v []byte, err error) error {
	return fmt.Errorf("%s: group %q at offset %d: %w", d.path, printableKey(k), d.offsetOf(base, v), err)
}

// printableKey shortens a key for messages: a grouping key can be
// megabytes long.
func printableKey(k []byte) string {
	const maxLen = 200
	if bytes.HasPrefix(k, []byte(hashedKeyPrefix)) {
		return fmt.Sprintf("sha256:%x", k[len(hashedKeyPrefix):])
	}
	if len(k) > maxLen {
		return fmt.Sprintf("%s... (%d bytes)", k[:maxLen], len(k))
	}
	return string(k)
}

// offsetOf locates a value in the file, for error messages. Values point
// into the memory-mapped file, except in small buckets that bbolt copies;
// then the file is searched. -1 means not found.
func (d *DB) offsetOf(base uintptr, v []byte) int64 {
	if len(v) == 0 {
		return -1
	}
	fi, err := os.Stat(d.path)
	if err != nil {
		return -1
	}
	if off := int64(uintptr(unsafe.Pointer(&v[0])) - base); off >= 0 && off < fi.Size() {
		return off
	}
	b, err := os.ReadFile(d.path)
	if err != nil {
		return -1
	}
	return int64(bytes.Index(b, v))
}

// Imported returns the persistence file imported into this database (see
// Import), if any.
func (d *DB) Imported() (string, error) {
	var path string
	d.dbMu.RLock()
	defer d.dbMu.RUnlock()
	if d.db == nil {
		return "", d.unavailable()
	}
	err := d.db.View(func(tx *bolt.Tx) error {
		path = string(tx.Bucket(metaBucket).Get(importedKey))
		return nil
	})
	return path, err
}

// Close commits the writes queued before it, stops the committer and
// closes the file. Writes after Close fail with ErrClosed.
func (d *DB) Close() error {
	var err error
	d.closeOnce.Do(func() {
		d.closeMu.Lock()
		d.closed = true
		d.closeMu.Unlock()
		close(d.stop)
		d.wg.Wait()
		d.dbMu.Lock()
		if d.db != nil {
			err = d.db.Close()
		}
		d.dbMu.Unlock()
	})
	return err
}
