package startup_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pushgate/pushgate/internal/disk"
	"github.com/pushgate/pushgate/internal/startup"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/store/storetest"
)

// collector is a journal that keeps the last value of each group.
type collector struct {
	mu     sync.Mutex
	values map[string][]byte
}

func (c *collector) Save(id string, value []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.values[id] = bytes.Clone(value) // the store reuses value
	return nil
}
func (*collector) Remove(string) error { return nil }
func (*collector) RemoveAll() error    { return nil }

// BenchmarkRestore restores a storage file of 1,000 groups of
// storetest.BenchSeries (100) series, 100k series in all, into an empty
// store, as a start does before it is ready.
//
//	go test -run '^$' -bench BenchmarkRestore -benchmem -count 6 ./internal/startup/
func BenchmarkRestore(b *testing.B) {
	const groups = 1000
	dir := b.TempDir()
	tmpl := storetest.Families(b, string(storetest.BenchBody()))
	c := &collector{values: map[string][]byte{}}
	now := time.Unix(1_700_000_000, 0)
	src := store.New(store.Options{Journal: c, Now: func() time.Time { return now }})
	for i := range groups {
		k := storetest.Key(b, fmt.Sprintf("job=bench,instance=batch-worker-%06d.prod.eu-west-1.example.net:9091", i))
		if err := src.Push(k, storetest.CloneFamilies(tmpl), true); err != nil {
			b.Fatal(err)
		}
	}
	db, err := disk.Open(dir, disk.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := db.Import(c.values, "bench"); err != nil {
		b.Fatal(err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	size := int64(0)
	for _, v := range c.values {
		size += int64(len(v))
	}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		storage, err := startup.Open(startup.Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		st := store.New(store.Options{Journal: storage.Journal()})
		if err := storage.Restore(context.Background(), st); err != nil {
			b.Fatal(err)
		}
		if got := st.Stats().Series; got != groups*(storetest.BenchSeries+2) {
			b.Fatalf("restored %d series, want %d", got, groups*(storetest.BenchSeries+2))
		}
		b.StopTimer()
		if err := storage.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
