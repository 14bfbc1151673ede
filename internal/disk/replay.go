package disk

import (
	"errors"
	"runtime/debug"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// replayBatch is how many values a decode worker takes at once: enough to
// make the hand-off cheap next to decoding, few enough to keep the decoded
// values waiting to be applied small.
const replayBatch = 64

// ForEachDecoded is ForEach with the work split in two: decode runs on up
// to workers goroutines at once (values in any order, concurrently with
// each other and with apply), and apply runs on the calling goroutine with
// the decoded results in key order. value is only valid during decode,
// so what decode returns must not alias it.
//
// The result is that of ForEach(decode then apply): the first value in key
// order whose decode or apply fails stops the walk, and its error is
// returned with the value's key and position in the file. Values after it
// may have been decoded, never applied. workers < 1 means 1.
func ForEachDecoded[T any](d *DB, workers int, decode func(value []byte) (T, error), apply func(T) error) (err error) {
	if err := d.current(); err != nil {
		return err
	}
	defer guard(d.path, &err)()
	d.dbMu.RLock()
	defer d.dbMu.RUnlock()
	if d.db == nil {
		return d.unavailable()
	}
	workers = max(workers, 1)
	base := d.db.Info().Data
	return d.db.View(func(tx *bolt.Tx) error {
		type batch struct {
			keys, values [][]byte
			out          []T
			errs         []error
			// fault is set if reading the file faulted (see guard) at
			// value faultAt; the values before it are decoded.
			fault   any
			faultAt int
			done    chan struct{} // closed once decoded
		}
		var (
			stop    = make(chan struct{}) // closed when apply stops early
			jobs    = make(chan *batch)
			order   = make(chan *batch, 2*workers)
			readErr error // the reader's; set before order is closed
			wg      sync.WaitGroup
		)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range jobs {
					func() {
						i := 0
						defer func() {
							if r := recover(); r != nil {
								b.fault, b.faultAt = r, i
							}
							close(b.done)
						}()
						defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
						for ; i < len(b.values); i++ {
							b.out[i], b.errs[i] = decode(b.values[i])
						}
					}()
				}
			}()
		}
		// The reader walks the bucket on its own goroutine, so that the
		// walk overlaps with apply; the transaction is used by no other.
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(order)
			defer close(jobs)
			defer guard(d.path, &readErr)()
			newBatch := func() *batch {
				return &batch{
					keys:   make([][]byte, 0, replayBatch),
					values: make([][]byte, 0, replayBatch),
					done:   make(chan struct{}),
				}
			}
			send := func(b *batch) bool {
				b.out, b.errs = make([]T, len(b.values)), make([]error, len(b.values))
				select {
				case order <- b:
				case <-stop:
					return false
				}
				select {
				case jobs <- b:
					return true
				case <-stop:
					return false
				}
			}
			b := newBatch()
			errStop := errors.New("stopped")
			if d.walk(tx, func(k, v []byte) error {
				b.keys, b.values = append(b.keys, k), append(b.values, v)
				if len(b.values) == replayBatch {
					if !send(b) {
						return errStop
					}
					b = newBatch()
				}
				return nil
			}) != nil {
				return
			}
			if len(b.values) > 0 {
				send(b)
			}
		}()

		// However apply ends (an error, or a panic that guard turns
		// into one), the reader and the workers finish before the
		// transaction, and the values with it, go away.
		defer func() {
			close(stop)
			for range order {
			}
			wg.Wait()
		}()
		for b := range order {
			<-b.done
			for i, v := range b.values {
				if b.fault != nil && i == b.faultAt {
					return corruptError(d.path, b.fault)
				}
				err := b.errs[i]
				if err == nil {
					err = apply(b.out[i])
				}
				b.out[i] = *new(T) // applied: let it go with the store
				if err != nil {
					return d.valueError(base, b.keys[i], v, err)
				}
			}
		}
		// order is closed only after the reader set readErr.
		return readErr
	})
}

// Len returns the number of stored groups. It reads the bucket's pages,
// not the values.
func (d *DB) Len() (n int, err error) {
	if err := d.current(); err != nil {
		return 0, err
	}
	defer guard(d.path, &err)()
	d.dbMu.RLock()
	defer d.dbMu.RUnlock()
	if d.db == nil {
		return 0, d.unavailable()
	}
	err = d.db.View(func(tx *bolt.Tx) error {
		groups := tx.Bucket(groupsBucket)
		n = groups.Stats().KeyN
		if d.replay != nil {
			for k, v := range d.replay.changes {
				switch stored := groups.Get([]byte(k)) != nil; {
				case v != nil && !stored:
					n++
				case v == nil && stored:
					n--
				}
			}
		}
		return nil
	})
	return n, err
}
