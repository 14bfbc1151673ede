// Package disk keeps the durable copy of the store: a write-ahead log of
// our own (log.go) in front of an embedded bbolt database
// (go.etcd.io/bbolt) with one key per group, holding the store's
// checksummed encoding of it. bbolt writes copy-on-write pages and switches
// to a new root with one meta page write, so a crash at any moment leaves
// the last committed state, never a torn one; its meta pages are
// checksummed, our values and log records are too.
//
// Writes are group-committed by a single committer goroutine: a write that
// arrives while a commit (an append to the log and its fdatasync) runs
// joins the next one, so concurrent pushes share syncs without an
// artificial delay, and a push is acknowledged only after its commit
// returned. A write that bbolt would refuse by itself fails alone; the
// others of its commit are committed without it.
//
// A group ID longer than bbolt's largest key (MaxKeySize, 32 KiB) is stored
// under a hash of it (see boltKey); the value holds the full grouping key.
package disk

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
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

// Options configure the database.
type Options struct {
	// ProbeInterval is how often a failing database is probed for
	// recovery; 0 means 2s.
	ProbeInterval time.Duration
	// CompactInterval is how often the file is checked for compaction
	// (--persistence.interval); 0 means only at Open.
	CompactInterval time.Duration
	// CheckpointInterval is how long writes stay only in the log before
	// they are moved into the database file; 0 means 1s.
	CheckpointInterval time.Duration
	Logger             *slog.Logger
	Registerer         prometheus.Registerer
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

	// log is the committer's: no other goroutine touches it.
	log             *logState
	checkpointEvery time.Duration
	// replay is what the log files held beyond the database file at Open,
	// until the committer writes it into the file (settle); nil after
	// that. Reads merge it. Guarded by dbMu.
	replay *replayed
}

// logState is the committer's view of the log.
type logState struct {
	*logFiles
	seq uint64 // the last sequence number given out
	// pending is where the latest change of each group is in the current
	// file: the changes a checkpoint of it moves into the database.
	pending map[string]span
	since   time.Time     // when pending got its first change
	buf     []byte        // the records of a commit, reused
	written []loggedWrite // the requests of a commit, reused
	// broken is the error of an append that failed: the log is emptied
	// into the database (flush) before it takes another record.
	broken error
	// running is the checkpoint of the other file, on its own goroutine;
	// failed is one that failed, retried before anything else. While
	// either is set, the current file cannot be rotated.
	running, failed *checkpoint
}

// loggedWrite is a request of a commit, and where its value starts in the
// commit's records.
type loggedWrite struct {
	r       *request
	valueAt int
}

// span locates a value in a log file; n < 0 marks a deletion.
type span struct{ off, n int64 }

// checkpoint moves the pending changes of a log file into the database,
// then empties the file.
type checkpoint struct {
	file    int
	pending map[string]span
	last    uint64 // sequence number of the file's last record
	done    chan error
}

type op int

const (
	opPut op = iota
	opDelete
	opDeleteAll
	opProbe
	opImport
	opFlush // bring the database file up to date with the log
)

// logged reports whether a write goes through the log; the others are
// rare and go to the database directly, after the log was flushed into it.
func (o op) logged() bool { return o == opPut || o == opDelete }

type request struct {
	op    op
	key   string // bbolt key (boltKey of the group ID)
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
	checkpointDuration prometheus.Histogram
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
	logs, contents, err := openLogs(dir)
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	applied, err := appliedSeq(db)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("read storage %s: %w", path, err), logs.close(), db.Close())
	}
	replay := readLogs(contents, applied)
	if replay.torn != "" {
		logger.Info("ignored the unfinished end of the storage log, a write that was never acknowledged", "dir", dir, "ignored", replay.torn)
	}
	if replay.gap != "" {
		logger.Warn("ignored storage log records that do not follow the database file's; were files of the storage directory moved or replaced?", "dir", dir, "ignored", replay.gap)
	}
	d := &DB{
		db:         db,
		open:       openBolt,
		path:       path,
		logger:     logger,
		reqs:       make(chan *request, maxBatch),
		compactReq: make(chan chan error),
		stop:       make(chan struct{}),
		log:        &logState{logFiles: logs, seq: replay.last, pending: map[string]span{}},

		checkpointEvery: cmp.Or(opts.CheckpointInterval, checkpointInterval),
	}
	if len(replay.changes) > 0 || len(contents[0]) > 0 || len(contents[1]) > 0 {
		d.replay = &replay
	}
	d.metrics = d.newMetrics(opts.Registerer)
	// A compaction that crashed before its rename left only a temporary file.
	if err := os.Remove(path + compactSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, errors.Join(fmt.Errorf("remove stale compaction file: %w", err), logs.close(), db.Close())
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
		return nil, errors.Join(fmt.Errorf("storage %s is truncated: it has %d bytes, its header says %d (%s)", path, fi.Size(), want, LeftAsIs), db.Close())
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
	return openBoltPages(path, pageSize)
}

// pageSize is the page size of a new file (bbolt keeps an existing file's,
// until a compaction writes a new one). Not the OS's 4 KiB: a group of 100
// series is a 5-8 KiB value, which needs a leaf of two or more 4 KiB pages,
// and bbolt pools the buffers of one-page nodes only, so every checkpoint
// allocated a fresh buffer per group it wrote: the largest item of a push's
// allocation at 1M series (14.4 KB per push), and the collector's work that
// comes with it. With 16 KiB pages those leaves are one page, and their
// buffers are reused. Measured (pushbench push, 1M series, 20 s; 4 KiB vs
// 16 KiB): server CPU per push 0.608/0.545 vs 0.418/0.494 ms, p99
// 10.8/10.2 vs 6.6/8.0 ms, database file 101 vs 84 MB; at 100k series the
// same (compare push -groups 1000: CPU 0.98x, p99 0.96x) and 16.8 MB
// instead of 8.4 (the file grows in power-of-two steps up to 1 GiB).
// 32 KiB pages doubled the file at 1M (170 MB). BenchmarkCheckpointPages
// shows the allocation.
const pageSize = 16 << 10

// openBoltPages opens the file at path, creating it with pages of the given
// size if it does not exist.
func openBoltPages(path string, size int) (*bolt.DB, error) {
	return bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      2 * time.Second, // another process holds the file lock
		FreelistType: bolt.FreelistMapType,
		PageSize:     size,
	})
}

const (
	compactSuffix = ".compact"
	// compactMinSize is the file size below which compaction never pays.
	compactMinSize = 16 << 20
)

// ReleaseMapped drops the file's pages from the process's resident memory
// (see dropMapped); call it after reading everything at start. The
// committer does it after each write to the file: a write reads a few
// pages of the mapping (meta, branches, the leaves it replaces), and the
// kernel maps each fault's neighbours with it (fault around, 64 KiB), so
// under steady pushes at 1M series the file's pages would fill the
// mapping, 100 MB of RSS, within seconds.
func (d *DB) ReleaseMapped() error {
	d.dbMu.RLock()
	defer d.dbMu.RUnlock()
	if d.db == nil {
		return d.unavailable()
	}
	return d.releaseLocked()
}

// releaseLocked is ReleaseMapped for a caller that holds dbMu.
func (d *DB) releaseLocked() error {
	if d.db == nil {
		return nil
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

// CompactIfWasteful writes what the storage log holds into the file, then
// compacts the file if most of it is free pages. Call it after the stored
// data was read successfully, never before: both write the file.
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
			Help:    "Duration of storage commits (an append to the storage log, or a direct write to the database file), including fsync.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		checkpointDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pushgate_storage_checkpoint_duration_seconds",
			Help:    "Duration of checkpoints, which move the latest changes from the storage log into the database file.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
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
		reg.MustRegister(m.commitDuration, m.checkpointDuration, m.batchSize, m.failures, m.compactionDuration,
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
				Help: "Size of the storage files on disk: the database file and the storage log.",
			}, func() float64 {
				var n int64
				for _, name := range append([]string{FileName}, LogFileNames[:]...) {
					if fi, err := os.Stat(filepath.Join(filepath.Dir(d.path), name)); err == nil {
						n += fi.Size()
					}
				}
				return float64(n)
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
//
// A string, like the ID: the log and its pending changes take it as it is,
// so a push converts its ID to bytes only when a checkpoint hands it to bbolt.
func boltKey(id string) string {
	if len(id) <= bolt.MaxKeySize {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return hashedKeyPrefix + string(sum[:])
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
	tick := time.NewTicker(d.checkpointEvery)
	defer tick.Stop()
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
				d.finish()
				return
			}
		} else {
			select {
			case <-tick.C:
				d.tick()
				continue
			case <-compact:
				if err := d.maybeCompact(); err != nil {
					d.logger.Error("compaction failed", "file", d.path, "err", err)
				}
				continue
			case done := <-d.compactReq:
				// Asked for after a successful read: the file may be
				// written now. It is to hold every write before it is
				// measured, except the log's replay after a crash,
				// which is written right after the answer: the start
				// need not wait for it (0.2 s at 1M series), and the
				// replay is a few seconds of pushes, never what makes
				// a file wasteful.
				var err error
				unsettled := d.unsettled()
				if !unsettled {
					err = d.flush()
				}
				if err == nil {
					err = d.maybeCompact()
				}
				done <- err
				if unsettled {
					if err := d.settle(); err != nil {
						d.logger.Error("could not write the storage log's replay into the database file; retrying at the next write", "file", d.path, "err", err)
					}
				}
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

// commitBatch commits the requests in their order, answers each, and
// updates the health: runs of puts and deletes as one append to the log,
// the others one by one.
func (d *DB) commitBatch(batch []*request) {
	if err := d.ensureOpen(); err != nil {
		d.fail(batch, err)
		return
	}
	for len(batch) > 0 {
		n := 0
		for n < len(batch) && batch[n].op.logged() {
			n++
		}
		if n > 0 {
			d.logBatch(batch[:n])
			batch = batch[n:]
			continue
		}
		d.direct(batch[0])
		batch = batch[1:]
	}
}

// fail answers the requests with err, a failure of the storage.
func (d *DB) fail(batch []*request, err error) {
	d.metrics.failures.Inc()
	d.setFailure(err)
	for _, r := range batch {
		r.done <- err
	}
}

// logBatch appends the puts and deletes to the log in one write and one
// sync, and answers them.
func (d *DB) logBatch(batch []*request) {
	start := time.Now()
	l := d.log
	if err := d.settle(); err != nil {
		d.fail(batch, err)
		return
	}
	if l.broken != nil {
		if err := d.flush(); err != nil {
			d.fail(batch, err)
			return
		}
	}
	if err := d.collect(false); err != nil {
		d.fail(batch, err)
		return
	}
	buf, written := l.buf[:0], l.written[:0]
	// Kept for the next commit, without the requests and their values.
	defer func() { clear(written); l.written = written[:0] }()
	seq := l.seq
	for _, r := range batch {
		if err := refused(r); err != nil {
			r.done <- fmt.Errorf("write to %s: %w", d.path, err)
			continue
		}
		seq++
		var valueAt int
		buf, valueAt = appendRecord(buf, seq, r.op, r.key, r.value)
		written = append(written, loggedWrite{r, valueAt})
	}
	if len(written) == 0 {
		return
	}
	base := l.size
	err := l.append(buf)
	// Numbers of a failed append are not given out again: its records may
	// be on disk after all, and the flush that must come first records
	// them as applied, so that they are never replayed.
	l.seq = seq
	if cap(buf) <= 4<<20 {
		l.buf = buf
	} else {
		l.buf = nil // a huge push's buffer is not kept for the small ones
	}
	if err != nil {
		l.broken = err
		d.fail(nil, err)
		for _, w := range written {
			w.r.done <- err
		}
		return
	}
	if len(l.pending) == 0 {
		l.since = start
	}
	for _, w := range written {
		sp := span{off: base + int64(w.valueAt), n: int64(len(w.r.value))}
		if w.r.op == opDelete {
			sp = span{n: -1}
		}
		l.pending[w.r.key] = sp
		w.r.done <- nil
	}
	d.metrics.commitDuration.Observe(time.Since(start).Seconds())
	d.metrics.batchSize.Observe(float64(len(written)))
	d.setFailure(nil)
	d.rotate()
}

// refused is the error bbolt would give the write by itself, checked
// before the write is logged: a checkpoint must never fail on one value.
func refused(r *request) error {
	switch {
	case len(r.key) == 0:
		return bolterrors.ErrKeyRequired
	case len(r.key) > bolt.MaxKeySize:
		return bolterrors.ErrKeyTooLarge
	case len(r.value) > bolt.MaxValueSize:
		return bolterrors.ErrValueTooLarge
	}
	return nil
}

// rotate starts the checkpoint of the current log file on its own
// goroutine and continues in the other one, once its changes waited
// checkpointEvery or it reached checkpointBytes; unless a checkpoint is
// still running or failed (then the current file goes on growing).
func (d *DB) rotate() {
	l := d.log
	due := l.size >= checkpointBytes || time.Since(l.since) >= d.checkpointEvery
	if !due || l.running != nil || l.failed != nil || len(l.pending) == 0 {
		return
	}
	c := &checkpoint{file: l.cur, pending: l.pending, last: l.seq, done: make(chan error, 1)}
	// The other file is empty: its checkpoint, which emptied it, ended.
	l.cur, l.size, l.pending = 1-l.cur, 0, map[string]span{}
	l.running = c
	go func() { c.done <- d.runCheckpoint(c) }()
}

// tick runs every checkpointEvery on the committer: it notices a failed
// checkpoint and checkpoints changes that waited long enough.
func (d *DB) tick() {
	if d.unsettled() {
		return
	}
	if err := d.collect(false); err != nil {
		d.fail(nil, err)
		return
	}
	d.rotate()
}

// collect takes the outcome of the running checkpoint, waiting for it if
// block, and retries a failed checkpoint.
func (d *DB) collect(block bool) error {
	l := d.log
	if c := l.running; c != nil {
		var err error
		if block {
			err = <-c.done
		} else {
			select {
			case err = <-c.done:
			default:
				return nil
			}
		}
		l.running = nil
		if err != nil {
			l.failed = c
		}
	}
	if c := l.failed; c != nil {
		if err := d.ensureOpen(); err != nil {
			return err
		}
		if err := d.runCheckpoint(c); err != nil {
			return err
		}
		l.failed = nil
	}
	return nil
}

// runCheckpoint moves the changes of c's file into the database and
// empties the file. It runs on the committer or, for rotate, on its own
// goroutine: it touches only c's file, never the current one, and does not
// reopen a closed database (ensureOpen is the committer's; a checkpoint
// that finds it closed fails and is retried there).
func (d *DB) runCheckpoint(c *checkpoint) error {
	f := d.log.files[c.file]
	err := d.applyChunked(slices.Sorted(maps.Keys(c.pending)), func(k string) int64 { return c.pending[k].n }, func(k string, dst []byte) ([]byte, error) {
		sp := c.pending[k]
		if sp.n < 0 {
			return nil, nil
		}
		if _, err := f.ReadAt(dst, sp.off); err != nil {
			return nil, fmt.Errorf("read storage log %s: %w", f.Name(), err)
		}
		return dst, nil
	}, c.last, c.done != nil)
	if err != nil {
		return err
	}
	return d.log.empty(c.file, false)
}

// checkpointChunk bounds the bytes of values one checkpoint transaction
// writes. bbolt builds each page it writes in a heap buffer of its own
// until the commit, and the values are read for it: with a second of
// changes at 1M series in one transaction, peak RSS during pushbench push
// at 1M was 298 MB, with 2 MiB transactions 223 MB, with 128 KiB 194-208
// MB. Right after pushbench fill at 100k series, 1 MiB transactions
// measured 260-272 B/series, over issue #12's 269; 128 KiB 237-247. The
// cost of small ones: more syncs (two each). Push p99 at 100k series did
// not show it (128 KiB 7.2-7.3 ms, 1 MiB 7.6-8.0, 8 MiB 8.9), but a load
// that writes every group once a second does: BenchmarkSaveParallel (16
// writers, 20 KiB values, 10,000 groups) measures 184 µs/write against
// 115-124 with 1 MiB (and 120 for bbolt alone, before the log). Only the
// last transaction records the log as applied: after a crash between them
// the whole log is replayed, which leaves every group at its latest value
// all the same.
const checkpointChunk = 128 << 10

// applyChunked writes the changes of keys, in order, into the database in
// transactions of about checkpointChunk bytes, and then records last as the
// log's last applied record. size is a key's value size (< 0: a deletion);
// value returns its value (nil: a deletion), read into dst, which has that
// size, if it must be read. pace spreads the work (see below).
func (d *DB) applyChunked(keys []string, size func(string) int64, value func(k string, dst []byte) ([]byte, error), last uint64, pace bool) error {
	start := time.Now()
	var buf []byte
	chunks := 0
	for i := 0; i == 0 || i < len(keys); {
		j, n := i, int64(0)
		for j < len(keys) && (j == i || n+max(size(keys[j]), 0) <= checkpointChunk) {
			n += max(size(keys[j]), 0)
			j++
		}
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		ch := make(changes, j-i)
		off := int64(0)
		for _, k := range keys[i:j] {
			sz := max(size(k), 0)
			v, err := value(k, buf[off:off+sz:off+sz])
			if err != nil {
				return err
			}
			ch[k] = v
			off += sz
		}
		final := j == len(keys)
		chunkStart := time.Now()
		if err := d.applyChanges(keys[i:j], ch, last, final); err != nil {
			return err
		}
		i = j
		if final {
			break
		}
		if chunks++; chunks%releaseEvery == 0 {
			d.release()
		}
		// Paced, a background checkpoint takes at most half a core
		// from the pushes (p99 at 100k series 9 % lower), for at most
		// half of the interval: one that falls behind catches up.
		if pace && time.Since(start) < d.checkpointEvery/2 {
			time.Sleep(time.Since(chunkStart))
		}
	}
	d.metrics.checkpointDuration.Observe(time.Since(start).Seconds())
	d.release()
	return nil
}

// releaseEvery is how many checkpoint transactions run between two
// releases of the mapped pages (ReleaseMapped). The transactions walk the
// same branch pages, and a release makes the next one fault them in again:
// released after every one, 7 % of the CPU at 1M series went to those
// faults; after each whole checkpoint, peak RSS during pushbench push at 1M
// was 267 MB instead of 194.
const releaseEvery = 8

// release releases the mapped pages (ReleaseMapped), logging a failure.
func (d *DB) release() {
	if err := d.ReleaseMapped(); err != nil {
		d.logger.Debug("release mapped pages", "file", d.path, "err", err)
	}
}

// applyChanges writes the changes of keys into the database in one
// transaction, and if final, last as the log's last applied record.
func (d *DB) applyChanges(keys []string, ch changes, last uint64, final bool) error {
	d.dbMu.RLock()
	defer d.dbMu.RUnlock()
	if d.db == nil {
		return d.unavailable()
	}
	err := d.db.Update(func(tx *bolt.Tx) error {
		groups := tx.Bucket(groupsBucket)
		for _, k := range keys {
			var err error
			if v := ch[k]; v == nil {
				err = groups.Delete([]byte(k))
			} else {
				err = groups.Put([]byte(k), v)
			}
			if err != nil {
				return err
			}
		}
		if !final {
			return nil
		}
		return tx.Bucket(metaBucket).Put(appliedKey, binary.BigEndian.AppendUint64(nil, last))
	})
	if err != nil {
		return fmt.Errorf("checkpoint storage log into %s: %w", d.path, err)
	}
	return nil
}

// appliedSeq reads the sequence number of the last log record in the file.
func appliedSeq(db *bolt.DB) (uint64, error) {
	var seq uint64
	err := db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(metaBucket).Get(appliedKey); len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return seq, err
}

// settle writes what the log held at Open into the database and empties
// both log files; after that, the log takes new records. It runs on the
// committer, before its first write: a write means the caller read the
// storage successfully, and only then may the file be written.
func (d *DB) settle() error {
	d.dbMu.RLock()
	r := d.replay
	d.dbMu.RUnlock()
	if r == nil {
		return nil
	}
	if len(r.changes) > 0 {
		err := d.applyChunked(slices.Sorted(maps.Keys(r.changes)), func(k string) int64 {
			if v := r.changes[k]; v != nil {
				return int64(len(v))
			}
			return -1
		}, func(k string, _ []byte) ([]byte, error) { return r.changes[k], nil }, r.last, false)
		if err != nil {
			return err
		}
	}
	for i := range d.log.files {
		if err := d.log.empty(i, true); err != nil {
			return err
		}
	}
	d.log.size = 0
	d.dbMu.Lock()
	d.replay = nil
	d.dbMu.Unlock()
	return nil
}

// flush moves every change in the log into the database and empties the
// log, on the committer.
func (d *DB) flush() error {
	if err := d.ensureOpen(); err != nil {
		return err
	}
	if err := d.settle(); err != nil {
		return err
	}
	if err := d.collect(true); err != nil {
		return err
	}
	l := d.log
	if len(l.pending) == 0 && l.broken == nil {
		return nil
	}
	// After a failed append, last covers the numbers it took: its records
	// must never be replayed.
	if err := d.runCheckpoint(&checkpoint{file: l.cur, pending: l.pending, last: l.seq}); err != nil {
		return err
	}
	l.size, l.pending, l.broken = 0, map[string]span{}, nil
	return nil
}

// direct commits a request that does not go through the log: the log is
// flushed first, so that the database holds every earlier write.
func (d *DB) direct(r *request) {
	if err := d.flush(); err != nil {
		d.fail([]*request{r}, err)
		return
	}
	if r.op == opFlush {
		d.setFailure(nil)
		r.done <- nil
		return
	}
	refused, err := d.update(r)
	switch {
	case err == nil:
		d.setFailure(nil)
		r.done <- nil
	case refused:
		r.done <- fmt.Errorf("write to %s: %w", d.path, err)
	default:
		d.fail([]*request{r}, fmt.Errorf("commit to %s: %w", d.path, err))
	}
}

// update applies the request in one transaction and commits it. refused
// reports that bbolt refused the request itself, so nothing was committed
// and nothing is said about the storage.
func (d *DB) update(r *request) (refused bool, err error) {
	start := time.Now()
	d.dbMu.RLock()
	defer d.dbMu.RUnlock()
	err = d.db.Update(func(tx *bolt.Tx) error {
		if err := apply(tx, r); err != nil {
			refused = true
			return err
		}
		return nil
	})
	if !refused {
		d.metrics.commitDuration.Observe(time.Since(start).Seconds())
		d.metrics.batchSize.Observe(1)
	}
	d.releaseLocked()
	return refused, err
}

// finish ends the committer at Close: the log is flushed into the
// database, so that a start after a clean stop has nothing to replay. A
// replay that was never settled stays in the log, untouched: nothing
// showed that the file may be written.
func (d *DB) finish() {
	if d.unsettled() {
		return
	}
	if err := d.flush(); err != nil {
		// Nothing is lost: the log is replayed at the next start.
		d.logger.Error("could not move the storage log into the database file at close; it is replayed at the next start", "file", d.path, "err", err)
		return
	}
	// A clean stop leaves no log on disk.
	for i := range d.log.files {
		if err := d.log.empty(i, true); err != nil {
			d.logger.Debug("truncate storage log at close", "err", err)
		}
	}
}

func apply(tx *bolt.Tx, r *request) error {
	switch r.op {
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
			if err := groups.Put([]byte(boltKey(id)), r.values[id]); err != nil {
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
	if err := d.current(); err != nil {
		return err
	}
	defer guard(d.path, &err)()
	d.dbMu.RLock()
	defer d.dbMu.RUnlock()
	if d.db == nil {
		return d.unavailable()
	}
	base := d.db.Info().Data
	return d.db.View(func(tx *bolt.Tx) error {
		return d.walk(tx, func(k, v []byte) error {
			if err := fn(v); err != nil {
				return d.valueError(base, k, v, err)
			}
			return nil
		})
	})
}

// unsettled reports whether the log's replay is not in the database file
// yet (see settle).
func (d *DB) unsettled() bool {
	d.dbMu.RLock()
	defer d.dbMu.RUnlock()
	return d.replay != nil
}

// current brings the database file up to date with every write
// acknowledged before it, for a read of the file. Before the replay of the
// log is settled nothing was written, and reads merge the replay instead.
func (d *DB) current() error {
	if d.unsettled() {
		return nil
	}
	return d.submit(&request{op: opFlush})
}

// walk calls fn with each group's key and value in key order: the file's,
// with the replay of the log over them while it is not settled. The caller
// holds dbMu.
func (d *DB) walk(tx *bolt.Tx, fn func(k, v []byte) error) error {
	c := tx.Bucket(groupsBucket).Cursor()
	var over changes
	var keys []string
	if d.replay != nil {
		over = d.replay.changes
		keys = slices.Sorted(maps.Keys(over))
	}
	k, v := c.First()
	for k != nil || len(keys) > 0 {
		if len(keys) == 0 || (k != nil && string(k) < keys[0]) {
			if err := fn(k, v); err != nil {
				return err
			}
			k, v = c.Next()
			continue
		}
		key := keys[0]
		keys = keys[1:]
		if k != nil && string(k) == key {
			k, v = c.Next() // replaced or deleted by the log
		}
		if nv := over[key]; nv != nil {
			if err := fn([]byte(key), nv); err != nil {
				return err
			}
		}
	}
	return nil
}

// LeftAsIs ends the errors that stop a start over storage that could not be
// read: how to start empty instead.
const LeftAsIs = "the file is left as it is; move it away, with the pushgate.wal.* files beside it, to start empty"

// corruptError is the error of a walk over a file that bbolt found corrupt
// (r is what it panicked with).
func corruptError(path string, r any) error {
	return fmt.Errorf("storage %s is corrupt (%s): %v", path, LeftAsIs, r)
}

// valueError is the error of a stored value that failed to load.
func (d *DB) valueError(base uintptr, k, v []byte, err error) error {
	if d.replay != nil {
		if _, ok := d.replay.changes[string(k)]; ok {
			return fmt.Errorf("%s: group %q, in the storage log: %w", filepath.Dir(d.path), printableKey(k), err)
		}
	}
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
		err = errors.Join(err, d.log.close())
	})
	return err
}
