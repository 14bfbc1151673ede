package disk

// The write-ahead log in front of the bbolt file.
//
// Why a log of our own: a bbolt commit writes the changed pages, fsyncs,
// writes a meta page and fsyncs again, and rebalances and reallocates the
// B+tree on the way; that was a quarter of a push's CPU and most of its
// latency tail (issue #12: 1 % of commits took 4-8 ms at 100k series, more
// at 1M, where the tree is deeper). A write here is one append and one
// fdatasync, whatever the size of the store. About once a second
// (checkpointInterval) the latest value of each group changed since is
// moved into bbolt by one transaction on another goroutine, while writes go
// on into the other of the two log files.
//
// A record is a 16-byte header, then its payload:
//
//	payload length  uint32, little endian
//	CRC-32C         uint32, of the sequence number's 8 bytes and the payload
//	sequence number uint64, little endian: 1 more than the record before
//	payload         op (1 byte), key length (uvarint), key, value
//
// The database's meta bucket holds the sequence number of the last record
// whose change is in the file (appliedKey). At open, the records after it
// are read from both log files, in sequence order, up to the first one that
// is torn, fails its checksum or does not follow its predecessor: only the
// last write before a crash can be torn, and it was never acknowledged.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// LogFileNames are the two log files beside FileName.
var LogFileNames = [2]string{"pushgate.wal.0", "pushgate.wal.1"}

const (
	recordHeaderSize = 16
	// checkpointInterval is how long changes stay only in the log: the
	// longer, the more rewrites of one group a checkpoint saves, and the
	// more there is to read at a start after a crash.
	checkpointInterval = time.Second
	// checkpointBytes starts a checkpoint early when a log file reaches it,
	// which bounds the log under a flood of writes.
	checkpointBytes = 64 << 20
)

// appliedKey, in the meta bucket, holds the sequence number of the last log
// record whose change is in the database file.
var appliedKey = []byte("log_applied_seq")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends the record of a put or delete to buf. It returns the
// new buffer and where the value starts in it.
func appendRecord(buf []byte, seq uint64, o op, key string, value []byte) ([]byte, int) {
	start := len(buf)
	payload := 1 + uvarintLen(uint64(len(key))) + len(key) + len(value)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(payload))
	buf = binary.LittleEndian.AppendUint32(buf, 0) // the checksum, below
	buf = binary.LittleEndian.AppendUint64(buf, seq)
	buf = append(buf, byte(o))
	buf = binary.AppendUvarint(buf, uint64(len(key)))
	buf = append(buf, key...)
	valueAt := len(buf)
	buf = append(buf, value...)
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[start+8:], castagnoli))
	return buf, valueAt
}

func uvarintLen(x uint64) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

// parseLog calls fn with each record of data, in order, up to the first
// that is incomplete, fails its checksum or does not follow the one before
// it. It returns where it stopped. key and value point into data.
func parseLog(data []byte, fn func(seq uint64, o op, key, value []byte)) int {
	off := 0
	var prev uint64
	for len(data)-off >= recordHeaderSize {
		h := data[off:]
		n := int(binary.LittleEndian.Uint32(h))
		if n < 2 || n > len(h)-recordHeaderSize {
			break
		}
		rec := h[8 : recordHeaderSize+n]
		if crc32.Checksum(rec, castagnoli) != binary.LittleEndian.Uint32(h[4:]) {
			break
		}
		seq := binary.LittleEndian.Uint64(rec)
		if off > 0 && seq != prev+1 {
			break
		}
		payload := rec[8:]
		o := op(payload[0])
		keyLen, w := binary.Uvarint(payload[1:])
		if w <= 0 || keyLen > uint64(len(payload)-1-w) || (o != opPut && o != opDelete) {
			break
		}
		key := payload[1+w : 1+w+int(keyLen)]
		value := payload[1+w+int(keyLen):]
		if o == opDelete && len(value) > 0 {
			break
		}
		fn(seq, o, key, value)
		prev = seq
		off += recordHeaderSize + n
	}
	return off
}

// changes are the latest change of each group since a point in the log:
// its new value, or nil for a deletion.
type changes map[string][]byte

// replayed is what the log files hold beyond the database file.
type replayed struct {
	changes changes
	last    uint64 // sequence number of the last record read
	// torn describes the bytes at the end of each file that held no
	// complete record (a write cut off by a crash, never acknowledged);
	// gap, records that did not follow the last one read, which no crash
	// leaves: something else changed the files. "" if none.
	torn, gap string
}

// readLogs reads the records after applied from the log files' contents.
func readLogs(files [2][]byte, applied uint64) replayed {
	type record struct {
		seq        uint64
		op         op
		key, value []byte
	}
	var lists [2][]record
	var torn []string
	for i, data := range files {
		end := parseLog(data, func(seq uint64, o op, key, value []byte) {
			lists[i] = append(lists[i], record{seq, o, key, value})
		})
		var last uint64
		if n := len(lists[i]); n > 0 {
			last = lists[i][n-1].seq
		}
		if rest := data[end:]; !unused(rest, last, len(lists[i]) > 0) {
			torn = append(torn, fmt.Sprintf("%d bytes at the end of %s", len(rest), LogFileNames[i]))
		}
	}
	// Each file's records are in order; the older file's come first.
	if len(lists[1]) > 0 && (len(lists[0]) == 0 || lists[1][0].seq < lists[0][0].seq) {
		lists[0], lists[1] = lists[1], lists[0]
	}
	r := replayed{changes: changes{}, last: applied}
	all := append(lists[0], lists[1]...)
	for i, rec := range all {
		if rec.seq <= applied {
			continue
		}
		if rec.seq != r.last+1 {
			r.gap = fmt.Sprintf("%d records after a gap (record %d follows %d)", len(all)-i, rec.seq, r.last)
			break
		}
		if rec.op == opDelete {
			r.changes[string(rec.key)] = nil
		} else {
			r.changes[string(rec.key)] = rec.value
		}
		r.last = rec.seq
	}
	if len(torn) > 0 {
		r.torn = strings.Join(torn, ", ")
	}
	return r
}

// unused reports whether rest, the bytes after a file's records, are what
// they are without a crash: zeros written ahead (see logFiles), or, after
// a record numbered last, what the file's previous use left (older records,
// or the tail of one that the new records ended inside): a whole header
// that is not the next record's. A write cut off before its header reached
// the disk leaves the old bytes too, and is taken for them: nothing of it
// is in the file. hasLast is false for a file without records.
func unused(rest []byte, last uint64, hasLast bool) bool {
	if len(bytes.TrimRight(rest, "\x00")) == 0 {
		return true
	}
	return hasLast && len(rest) >= recordHeaderSize && binary.LittleEndian.Uint64(rest[8:]) != last+1
}

// logFiles are the open log files, and which is being appended to.
//
// A file is written ahead with zeros (growStep) and reused after its
// checkpoint rather than truncated, so that an append overwrites blocks the
// file already has: its fdatasync then writes data only, where an append
// that grows the file also waits for a commit of the file system's journal,
// which the checkpoint's syncs keep busy. Measured with an 12 KiB write and
// fdatasync per round next to a file rewritten and synced every second:
// 255 µs mean instead of 355, p99 470 µs instead of 545. Records left from
// the file's previous use are never read as new: their sequence numbers
// are lower than any new record's, so reading stops at the first of them.
type logFiles struct {
	files [2]*os.File
	// alloc is the size of each file: what the records after size may
	// overwrite without growing it. Each belongs to whoever owns the file
	// (the committer, or the checkpoint of the file).
	alloc [2]int64
	cur   int
	size  int64  // bytes of complete records in files[cur]
	zeros []byte // what grow writes, kept: a step is 64 of them
}

const (
	// growStep is how much a log file grows by when the records reach
	// its end.
	growStep = 4 << 20
	// maxKept is the size above which a file is truncated after its
	// checkpoint rather than kept for reuse: a burst does not hold on to
	// the disk space it took.
	maxKept = 32 << 20
)

// openLogs opens (or creates) the log files in dir and reads them.
func openLogs(dir string) (*logFiles, [2][]byte, error) {
	l := &logFiles{}
	var contents [2][]byte
	created := false
	for i, name := range LogFileNames {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			created = true
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, contents, errors.Join(fmt.Errorf("open storage log: %w", err), l.close())
		}
		l.files[i] = f
		if contents[i], err = os.ReadFile(path); err != nil {
			return nil, contents, errors.Join(fmt.Errorf("read storage log: %w", err), l.close())
		}
		l.alloc[i] = int64(len(contents[i]))
	}
	// A record is acknowledged only if the file it is in is still there
	// after a crash.
	if created {
		if err := syncDir(dir); err != nil {
			return nil, contents, errors.Join(fmt.Errorf("sync storage directory: %w", err), l.close())
		}
	}
	return l, contents, nil
}

func (l *logFiles) close() error {
	var errs []error
	for _, f := range l.files {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

// append writes buf after the complete records of the current file and
// makes it durable. If that fails, the bytes after the records are zeroed
// again, as far as that is possible.
func (l *logFiles) append(buf []byte) error {
	f := l.files[l.cur]
	end := l.size + int64(len(buf))
	l.grow(end)
	_, err := f.WriteAt(buf, l.size)
	if err == nil {
		err = fdatasync(f)
	}
	if err != nil {
		clear(buf) // zeroes the bytes after the records again, as far as possible
		_, _ = f.WriteAt(buf[:max(min(int64(len(buf)), l.alloc[l.cur]-l.size), 0)], l.size)
		return fmt.Errorf("write to storage log %s: %w", f.Name(), err)
	}
	l.size = end
	l.alloc[l.cur] = max(l.alloc[l.cur], end)
	return nil
}

// grow writes zeros to the end of the current file so that it holds at
// least end bytes, growStep at a time. The caller's fdatasync makes them
// durable. It is an optimization only: on a disk too full for a step the
// file is left as it was and the records grow it themselves.
func (l *logFiles) grow(end int64) {
	alloc := l.alloc[l.cur]
	if end <= alloc {
		return
	}
	f := l.files[l.cur]
	target := max(end, alloc+growStep)
	if l.zeros == nil {
		l.zeros = make([]byte, 64<<10)
	}
	for off := alloc; off < target; off += int64(len(l.zeros)) {
		n := min(int64(len(l.zeros)), target-off)
		if _, err := f.WriteAt(l.zeros[:n], off); err != nil {
			_ = f.Truncate(alloc)
			return
		}
	}
	l.alloc[l.cur] = target
}

// empty makes file i ready for reuse once its records are in the database
// file: it keeps its blocks unless it grew past maxKept, or all is set.
// Nothing needs to be synced: its records are never replayed again
// (readLogs skips what the database file holds). It touches nothing of l
// but file i: a checkpoint empties the file it read on its own goroutine.
func (l *logFiles) empty(i int, all bool) error {
	if !all && l.alloc[i] <= maxKept {
		return nil
	}
	if err := l.files[i].Truncate(0); err != nil {
		return fmt.Errorf("truncate storage log: %w", err)
	}
	l.alloc[i] = 0
	return nil
}
