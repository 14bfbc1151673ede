package access

import (
	"encoding/base64"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// TestBcryptCache checks that a good password costs one bcrypt comparison
// and later requests none, while wrong passwords and unknown users always
// pay for one.
func TestBcryptCache(t *testing.T) {
	p, err := Load("testdata/full.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	p.compare = func(hash, pw []byte) error {
		calls.Add(1)
		return bcrypt.CompareHashAndPassword(hash, pw)
	}
	auth := func(user, pass string) bool {
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.Header.Set("Authorization", basic(user, pass))
		pr, err := p.authenticate(r)
		return err == nil && pr.name == user
	}
	steps := []struct {
		user, pass string
		ok         bool
		calls      int64 // total bcrypt comparisons after the step
	}{
		{"grafana", "grafana-pass", true, 1},
		{"grafana", "grafana-pass", true, 1}, // cached
		{"grafana", "wrong", false, 2},
		{"grafana", "wrong", false, 3}, // failures are not cached
		{"mallory", "grafana-pass", false, 4},
		{"mallory", "grafana-pass", false, 5}, // unknown users cost as much
		{"alice", "grafana-pass", false, 6},   // cache is per user
		{"alice", "alice-pass", true, 7},
		{"alice", "alice-pass", true, 7},
	}
	for i, s := range steps {
		if got := auth(s.user, s.pass); got != s.ok {
			t.Fatalf("step %d (%s): ok=%v, want %v", i, s.user, got, s.ok)
		}
		if got := calls.Load(); got != s.calls {
			t.Fatalf("step %d (%s): %d bcrypt calls, want %d", i, s.user, got, s.calls)
		}
	}
	// The cache stays bounded: when full, it starts over.
	clear(p.verified)
	for i := range maxCached {
		p.verified[[32]byte{byte(i), byte(i >> 8), 1}] = struct{}{}
	}
	if !auth("grafana", "grafana-pass") {
		t.Fatal("grafana refused")
	}
	if n := len(p.verified); n != 1 {
		t.Fatalf("full cache holds %d entries after one more, want 1", n)
	}
}

// TestCheckToken checks the token comparison: it finds the token whatever
// its position, and a digest that shares a prefix with a stored one (or an
// empty token) is refused.
func TestCheckToken(t *testing.T) {
	p, err := Load("testdata/full.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]string{
		"billing-token":  "billing-ci",
		"read-token":     "reader",
		"read-token ":    "",
		"billing-token2": "",
		"":               "",
		"billing":        "",
	} {
		pr, err := p.checkToken(tok)
		got := ""
		if err == nil {
			got = pr.name
		}
		if got != want {
			t.Errorf("checkToken(%q) = %q, %v; want %q", tok, got, err, want)
		}
	}
	// The dummy hash of an unknown user is a real bcrypt hash of the
	// default cost, so that it costs as much as a real one.
	if c, err := bcrypt.Cost(p.dummyHash); err != nil || c != bcrypt.DefaultCost {
		t.Errorf("dummy hash cost %d, %v", c, err)
	}
}
