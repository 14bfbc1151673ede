package textparse_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/textparse"
)

func countMetrics(fams map[string]*dto.MetricFamily) int {
	n := 0
	for _, mf := range fams {
		n += len(mf.Metric)
	}
	return n
}

// TestGoodFiles parses the *.good.* samples, which the differential fuzz test
// compares with expfmt, and checks that Charge counts every dto.Metric.
func TestGoodFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			body, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			series, calls := 0, 0
			var charged int64
			fams, err := textparse.Parse(bytes.NewReader(body), textparse.Options{
				Scheme: model.UTF8Validation,
				Charge: func(n int, b int64) error {
					calls++
					series += n
					charged += b
					return nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			n := countMetrics(fams)
			if n == 0 || series != n {
				t.Errorf("Charge counted %d series, result has %d", series, n)
			}
			if calls < n || charged < int64(n)*100 {
				t.Errorf("%d Charge calls and %d bytes for %d metrics", calls, charged, n)
			}
		})
	}
}

// errLimit stands for the push package's limit errors.
type errLimit struct{ series int }

func (e *errLimit) Error() string { return fmt.Sprintf("more than %d series", e.series) }

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestChargeStopsAtOnce(t *testing.T) {
	var body bytes.Buffer
	for i := range 100_000 {
		fmt.Fprintf(&body, "series_%d{label=\"value_%d\"} %d\n", i%7, i, i)
	}
	for _, tc := range []struct {
		name  string
		limit int
	}{
		{"first series", 0},
		{"101st series", 100},
		{"10001st series", 10_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &countingReader{r: bytes.NewReader(body.Bytes())}
			total, calls, callsAfter := 0, 0, 0
			var refused error
			fams, err := textparse.Parse(r, textparse.Options{
				Scheme: model.LegacyValidation,
				Charge: func(n int, _ int64) error {
					calls++
					if refused != nil {
						callsAfter++
					}
					total += n
					if total > tc.limit {
						refused = &errLimit{series: tc.limit}
						return refused
					}
					return nil
				},
			})
			if fams != nil || err == nil || err != refused {
				t.Fatalf("Parse = %d families, %v; want nil and the Charge error %v", len(fams), err, refused)
			}
			var el *errLimit
			if !errors.As(err, &el) || !errors.Is(err, refused) {
				t.Errorf("errors.As/Is do not see the Charge error in %v", err)
			}
			if callsAfter != 0 || total != tc.limit+1 {
				t.Errorf("Charge saw %d series (limit %d), %d calls after its error", total, tc.limit, callsAfter)
			}
			// Stopped at once: nothing read beyond the buffer that held the
			// refused series.
			lineLen := body.Len() / 100_000
			if max := (tc.limit+1)*(lineLen+2) + 64<<10; r.n > max {
				t.Errorf("read %d bytes for %d series", r.n, tc.limit+1)
			}
		})
	}
}

// TestChargeWithoutSeries: help texts, quantiles and buckets grow the result
// without new series, and are charged in batches.
func TestChargeWithoutSeries(t *testing.T) {
	var body strings.Builder
	body.WriteString("# TYPE h histogram\n")
	for i := range 2000 {
		fmt.Fprintf(&body, "h_bucket{le=\"%d\"} %d\n", i, i)
	}
	fmt.Fprintf(&body, "# HELP long %s\n", strings.Repeat("x", 10_000))
	body.WriteString("long 1\n")
	calls, series := 0, 0
	var charged int64
	fams, err := textparse.Parse(strings.NewReader(body.String()), textparse.Options{
		Scheme: model.LegacyValidation,
		Charge: func(n int, b int64) error {
			calls++
			series += n
			charged += b
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if series != 2 || countMetrics(fams) != 2 {
		t.Errorf("charged %d series for %d", series, countMetrics(fams))
	}
	// 2000 buckets of about 100 bytes each, and the help text.
	if charged < 2000*80+10_000 || calls < 20 {
		t.Errorf("charged %d bytes in %d calls", charged, calls)
	}
}

func TestSchemeRequired(t *testing.T) {
	if _, err := textparse.Parse(strings.NewReader("a 1\n"), textparse.Options{}); err == nil {
		t.Error("Parse without a validation scheme succeeded")
	}
}

// TestResultIsIndependent: the result may be changed the way the store
// changes it (append labels, replace values) without one metric showing
// through another, although they share memory.
func TestResultIsIndependent(t *testing.T) {
	body := "a{job=\"x\",i=\"1\"} 1\na{job=\"x\",i=\"2\"} 2\n"
	fams, err := textparse.Parse(strings.NewReader(body), textparse.Options{Scheme: model.LegacyValidation})
	if err != nil {
		t.Fatal(err)
	}
	m := fams["a"].Metric
	m[0].Label = append(m[0].Label, &dto.LabelPair{Name: proto.String("extra"), Value: proto.String("y")})
	m[0].Label[0].Value = proto.String("changed")
	if got := fmt.Sprint(m[1].Label); !strings.Contains(got, `value:"x"`) || strings.Contains(got, "extra") {
		t.Errorf("second metric changed with the first: %s", got)
	}
}
