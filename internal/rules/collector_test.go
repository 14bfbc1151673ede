package rules_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pushgate/pushgate/internal/rules"
	"github.com/pushgate/pushgate/internal/store"
)

type fakeStore struct{ groups []*store.Group }

func (f *fakeStore) View() *store.View { return &store.View{Groups: f.groups} }

func TestCollector(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rs, err := rules.Parse([]byte(`rules:
- match: 'job="nightly"'
  expect_every: 24h
- match: 'job="hourly"'
  expect_every: 1h
- match: 'job="expire-only"'
  expire_after: 1h
- match: 'job=~"other.*"'
  expect_every: 1h`))
	if err != nil {
		t.Fatal(err)
	}
	group := func(push, fail time.Duration, kv ...string) *store.Group {
		g := &store.Group{Key: key(t, kv...)}
		if push >= 0 {
			g.PushTime = now.Add(-push)
		}
		if fail >= 0 {
			g.FailTime = now.Add(-fail)
		}
		return g
	}
	const never = -1
	fs := &fakeStore{groups: []*store.Group{
		group(23*time.Hour, never, "job", "nightly", "instance", "a"), // fresh: 1
		group(25*time.Hour, never, "job", "nightly", "instance", "b"), // stale: 0
		group(24*time.Hour, never, "job", "nightly", "instance", "c"), // exactly expect_every: 1
		group(time.Minute, time.Second, "job", "hourly"),              // last push failed: 0
		group(time.Minute, time.Hour, "job", "hourly", "env", "prod"), // failed before, then succeeded: 1
		group(never, time.Minute, "job", "hourly", "env", "dev"),      // never succeeded: 0
		group(time.Minute, never, "job", "expire-only"),               // no expect_every: absent
		group(time.Minute, never, "job", "unmatched"),                 // no rule: absent
		group(2*time.Hour, never, "job", "other", "a", "1", "b", "2"), // more labels: 0
	}}
	c := rules.NewCollector(rules.FromRules(rs), fs, func() time.Time { return now })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)

	want := `# HELP pushgate_group_up 1 if the group's last push succeeded and is at most expect_every old (the first matching rule of --push.rules.file), else 0. Only groups matching a rule with expect_every have a series.
# TYPE pushgate_group_up gauge
pushgate_group_up{instance="a",job="nightly"} 1
pushgate_group_up{instance="b",job="nightly"} 0
pushgate_group_up{instance="c",job="nightly"} 1
pushgate_group_up{instance="",job="hourly"} 0
pushgate_group_up{env="prod",instance="",job="hourly"} 1
pushgate_group_up{env="dev",instance="",job="hourly"} 0
pushgate_group_up{a="1",b="2",instance="",job="other"} 0
`
	// The mixed label sets make one valid family: HELP and TYPE once, and
	// the text parses back.
	text := gatherText(t, reg)
	if !sameLines(text, want) {
		t.Errorf("exposition:\n%s\nwant (in any order):\n%s", text, want)
	}
	buf := bytes.NewBufferString(text)
	if n := strings.Count(text, "# TYPE "); n != 1 {
		t.Errorf("%d TYPE lines, want 1:\n%s", n, text)
	}
	if n := strings.Count(text, "# HELP "); n != 1 {
		t.Errorf("%d HELP lines, want 1:\n%s", n, text)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	parsed, err := parser.TextToMetricFamilies(buf)
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, text)
	}
	if got := len(parsed[rules.GroupUpName].GetMetric()); got != 7 {
		t.Errorf("%d series parsed, want 7", got)
	}
}

func TestCollectorNoRules(t *testing.T) {
	fs := &fakeStore{groups: []*store.Group{{Key: key(t, "job", "a"), PushTime: time.Now()}}}
	expireOnly, err := rules.Parse([]byte("rules:\n- match: job=~\".+\"\n  expire_after: 1h\n"))
	if err != nil {
		t.Fatal(err)
	}
	for name, rs := range map[string][]rules.Rule{"no rules": nil, "no expect_every": expireOnly} {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(rules.NewCollector(rules.FromRules(rs), fs, nil))
		if text := gatherText(t, reg); text != "" {
			t.Errorf("%s: series:\n%s", name, text)
		}
	}
}

// TestCollectorFollowsReload: the collector reads the current rules at each
// scrape.
func TestCollectorFollowsReload(t *testing.T) {
	now := time.Now()
	fs := &fakeStore{groups: []*store.Group{{Key: key(t, "job", "a"), PushTime: now.Add(-time.Minute)}}}
	path := t.TempDir() + "/rules.yml"
	write := func(s string) {
		t.Helper()
		if err := writeFile(path, s); err != nil {
			t.Fatal(err)
		}
	}
	write("rules:\n- match: job=\"a\"\n  expect_every: 1h\n")
	s, err := rules.NewSet(path)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(rules.NewCollector(s, fs, func() time.Time { return now }))
	if got := gatherText(t, reg); !strings.Contains(got, `pushgate_group_up{instance="",job="a"} 1`) {
		t.Errorf("before reload:\n%s\nwant up 1", got)
	}
	write("rules:\n- match: job=\"a\"\n  expect_every: 30s\n")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := gatherText(t, reg); !strings.Contains(got, `pushgate_group_up{instance="",job="a"} 0`) {
		t.Errorf("after reload:\n%s\nwant up 0", got)
	}
}

func gatherText(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.String()
}

// sameLines reports whether a and b hold the same lines in any order.
func sameLines(a, b string) bool {
	la, lb := strings.Split(strings.TrimSpace(a), "\n"), strings.Split(strings.TrimSpace(b), "\n")
	slices.Sort(la)
	slices.Sort(lb)
	return slices.Equal(la, lb)
}
