package e2e

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExpiry drives group expiry (README, Group expiry) on the real binary
// with durable storage: the flag, the header (shorter, and 0 for never),
// renewal by a push, a bad header, and a deadline that passes while the
// gateway is down.
func TestExpiry(t *testing.T) {
	requirePushgate(t, "group expiry")
	dir := t.TempDir()
	g := startDurable(t, dir, "--push.expire-after=2s")

	// pushAt pushes job and returns when it sent the push and when the
	// answer came: the push time is between the two.
	pushAt := func(g *gateway, method, job, expire string) (sent, acked time.Time) {
		t.Helper()
		var h map[string]string
		if expire != "" {
			h = map[string]string{"Pushgate-Expire-After": expire}
		}
		sent = time.Now()
		if r := g.do(t, method, "/metrics/job/"+job, h, []byte("x 1\n")); r.status != http.StatusOK {
			t.Fatalf("push %s: %s", job, r)
		}
		return sent, time.Now()
	}

	if r := g.do(t, http.MethodPut, "/metrics/job/bad", map[string]string{"Pushgate-Expire-After": "soon"}, []byte("x 1\n")); r.status != http.StatusBadRequest || strings.Count(strings.TrimSpace(string(r.body)), "\n") != 0 {
		t.Fatalf("bad header: %s, want 400 with one line", r)
	}

	type expect struct {
		sent, acked time.Time
		after       time.Duration
	}
	want := map[string]*expect{}
	for _, c := range []struct{ job, header string }{{"flag", ""}, {"short", "1s"}, {"renew", ""}} {
		s, a := pushAt(g, http.MethodPut, c.job, c.header)
		after := 2 * time.Second
		if c.header == "1s" {
			after = time.Second
		}
		want[c.job] = &expect{s, a, after}
	}
	pushAt(g, http.MethodPut, "never", "0")
	renewed := false
	gone := map[string]time.Time{}
	for len(gone) < len(want) && time.Since(want["flag"].sent) < 6*time.Second {
		if !renewed && time.Since(want["renew"].acked) >= time.Second {
			s, a := pushAt(g, http.MethodPost, "renew", "")
			want["renew"].sent, want["renew"].acked, renewed = s, a, true
		}
		now := time.Now()
		present := pushedJobs(t, g)
		if !present["never"] || present["bad"] {
			t.Fatalf("groups %v: want never there and no bad", present)
		}
		for job := range want {
			if _, ok := gone[job]; !ok && !present[job] {
				gone[job] = now
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	for job, e := range want {
		at, ok := gone[job]
		switch {
		case !ok:
			t.Errorf("%s: not expired", job)
		case at.Before(e.sent.Add(e.after)):
			t.Errorf("%s: gone %v after its push, before its expiry of %v", job, at.Sub(e.sent), e.after)
		case at.After(e.acked.Add(e.after + time.Second + 100*time.Millisecond)):
			t.Errorf("%s: gone only %v after its push, expiry %v", job, at.Sub(e.acked), e.after)
		}
	}
	if mf := g.scrape(t)["pushgate_groups_expired_total"]; mf == nil || mf.Metric[0].GetCounter().GetValue() != 3 {
		t.Errorf("pushgate_groups_expired_total = %v, want 3", mf)
	}
	if !strings.Contains(g.out.String(), "group expired") {
		t.Errorf("no log line about an expired group")
	}

	// A deadline that passes while the gateway is down: gone right after
	// start; the group that never expires survives.
	_, acked := pushAt(g, http.MethodPut, "down", "1s")
	g.stop()
	time.Sleep(time.Until(acked.Add(1100 * time.Millisecond)))
	g = startDurable(t, dir, "--push.expire-after=2s")
	ready := time.Now()
	for pushedJobs(t, g)["down"] {
		if time.Since(ready) > time.Second {
			t.Fatal("group whose deadline passed while the gateway was down still there 1s after start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !pushedJobs(t, g)["never"] {
		t.Error("group pushed with expiry 0 lost over the restart")
	}
}

// TestExpiryByRule: a rule's expire_after deletes the groups it matches,
// a push's header beats it, and groups no rule gives an expiry to stay
// (the flag is off).
func TestExpiryByRule(t *testing.T) {
	requirePushgate(t, "group expiry by rule")
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yml")
	writeFile(t, rules, []byte("rules:\n  - match: '{job=~\"ruled.*\"}'\n    expire_after: 1s\n"))
	g := startDurable(t, dir, "--push.rules.file="+rules)
	push := func(job string, header map[string]string) time.Time {
		t.Helper()
		if r := g.do(t, http.MethodPut, "/metrics/job/"+job, header, []byte("x 1\n")); r.status != http.StatusOK {
			t.Fatalf("push %s: %s", job, r)
		}
		return time.Now()
	}
	acked := push("ruled", nil)
	push("ruled-never", map[string]string{"Pushgate-Expire-After": "0"})
	push("plain", nil)
	for time.Since(acked) < 4*time.Second {
		present := pushedJobs(t, g)
		if !present["plain"] || !present["ruled-never"] {
			t.Fatalf("groups %v: plain (no rule, no flag) and ruled-never (header 0) must stay", present)
		}
		if !present["ruled"] {
			if d := time.Since(acked); d < 900*time.Millisecond || d > 2500*time.Millisecond {
				t.Fatalf("ruled group gone %v after its push, want 1 s (+ at most a second)", d)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the rule's group did not expire")
}

// pushedJobs returns the jobs of the groups g exposes.
func pushedJobs(t *testing.T, g *gateway) map[string]bool {
	t.Helper()
	present := map[string]bool{}
	if mf := g.scrape(t)["push_time_seconds"]; mf != nil {
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "job" {
					present[l.GetValue()] = true
				}
			}
		}
	}
	return present
}
