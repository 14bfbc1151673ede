package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// groupUp scrapes and returns pushgate_group_up by its labels, written
// name=value in label order ("instance=,job=cron").
func groupUp(t *testing.T, g *gateway) map[string]float64 {
	t.Helper()
	up := map[string]float64{}
	mf, ok := g.scrape(t)["pushgate_group_up"]
	if !ok {
		return up
	}
	if mf.GetType() != dto.MetricType_GAUGE {
		t.Errorf("pushgate_group_up is a %v, want a gauge", mf.GetType())
	}
	for _, m := range mf.GetMetric() {
		pairs := make([]string, 0, len(m.GetLabel()))
		for _, l := range m.GetLabel() {
			pairs = append(pairs, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(pairs)
		up[strings.Join(pairs, ",")] = m.GetGauge().GetValue()
	}
	return up
}

// waitGroupUp polls until pushgate_group_up is exactly want.
func waitGroupUp(t *testing.T, g *gateway, step string, want map[string]float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := groupUp(t, g)
		if equalUp(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: pushgate_group_up = %v, want %v", step, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func equalUp(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestRulesGroupUp drives --push.rules.file end to end: pushgate_group_up
// for the groups a rule with expect_every matches, a stale group going to 0,
// a failed push going to 0, and reloading the file with POST /-/reload and
// SIGHUP (a bad file keeps the old rules).
func TestRulesGroupUp(t *testing.T) {
	t.Parallel()
	requirePushgate(t, "--push.rules.file")
	rulesFile := filepath.Join(t.TempDir(), "rules.yml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(rulesFile, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`rules:
  - match: '{job="backup", env="prod"}'
    expect_every: 1h
  - match: '{job=~"cron-.*"}'
    expire_after: 26h
    expect_every: 24h
`)
	g := startGateway(t, subject, "--storage.in-memory", "--web.enable-lifecycle", "--push.rules.file="+rulesFile)
	push := func(path, body string, want int) {
		t.Helper()
		if r := g.do(t, http.MethodPut, path, nil, []byte(body)); r.status != want {
			t.Fatalf("PUT %s: %s, want %d", path, r, want)
		}
	}
	push("/metrics/job/backup/env/prod", "# TYPE done gauge\ndone 1\n", http.StatusOK)
	push("/metrics/job/backup/env/dev", "# TYPE done gauge\ndone 1\n", http.StatusOK) // no rule
	push("/metrics/job/cron-a/instance/h1", "# TYPE runs gauge\nruns 1\n", http.StatusOK)
	push("/metrics/job/cron-b", "other 1\n", http.StatusOK)
	waitGroupUp(t, g, "after the pushes", map[string]float64{
		"env=prod,instance=,job=backup": 1,
		"instance=h1,job=cron-a":        1,
		"instance=,job=cron-b":          1,
	})

	// A failed push (a type another group has differently) makes the
	// group down, though its last successful push is fresh.
	push("/metrics/job/cron-b", "# TYPE runs counter\nruns 1\n", http.StatusBadRequest)
	waitGroupUp(t, g, "after a failed push", map[string]float64{
		"env=prod,instance=,job=backup": 1,
		"instance=h1,job=cron-a":        1,
		"instance=,job=cron-b":          0,
	})

	// A tiny expect_every, reloaded over HTTP: the backup group is stale.
	write(`rules:
  - match: '{job="backup", env="prod"}'
    expect_every: 1ms
  - match: '{job=~"cron-.*"}'
    expect_every: 24h
`)
	if r := g.do(t, http.MethodPost, "/-/reload", nil, nil); r.status != http.StatusOK {
		t.Fatalf("POST /-/reload: %s, want 200", r)
	}
	waitGroupUp(t, g, "after POST /-/reload", map[string]float64{
		"env=prod,instance=,job=backup": 0,
		"instance=h1,job=cron-a":        1,
		"instance=,job=cron-b":          0,
	})

	// A bad file: 500 with the error, and the old rules stay.
	write(`rules:
  - match: '{job="backup"'
    expect_every: 1h
`)
	r := g.do(t, http.MethodPost, "/-/reload", nil, nil)
	if r.status != http.StatusInternalServerError || !strings.Contains(string(r.body), "rule 0: match") {
		t.Fatalf("POST /-/reload of a bad file: %s, want 500 naming rule 0's match", r)
	}
	waitGroupUp(t, g, "after a failed reload", map[string]float64{
		"env=prod,instance=,job=backup": 0,
		"instance=h1,job=cron-a":        1,
		"instance=,job=cron-b":          0,
	})

	// SIGHUP: only the backup groups keep a rule, now matching both.
	write(`rules:
  - match: 'job="backup"'
    expect_every: 1h
`)
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitGroupUp(t, g, "after SIGHUP", map[string]float64{
		"env=prod,instance=,job=backup": 1,
		"env=dev,instance=,job=backup":  1,
	})
	if g.exited() {
		t.Fatal("the gateway exited on SIGHUP")
	}

	// The family is the gateway's own: a push cannot bring it.
	push("/metrics/job/x", "pushgate_group_up 1\n", http.StatusBadRequest)
}

// TestRulesBadFileStopsStart: a bad rules file is reported at start, naming
// the rule and field, and the gateway does not run.
func TestRulesBadFileStopsStart(t *testing.T) {
	t.Parallel()
	requirePushgate(t, "--push.rules.file")
	rulesFile := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(rulesFile, []byte("rules:\n  - match: 'job=\"a\"'\n    expect_every: -5m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, "subject", subjectBin, "--storage.in-memory", "--web.listen-address=127.0.0.1:0", "--push.rules.file="+rulesFile)
	if err := p.waitExit(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if p.err == nil {
		t.Error("the gateway exited successfully with a bad rules file")
	}
	if out := p.out.String(); !strings.Contains(out, "--push.rules.file") || !strings.Contains(out, "rule 0: expect_every") {
		t.Errorf("output does not name the flag, rule and field:\n%s", out)
	}
}

// TestReloadWithoutRules: SIGHUP and /-/reload without a rules file do
// nothing and succeed; /-/reload needs --web.enable-lifecycle.
func TestReloadWithoutRules(t *testing.T) {
	t.Parallel()
	requirePushgate(t, "/-/reload")
	g := startGateway(t, subject, "--storage.in-memory")
	if r := g.do(t, http.MethodPost, "/-/reload", nil, nil); r.status != http.StatusForbidden || string(r.body) != "Lifecycle API is not enabled." {
		t.Errorf("POST /-/reload without lifecycle: %s, want 403", r)
	}
	if r := g.do(t, http.MethodGet, "/-/reload", nil, nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload: %s, want 405", r)
	}
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if r := g.do(t, http.MethodGet, "/-/healthy", nil, nil); r.status != http.StatusOK || g.exited() {
		t.Errorf("after SIGHUP: %s, exited %v", r, g.exited())
	}

	l := startGateway(t, subject, "--storage.in-memory", "--web.enable-lifecycle")
	if r := l.do(t, http.MethodPut, "/-/reload", nil, nil); r.status != http.StatusOK {
		t.Errorf("PUT /-/reload without a rules file: %s, want 200", r)
	}
}
