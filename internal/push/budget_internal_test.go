package push

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/store"
)

func TestMeterCharge(t *testing.T) {
	type charge struct {
		series int
		bytes  int64
		want   string // "": accepted; "limit", "alone", "overload"
		inUse  int64  // of the budget afterwards
	}
	tests := []struct {
		name      string
		limit     int64 // of the budget; 0: none
		held      int64 // taken by other pushes
		free      int64
		maxSeries int
		charges   []charge
	}{
		{name: "no limits", charges: []charge{{1, 1 << 40, "", 0}}},
		{name: "within budget", limit: 100, charges: []charge{{1, 40, "", 40}, {1, 60, "", 100}}},
		{name: "over what is left", limit: 100, held: 50, charges: []charge{{0, 40, "", 90}, {0, 20, "overload", 90}}},
		{name: "alone over the budget", limit: 100, held: 50, charges: []charge{{0, 50, "", 100}, {0, 51, "alone", 100}}},
		{name: "alone over the budget at once", limit: 100, charges: []charge{{0, 101, "alone", 0}}},
		{name: "alone over the budget, others holding", limit: 100, held: 99, charges: []charge{{0, 101, "alone", 99}}},
		{name: "free part not charged", limit: 100, held: 100, free: 64, charges: []charge{{1, 64, "", 100}, {0, 1, "overload", 100}}},
		{name: "free part counts toward alone", limit: 100, free: 10, charges: []charge{{0, 110, "", 100}, {0, 1, "alone", 100}}},
		{name: "negative charge gives back", limit: 100, charges: []charge{{0, 80, "", 80}, {0, -50, "", 30}, {0, 70, "", 100}}},
		{name: "negative charge into the free part", limit: 100, free: 20, charges: []charge{{0, 50, "", 30}, {0, -40, "", 0}, {0, 10, "", 0}}},
		{name: "series at the limit", maxSeries: 2, charges: []charge{{1, 0, "", 0}, {1, 0, "", 0}}},
		{name: "series over the limit", maxSeries: 2, charges: []charge{{1, 0, "", 0}, {2, 0, "limit", 0}}},
		{name: "series limit before budget", limit: 10, maxSeries: 1, charges: []charge{{2, 100, "limit", 0}}},
		{name: "replaced series given back", maxSeries: 2, charges: []charge{{2, 0, "", 0}, {-2, 0, "", 0}, {2, 0, "", 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &meter{free: tt.free, maxSeries: tt.maxSeries}
			var b *budget
			if tt.limit > 0 {
				b = &budget{limit: tt.limit, used: tt.held}
				m.budget = b
			}
			for i, c := range tt.charges {
				err := m.charge(c.series, c.bytes)
				if got := errKind(err); got != c.want {
					t.Fatalf("charge %d (%d, %d): %v, want %q", i, c.series, c.bytes, err, c.want)
				}
				if b != nil && b.inUse() != c.inUse {
					t.Fatalf("after charge %d: budget holds %d, want %d", i, b.inUse(), c.inUse)
				}
			}
			m.release()
			m.release() // twice is harmless
			if b != nil && b.inUse() != tt.held {
				t.Errorf("after release: budget holds %d, want %d (what others hold)", b.inUse(), tt.held)
			}
		})
	}
}

func errKind(err error) string {
	var limit *store.LimitError
	var b *budgetError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &limit) && limit.Kind == store.SeriesPerPush:
		return "limit"
	case errors.As(err, &b) && b.alone:
		return "alone"
	case errors.As(err, &b):
		return "overload"
	default:
		return "other: " + err.Error()
	}
}

// lineReader generates n lines (line(i) each) as a stream and counts what
// was read of it.
type lineReader struct {
	n, i int
	line func(int) string
	buf  []byte
	read int64
}

func (r *lineReader) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) && r.i < r.n {
		r.buf = append(r.buf, r.line(r.i)...)
		r.i++
	}
	if len(r.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	r.read += int64(n)
	return n, nil
}

// protoStream generates n delimited protobuf families of perMessage gauges.
func protoStream(t *testing.T, n, perMessage int) *lineReader {
	return &lineReader{n: n, line: func(i int) string {
		return delimited(t, gauges(fmt.Sprintf("m%d", i), perMessage))
	}}
}

// TestDecodersStopAtTheSeriesLimit checks that every body format stops at
// the first series over the limit, having read little of a huge body.
func TestDecodersStopAtTheSeriesLimit(t *testing.T) {
	const limit = 1000
	const huge = 10_000_000 // series in the body: never generated in full
	tests := []struct {
		name, ctype string
		body        func() *lineReader
		wantSeries  int // that the meter saw when it stopped
	}{
		{"text", "text/plain; version=0.0.4", func() *lineReader {
			return &lineReader{n: huge, line: func(i int) string { return fmt.Sprintf("m{i=\"%d\"} 1\n", i) }}
		}, limit + 1},
		{"text, one series per family", "", func() *lineReader {
			return &lineReader{n: huge, line: func(i int) string { return fmt.Sprintf("m%d 1\n", i) }}
		}, limit + 1},
		{"openmetrics", "application/openmetrics-text; version=1.0.0", func() *lineReader {
			return &lineReader{n: huge, line: func(i int) string { return fmt.Sprintf("m{i=\"%d\"} 1\n", i) }}
		}, limit + 1},
		{"openmetrics histogram", "application/openmetrics-text; version=1.0.0", func() *lineReader {
			return &lineReader{n: huge, line: func(i int) string {
				if i == 0 {
					return "# TYPE h histogram\n"
				}
				return fmt.Sprintf("h_bucket{i=\"%d\",le=\"1\"} 1\nh_bucket{i=\"%d\",le=\"+Inf\"} 1\n", i, i)
			}}
		}, limit + 1},
		{"protobuf, a family per series", protoContentType, func() *lineReader { return protoStream(t, huge, 1) }, limit + 1},
		{"protobuf, 300 series per family", protoContentType, func() *lineReader { return protoStream(t, huge, 300) }, 1200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body()
			m := &meter{maxSeries: limit}
			_, err := decodeBody(tt.ctype, body, model.LegacyValidation, m.charge, nil)
			var lerr *store.LimitError
			if !errors.As(err, &lerr) || lerr.Kind != store.SeriesPerPush || lerr.Max != limit {
				t.Fatalf("err = %v, want the series-per-push LimitError", err)
			}
			if err != error(lerr) {
				t.Errorf("error wrapped as %q; the decoder must return it unwrapped", err)
			}
			if m.series != tt.wantSeries {
				t.Errorf("stopped after %d series, want %d", m.series, tt.wantSeries)
			}
			if body.read > 1<<20 {
				t.Errorf("read %d bytes of the body before stopping", body.read)
			}
		})
	}
}

// TestDecodersChargeWhatTheyKeep checks that the estimate of every decoder
// grows with the decoded result, so that the budget refuses a body that
// alone needs more than it, early.
func TestDecodersChargeWhatTheyKeep(t *testing.T) {
	const limit = 4 << 20
	tests := []struct{ name, ctype string }{
		{"text", ""},
		{"openmetrics", "application/openmetrics-text; version=1.0.0"},
		{"protobuf", protoContentType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := &lineReader{n: 10_000_000, line: func(i int) string { return fmt.Sprintf("m{i=\"%d\"} 1\n", i) }}
			if tt.ctype == protoContentType {
				body = protoStream(t, 10_000_000, 1)
			}
			m := &meter{budget: &budget{limit: limit}}
			_, err := decodeBody(tt.ctype, body, model.LegacyValidation, m.charge, nil)
			if got := errKind(err); got != "alone" {
				t.Fatalf("err = %v, want the budget's refusal", err)
			}
			// Short series cost about 300 bytes of heap each when decoded:
			// the estimate must not let many more through.
			if max := int64(limit / 200 * 30); body.read > max {
				t.Errorf("read %d bytes before the %d-byte budget refused, want at most %d", body.read, limit, max)
			}
			m.release()
			if m.budget.inUse() != 0 {
				t.Errorf("budget holds %d after release", m.budget.inUse())
			}
		})
	}
}

// TestLongLines checks that the line buffers of the line-based parsers are
// charged before they grow and bounded: a body that is one endless line (a
// decompressed bomb of zero bytes) is refused by the budget, or found too
// long, without being read whole.
func TestLongLines(t *testing.T) {
	tests := []struct {
		name, ctype string
		limit       int64 // of the budget; 0: none
		want        string
		maxRead     int64
	}{
		{"text, budget", "", 1 << 20, "alone", 1 << 20},
		{"text, no budget", "", 0, "text format parsing error in line 1: line longer than 16777216 bytes", 17 << 20},
		{"openmetrics, budget", "application/openmetrics-text", 1 << 20, "alone", 2 << 20},
		{"openmetrics, no budget", "application/openmetrics-text", 0, "read openmetrics body: bufio.Scanner: token too long", 17 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := &lineReader{n: 1 << 30, line: func(int) string { return "\x00" }}
			m := &meter{}
			if tt.limit > 0 {
				m.budget = &budget{limit: tt.limit}
			}
			_, err := decodeBody(tt.ctype, body, model.LegacyValidation, m.charge, nil)
			if got := errKind(err); got != tt.want && (err == nil || err.Error() != tt.want) {
				t.Fatalf("err = %v, want %s", err, tt.want)
			}
			if body.read > tt.maxRead {
				t.Errorf("read %d bytes of one line, want at most %d", body.read, tt.maxRead)
			}
		})
	}
}

func delimited(t *testing.T, mf *dto.MetricFamily) string {
	t.Helper()
	var b strings.Builder
	if _, err := protodelim.MarshalTo(&b, mf); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func gauges(name string, n int) *dto.MetricFamily {
	mf := &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_GAUGE.Enum()}
	for j := range n {
		mf.Metric = append(mf.Metric, &dto.Metric{
			Label: []*dto.LabelPair{{Name: proto.String("i"), Value: proto.String(fmt.Sprint(j))}},
			Gauge: &dto.Gauge{Value: proto.Float64(1)},
		})
	}
	return mf
}

func TestProtobufZeroBytes(t *testing.T) {
	// A run of zero bytes is a run of empty messages: one empty family
	// named "" (what proto.Unmarshal of each gives), decoded in bulk.
	tests := []struct {
		name string
		body string
		want []string // family names
	}{
		{"zeros", strings.Repeat("\x00", 1<<20), []string{""}},
		{"zeros after a family replace it", delimited(t, gauges("", 3)) + "\x00\x00", []string{""}},
		{"an empty-named family after zeros", "\x00" + delimited(t, &dto.MetricFamily{Name: proto.String("")}) + "\x00\x00", []string{""}},
		{"a family after zeros", "\x00\x00" + delimited(t, &dto.MetricFamily{Name: proto.String("a")}), []string{"", "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m meter
			fams, err := decodeProtobuf(strings.NewReader(tt.body), m.charge)
			if err != nil {
				t.Fatal(err)
			}
			if len(fams) != len(tt.want) {
				t.Fatalf("got %d families, want %v", len(fams), tt.want)
			}
			for _, name := range tt.want {
				if mf, ok := fams[name]; !ok || mf.GetName() != name || len(mf.Metric) != 0 {
					t.Errorf("family %q: %v", name, mf)
				}
			}
			if m.series != 0 {
				t.Errorf("meter counts %d series, want 0", m.series)
			}
		})
	}
}

func TestLogThrottle(t *testing.T) {
	now := time.Unix(1700000000, 0)
	th := newLogThrottle(func() time.Time { return now })
	type step struct {
		advance        time.Duration
		calls          int
		wantAllowed    int
		wantSuppressed int // reported by the calls allowed
	}
	steps := []step{
		{0, warnBurst, warnBurst, 0},                    // the burst
		{0, 100, 0, 0},                                  // then nothing
		{time.Second / warnRate, 5, 1, 100},             // one token: the summary comes with it
		{0, 3, 0, 0},                                    // held back again: 4+3
		{10 * time.Second, 2 * warnBurst, warnBurst, 7}, // refilled to the burst, not beyond
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		allowed, suppressed := 0, 0
		for range s.calls {
			ok, n := th.allow()
			if ok {
				allowed++
			} else if n != 0 {
				t.Fatalf("step %d: a held-back line reports %d suppressed", i, n)
			}
			suppressed += n
		}
		if allowed != s.wantAllowed || suppressed != s.wantSuppressed {
			t.Errorf("step %d: %d allowed reporting %d suppressed, want %d reporting %d", i, allowed, suppressed, s.wantAllowed, s.wantSuppressed)
		}
	}
}
