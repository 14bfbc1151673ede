package rules_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/rules"
)

func key(t testing.TB, kv ...string) grouping.Key {
	t.Helper()
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	k, err := grouping.FromMap(m)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []rules.Rule // Match, ExpireAfter, ExpectEvery only
		wantErr []string     // substrings of the error
	}{
		{name: "empty file", in: "", want: []rules.Rule{}},
		{name: "no rules", in: "rules: []", want: []rules.Rule{}},
		{
			name: "durations",
			in: `rules:
- match: '{job=~"cron-.*"}'
  expire_after: 26h
  expect_every: 1d
- match: job="x"
  expect_every: 1h30m`,
			want: []rules.Rule{
				{Match: `{job=~"cron-.*"}`, ExpireAfter: 26 * time.Hour, ExpectEvery: 24 * time.Hour},
				{Match: `job="x"`, ExpectEvery: 90 * time.Minute},
			},
		},
		{name: "unknown field", in: "rules:\n- match: job=\"a\"\n  expect_evry: 1h", wantErr: []string{"expect_evry"}},
		{name: "unknown top-level field", in: "rule: []", wantErr: []string{"rule"}},
		{name: "missing match", in: "rules:\n- expect_every: 1h", wantErr: []string{"rule 0: match: missing selector"}},
		{name: "bad selector", in: "rules:\n- match: job=\"a\"\n- match: '{job=\"a\"'", wantErr: []string{"rule 1: match:", "unclosed"}},
		{name: "empty selector", in: "rules:\n- match: '{}'", wantErr: []string{"rule 0: match:", "empty selector"}},
		{name: "bad regexp", in: "rules:\n- match: 'job=~\"(\"'", wantErr: []string{"rule 0: match:"}},
		{name: "negative duration", in: "rules:\n- match: job=\"a\"\n  expect_every: -1h", wantErr: []string{"rule 0: expect_every:", "negative"}},
		{name: "unparsable duration", in: "rules:\n- match: job=\"a\"\n  expire_after: soon", wantErr: []string{"rule 0: expire_after:", `"soon"`}},
		{
			name:    "every problem at once",
			in:      "rules:\n- match: job=\"a\"\n  expire_after: x\n- match: ''\n  expect_every: -2m",
			wantErr: []string{"rule 0: expire_after:", "rule 1: match:", "rule 1: expect_every:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rules.Parse([]byte(tt.in))
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Parse: no error, want one containing %q", tt.wantErr)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("Parse error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Parse: %d rules, want %d", len(got), len(tt.want))
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				if g.Match != w.Match || g.ExpireAfter != w.ExpireAfter || g.ExpectEvery != w.ExpectEvery {
					t.Errorf("rule %d: {%q %v %v}, want {%q %v %v}", i, g.Match, g.ExpireAfter, g.ExpectEvery, w.Match, w.ExpireAfter, w.ExpectEvery)
				}
			}
		})
	}
}

func TestTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := rules.Load(f)
			if good := strings.HasSuffix(f, ".good.yml"); good != (err == nil) {
				t.Errorf("Load: %v; want good=%v", err, good)
			}
			if err != nil && !strings.Contains(err.Error(), f) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	s, err := rules.NewSet("testdata/full.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		key   grouping.Key
		match string // "" for no match
	}{
		{"regexp", key(t, "job", "cron-nightly", "instance", "a"), `{job=~"cron-.*"}`},
		{"regexp is anchored", key(t, "job", "x-cron-nightly"), ""},
		{"two labels", key(t, "job", "backup", "env", "prod"), `{job="backup", env="prod"}`},
		{"missing label is empty", key(t, "job", "backup"), ""},
		{"other value", key(t, "job", "backup", "env", "dev"), ""},
		{"without braces", key(t, "job", "batch"), `job="batch"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := s.Lookup(tt.key)
			if ok != (tt.match != "") || r.Match != tt.match {
				t.Errorf("Lookup(%s) = %q, %v; want %q", tt.key, r.Match, ok, tt.match)
			}
		})
	}
}

func TestLookupFirstMatchWins(t *testing.T) {
	rs, err := rules.Parse([]byte(`rules:
- match: 'job="a", env="prod"'
  expect_every: 1m
- match: 'job="a"'
  expect_every: 1h
- match: 'job=~".+"'
  expect_every: 1d`))
	if err != nil {
		t.Fatal(err)
	}
	s := rules.FromRules(rs)
	f := func(k grouping.Key, want time.Duration) {
		t.Helper()
		r, ok := s.Lookup(k)
		if !ok || r.ExpectEvery != want {
			t.Errorf("Lookup(%s) = %v, %v; want %v", k, r.ExpectEvery, ok, want)
		}
	}
	f(key(t, "job", "a", "env", "prod"), time.Minute)
	f(key(t, "job", "a", "env", "dev"), time.Hour)
	f(key(t, "job", "b"), 24*time.Hour)
}

func TestNoFile(t *testing.T) {
	s, err := rules.NewSet("")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Lookup(key(t, "job", "a")); ok {
		t.Error("Lookup matched without rules")
	}
	if err := s.Reload(); err != nil {
		t.Errorf("Reload without a file: %v", err)
	}
}

func TestNewSetBadFile(t *testing.T) {
	if _, err := rules.NewSet("testdata/unknown-field.bad.yml"); err == nil || !strings.Contains(err.Error(), "expect_evry") {
		t.Errorf("NewSet: %v, want an error naming the field", err)
	}
	if _, err := rules.NewSet(filepath.Join(t.TempDir(), "missing.yml")); err == nil {
		t.Error("NewSet of a missing file: no error")
	}
}

func TestReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("rules:\n- match: job=\"a\"\n  expect_every: 1h\n")
	s, err := rules.NewSet(path)
	if err != nil {
		t.Fatal(err)
	}
	every := func() time.Duration {
		r, ok := s.Lookup(key(t, "job", "a"))
		if !ok {
			return -1
		}
		return r.ExpectEvery
	}
	steps := []struct {
		name    string
		file    string // "" removes the file
		wantErr string
		want    time.Duration
	}{
		{name: "good", file: "rules:\n- match: job=\"a\"\n  expect_every: 2h\n", want: 2 * time.Hour},
		{name: "bad keeps the old rules", file: "rules:\n- match: job=\"a\"\n  expect_every: -1h\n", wantErr: "rule 0: expect_every", want: 2 * time.Hour},
		{name: "missing file keeps the old rules", wantErr: "no such file", want: 2 * time.Hour},
		{name: "good again", file: "rules:\n- match: job=\"b\"\n", want: -1},
	}
	for _, st := range steps {
		if st.file == "" {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		} else {
			write(st.file)
		}
		err := s.Reload()
		switch {
		case st.wantErr == "" && err != nil:
			t.Errorf("%s: Reload: %v", st.name, err)
		case st.wantErr != "" && (err == nil || !strings.Contains(err.Error(), st.wantErr)):
			t.Errorf("%s: Reload: %v, want an error containing %q", st.name, err, st.wantErr)
		}
		if got := every(); got != st.want {
			t.Errorf("%s: expect_every %v, want %v", st.name, got, st.want)
		}
	}
}

// TestReloadConcurrent runs Lookup beside Reload, for -race.
func TestReloadConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(path, []byte("rules:\n- match: job=\"a\"\n  expect_every: 1h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := rules.NewSet(path)
	if err != nil {
		t.Fatal(err)
	}
	k := key(t, "job", "a")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				if r, ok := s.Lookup(k); !ok || r.ExpectEvery != time.Hour {
					t.Errorf("Lookup during reload: %v %v", r.ExpectEvery, ok)
					return
				}
			}
		})
	}
	for range 20 {
		if err := s.Reload(); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// BenchmarkLookup: the cost Lookup adds to a push, through three rules to
// the last.
//
//	go test ./internal/rules -run '^$' -bench Lookup -benchmem
func BenchmarkLookup(b *testing.B) {
	rs, err := rules.Parse([]byte(`rules:
- match: '{job="backup", env="prod"}'
  expect_every: 1h
- match: '{job=~"cron-.*"}'
  expect_every: 24h
- match: '{job=~"batch-.*", instance!=""}'
  expire_after: 1h`))
	if err != nil {
		b.Fatal(err)
	}
	s := rules.FromRules(rs)
	k := key(b, "job", "batch-nightly", "instance", "h1")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.Lookup(k); !ok {
			b.Fatal("no match")
		}
	}
}
