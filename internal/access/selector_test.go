package access_test

import (
	"testing"

	"github.com/pushgate/pushgate/internal/access"
	"github.com/pushgate/pushgate/internal/grouping"
)

func TestParseSelector(t *testing.T) {
	good := []struct{ in, want string }{
		{`job="a"`, `{job="a"}`},
		{`{job="a"}`, `{job="a"}`},
		{` { job = "a" , instance!="" , } `, `{job="a", instance!=""}`},
		{`job=~"billing-.*"`, `{job=~"billing-.*"}`},
		{"job!~`x\\d+`", `{job!~"x\\d+"}`},
		{`"a.b"="c"`, `{"a.b"="c"}`},
		{`job="quote\"inside,}"`, `{job="quote\"inside,}"}`},
		{`_x="\u00e9"`, `{_x="é"}`},
	}
	for _, c := range good {
		s, err := access.ParseSelector(c.in)
		if err != nil {
			t.Errorf("ParseSelector(%q): %v", c.in, err)
			continue
		}
		if got := s.String(); got != c.want {
			t.Errorf("ParseSelector(%q) = %s, want %s", c.in, got, c.want)
		}
	}
	bad := []string{
		``, `{}`, `  `, `job`, `job=`, `job="a`, `job=a`, `job=="a"`, `job~"a"`,
		`{job="a"`, `job="a"}`, `job="a" x="b"`, `1job="a"`, `job=~"("`, `job="\q"`,
		`""="a"`, `job='a'`, `,job="a"`, `job="a",,`,
	}
	for _, in := range bad {
		if s, err := access.ParseSelector(in); err == nil {
			t.Errorf("ParseSelector(%q) = %s, want an error", in, s)
		}
	}
}

func TestSelectorMatches(t *testing.T) {
	key := func(m map[string]string) grouping.Key {
		t.Helper()
		k, err := grouping.FromMap(m)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	billingX := key(map[string]string{"job": "billing-x"})
	payments := key(map[string]string{"job": "payments", "instance": "ci-7"})
	cases := []struct {
		sel  string
		key  grouping.Key
		want bool
	}{
		{`job="billing-x"`, billingX, true},
		{`job="billing"`, billingX, false},
		{`job=~"billing-.*"`, billingX, true},
		{`job=~"billing"`, billingX, false},    // anchored at the end
		{`job=~"illing-x"`, billingX, false},   // anchored at the start
		{`job=~"billing-x|z"`, billingX, true}, // alternation inside the anchors
		{`job=~"z|billing-x"`, billingX, true},
		{`job!~"billing-.*"`, billingX, false},
		{`job!="payments"`, billingX, true},
		{`instance=""`, billingX, true}, // absent label is ""
		{`instance!=""`, billingX, false},
		{`instance=~".*"`, billingX, true},
		{`instance=~".+"`, billingX, false},
		{`job="payments", instance=~"ci-[0-9]+"`, payments, true},
		{`job="payments", instance="ci-8"`, payments, false},
		{`job=~"(?i)PAYMENTS"`, payments, true},
		{`job=~"pay.ents"`, payments, true},
	}
	for _, c := range cases {
		s, err := access.ParseSelector(c.sel)
		if err != nil {
			t.Fatalf("ParseSelector(%q): %v", c.sel, err)
		}
		if got := s.Matches(c.key); got != c.want {
			t.Errorf("%s matches %s = %v, want %v", c.sel, c.key, got, c.want)
		}
	}
	// Regexps match across newlines, as Prometheus's do.
	s, _ := access.ParseSelector(`job=~"a.b"`)
	if !s.Matches(key(map[string]string{"job": "a\nb"})) {
		t.Error(`job=~"a.b" does not match "a\nb"`)
	}
}
