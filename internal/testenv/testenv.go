// Package testenv holds what tests that drive real programs share: the
// policy for a missing dependency, and a buffer for a child's output. It is
// imported by tests only (e2e, packaging, etcdtest).
package testenv

import (
	"bytes"
	"os"
	"sync"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true, see .ci/run), where
// every dependency is installed and a missing one is a failure.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test for a missing dependency, or fails it in CI, so
// that a broken CI image cannot pass by skipping.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if InCI() {
		tb.Fatalf("CI=true and a dependency is missing: "+format, args...)
	}
	tb.Skipf("skipping, dependency missing: "+format, args...)
}

// SyncBuffer collects a child's output: the process writes while the test
// may read. The zero value is ready to use.
type SyncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
