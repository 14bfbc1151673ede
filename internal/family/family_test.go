package family_test

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/family"
)

var pushed = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func labels(kv ...string) []*dto.LabelPair {
	var lps []*dto.LabelPair
	for i := 0; i < len(kv); i += 2 {
		lps = append(lps, &dto.LabelPair{Name: proto.String(kv[i]), Value: proto.String(kv[i+1])})
	}
	return lps
}

func fam(name, help string, typ dto.MetricType, metrics ...*dto.Metric) *dto.MetricFamily {
	mf := &dto.MetricFamily{Name: proto.String(name), Type: typ.Enum(), Metric: metrics}
	if help != "" {
		mf.Help = proto.String(help)
	}
	return mf
}

func counter(v float64, kv ...string) *dto.Metric {
	return &dto.Metric{Label: labels(kv...), Counter: &dto.Counter{Value: proto.Float64(v)}}
}

func gauge(v float64, kv ...string) *dto.Metric {
	return &dto.Metric{Label: labels(kv...), Gauge: &dto.Gauge{Value: proto.Float64(v)}}
}

func untyped(v float64, kv ...string) *dto.Metric {
	return &dto.Metric{Label: labels(kv...), Untyped: &dto.Untyped{Value: proto.Float64(v)}}
}

func classicHistogram(kv ...string) *dto.Metric {
	return &dto.Metric{Label: labels(kv...), Histogram: &dto.Histogram{
		SampleCount: proto.Uint64(10),
		SampleSum:   proto.Float64(12.5),
		Bucket: []*dto.Bucket{
			{UpperBound: proto.Float64(0.5), CumulativeCount: proto.Uint64(3)},
			{UpperBound: proto.Float64(1), CumulativeCount: proto.Uint64(7)},
			{UpperBound: proto.Float64(math.Inf(1)), CumulativeCount: proto.Uint64(10)},
		},
	}}
}

func nativeHistogram(kv ...string) *dto.Metric {
	return &dto.Metric{Label: labels(kv...), Histogram: &dto.Histogram{
		SampleCount:   proto.Uint64(12),
		SampleSum:     proto.Float64(-3.25),
		Schema:        proto.Int32(3),
		ZeroThreshold: proto.Float64(1e-128),
		ZeroCount:     proto.Uint64(2),
		PositiveSpan:  []*dto.BucketSpan{{Offset: proto.Int32(-2), Length: proto.Uint32(2)}, {Offset: proto.Int32(3), Length: proto.Uint32(1)}},
		PositiveDelta: []int64{1, 2, -1},
		NegativeSpan:  []*dto.BucketSpan{{Offset: proto.Int32(0), Length: proto.Uint32(2)}},
		NegativeDelta: []int64{3, -2},
	}}
}

func summary(kv ...string) *dto.Metric {
	return &dto.Metric{Label: labels(kv...), Summary: &dto.Summary{
		SampleCount: proto.Uint64(4),
		SampleSum:   proto.Float64(8.5),
		Quantile: []*dto.Quantile{
			{Quantile: proto.Float64(0.5), Value: proto.Float64(2)},
			{Quantile: proto.Float64(0.99), Value: proto.Float64(math.NaN())},
		},
	}}
}

// families are sanitized families (sorted labels, job and instance set) of
// every type, as the store hands them to New.
func families() map[string]*dto.MetricFamily {
	return map[string]*dto.MetricFamily{
		"counter": fam("requests_total", "Requests served.", dto.MetricType_COUNTER,
			counter(1, "code", "200", "instance", "", "job", "j"),
			counter(math.Inf(1), "code", "500", "instance", "", "job", "j")),
		"gauge without help": fam("temperature", "", dto.MetricType_GAUGE,
			gauge(-1.5e-300, "instance", "i", "job", "j")),
		"untyped": fam("some_value", "An untyped value.", dto.MetricType_UNTYPED,
			untyped(42, "instance", "", "job", "j")),
		"tricky label values": fam("tricky", "Help with \\ and\nnewline.", dto.MetricType_GAUGE,
			gauge(1, "instance", "", "job", "j", "v", `quote " here`),
			gauge(2, "instance", "", "job", "j", "v", `back\slash`),
			gauge(3, "instance", "", "job", "j", "v", "new\nline"),
			gauge(4, "instance", "", "job", "j", "v", "ünïcödé ☃"),
			gauge(5, "instance", "", "job", "j", "v", "")),
		"summary": fam("rpc_seconds", "RPC latency.", dto.MetricType_SUMMARY,
			summary("instance", "", "job", "j")),
		"classic histogram": fam("size_bytes", "Sizes.", dto.MetricType_HISTOGRAM,
			classicHistogram("instance", "", "job", "j")),
		"native histogram": fam("latency_seconds", "Native.", dto.MetricType_HISTOGRAM,
			nativeHistogram("instance", "", "job", "j")),
		"gauge histogram": fam("queue_size", "Gauge histogram.", dto.MetricType_GAUGE_HISTOGRAM,
			classicHistogram("instance", "", "job", "j")),
		"timestamp": fam("with_ts", "", dto.MetricType_GAUGE,
			&dto.Metric{Label: labels("instance", "", "job", "j"), Gauge: &dto.Gauge{Value: proto.Float64(1)}, TimestampMs: proto.Int64(1234)}),
	}
}

// fullText is what expfmt writes for mf, HELP and TYPE included.
func fullText(t testing.TB, mf *dto.MetricFamily) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
		t.Fatalf("MetricFamilyToText: %v", err)
	}
	return buf.Bytes()
}

// equalMetrics compares metric lists by their deterministic encoding, so
// that NaN values compare equal.
func equalMetrics(t testing.TB, got, want []*dto.Metric) bool {
	t.Helper()
	opts := proto.MarshalOptions{Deterministic: true}
	g, err := opts.Marshal(&dto.MetricFamily{Metric: got})
	if err != nil {
		t.Fatal(err)
	}
	w, err := opts.Marshal(&dto.MetricFamily{Metric: want})
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(g, w)
}

func TestNew(t *testing.T) {
	for name, mf := range families() {
		t.Run(name, func(t *testing.T) {
			want := proto.Clone(mf).(*dto.MetricFamily)
			f, err := family.New(mf, pushed)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if !proto.Equal(mf, want) && !equalMetrics(t, mf.Metric, want.Metric) {
				t.Error("New modified its input")
			}
			if f.Name != mf.GetName() || f.Help != mf.GetHelp() || f.Type != mf.GetType() {
				t.Errorf("header = %q %q %v, want %q %q %v", f.Name, f.Help, f.Type, mf.GetName(), mf.GetHelp(), mf.GetType())
			}
			if !f.Time.Equal(pushed) {
				t.Errorf("Time = %v", f.Time)
			}
			if f.Series != len(mf.Metric) {
				t.Errorf("Series = %d, want %d", f.Series, len(mf.Metric))
			}

			// Decode round trip.
			d, err := f.Decode()
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if d.GetName() != mf.GetName() || d.GetHelp() != mf.GetHelp() || d.GetType() != mf.GetType() {
				t.Errorf("decoded header = %q %q %v", d.GetName(), d.GetHelp(), d.GetType())
			}
			if !equalMetrics(t, d.Metric, mf.Metric) {
				t.Errorf("Decode() metrics =\n%v\nwant\n%v", prototext.Format(d), prototext.Format(mf))
			}

			// Text: header plus lines is exactly what expfmt writes.
			if !f.HasText() {
				t.Fatal("no text for a legacy family")
			}
			got := family.AppendTextHeader(nil, f.Name, f.Help, f.Type)
			got = append(got, textOf(t, f)...)
			if want := fullText(t, mf); !bytes.Equal(got, want) {
				t.Errorf("header+Text =\n%s\nwant\n%s", got, want)
			}
			textLines, err := family.TextLines(mf)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(textLines, textOf(t, f)) {
				t.Errorf("TextLines =\n%s\nwant\n%s", textLines, textOf(t, f))
			}

			// And the text parses back to the same text.
			parsed, err := textParse(model.LegacyValidation, bytes.NewReader(got))
			if err != nil {
				t.Fatalf("text does not parse: %v\n%s", err, got)
			}
			if len(parsed) != 1 || parsed[mf.GetName()] == nil {
				t.Fatalf("parsed %d families, want only %s", len(parsed), mf.GetName())
			}
			if again := fullText(t, parsed[mf.GetName()]); !bytes.Equal(again, got) {
				t.Errorf("text after parsing =\n%s\nwant\n%s", again, got)
			}
		})
	}
}

func TestNewEmpty(t *testing.T) {
	mf := fam("empty", "No metrics.", dto.MetricType_COUNTER)
	f, err := family.New(mf, pushed)
	if err != nil {
		t.Fatal(err)
	}
	if f.Series != 0 || f.Size() != 0 || f.MetricsLen() != 0 {
		t.Errorf("empty family = %+v", f)
	}
	d, err := f.Decode()
	if err != nil {
		t.Fatal(err)
	}
	if d.GetName() != "empty" || d.GetHelp() != "No metrics." || d.GetType() != dto.MetricType_COUNTER || len(d.Metric) != 0 {
		t.Errorf("Decode() = %v", d)
	}
}

func TestNewNeedsEscaping(t *testing.T) {
	tests := []struct {
		name string
		mf   *dto.MetricFamily
		want bool
	}{
		{"legacy", fam("a:b_c", "", dto.MetricType_GAUGE, gauge(1, "job", "j")), false},
		{"utf8 metric name", fam("a.b", "", dto.MetricType_GAUGE, gauge(1, "job", "j")), true},
		{"utf8 label name", fam("ab", "", dto.MetricType_GAUGE, gauge(1, "job", "j", "lä", "x")), true},
		{"colon in label name", fam("ab", "", dto.MetricType_GAUGE, gauge(1, "a:b", "x", "job", "j")), true},
		{"utf8 label value only", fam("ab", "", dto.MetricType_GAUGE, gauge(1, "job", "jö")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := family.NeedsEscaping(tt.mf); got != tt.want {
				t.Errorf("NeedsEscaping = %v, want %v", got, tt.want)
			}
			f, err := family.New(tt.mf, pushed)
			if err != nil {
				t.Fatal(err)
			}
			if f.HasText() == tt.want {
				t.Errorf("HasText = %v, want %v", f.HasText(), !tt.want)
			}
			d, err := f.Decode()
			if err != nil {
				t.Fatal(err)
			}
			if !equalMetrics(t, d.Metric, tt.mf.Metric) || d.GetName() != tt.mf.GetName() {
				t.Errorf("Decode() = %v", d)
			}
		})
	}
}

func TestNewMissingValue(t *testing.T) {
	// A metric without the value its type needs cannot be encoded as text.
	mf := fam("c", "", dto.MetricType_COUNTER, gauge(1, "job", "j"))
	if _, err := family.New(mf, pushed); err == nil {
		t.Error("New accepted a counter without a counter value")
	}
}

func TestTypeName(t *testing.T) {
	tests := []struct {
		typ  dto.MetricType
		want string
	}{
		{dto.MetricType_COUNTER, "counter"},
		{dto.MetricType_GAUGE, "gauge"},
		{dto.MetricType_SUMMARY, "summary"},
		{dto.MetricType_UNTYPED, "untyped"},
		{dto.MetricType_HISTOGRAM, "histogram"},
		{dto.MetricType_GAUGE_HISTOGRAM, "histogram"},
		{dto.MetricType(99), "untyped"},
	}
	for _, tt := range tests {
		t.Run(tt.typ.String(), func(t *testing.T) {
			if got := family.TypeName(tt.typ); got != tt.want {
				t.Errorf("TypeName(%v) = %q, want %q", tt.typ, got, tt.want)
			}
		})
	}
}

func TestAppendTextHeader(t *testing.T) {
	tests := []struct {
		name string
		help string
		typ  dto.MetricType
		want string
	}{
		{"no help", "", dto.MetricType_GAUGE, "# TYPE m gauge\n"},
		{"help", "Some help.", dto.MetricType_COUNTER, "# HELP m Some help.\n# TYPE m counter\n"},
		{"escaped help", "a\\b\nc \"d\"", dto.MetricType_SUMMARY, "# HELP m a\\\\b\\nc \"d\"\n# TYPE m summary\n"},
		{"gauge histogram", "", dto.MetricType_GAUGE_HISTOGRAM, "# TYPE m histogram\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := family.AppendTextHeader([]byte("prefix\n"), "m", tt.help, tt.typ)
			if want := "prefix\n" + tt.want; string(got) != want {
				t.Errorf("AppendTextHeader = %q, want %q", got, want)
			}
		})
	}
}

// TestDelimitedConcatenation checks the property scrapes rely on: one
// header followed by the Metrics of several families of the same name is
// one valid delimited MetricFamily message holding all their metrics.
func TestDelimitedConcatenation(t *testing.T) {
	tests := []struct {
		name string
		help string
		typ  dto.MetricType
		fams []*dto.MetricFamily
	}{
		{
			name: "counters of three groups",
			help: "Requests.",
			typ:  dto.MetricType_COUNTER,
			fams: []*dto.MetricFamily{
				fam("requests_total", "Requests.", dto.MetricType_COUNTER, counter(1, "instance", "", "job", "a"), counter(2, "code", "5xx", "instance", "", "job", "a")),
				fam("requests_total", "Other help.", dto.MetricType_COUNTER, counter(3, "instance", "", "job", "b")),
				fam("requests_total", "", dto.MetricType_COUNTER, counter(4, "instance", "x", "job", "c")),
			},
		},
		{
			name: "histograms without help",
			typ:  dto.MetricType_HISTOGRAM,
			fams: []*dto.MetricFamily{
				fam("h", "", dto.MetricType_HISTOGRAM, classicHistogram("instance", "", "job", "a")),
				fam("h", "", dto.MetricType_HISTOGRAM, nativeHistogram("instance", "", "job", "b")),
			},
		},
		{
			name: "summaries with an empty group",
			help: "S.",
			typ:  dto.MetricType_SUMMARY,
			fams: []*dto.MetricFamily{
				fam("s", "S.", dto.MetricType_SUMMARY, summary("instance", "", "job", "a")),
				fam("s", "S.", dto.MetricType_SUMMARY),
				fam("s", "S.", dto.MetricType_SUMMARY, summary("instance", "", "job", "c", "v", "\"\\\n")),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body []byte
			var want []*dto.Metric
			for _, mf := range tt.fams {
				f, err := family.New(mf, pushed)
				if err != nil {
					t.Fatal(err)
				}
				body = append(body, metricsOf(t, f)...)
				want = append(want, mf.Metric...)
			}
			name := tt.fams[0].GetName()
			msg, err := family.AppendDelimitedHeader([]byte{}, name, tt.help, tt.typ, len(body))
			if err != nil {
				t.Fatal(err)
			}
			msg = append(msg, body...)
			// A second message follows to check that the length prefix
			// ends the first one exactly.
			var next bytes.Buffer
			if _, err := protodelim.MarshalTo(&next, fam("next", "", dto.MetricType_GAUGE, gauge(1))); err != nil {
				t.Fatal(err)
			}
			msg = append(msg, next.Bytes()...)

			dec := expfmt.NewDecoder(bytes.NewReader(msg), expfmt.NewFormat(expfmt.TypeProtoDelim))
			var got dto.MetricFamily
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got.GetName() != name || got.GetHelp() != tt.help || got.GetType() != tt.typ {
				t.Errorf("header = %q %q %v", got.GetName(), got.GetHelp(), got.GetType())
			}
			if tt.help == "" && got.Help != nil {
				t.Errorf("empty help is encoded as %q", got.GetHelp())
			}
			if !equalMetrics(t, got.Metric, want) {
				t.Errorf("metrics =\n%v\nwant\n%v", got.Metric, want)
			}
			var second dto.MetricFamily
			if err := dec.Decode(&second); err != nil || second.GetName() != "next" {
				t.Errorf("second message = %v, %v", second.GetName(), err)
			}
			if err := dec.Decode(&second); !errors.Is(err, io.EOF) {
				t.Errorf("after the last message: %v, want EOF", err)
			}
		})
	}
}

func TestAppendDelimitedHeaderAppends(t *testing.T) {
	b, err := family.AppendDelimitedHeader([]byte("keep"), "n", "", dto.MetricType_COUNTER, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("keep")) {
		t.Fatalf("prefix lost: %q", b)
	}
	var mf dto.MetricFamily
	if err := protodelim.UnmarshalFrom(bytes.NewReader(b[4:]), &mf); err != nil {
		t.Fatal(err)
	}
	// COUNTER is the zero enum value; it must still be present.
	if mf.GetName() != "n" || mf.Type == nil || mf.GetType() != dto.MetricType_COUNTER || len(mf.Metric) != 0 {
		t.Errorf("message = %v", &mf)
	}
}

// seedFamilies writes the families of the table test as fuzz seeds.
func seedFamilies(f *testing.F) {
	for _, mf := range families() {
		b, err := proto.Marshal(mf)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.good.txt"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		parsed, err := textParse(model.UTF8Validation, bytes.NewReader(b))
		if err != nil {
			f.Fatalf("%s: %v", file, err)
		}
		for _, mf := range parsed {
			pb, err := proto.Marshal(mf)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(pb)
		}
	}
}

// parseable reports whether mf is sanitized the way the store sanitizes
// pushes, so that its text exposition must parse back.
func parseable(mf *dto.MetricFamily) bool {
	for _, m := range mf.Metric {
		if h := m.GetHistogram(); h != nil {
			// The store refuses negative counts: the text parser refuses a
			// negative bucket, and the +Inf bucket comes from the count.
			if h.GetSampleCountFloat() < 0 {
				return false
			}
			for _, b := range h.GetBucket() {
				if b.GetCumulativeCountFloat() < 0 {
					return false
				}
			}
		}
		seen := map[string]bool{}
		for _, lp := range m.Label {
			n := lp.GetName()
			if seen[n] || strings.HasPrefix(n, model.ReservedLabelPrefix) ||
				!isUTF8(lp.GetValue()) ||
				(n == model.QuantileLabel && mf.GetType() == dto.MetricType_SUMMARY) ||
				(n == model.BucketLabel && (mf.GetType() == dto.MetricType_HISTOGRAM || mf.GetType() == dto.MetricType_GAUGE_HISTOGRAM)) {
				return false
			}
			seen[n] = true
		}
	}
	return isUTF8(mf.GetHelp())
}

func textParse(scheme model.ValidationScheme, r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(scheme)
	return p.TextToMetricFamilies(r)
}

func isUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// FuzzFamily builds families from arbitrary protobuf and checks that Decode
// gives back what New got, that the stored forms are the libraries' (see
// sameAsLibraries) and that the text parses back.
func FuzzFamily(f *testing.F) {
	seedFamilies(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		mf := &dto.MetricFamily{}
		if err := proto.Unmarshal(data, mf); err != nil {
			return
		}
		if _, ok := dto.MetricType_name[int32(mf.GetType())]; !ok {
			return // the store rejects unknown types before New
		}
		in := proto.Clone(mf).(*dto.MetricFamily)
		fm := sameAsLibraries(t, mf)
		if fm == nil {
			return
		}
		if fm.Series != len(in.Metric) {
			t.Fatalf("Series = %d, want %d", fm.Series, len(in.Metric))
		}
		d, err := fm.Decode()
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if !equalMetrics(t, d.Metric, in.Metric) {
			t.Fatalf("Decode() metrics =\n%v\nwant\n%v", d.Metric, in.Metric)
		}
		if d.GetName() != in.GetName() || d.GetHelp() != in.GetHelp() || d.GetType() != in.GetType() {
			t.Fatalf("Decode() header = %q %q %v", d.GetName(), d.GetHelp(), d.GetType())
		}

		if !fm.HasText() || fm.Series == 0 {
			if len(in.Metric) > 0 && !family.NeedsEscaping(in) {
				t.Fatal("no text for a legacy family")
			}
			return
		}
		got := family.AppendTextHeader(nil, fm.Name, fm.Help, fm.Type)
		got = append(got, textOf(t, fm)...)
		ref := proto.Clone(in).(*dto.MetricFamily)
		if ref.GetHelp() == "" {
			ref.Help = nil
		}
		if want := fullText(t, ref); !bytes.Equal(got, want) {
			t.Fatalf("header+Text =\n%q\nwant\n%q", got, want)
		}
		if !parseable(in) {
			return
		}
		parsed, err := textParse(model.LegacyValidation, bytes.NewReader(got))
		if err != nil {
			t.Fatalf("text does not parse: %v\n%s", err, got)
		}
		if parsed[in.GetName()] == nil {
			t.Fatalf("family %q missing after parsing\n%s", in.GetName(), got)
		}
	})
}

// sameAsLibraries fails unless New's protobuf is proto.Marshal's and its
// text lines are expfmt's for mf, byte for byte, and New fails where
// expfmt does for a family that has text lines. It returns New's family,
// nil if New failed.
func sameAsLibraries(t *testing.T, mf *dto.MetricFamily) *family.Family {
	t.Helper()
	in := proto.Clone(mf).(*dto.MetricFamily)
	fm, err := family.New(mf, pushed)
	hasText := len(in.Metric) > 0 && !family.NeedsEscaping(in)
	var text bytes.Buffer
	_, textErr := expfmt.MetricFamilyToText(&text, &dto.MetricFamily{Name: in.Name, Type: in.Type, Metric: in.Metric})
	if hasText && (err == nil) != (textErr == nil) {
		t.Fatalf("New: %v; expfmt: %v", err, textErr)
	}
	if err != nil {
		return nil
	}
	want, err := proto.Marshal(&dto.MetricFamily{Metric: in.Metric})
	if err != nil {
		t.Fatal(err)
	}
	if got := metricsOf(t, fm); !bytes.Equal(got, want) {
		t.Fatalf("protobuf =\n%x\nproto.Marshal's\n%x\nfor %v", got, want, in)
	}
	// An empty family has (no) text lines whatever its name.
	if want := hasText || len(in.Metric) == 0; fm.HasText() != want {
		t.Fatalf("HasText() = %v, want %v", fm.HasText(), want)
	}
	if hasText {
		// Without a HELP, expfmt's first line is TYPE.
		_, lines, _ := bytes.Cut(text.Bytes(), []byte("\n"))
		if got := textOf(t, fm); !bytes.Equal(got, lines) {
			t.Fatalf("text lines =\n%q\nexpfmt's\n%q", got, lines)
		}
	}
	return fm
}

// FuzzEncode builds a one-metric family of any type from fuzzed names,
// label values and numbers, the parts a protobuf-level fuzzer rarely
// reaches, and checks its stored forms against the libraries'.
func FuzzEncode(f *testing.F) {
	f.Add(uint8(0), "push_time_seconds", "instance", "i", "job", "j", 1.7e9, 0.5, int64(0), false)
	f.Add(uint8(1), "g", "a", "\"\\\n", "", "", math.Inf(-1), math.NaN(), int64(-1), true)
	f.Add(uint8(2), "a:b", "x.y", "v", "z", "w", 0.1, 1.0, int64(1395066363000), true)
	f.Add(uint8(3), "h", "le", "1", "a", "", math.Copysign(0, -1), math.Inf(1), int64(1)<<62, false)
	f.Add(uint8(4), "s", "quantile", "", "b", "ünï", 1e-300, -1.0, int64(0), true)
	f.Fuzz(func(t *testing.T, kind uint8, name, n1, v1, n2, v2 string, v, w float64, ts int64, hasTs bool) {
		m := &dto.Metric{}
		if n1 != "" {
			m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(n1), Value: proto.String(v1)})
		}
		if n2 != "" {
			m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(n2), Value: proto.String(v2)})
		}
		if hasTs {
			m.TimestampMs = proto.Int64(ts)
		}
		typ := dto.MetricType(kind % 6)
		switch typ {
		case dto.MetricType_COUNTER:
			m.Counter = &dto.Counter{Value: proto.Float64(v)}
		case dto.MetricType_GAUGE:
			m.Gauge = &dto.Gauge{Value: proto.Float64(v)}
		case dto.MetricType_UNTYPED:
			m.Untyped = &dto.Untyped{Value: proto.Float64(v)}
		case dto.MetricType_SUMMARY:
			m.Summary = &dto.Summary{SampleCount: proto.Uint64(uint64(ts)), SampleSum: proto.Float64(v),
				Quantile: []*dto.Quantile{{Quantile: proto.Float64(w), Value: proto.Float64(v)}}}
		default: // histogram and gauge histogram
			m.Histogram = &dto.Histogram{SampleCount: proto.Uint64(uint64(ts)), SampleSum: proto.Float64(v),
				Bucket: []*dto.Bucket{{UpperBound: proto.Float64(w), CumulativeCount: proto.Uint64(uint64(kind))}}}
			if hasTs {
				m.Histogram.SampleCountFloat = proto.Float64(w)
				m.Histogram.Bucket[0].CumulativeCountFloat = proto.Float64(v)
			}
		}
		sameAsLibraries(t, fam(name, "", typ, m, m))
	})
}

// textOf and metricsOf decompress a family's stored forms.
func textOf(t testing.TB, f *family.Family) []byte {
	t.Helper()
	b, err := f.AppendText(nil)
	if err != nil {
		t.Fatalf("AppendText: %v", err)
	}
	return b
}

func metricsOf(t testing.TB, f *family.Family) []byte {
	t.Helper()
	b, err := f.AppendMetrics(nil)
	if err != nil {
		t.Fatalf("AppendMetrics: %v", err)
	}
	return b
}
