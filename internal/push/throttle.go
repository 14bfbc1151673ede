package push

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rate of the warnings about refused pushes: a burst, then a steady rate.
const (
	warnBurst = 10
	warnRate  = 5 // per second
)

// logThrottle holds back log lines over a rate (a token bucket): a client
// that makes every push fail must not be able to fill the disk with
// warnings. It counts the lines it holds back. Its methods may be called
// concurrently.
type logThrottle struct {
	now     func() time.Time
	limiter *rate.Limiter

	mu         sync.Mutex
	suppressed int // guarded by mu; lines held back since the last one let through
}

func newLogThrottle(now func() time.Time) *logThrottle {
	if now == nil {
		now = time.Now
	}
	return &logThrottle{now: now, limiter: rate.NewLimiter(warnRate, warnBurst)}
}

// allow reports whether a line may be logged now and, if so, how many were
// held back since the previous line let through.
func (t *logThrottle) allow() (ok bool, suppressed int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.limiter.AllowN(t.now(), 1) {
		t.suppressed++
		return false, 0
	}
	suppressed, t.suppressed = t.suppressed, 0
	return true, suppressed
}
