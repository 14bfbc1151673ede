package push

import (
	"fmt"
	"sync"

	"github.com/pushgate/pushgate/internal/store"
)

// chargeFunc is the one hook every body decoder calls as its decoded result
// grows: series is the number of new dto.Metric values since the last call,
// bytes the estimated additional heap (it may be negative when a decoder
// drops what it decoded earlier). A non-nil error stops decoding and must be
// returned by the decoder unwrapped. It has the shape of the Charge option of
// internal/openmetrics (and of the text parser).
type chargeFunc func(series int, bytes int64) error

// freeDecodingBytes is the part of each push's estimated decoded size that
// is not charged to the decoding budget, so that ordinary small pushes keep
// succeeding while big bodies hold the budget. It is granted only when
// --push.max-concurrent bounds the pushes in progress, which bounds the
// uncharged total (64 MiB at the default of 1024).
const freeDecodingBytes = 64 << 10

// budget bounds the estimated heap of all push bodies being decoded at the
// same time. Its methods may be called concurrently.
type budget struct {
	limit int64 // 0: unlimited

	mu   sync.Mutex
	used int64 // guarded by mu
}

// take charges n bytes if they fit in what is left.
func (b *budget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.limit {
		return false
	}
	b.used += n
	return true
}

// give returns n bytes taken earlier.
func (b *budget) give(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
}

// inUse reports the bytes charged at the moment.
func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// budgetError refuses a push whose decoded form does not fit the decoding
// budget: alone, the push can never succeed (413); otherwise others hold
// the budget at the moment and the client may retry (429).
type budgetError struct {
	limit int64
	alone bool
}

func (e *budgetError) Error() string {
	if e.alone {
		return fmt.Sprintf("push needs more memory to decode than the limit of %d bytes for all pushes being decoded (--push.max-decoding-memory)", e.limit)
	}
	return fmt.Sprintf("pushes being decoded hold the memory allowed for decoding (%d bytes, --push.max-decoding-memory); retry later", e.limit)
}

// meter accounts for one push: its series against --push.max-series-per-push
// and its estimated decoded size against the shared budget. It is used by
// one goroutine; release must be called once the push is done (its decoded
// families are unreachable), on every path.
type meter struct {
	budget    *budget // nil: no budget
	free      int64   // estimated bytes not charged to the budget
	maxSeries int     // 0: no limit

	series  int
	total   int64 // estimated decoded size
	charged int64 // what the budget holds for this push: max(0, total-free)
}

// charge is the meter's chargeFunc.
func (m *meter) charge(series int, bytes int64) error {
	m.series += series
	if m.maxSeries > 0 && m.series > m.maxSeries {
		return &store.LimitError{Kind: store.SeriesPerPush, Got: m.series, Max: m.maxSeries}
	}
	m.total += bytes
	if m.budget == nil {
		return nil
	}
	want := max(0, m.total-m.free)
	switch grow := want - m.charged; {
	case grow == 0:
		// Most calls, for a push within the bytes it may use freely: the
		// shared budget's lock was a hundredth of a push's CPU.
	case grow < 0:
		m.budget.give(-grow)
		m.charged = want
	case want > m.budget.limit:
		return &budgetError{limit: m.budget.limit, alone: true}
	case !m.budget.take(grow):
		return &budgetError{limit: m.budget.limit}
	default:
		m.charged = want
	}
	return nil
}

// release gives back everything the push holds. It may be called more than
// once.
func (m *meter) release() {
	if m.budget != nil && m.charged > 0 {
		m.budget.give(m.charged)
	}
	m.charged = 0
}
