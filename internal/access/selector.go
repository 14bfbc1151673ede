package access

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/common/model"

	"github.com/pushgate/pushgate/internal/grouping"
)

// MatchType is the operator of a Matcher.
type MatchType int

// The operators, as in PromQL.
const (
	MatchEqual     MatchType = iota // =
	MatchNotEqual                   // !=
	MatchRegexp                     // =~
	MatchNotRegexp                  // !~
)

func (t MatchType) String() string {
	return [...]string{"=", "!=", "=~", "!~"}[t]
}

// Matcher tests one label of a grouping key. A label the key does not have
// has the value "", as in PromQL: name!="x" matches a key without name.
type Matcher struct {
	Name  string
	Type  MatchType
	Value string
	re    *regexp.Regexp // for the regexp types; anchored at both ends
}

// Matches reports whether the value v of the matcher's label matches.
func (m *Matcher) Matches(v string) bool {
	switch m.Type {
	case MatchEqual:
		return v == m.Value
	case MatchNotEqual:
		return v != m.Value
	case MatchRegexp:
		return m.re.MatchString(v)
	default:
		return !m.re.MatchString(v)
	}
}

func (m *Matcher) String() string {
	if model.LegacyValidation.IsValidLabelName(m.Name) {
		return fmt.Sprintf("%s%s%q", m.Name, m.Type, m.Value)
	}
	return fmt.Sprintf("%q%s%q", m.Name, m.Type, m.Value)
}

// Selector is a set of matchers that must all match. It is immutable after
// ParseSelector and safe for concurrent use.
type Selector []*Matcher

// Matches reports whether every matcher matches the key.
func (s Selector) Matches(k grouping.Key) bool {
	for _, m := range s {
		if !m.Matches(k.Get(m.Name)) {
			return false
		}
	}
	return true
}

func (s Selector) String() string {
	parts := make([]string, len(s))
	for i, m := range s {
		parts[i] = m.String()
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// ParseSelector parses matchers in PromQL's syntax, with or without braces:
// `job=~"billing-.*", instance!=""`. Names are label names, or any UTF-8 in
// double quotes; values are Go/PromQL string literals in double quotes or
// backticks. Regular expressions are RE2 and fully anchored, as in
// Prometheus. An empty selector is an error: to allow every group, say
// job=~".+" explicitly.
func ParseSelector(s string) (Selector, error) {
	p := &selectorParser{in: strings.TrimSpace(s)}
	braces := strings.HasPrefix(p.in, "{")
	if braces {
		if !strings.HasSuffix(p.in, "}") || len(p.in) < 2 {
			return nil, errors.New("unclosed '{'")
		}
		p.in = strings.TrimSpace(p.in[1 : len(p.in)-1])
	}
	var sel Selector
	for {
		p.skipSpace()
		if p.done() {
			break
		}
		m, err := p.matcher()
		if err != nil {
			return nil, err
		}
		sel = append(sel, m)
		p.skipSpace()
		if p.done() {
			break
		}
		if p.in[p.pos] != ',' {
			return nil, fmt.Errorf("expected ',' after %s, got %q", m, p.rest())
		}
		p.pos++
	}
	if len(sel) == 0 {
		return nil, errors.New(`empty selector (to allow every group, write job=~".+")`)
	}
	return sel, nil
}

type selectorParser struct {
	in  string
	pos int
}

func (p *selectorParser) done() bool { return p.pos >= len(p.in) }

func (p *selectorParser) rest() string {
	r := p.in[p.pos:]
	if len(r) > 20 {
		r = r[:20] + "..."
	}
	return r
}

func (p *selectorParser) skipSpace() {
	for !p.done() && strings.IndexByte(" \t\r\n", p.in[p.pos]) >= 0 {
		p.pos++
	}
}

func (p *selectorParser) matcher() (*Matcher, error) {
	m := &Matcher{}
	if !p.done() && p.in[p.pos] == '"' {
		name, err := p.quoted()
		if err != nil {
			return nil, fmt.Errorf("label name: %w", err)
		}
		if !model.UTF8Validation.IsValidLabelName(name) {
			return nil, fmt.Errorf("invalid label name %q", name)
		}
		m.Name = name
	} else {
		start := p.pos
		for !p.done() && isNameByte(p.in[p.pos], p.pos == start) {
			p.pos++
		}
		if p.pos == start {
			return nil, fmt.Errorf("expected a label name, got %q", p.rest())
		}
		m.Name = p.in[start:p.pos]
	}
	p.skipSpace()
	switch r := p.in[p.pos:]; {
	case strings.HasPrefix(r, "=~"):
		m.Type, p.pos = MatchRegexp, p.pos+2
	case strings.HasPrefix(r, "!~"):
		m.Type, p.pos = MatchNotRegexp, p.pos+2
	case strings.HasPrefix(r, "!="):
		m.Type, p.pos = MatchNotEqual, p.pos+2
	case strings.HasPrefix(r, "="):
		m.Type, p.pos = MatchEqual, p.pos+1
	default:
		return nil, fmt.Errorf("expected one of = != =~ !~ after %q, got %q", m.Name, p.rest())
	}
	p.skipSpace()
	v, err := p.quoted()
	if err != nil {
		return nil, fmt.Errorf("value of %q: %w", m.Name, err)
	}
	m.Value = v
	if m.Type == MatchRegexp || m.Type == MatchNotRegexp {
		// (?s) and full anchoring: Prometheus's FastRegexMatcher semantics.
		re, err := regexp.Compile("^(?s:" + v + ")$")
		if err != nil {
			return nil, fmt.Errorf("regexp of %q: %w", m.Name, err)
		}
		m.re = re
	}
	return m, nil
}

func isNameByte(b byte, first bool) bool {
	return b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || !first && b >= '0' && b <= '9'
}

// quoted reads a string literal in double quotes (with Go escapes) or
// backticks (raw).
func (p *selectorParser) quoted() (string, error) {
	if p.done() {
		return "", errors.New("expected a quoted string, got end of input")
	}
	q := p.in[p.pos]
	if q != '"' && q != '`' {
		return "", fmt.Errorf("expected a quoted string, got %q", p.rest())
	}
	end := p.pos + 1
	for ; end < len(p.in); end++ {
		if q == '"' && p.in[end] == '\\' {
			end++
			continue
		}
		if p.in[end] == q {
			break
		}
	}
	if end >= len(p.in) {
		return "", fmt.Errorf("unterminated string %q", p.rest())
	}
	lit := p.in[p.pos : end+1]
	p.pos = end + 1
	s, err := strconv.Unquote(lit)
	if err != nil {
		return "", fmt.Errorf("invalid string %s: %w", lit, err)
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("string %s is not valid UTF-8", lit)
	}
	return s, nil
}
