// Package rules holds the operator's per-group rules (--push.rules.file): a
// YAML list of selectors over grouping labels, each with settings for the
// groups it matches, such as how often a group is expected to be pushed
// (expect_every, exposed as pushgate_group_up) and after how long it expires
// (expire_after). The first rule whose selector matches a group's key
// applies; later rules are not consulted.
//
// A Set holds the current rules and can re-read its file (on SIGHUP or
// POST /-/reload). A file that fails to load leaves the previous rules in
// place, as Prometheus does with its configuration.
package rules

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"

	"github.com/pushgate/pushgate/internal/access"
	"github.com/pushgate/pushgate/internal/grouping"
)

// Rule is one entry of the rules file. It is immutable once parsed.
type Rule struct {
	// Match is the selector as written in the file.
	Match string
	// ExpireAfter is how long after its last push a matching group
	// expires; 0 means the rule does not say.
	ExpireAfter time.Duration
	// ExpectEvery is the longest expected interval between successful
	// pushes of a matching group; 0 means the rule does not say (and the
	// group has no pushgate_group_up series).
	ExpectEvery time.Duration

	selector access.Selector
}

// Matches reports whether the rule's selector matches the key.
func (r *Rule) Matches(k grouping.Key) bool { return r.selector.Matches(k) }

// fileRule is a rule as the YAML file spells it. Durations are strings so
// that the error can name the field; they take Prometheus' duration syntax
// (1h30m, 26h, 1d, 1w).
type fileRule struct {
	Match       string `yaml:"match"`
	ExpireAfter string `yaml:"expire_after"`
	ExpectEvery string `yaml:"expect_every"`
}

type file struct {
	Rules []fileRule `yaml:"rules"`
}

// Parse decodes a rules file strictly (unknown fields are errors) and
// compiles its selectors. It reports every bad rule at once; each error
// names the rule's index (from 0) and field. An empty file has no rules.
func Parse(data []byte) ([]Rule, error) {
	var f file
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, err
	}
	var errs []error
	rules := make([]Rule, 0, len(f.Rules))
	for i, fr := range f.Rules {
		r := Rule{Match: fr.Match}
		var err error
		if strings.TrimSpace(fr.Match) == "" {
			errs = append(errs, fmt.Errorf("rule %d: match: missing selector", i))
		} else if r.selector, err = access.ParseSelector(fr.Match); err != nil {
			errs = append(errs, fmt.Errorf("rule %d: match: %q: %w", i, fr.Match, err))
		}
		if r.ExpireAfter, err = parseDuration(fr.ExpireAfter); err != nil {
			errs = append(errs, fmt.Errorf("rule %d: expire_after: %w", i, err))
		}
		if r.ExpectEvery, err = parseDuration(fr.ExpectEvery); err != nil {
			errs = append(errs, fmt.Errorf("rule %d: expect_every: %w", i, err))
		}
		rules = append(rules, r)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return rules, nil
}

// parseDuration parses Prometheus' duration syntax; "" is 0.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("%q: must not be negative", s)
	}
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	return time.Duration(d), nil
}

// Load reads and parses the rules file at path.
func Load(path string) ([]Rule, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rules, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rules, nil
}

// Set is the current rules of a rules file. It is safe for concurrent use:
// Lookup never waits, and Reload swaps the whole list at once, so a Lookup
// sees either the old or the new rules, never a mix.
type Set struct {
	path  string
	rules atomic.Pointer[[]Rule]
	// mu serializes reloads, so that the last file read is the one kept.
	mu sync.Mutex
}

// NewSet loads the rules file at path. An empty path means no rules: Lookup
// never matches and Reload does nothing.
func NewSet(path string) (*Set, error) {
	s := &Set{path: path}
	rules := []Rule{}
	if path != "" {
		var err error
		if rules, err = Load(path); err != nil {
			return nil, err
		}
	}
	s.rules.Store(&rules)
	return s, nil
}

// FromRules returns a Set of fixed rules, without a file (for tests and
// embedding); Reload does nothing.
func FromRules(rules []Rule) *Set {
	s := &Set{}
	s.rules.Store(&rules)
	return s
}

// Rules returns the current rules, in file order. The slice must not be
// modified.
func (s *Set) Rules() []Rule { return *s.rules.Load() }

// Lookup returns the first rule that matches the key. It is cheap enough to
// call on every push: one atomic load and the rules' matchers in order.
func (s *Set) Lookup(k grouping.Key) (Rule, bool) {
	rules := *s.rules.Load()
	for i := range rules {
		if rules[i].Matches(k) {
			return rules[i], true
		}
	}
	return Rule{}, false
}

// ExpireAfter returns the expiry the first rule matching k sets, if it sets
// one (the store's Options.ExpireRule): a matching rule without
// expire_after leaves the group to --push.expire-after.
func (s *Set) ExpireAfter(k grouping.Key) (time.Duration, bool) {
	r, ok := s.Lookup(k)
	return r.ExpireAfter, ok && r.ExpireAfter > 0
}

// Reload re-reads the rules file. On an error the current rules stay in
// place and the error is returned; without a file it does nothing.
func (s *Set) Reload() error {
	if s.path == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rules, err := Load(s.path)
	if err != nil {
		return err
	}
	s.rules.Store(&rules)
	return nil
}
