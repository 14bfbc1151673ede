package store_test

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, opts store.Options) storetest.Store {
		return store.New(opts)
	})
}

// TestStoreJournaled runs the suite with a journal and checks, after each
// test, that a store loaded from the journal equals the one that wrote it.
func TestStoreJournaled(t *testing.T) {
	storetest.Run(t, func(t *testing.T, opts store.Options) storetest.Store {
		j := &gateJournal{}
		opts.Journal = j
		s := store.New(opts)
		t.Cleanup(func() {
			if t.Failed() {
				return // a panicking Push may have left s locked
			}
			loaded := opts
			loaded.Journal = nil
			r := store.New(loaded)
			for _, v := range j.values() {
				if err := r.Replay(v); err != nil {
					t.Errorf("Replay: %v", err)
				}
			}
			want := storetest.Text(t, s.View(), opts.Reserved)
			if got := storetest.Text(t, r.View(), opts.Reserved); got != want {
				t.Errorf("store loaded from the journal:\n%s\nwant:\n%s", got, want)
			}
			if got, want := r.Stats(), s.Stats(); got != want {
				t.Errorf("Stats() of the loaded store = %+v, want %+v", got, want)
			}
		})
		return s
	})
}

// gateJournal is a Journal in memory. Save blocks while a gate is set for
// its group ID, and then returns the gate's error; while fail is set, every
// operation fails with it.
type gateJournal struct {
	mu    sync.Mutex
	m     map[string][]byte
	gates map[string]*gate
	fail  error
}

func (j *gateJournal) setFail(err error) {
	j.mu.Lock()
	j.fail = err
	j.mu.Unlock()
}

type gate struct {
	entered chan struct{} // closed when Save arrives
	release chan struct{} // close to let Save return err
	err     error
}

func (j *gateJournal) block(id string, err error) *gate {
	j.mu.Lock()
	defer j.mu.Unlock()
	g := &gate{entered: make(chan struct{}), release: make(chan struct{}), err: err}
	if j.gates == nil {
		j.gates = map[string]*gate{}
	}
	j.gates[id] = g
	return g
}

func (j *gateJournal) Save(id string, value []byte) error {
	j.mu.Lock()
	g := j.gates[id]
	delete(j.gates, id)
	j.mu.Unlock()
	if g != nil {
		close(g.entered)
		<-g.release
		if g.err != nil {
			return g.err
		}
	}
	return j.writeAll(map[string][]byte{id: value})
}

// writeAll stores values (group ID -> value) all at once, or fails; it is
// also the atomic write of an import.
func (j *gateJournal) writeAll(values map[string][]byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.fail != nil {
		return j.fail
	}
	if j.m == nil {
		j.m = map[string][]byte{}
	}
	for id, v := range values {
		j.m[id] = slices.Clone(v)
	}
	return nil
}

func (j *gateJournal) Remove(id string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.fail != nil {
		return j.fail
	}
	delete(j.m, id)
	return nil
}

func (j *gateJournal) RemoveAll() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.fail != nil {
		return j.fail
	}
	clear(j.m)
	return nil
}

func (j *gateJournal) values() [][]byte {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Collect(maps.Values(j.m))
}

// TestPushWhileWritePending pushes to one group while a write to another
// is between its check and its publication (held in the journal): the
// second push must see the pending write, and the store must end up
// consistent whether that write succeeds or fails.
func TestPushWhileWritePending(t *testing.T) {
	errDisk := errors.New("disk on fire")
	tests := []struct {
		name    string
		prior   []string // "key|body" PUTs, done first
		pending string   // "key|body" PUT held in the journal
		fail    error    // the pending write's journal error
		push    string   // "key|body" PUT while pending
		wantErr error
		want    string // the store at the end
	}{
		{
			name:    "series of a pending new group",
			pending: `job=a|foo{x="1"} 1`,
			push:    "job=a,x=1|foo 2",
			wantErr: store.ErrInvalid,
			want: `
group {job="a"} push=100 fail=0
# TYPE foo untyped
foo{instance="",job="a",x="1"} 1
group {job="a", x="1"} push=0 fail=100`,
		},
		{
			name:    "timestamp series of a pending new group",
			pending: "job=j|foo 1",
			push:    "job=j,instance=|bar 1",
			wantErr: store.ErrInvalid,
			want: `
group {job="j"} push=100 fail=0
# TYPE foo untyped
foo{instance="",job="j"} 1`,
		},
		{
			name:    "series of a pending new group that fails",
			pending: `job=a|foo{x="1"} 1`,
			fail:    errDisk,
			push:    "job=a,x=1|foo 2",
			wantErr: store.ErrInvalid,
			want:    `group {job="a", x="1"} push=0 fail=100`,
		},
		{
			name:    "type of a pending new group that fails",
			pending: "job=a|# TYPE foo counter\nfoo 1",
			fail:    errDisk,
			push:    "job=b|# TYPE foo counter\nfoo 1",
			want: `
group {job="b"} push=100 fail=0
# TYPE foo counter
foo{instance="",job="b"} 1`,
		},
		{
			// While the retyping is pending, counter is not safe to
			// accept: if the write fails, foo is a gauge again.
			name:    "type change of a pending write that fails",
			prior:   []string{"job=a|# TYPE foo gauge\nfoo 1"},
			pending: "job=a|# TYPE foo counter\nfoo 2",
			fail:    errDisk,
			push:    "job=b|# TYPE foo counter\nfoo 3",
			wantErr: store.ErrInvalid,
			want: `
group {job="a"} push=100 fail=0
# TYPE foo gauge
foo{instance="",job="a"} 1
group {job="b"} push=0 fail=100`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			split := func(s string) (string, string) {
				for i := range len(s) {
					if s[i] == '|' {
						return s[:i], s[i+1:]
					}
				}
				t.Fatalf("bad step %q", s)
				return "", ""
			}
			j := &gateJournal{}
			now := time.Unix(100, 0)
			s := store.New(store.Options{Journal: j, Now: func() time.Time { return now }})
			for _, p := range tt.prior {
				k, body := split(p)
				if err := s.Push(storetest.Key(t, k), storetest.Families(t, body), true); err != nil {
					t.Fatal(err)
				}
			}
			k, body := split(tt.pending)
			pendingKey, pendingFams := storetest.Key(t, k), storetest.Families(t, body)
			g := j.block(pendingKey.ID(), tt.fail)
			done := make(chan error, 1)
			go func() { done <- s.Push(pendingKey, pendingFams, true) }()
			<-g.entered

			k, body = split(tt.push)
			pushKey, pushFams := storetest.Key(t, k), storetest.Families(t, body)
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						// The panic left the store's mutex locked: the
						// pending push can never finish.
						close(g.release)
						t.Fatalf("push panicked while another write was pending: %v", r)
					}
				}()
				err = s.Push(pushKey, pushFams, true)
			}()
			close(g.release)
			if perr := <-done; !errors.Is(perr, tt.fail) {
				t.Errorf("pending push: error %v, want %v", perr, tt.fail)
			}
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Errorf("push while pending: error %v, want %v", err, tt.wantErr)
			}
			if got, want := storetest.Text(t, s.View(), nil), strings.TrimPrefix(tt.want, "\n")+"\n"; got != want {
				t.Errorf("store:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestGrowLeavesPendingWrites checks that Grow, a hint for an empty store,
// also leaves alone a store whose first group is still being written: that
// write has claimed its series and group number already, and losing them
// would let another group push the same series.
func TestGrowLeavesPendingWrites(t *testing.T) {
	j := &gateJournal{}
	s := store.New(store.Options{Journal: j})
	pendingKey := storetest.Key(t, "job=a")
	g := j.block(pendingKey.ID(), nil)
	done := make(chan error, 1)
	go func() { done <- s.Push(pendingKey, storetest.Families(t, `m{instance="x"} 1`), true) }()
	<-g.entered
	s.Grow(10, 100)
	close(g.release)
	if err := <-done; err != nil {
		t.Fatalf("pending push: %v", err)
	}
	// The same series, m{instance="x",job="a"}, from another group.
	err := s.Push(storetest.Key(t, "job=a,instance=x"), storetest.Families(t, "m 1"), true)
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("push of a series group job=a holds: error %v, want %v", err, store.ErrInvalid)
	}
}
