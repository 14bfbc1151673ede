package textparse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
)

// FuzzParse runs expfmt's TextParser, the behavioural spec, and Parse on the
// same input with both validation schemes, through the usual buffer and
// through a tiny one with a failing reader behind the input, and fails on
// any difference in families or error text.
//
//	go test -run='^$' -fuzz='^FuzzParse$' -fuzztime=5m ./internal/textparse/
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, c := range errorCases {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, scheme := range []model.ValidationScheme{model.LegacyValidation, model.UTF8Validation} {
			compareWithExpfmt(t, in, scheme)
		}
	})
}

// errReaderFailed is what failingReader returns after its data.
type errReaderFailed struct{}

func (errReaderFailed) Error() string { return "reader failed" }

// failingReader returns its data, then an error instead of io.EOF.
type failingReader struct{ r io.Reader }

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if errors.Is(err, io.EOF) {
		err = errReaderFailed{}
	}
	return n, err
}

// expfmtParse runs the reference parser; panicked reports a crash (see
// setSig), after which the input has no reference result.
func expfmtParse(r io.Reader, scheme model.ValidationScheme) (fams map[string]*dto.MetricFamily, err error, panicked bool) {
	defer func() {
		if recover() != nil {
			panicked = true
		}
	}()
	p := expfmt.NewTextParser(scheme)
	fams, err = p.TextToMetricFamilies(r)
	return fams, err, false
}

func compareWithExpfmt(t *testing.T, in []byte, scheme model.ValidationScheme) {
	t.Helper()
	for _, variant := range []struct {
		name    string
		reader  func() io.Reader
		bufSize int
		arena   bool
	}{
		{"plain", func() io.Reader { return bytes.NewReader(in) }, readBufSize, false},
		// Lines longer than the buffer, and a read error instead of EOF.
		{"tiny-buffer-failing-reader", func() io.Reader { return failingReader{bytes.NewReader(in)} }, 16, false},
		// An Arena reset after a parse of the same input: every message,
		// string header, label array and interned name is a reused one.
		{"reused-arena", func() io.Reader { return bytes.NewReader(in) }, readBufSize, true},
	} {
		want, wantErr, panicked := expfmtParse(variant.reader(), scheme)
		var log chargeLog
		opts := Options{Scheme: scheme, Charge: func(n int, b int64) error {
			if n < 0 || b < 0 {
				t.Fatalf("Charge(%d, %d): negative", n, b)
			}
			return log.charge(n, b)
		}}
		if variant.arena {
			opts.Arena = &Arena{}
			_, _ = parse(variant.reader(), Options{Scheme: scheme, Arena: opts.Arena}, variant.bufSize)
			opts.Arena.Reset()
		}
		got, err := parse(variant.reader(), opts, variant.bufSize)
		where := fmt.Sprintf("%s, scheme %s, input %q", variant.name, scheme, in)
		if panicked {
			// expfmt crashes; all we ask is an error instead.
			if err == nil {
				t.Fatalf("%s: expfmt panics, Parse succeeds", where)
			}
			continue
		}
		if wantErr != nil || err != nil {
			if wantErr == nil || err == nil || wantErr.Error() != err.Error() {
				t.Fatalf("%s:\nerror  %v\nexpfmt %v", where, err, wantErr)
			}
			if got != nil {
				t.Fatalf("%s: families returned with an error", where)
			}
			continue
		}
		if diff := diffFamilies(got, want); diff != "" {
			t.Fatalf("%s: %s", where, diff)
		}
		n := countMetrics(got)
		if log.series != n {
			t.Fatalf("%s: Charge counted %d series, result has %d", where, log.series, n)
		}
		if n > 0 && log.bytes < int64(n)*sizeMetric {
			t.Fatalf("%s: Charge counted %d bytes for %d metrics", where, log.bytes, n)
		}
	}
}

func countMetrics(fams map[string]*dto.MetricFamily) int {
	n := 0
	for _, mf := range fams {
		n += len(mf.Metric)
	}
	return n
}

// diffFamilies compares by proto.Equal (which holds NaN equal to NaN) and by
// deterministic encoding (which tells -0 from 0); it returns "" if equal.
func diffFamilies(got, want map[string]*dto.MetricFamily) string {
	names := func(m map[string]*dto.MetricFamily) string {
		return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
	}
	if names(got) != names(want) {
		return fmt.Sprintf("families [%s], expfmt [%s]", names(got), names(want))
	}
	enc := proto.MarshalOptions{Deterministic: true}
	for name, w := range want {
		g := got[name]
		gb, gerr := enc.Marshal(g)
		wb, werr := enc.Marshal(w)
		if !proto.Equal(g, w) || gerr != nil || werr != nil || !bytes.Equal(gb, wb) {
			return fmt.Sprintf("family %q:\ngot    %v\nexpfmt %v", name, g, w)
		}
	}
	return ""
}

// TestMatchesExpfmt compares with expfmt on corners that are easy to state
// and slow for the fuzzer to find.
func TestMatchesExpfmt(t *testing.T) {
	long := strings.Repeat("x", 5000)
	for _, in := range []string{
		"# TYPE a hıstogram\na_bucket{le=\"1\"} 1\n",    // strings.ToUpper: ı is I
		"# TYPE a ſummary\na{quantile=\"1\"} 1\n",       // and ſ is S
		"# TYPE a GAUGEHISTOGRAM\na_count 1.5\n",        // OpenMetrics spelling
		"# TYPE a coun\\ter\na 1\n",                     // backslashes dropped in TYPE
		"a 1 2\\\n",                                     // and after a timestamp
		"a 1 2 \\\n",                                    // but a blank stays
		"a 1e-400\na 0x10\na 1E5\na -0\na +0\n",         // strconv decides
		"a 123456789012345678901234567890\n",            // no fast path
		"# TYPE h histogram\nh_count NaN\nh_sum 1\n",    // NaN count is a float
		"# TYPE h histogram\nh_count +Inf\n",            // uint64(+Inf)
		"# TYPE h histogram\nh_bucket{le=\"1\"} 1e30\n", // beyond uint64
		"# TYPE s summary\ns_count -1\ns_count 1e30\n",  // uint64 of anything
		"a{b=\"" + long + "\\n" + long + "\"} 1\n",      // escapes in a long line
		"# HELP a " + long + "\\\\" + long + "\n",       // long help
		"{\"" + long + "\"} 1\n",                        // long quoted name
		"a{b=\"c\"} 1\r\n",
		"a\t{b=\"c\"}\t1\t2\n",
		"\xef\xbb\xbfa 1\n", // a byte order mark is not a name
		"a 1\n\x00",
	} {
		for _, scheme := range []model.ValidationScheme{model.LegacyValidation, model.UTF8Validation} {
			compareWithExpfmt(t, []byte(in), scheme)
		}
	}
}
