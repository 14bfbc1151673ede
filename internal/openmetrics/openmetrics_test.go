package openmetrics_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pushgate/pushgate/internal/openmetrics"
)

// text renders families sorted by name in the 0.0.4 text format, which is
// how a scraper of the gateway will see them.
func text(t *testing.T, fams map[string]*dto.MetricFamily) string {
	t.Helper()
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	sortStrings(names)
	var buf bytes.Buffer
	for _, n := range names {
		if len(fams[n].Metric) == 0 {
			continue
		}
		if _, err := expfmt.MetricFamilyToText(&buf, fams[n]); err != nil {
			t.Fatalf("render %s: %v", n, err)
		}
	}
	return buf.String()
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{
			name: "counter becomes _total with created and exemplar",
			in: `# TYPE foo counter
# HELP foo Foos seen.
foo_total{a="1"} 3 # {trace_id="abc"} 1 1700000000.5
foo_created{a="1"} 1700000000
# EOF
`,
			want: `# HELP foo_total Foos seen.
# TYPE foo_total counter
foo_total{a="1"} 3
`,
		},
		{
			name: "gauge, unknown, info and stateset",
			in: `# TYPE g_bytes gauge
# UNIT g_bytes bytes
g_bytes 1.5
u{x="y"} 2
# TYPE build info
build_info{version="1.2"} 1
# TYPE state stateset
state{state="a"} 1
state{state="b"} 0
# EOF
`,
			want: `# TYPE build_info gauge
build_info{version="1.2"} 1
# TYPE g_bytes gauge
g_bytes 1.5
# TYPE state gauge
state{state="a"} 1
state{state="b"} 0
# TYPE u untyped
u{x="y"} 2
`,
		},
		{
			name: "histogram and summary",
			in: `# TYPE h histogram
h_bucket{le="0.5"} 1
h_bucket{le="+Inf"} 3 # {id="x"} 0.7
h_sum 2.5
h_count 3
# TYPE s summary
s{quantile="0.5"} 0.25
s_sum 1
s_count 4
# EOF
`,
			want: `# TYPE h histogram
h_bucket{le="0.5"} 1
h_bucket{le="+Inf"} 3
h_sum 2.5
h_count 3
# TYPE s summary
s{quantile="0.5"} 0.25
s_sum 1
s_count 4
`,
		},
		{
			name: "escapes in labels and help",
			in: `# HELP e A \"quoted\" help\nwith newline.
# TYPE e gauge
e{p="a\\b\"c\nd"} 1
# EOF
`,
			want: `# HELP e A "quoted" help\nwith newline.
# TYPE e gauge
e{p="a\\b\"c\nd"} 1
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fams, err := openmetrics.Parse(strings.NewReader(tc.in), openmetrics.Options{Scheme: model.LegacyValidation})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := text(t, fams); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestParseKeepsExemplarsAndCreated(t *testing.T) {
	in := "# TYPE foo counter\nfoo_total 3 # {trace_id=\"abc\"} 1 1700000000.5\nfoo_created 1700000000\n# EOF\n"
	fams, err := openmetrics.Parse(strings.NewReader(in), openmetrics.Options{Scheme: model.LegacyValidation})
	if err != nil {
		t.Fatal(err)
	}
	c := fams["foo_total"].Metric[0].GetCounter()
	if c.GetExemplar().GetLabel()[0].GetValue() != "abc" || c.GetExemplar().GetValue() != 1 {
		t.Errorf("exemplar lost: %v", c.GetExemplar())
	}
	if c.GetCreatedTimestamp().GetSeconds() != 1700000000 {
		t.Errorf("created timestamp lost: %v", c.GetCreatedTimestamp())
	}
}

func TestParseTimestampIsKept(t *testing.T) {
	// The store rejects pushed timestamps; the parser must not drop them.
	fams, err := openmetrics.Parse(strings.NewReader("g 1 1700000000.25\n# EOF\n"), openmetrics.Options{Scheme: model.LegacyValidation})
	if err != nil {
		t.Fatal(err)
	}
	if got := fams["g"].Metric[0].GetTimestampMs(); got != 1700000000250 {
		t.Errorf("timestamp = %d, want 1700000000250", got)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
	}{
		{"missing EOF", "g 1\n", 1},
		{"content after EOF", "# EOF\ng 1\n", 2},
		{"bad value", "g abc\n# EOF\n", 1},
		{"bad type", "# TYPE g nonsense\n# EOF\n", 1},
		{"unquoted label", "g{a=1} 1\n# EOF\n", 1},
		{"duplicate label", "g{a=\"1\",a=\"2\"} 1\n# EOF\n", 1},
		{"bucket without le", "# TYPE h histogram\nh_bucket 1\n# EOF\n", 2},
		{"non-integer count", "# TYPE h histogram\nh_count 1.5\n# EOF\n", 2},
		{"exemplar on gauge", "# TYPE g gauge\ng 1 # {a=\"b\"} 1\n# EOF\n", 2},
		{"plain comment", "# just a comment\n# EOF\n", 1},
		{"interleaved families", "a 1\nb 1\na 2\n# EOF\n", 3},
		{"unit not a suffix", "# TYPE x gauge\n# UNIT x seconds\n# EOF\n", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openmetrics.Parse(strings.NewReader(tc.in), openmetrics.Options{Scheme: model.LegacyValidation})
			var perr *openmetrics.ParseError
			if !errors.As(err, &perr) {
				t.Fatalf("err = %v, want a ParseError", err)
			}
			if perr.Line != tc.line {
				t.Errorf("line = %d, want %d (%v)", perr.Line, tc.line, err)
			}
		})
	}
}

func TestParseCounterWithoutTotal(t *testing.T) {
	_, err := openmetrics.Parse(strings.NewReader("# TYPE c counter\nc_created 1\n# EOF\n"), openmetrics.Options{Scheme: model.LegacyValidation})
	if err == nil || !strings.Contains(err.Error(), "no _total") {
		t.Fatalf("err = %v, want a missing _total error", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"# TYPE foo counter\nfoo_total{a=\"1\"} 3 # {t=\"x\"} 1 2\nfoo_created 1\n# EOF\n",
		"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n# EOF\n",
		"# TYPE s summary\ns{quantile=\"0.9\"} 1\ns_count 1\ns_sum 1\n# EOF\n",
		"# HELP g x\\ny\ng NaN\n# EOF\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		fams, err := openmetrics.Parse(strings.NewReader(in), openmetrics.Options{Scheme: model.LegacyValidation})
		if err != nil {
			return
		}
		// Whatever parses must render as valid 0.0.4 text.
		var buf bytes.Buffer
		for _, mf := range fams {
			if len(mf.Metric) == 0 || mf.GetType() == dto.MetricType_GAUGE_HISTOGRAM {
				continue
			}
			if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
				t.Fatalf("parsed family does not render: %v\n%v", err, mf)
			}
		}
	})
}
