package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// limitCases: by default pushgate accepts every push the reference accepts
// within the default body size (--push.max-body-size, 64 MiB). The reference
// has no limits on labels, so pushgate's label limits are off by default.
func limitCases() []compatCase {
	long := strings.Repeat("v", 100_000)
	longName := "n" + strings.Repeat("x", 4999)
	var many strings.Builder
	for i := range 200 {
		fmt.Fprintf(&many, `,l%d="%d"`, i, i)
	}
	manyLabels := "{" + many.String()[1:] + "}"
	return []compatCase{{
		name: "limits/large-labels-accepted-by-default",
		steps: []step{
			put("/metrics/job/a", `foo{big="`+long+`"} 1`+"\n", 200),
			put("/metrics/job/b", `bar{`+longName+`="x"} 2`+"\n", 200),
			put("/metrics/job/c", "baz"+manyLabels+" 3\n", 200),
		},
		want: lines(
			`foo{big="`+long+`",instance="",job="a"} 1`,
			`bar{`+longName+`="x",instance="",job="b"} 2`,
			"baz"+strings.TrimSuffix(manyLabels, "}")+`,instance="",job="c"} 3`,
		) + times(`instance="",job="a"`, 1, 0) + times(`instance="",job="b"`, 1, 0) + times(`instance="",job="c"`, 1, 0),
	}}
}

// The label limits are still there when asked for, and a refusal names the
// flag.
func TestLabelLimitFlags(t *testing.T) {
	t.Parallel()
	requirePushgate(t, "label limits")
	g := startGateway(t, subject, "--storage.in-memory",
		"--push.max-label-value-length=10", "--push.max-label-name-length=9", "--push.max-labels-per-series=4")
	for _, c := range []struct{ body, flag string }{
		{`a{x="12345678901"} 1` + "\n", "--push.max-label-value-length"},
		{`a{longername="1"} 1` + "\n", "--push.max-label-name-length"},
		{`a{x="1",y="2",z="3"} 1` + "\n", "--push.max-labels-per-series"},
	} {
		r := g.do(t, http.MethodPut, "/metrics/job/j", nil, []byte(c.body))
		if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(string(r.body), c.flag) {
			t.Errorf("push %q: got %s, want 413 naming %s", c.body, r, c.flag)
		}
	}
	if r := g.do(t, http.MethodPut, "/metrics/job/j", nil, []byte(`a{x="1234567890",longname="1"} 1`+"\n")); r.status != http.StatusOK {
		t.Errorf("push at the limits: got %s, want 200", r)
	}
}
