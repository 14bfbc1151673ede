package textparse

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
)

// chargeLog adds up what Parse passes to Charge.
type chargeLog struct {
	calls, series int
	bytes         int64
}

func (c *chargeLog) charge(n int, b int64) error {
	c.calls++
	c.series += n
	c.bytes += b
	return nil
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
			var log chargeLog
			fams, err := Parse(bytes.NewReader(body), Options{Scheme: model.UTF8Validation, Charge: log.charge})
			if err != nil {
				t.Fatal(err)
			}
			n := countMetrics(fams)
			if n == 0 || log.series != n {
				t.Errorf("Charge counted %d series, result has %d", log.series, n)
			}
			if log.calls < n || log.bytes < int64(n)*100 {
				t.Errorf("%d Charge calls and %d bytes for %d metrics", log.calls, log.bytes, n)
			}
		})
	}
}

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
			fams, err := Parse(r, Options{
				Scheme: model.LegacyValidation,
				Charge: func(n int, _ int64) error {
					calls++
					if refused != nil {
						callsAfter++
					}
					total += n
					if total > tc.limit {
						refused = fmt.Errorf("more than %d series", tc.limit)
						return refused
					}
					return nil
				},
			})
			if fams != nil || err == nil || err != refused {
				t.Fatalf("Parse = %d families, %v; want nil and the Charge error %v", len(fams), err, refused)
			}
			if callsAfter != 0 || total != tc.limit+1 {
				t.Errorf("Charge saw %d series (limit %d), %d calls after its error", total, tc.limit, callsAfter)
			}
			// Stopped at once: nothing read beyond the buffer that held the
			// refused series.
			lineLen := body.Len() / 100_000
			if most := (tc.limit+1)*(lineLen+2) + 64<<10; r.n > most {
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
	var log chargeLog
	fams, err := Parse(strings.NewReader(body.String()), Options{Scheme: model.LegacyValidation, Charge: log.charge})
	if err != nil {
		t.Fatal(err)
	}
	if log.series != 2 || countMetrics(fams) != 2 {
		t.Errorf("charged %d series for %d", log.series, countMetrics(fams))
	}
	// 2000 buckets of about 100 bytes each, and the help text.
	if log.bytes < 2000*80+10_000 || log.calls < 20 {
		t.Errorf("charged %d bytes in %d calls", log.bytes, log.calls)
	}
}

func TestSchemeRequired(t *testing.T) {
	if _, err := Parse(strings.NewReader("a 1\n"), Options{}); err == nil {
		t.Error("Parse without a validation scheme succeeded")
	}
}

// TestResultIsIndependent: the result may be changed the way the store
// changes it (append labels, replace values) without one metric showing
// through another, although they share memory.
func TestResultIsIndependent(t *testing.T) {
	body := "a{job=\"x\",i=\"1\"} 1\na{job=\"x\",i=\"2\"} 2\n"
	fams, err := Parse(strings.NewReader(body), Options{Scheme: model.LegacyValidation})
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

// TestMaxLineBytes: a line over the limit is refused on its line before it
// is read whole, and the buffer of a long line is charged as it grows.
func TestMaxLineBytes(t *testing.T) {
	long := strings.Repeat("x", 64<<10)
	in := "a 1\n" + `b{l="` + long + `"} 1` + "\n"
	var charged int64
	charge := func(_ int, b int64) error { charged += b; return nil }
	_, err := Parse(strings.NewReader(in), Options{Scheme: model.LegacyValidation, Charge: charge, MaxLineBytes: 16 << 10})
	if err == nil || err.Error() != "text format parsing error in line 2: line longer than 16384 bytes" {
		t.Fatalf("over the limit: got %v", err)
	}
	charged = 0
	if _, err := Parse(strings.NewReader(in), Options{Scheme: model.LegacyValidation, Charge: charge, MaxLineBytes: 1 << 20}); err != nil {
		t.Fatalf("under the limit: %v", err)
	}
	if charged < 3*int64(len(long)) {
		t.Fatalf("charged %d bytes for a %d-byte line, want at least three times the line", charged, len(long))
	}
}

// TestArenaReuse parses the samples one after another with one Arena, reset
// in between, and checks each result against a parse without one: nothing
// of an earlier result shows through the reused messages. A big body in
// between exceeds what the Arena keeps.
func TestArenaReuse(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	var big strings.Builder
	for i := range 20_000 {
		fmt.Fprintf(&big, "big{i=\"%d\"} %d\n", i, i)
	}
	bodies := map[string]string{"big": big.String()}
	order := []string{}
	for _, name := range files {
		body, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		bodies[name] = string(body)
		order = append(order, name)
	}
	// Each sample after every other one, and after the big body.
	var seq []string
	for _, a := range order {
		seq = append(seq, a, "big", a)
		for _, b := range order {
			seq = append(seq, b, a)
		}
	}
	arena := &Arena{}
	for i, name := range seq {
		opts := Options{Scheme: model.UTF8Validation}
		want, err := Parse(strings.NewReader(bodies[name]), opts)
		if err != nil {
			t.Fatal(err)
		}
		opts.Arena = arena
		got, err := Parse(strings.NewReader(bodies[name]), opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("step %d (%s): %d families, want %d", i, name, len(got), len(want))
		}
		for n, mf := range want {
			if !proto.Equal(got[n], mf) {
				t.Fatalf("step %d (%s): family %q differs with a reused Arena:\ngot  %v\nwant %v", i, name, n, got[n], mf)
			}
		}
		arena.Reset()
	}
}

// TestArenaResetDropsStrings checks that a Reset Arena, which waits in a
// pool for the next push, keeps no big string of the last result alive: a
// HELP or a label name of a megabyte must go with the result, not stay
// with the Arena.
func TestArenaResetDropsStrings(t *testing.T) {
	big := strings.Repeat("h", 1<<20)
	for _, tc := range []struct {
		name, body string
		get        func(map[string]*dto.MetricFamily) string
	}{
		{"help", "# HELP big " + big + "\nbig{a=\"b\"} 1\n", func(f map[string]*dto.MetricFamily) string { return f["big"].GetHelp() }},
		{"label name", "big{" + big + "=\"b\"} 1\n", func(f map[string]*dto.MetricFamily) string { return f["big"].Metric[0].Label[0].GetName() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			arena := &Arena{}
			fams, err := Parse(strings.NewReader(tc.body), Options{Scheme: model.UTF8Validation, Arena: arena})
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.get(fams); got != big {
				t.Fatalf("string of %d bytes, want %d", len(got), len(big))
			}
			collected := make(chan struct{})
			runtime.AddCleanup(unsafe.StringData(tc.get(fams)), func(ch chan struct{}) { close(ch) }, collected)
			fams = nil
			arena.Reset()
			for range 10 {
				runtime.GC()
				select {
				case <-collected:
					runtime.KeepAlive(arena)
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
			t.Fatal("the string is still reachable after Reset: the Arena holds it")
		})
	}
}

// TestArenaStringsOutliveReset checks what the store relies on: a string
// copied out of a result (a name kept in an error, a label value) keeps
// its value after Reset and after the next Parse reuses the messages and
// their *string fields.
func TestArenaStringsOutliveReset(t *testing.T) {
	arena := &Arena{}
	opts := Options{Scheme: model.UTF8Validation, Arena: arena}
	fams, err := Parse(strings.NewReader("m{job=\"first\",instance=\"a\"} 1\nm{job=\"first\",instance=\"b\"} 2\n"), opts)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, m := range fams["m"].Metric {
		for _, lp := range m.Label {
			kept = append(kept, lp.GetName(), lp.GetValue())
		}
	}
	want := []string{"job", "first", "instance", "a", "job", "first", "instance", "b"}
	arena.Reset()
	for range 3 {
		next, err := Parse(strings.NewReader("m{job=\"second\",instance=\"x\"} 1\nm{job=\"second\",instance=\"y\"} 2\n"), opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := next["m"].Metric[1].Label[0].GetValue(); got != "second" {
			t.Fatalf("job of the next result = %q, want second", got)
		}
		arena.Reset()
	}
	if !slices.Equal(kept, want) {
		t.Errorf("strings copied out of a result became %q after Reset, want %q", kept, want)
	}
}
