package push

import (
	"sync"
	"time"
)

// Rate of the warnings about refused pushes: a burst, then a steady rate.
const (
	warnBurst = 10
	warnRate  = 5 // per second
)

// logThrottle is a token bucket for log lines: a client that makes every
// push fail must not be able to fill the disk with warnings. It counts the
// lines it holds back. Its methods may be called concurrently.
type logThrottle struct {
	now func() time.Time

	mu         sync.Mutex
	tokens     float64   // guarded by mu
	last       time.Time // guarded by mu; when tokens was computed
	suppressed int       // guarded by mu; lines held back since the last one let through
}

func newLogThrottle(now func() time.Time) *logThrottle {
	if now == nil {
		now = time.Now
	}
	return &logThrottle{now: now, tokens: warnBurst, last: now()}
}

// allow reports whether a line may be logged now and, if so, how many were
// held back since the previous line let through.
func (t *logThrottle) allow() (ok bool, suppressed int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if elapsed := now.Sub(t.last); elapsed > 0 {
		t.tokens = min(warnBurst, t.tokens+elapsed.Seconds()*warnRate)
	}
	t.last = now
	if t.tokens < 1 {
		t.suppressed++
		return false, 0
	}
	t.tokens--
	suppressed, t.suppressed = t.suppressed, 0
	return true, suppressed
}
