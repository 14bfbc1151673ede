package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"
)

// Every expectation below was taken from the reference and is asserted
// against it and against the subject. The reference is v1.11 (what pushgate
// replaces, here built from source) where it differs from v1.5.1 (Debian, the
// default reference binary); a case with legacy says how, and a v1.5 reference
// is held to its step.legacy answers and legacyWant. A case with refDiff
// documents an intentional pushgate difference: the subject must do what the
// case says, the reference run asserts the reference's own answer (step.ref,
// refWant) or is skipped.

// expect is what one answer must look like.
type expect struct {
	status   int               // statusCleanRedirect: see there
	contains string            // substring of the body, if non-empty
	all      []string          // substrings the body must all contain
	anyOf    []string          // substrings of which the body must contain one
	headers  map[string]string // header -> required substring ("" = must be absent)
	check    func(t testing.TB, g *gateway, r response)
}

type step struct {
	method string
	path   string // absolute path, including any route prefix
	header map[string]string
	body   []byte
	expect
	ref *expect // the reference's answer in a refDiff case; nil = same
	// old is the answer of a reference before v1.11 in a legacy case;
	// nil = same.
	old *expect
	// exits marks a request the gateway answers by exiting. The reference
	// exits as soon as its handler returns, so its answer can be lost with
	// the connection (EOF); that is accepted from the reference only.
	exits bool
}

// statusCleanRedirect is the answer to a path that is not clean as sent
// ("//", "/./", "/../"): 307 from pushgate and from a reference built with Go
// 1.26 or later, whose ServeMux answers it; 301 from one built with older Go
// (v1.5.1, and the v1.11 release binaries).
const statusCleanRedirect = -307

type compatCase struct {
	name  string
	flags []string // extra server flags; "{addr}" becomes host:port
	steps []step
	// want is the expected exposition of the pushed families after the
	// steps (see normalizeExpected). Ignored when noFinal is set.
	want      string
	noFinal   bool
	helpAnyOf map[string][]string
	// refDiff documents an intentional difference from the reference.
	refDiff string
	refSkip bool    // refDiff: do not run against the reference at all
	refWant *string // refDiff: the reference's final exposition; nil = not checked
	// legacy documents how a reference before v1.11 (Debian's v1.5.1)
	// differs; such a reference is held to step.old and legacyWant.
	legacy     string
	legacyWant *string // legacy: the final exposition of v1.5; nil = not checked
}

func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

func alt(s string) *string { return &s }

// times renders the push_time_seconds/push_failure_time_seconds lines of a
// group; pushed/failed are 0 (zero) or 1 (non-zero).
func times(labels string, pushed, failed int) string {
	return "push_time_seconds{" + labels + "} " + string(rune('0'+pushed)) + "\n" +
		"push_failure_time_seconds{" + labels + "} " + string(rune('0'+failed)) + "\n"
}

func req(method, path, body string, status int) step {
	s := step{method: method, path: path, expect: expect{status: status}}
	if body != "" || method == http.MethodPut || method == http.MethodPost {
		s.body = []byte(body)
	}
	return s
}

func put(path, body string, status int) step  { return req(http.MethodPut, path, body, status) }
func post(path, body string, status int) step { return req(http.MethodPost, path, body, status) }
func del(path string, status int) step        { return req(http.MethodDelete, path, "", status) }
func get(path string, status int) step        { return req(http.MethodGet, path, "", status) }

func (s step) bytes(b []byte) step                              { s.body = b; return s }
func (s step) has(sub string) step                              { s.contains = sub; return s }
func (s step) hasAll(subs ...string) step                       { s.all = subs; return s }
func (s step) hasAnyOf(subs ...string) step                     { s.anyOf = subs; return s }
func (s step) refIs(e expect) step                              { s.ref = &e; return s }
func (s step) oldIs(e expect) step                              { s.old = &e; return s }
func (s step) hdr(k, v string) step                             { s.header = withKV(s.header, k, v); return s }
func (s step) wantHdr(k, v string) step                         { s.headers = withKV(s.headers, k, v); return s }
func (s step) then(f func(testing.TB, *gateway, response)) step { s.check = f; return s }
func (s step) exiting() step                                    { s.exits = true; return s }

func withKV(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for mk, mv := range m {
		out[mk] = mv
	}
	return out
}

// inconsistent starts the body of every rejected consistency check. The rest
// is client_golang's registry error text in the reference; errorCases pin
// it (scripts match it, so pushgate's message contains it).
const inconsistent = "pushed metrics are invalid or inconsistent with existing metrics: "

const protoDelimCT = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"

// prometheus3Accept is Prometheus 3's default scrape Accept header.
const prometheus3Accept = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"

func gzipped(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.Bytes()
}

// snappyFramed compresses s in the snappy framing (stream) format, which is
// what a Go snappy.NewReader on the server side reads.
func snappyFramed(s string) []byte {
	var b bytes.Buffer
	w := snappy.NewBufferedWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.Bytes()
}

// protoBody encodes the families as length-delimited protobuf, as
// client_golang's push package sends them.
func protoBody(mfs ...*dto.MetricFamily) []byte {
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeProtoDelim))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			panic(err)
		}
	}
	return b.Bytes()
}

func lp(name, value string) *dto.LabelPair {
	return &dto.LabelPair{Name: proto.String(name), Value: proto.String(value)}
}

func protoFamilies() []*dto.MetricFamily {
	return []*dto.MetricFamily{
		{
			Name: proto.String("pc"), Help: proto.String("a proto counter"), Type: dto.MetricType_COUNTER.Enum(),
			Metric: []*dto.Metric{{Label: []*dto.LabelPair{lp("l", "v")}, Counter: &dto.Counter{Value: proto.Float64(3)}}},
		},
		{
			Name: proto.String("pg"), Type: dto.MetricType_GAUGE.Enum(),
			Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(-1.5)}}},
		},
		{
			Name: proto.String("ps"), Type: dto.MetricType_SUMMARY.Enum(),
			Metric: []*dto.Metric{{Summary: &dto.Summary{
				SampleCount: proto.Uint64(4), SampleSum: proto.Float64(10),
				Quantile: []*dto.Quantile{{Quantile: proto.Float64(0.5), Value: proto.Float64(2)}},
			}}},
		},
		{
			Name: proto.String("ph"), Type: dto.MetricType_HISTOGRAM.Enum(),
			Metric: []*dto.Metric{{Histogram: &dto.Histogram{
				SampleCount: proto.Uint64(2), SampleSum: proto.Float64(3),
				Bucket: []*dto.Bucket{{UpperBound: proto.Float64(1), CumulativeCount: proto.Uint64(1)}},
			}}},
		},
	}
}

// mediaType asserts the Content-Type's media type and, if non-empty, its
// version parameter.
func mediaType(typ, version string) func(testing.TB, *gateway, response) {
	return func(t testing.TB, _ *gateway, r response) {
		t.Helper()
		mt, params, err := mime.ParseMediaType(r.header.Get("Content-Type"))
		if err != nil || mt != typ || (version != "" && params["version"] != version) {
			t.Errorf("Content-Type = %q, want media type %s version %q", r.header.Get("Content-Type"), typ, version)
		}
	}
}

func compatCases() []compatCase {
	const job = `instance="",job="j"`
	return []compatCase{
		// ---- URL scheme ----
		{
			name:  "url/job",
			steps: []step{put("/metrics/job/j", "foo 1\n", 200)},
			want:  `foo{instance="",job="j"} 1` + "\n" + times(job, 1, 0),
		},
		{
			name:  "url/extra-labels",
			steps: []step{put("/metrics/job/j/instance/i/a/b", "foo 1\n", 200)},
			want:  `foo{a="b",instance="i",job="j"} 1` + "\n" + times(`a="b",instance="i",job="j"`, 1, 0),
		},
		{
			name: "url/job-base64",
			steps: []step{
				put("/metrics/job@base64/Zm9vL2Jhcg/a/b", "foo 1\n", 200),   // "foo/bar", no padding
				put("/metrics/job@base64/Zm9vLw==/a/b", "foo 2\n", 200),     // "foo/", padding
				post("/metrics/job@base64/YS9i", "foo 3\n", 200),            // "a/b", no labels
				put("/metrics/job@base64/Zm9vL2Jhcg==/a/b", "foo 4\n", 200), // same group as the first
			},
			want: lines(
				`foo{a="b",instance="",job="foo/bar"} 4`,
				`foo{a="b",instance="",job="foo/"} 2`,
				`foo{instance="",job="a/b"} 3`,
			) + times(`a="b",instance="",job="foo/bar"`, 1, 0) + times(`a="b",instance="",job="foo/"`, 1, 0) + times(`instance="",job="a/b"`, 1, 0),
		},
		{
			name:  "url/job-base64-put-without-labels",
			steps: []step{put("/metrics/job@base64/Zm9vLw", "foo 1\n", 200)},
			want:  `foo{instance="",job="foo/"} 1` + "\n" + times(`instance="",job="foo/"`, 1, 0),
		},
		{
			name: "url/label-base64-url-safe-alphabet",
			steps: []step{
				put("/metrics/job/j/p@base64/Pz4_/q@base64/fn5-", "foo 1\n", 200), // "?>?", "~~~"
				put("/metrics/job/j/q@base64/fn5+", "foo 1\n", 400).has(`invalid base64 encoding for label q="fn5+"`),
			},
			want: `foo{instance="",job="j",p="?>?",q="~~~"} 1` + "\n" + times(`instance="",job="j",p="?>?",q="~~~"`, 1, 0),
		},
		{
			name: "url/label-base64-padding",
			steps: []step{
				put("/metrics/job/j/path@base64/L3Zhci90bXA", "foo 1\n", 200),
				put("/metrics/job/j/path@base64/L3Zhci90bXA=", "foo 2\n", 200),      // same group
				put("/metrics/job/j/path@base64/L3Zhci90bXA%3D%3D", "foo 3\n", 200), // same group
			},
			want: `foo{instance="",job="j",path="/var/tmp"} 3` + "\n" + times(`instance="",job="j",path="/var/tmp"`, 1, 0),
		},
		{
			name: "url/label-base64-empty-value",
			steps: []step{
				put("/metrics/job/j/a@base64/=/b/c", "foo 1\n", 200),
				put("/metrics/job/k/instance@base64/=", "foo 2\n", 200),
			},
			want: lines(`foo{a="",b="c",instance="",job="j"} 1`, `foo{instance="",job="k"} 2`) +
				times(`a="",b="c",instance="",job="j"`, 1, 0) + times(`instance="",job="k"`, 1, 0),
		},
		{
			name: "url/percent-encoded-utf8-value",
			steps: []step{
				put("/metrics/job/j/p/%CE%A0%CF%81%CE%BF%CE%BC%CE%B7%CE%B8%CE%B5%CF%8D%CF%82", "foo 1\n", 200),
				put("/metrics/job/%20/q/zqDPgc6_zrzOt864zrXPjc-C", "foo 2\n", 200),
				put("/metrics/job/k/r@base64/zqDPgc6_zrzOt864zrXPjc-C", "foo 3\n", 200),
			},
			want: lines(
				`foo{instance="",job="j",p="Προμηθεύς"} 1`,
				`foo{instance="",job=" ",q="zqDPgc6_zrzOt864zrXPjc-C"} 2`,
				`foo{instance="",job="k",r="Προμηθεύς"} 3`,
			) + times(`instance="",job="j",p="Προμηθεύς"`, 1, 0) + times(`instance="",job=" ",q="zqDPgc6_zrzOt864zrXPjc-C"`, 1, 0) +
				times(`instance="",job="k",r="Προμηθεύς"`, 1, 0),
		},
		{
			// The reference routes the push API on the decoded path, so %2F
			// separates components before the labels are split; a value
			// containing "/" needs @base64 (reference README, "URL").
			name:   "url/percent-encoded-slash",
			legacy: "v1.5's ServeMux cleaned the decoded path, so a %2F that makes an empty component got a 301 to the path without it",
			steps: []step{
				put("/metrics/job/j/path/%2Fvar%2Ftmp", "foo 1\n", 200).
					oldIs(expect{status: 301, headers: map[string]string{"Location": "/metrics/job/j/path/var/tmp"}}),
				put("/metrics/job/k/a/%2F%2F", "foo 1\n", 400).has(`improper label name ""`).oldIs(expect{status: 301}),
				put("/metrics/job/k/a/%2F%2F/b", "foo 1\n", 400).has(`odd number of components in label string "/a////b"`).oldIs(expect{status: 301}),
				put("/metrics/job/%2Fk", "foo 1\n", 400).has(`odd number of components in label string "/k"`).oldIs(expect{status: 301}),
				put("/metrics/job/%2Fk/a", "foo 1\n", 400).has("job name is required").oldIs(expect{status: 301}),
				put("/metrics/job@base64/%2Fa", "foo 1\n", 400).has(`odd number of components in label string "/a"`).oldIs(expect{status: 301}),
				put("/metrics/job/m%2F", "foo 2\n", 200),
				put("/metrics/job/n%2Fa%2Fb", "foo 3\n", 200),
				put("/metrics/job/a%2Fb/v/x", "foo 1\n", 400).has(`odd number of components in label string "/b/v/x"`),
				put("/metrics/job/k/path/var%2Ftmp", "foo 1\n", 400).has(`odd number of components in label string "/path/var/tmp"`),
				post("/metrics%2Fjob/p", "foo 4\n", 200),
				put("/metrics/job/d/x/%2Fy%2Fz", "foo 5\n", 200).oldIs(expect{status: 301}),
				del("/metrics/job/d/x/%2Fy%2Fz", 202).oldIs(expect{status: 301}),
				del("/metrics/job/n%2Fa%2Fb", 202),
			},
			want: lines(`foo{instance="",job="j",path="",var="tmp"} 1`, `foo{instance="",job="m"} 2`, `foo{instance="",job="p"} 4`) +
				times(`instance="",job="j",path="",var="tmp"`, 1, 0) + times(`instance="",job="m"`, 1, 0) + times(`instance="",job="p"`, 1, 0),
			legacyWant: alt(lines(`foo{instance="",job="m"} 2`, `foo{instance="",job="p"} 4`) +
				times(`instance="",job="m"`, 1, 0) + times(`instance="",job="p"`, 1, 0)),
		},
		{
			// A path that is not clean as sent is redirected to the cleaned
			// path, for every method, by the reference's ServeMux: 307 when
			// built with Go 1.26 or later (301 before, which clients follow
			// with a GET without body). pushgate always answers 307.
			name: "url/non-clean-path-redirect",
			steps: []step{
				put("/metrics/job/j//x", "foo 1\n", statusCleanRedirect).wantHdr("Location", "/metrics/job/j/x"),
				post("/metrics/job//a/b", "foo 1\n", statusCleanRedirect).wantHdr("Location", "/metrics/job/a/b"),
				put("/metrics/job/j/./a/b", "foo 1\n", statusCleanRedirect).wantHdr("Location", "/metrics/job/j/a/b"),
				post("/metrics/job/j/x/../a/b", "foo 1\n", statusCleanRedirect).wantHdr("Location", "/metrics/job/j/a/b"),
				del("/metrics/job/j/a//b/c", statusCleanRedirect).wantHdr("Location", "/metrics/job/j/a/b/c"),
				get("//metrics", statusCleanRedirect).wantHdr("Location", "/metrics"),
				get("/api/v1//status", statusCleanRedirect).wantHdr("Location", "/api/v1/status"),
				put("/metrics/job/j//x?a=b", "foo 1\n", statusCleanRedirect).wantHdr("Location", "/metrics/job/j/x?a=b"),
			},
			want: "",
		},
		{
			name:  "url/non-clean-path-redirect-route-prefix",
			flags: []string{"--web.route-prefix=/pg"},
			steps: []step{
				put("/pg/metrics/job/j//x", "foo 1\n", statusCleanRedirect).wantHdr("Location", "/pg/metrics/job/j/x"),
				post("//pg/metrics/job/j", "foo 1\n", statusCleanRedirect).wantHdr("Location", "/pg/metrics/job/j"),
				get("/x/../pg/-/ready", statusCleanRedirect).wantHdr("Location", "/pg/-/ready"),
			},
			want: "",
		},
		{
			name:    "url/non-clean-path-redirect-keeps-escapes",
			refDiff: "the reference's ServeMux (Go 1.26) escapes the % of a %2F in the cleaned path again (Location .../%252Fb), v1.5 decodes it (.../b); pushgate keeps the client's %2F",
			steps: []step{
				put("/metrics/job/j//a/%2Fb", "foo 1\n", statusCleanRedirect).wantHdr("Location", "/metrics/job/j/a/%2Fb").
					refIs(expect{status: statusCleanRedirect}),
			},
			want:    "",
			refWant: alt(""),
		},
		{
			name:    "url/empty-job",
			refDiff: "the reference redirects /metrics/job/ (307) to /metrics/job, which is 404; pushgate answers 400 job name is required",
			steps: []step{
				put("/metrics/job/", "foo 1\n", 400).has("job name is required").
					refIs(expect{status: 307, headers: map[string]string{"Location": "/metrics/job"}}),
				del("/metrics/job/", 400).has("job name is required").
					refIs(expect{status: 307, headers: map[string]string{"Location": "/metrics/job"}}),
				put("/metrics/job", "foo 1\n", 404),
				post("/metrics/job@base64/=", "foo 1\n", 400).has("job name is required"),
				put("/metrics/job@base64/=/a/b", "foo 1\n", 400).has("job name is required"),
			},
		},
		{
			name: "url/odd-number-of-parts",
			steps: []step{
				put("/metrics/job/j/a", "foo 1\n", 400).has(`odd number of components in label string "/a"`),
				put("/metrics/job/j/a/1/b/2/", "foo 1\n", 400).has(`odd number of components in label string "/a/1/b/2/"`),
				del("/metrics/job/j/a", 400).has("odd number of components"),
			},
		},
		{
			name: "url/invalid-label-name",
			steps: []step{
				put("/metrics/job/j/1a/b", "foo 1\n", 400).has(`improper label name "1a"`),
				put("/metrics/job/j/l%C3%A4/b", "foo 1\n", 400).has(`improper label name "lä"`),
				put("/metrics/job/j/a-b/c", "foo 1\n", 400).has(`improper label name "a-b"`),
			},
		},
		{
			name: "url/reserved-label-name",
			steps: []step{
				put("/metrics/job/j/__name/b", "foo 1\n", 400).has(`improper label name "__name"`),
				put("/metrics/job/j/__name__/b", "foo 1\n", 400).has(`improper label name "__name__"`),
				put("/metrics/job/j/__name__@base64/YQ", "foo 1\n", 400).has(`improper label name "__name__"`),
			},
		},
		{
			// A trailing slash is an empty last component: "/j/" is the
			// group {job="j"}, "/j/a/" is {job="j",a=""}.
			name: "url/trailing-slash",
			steps: []step{
				put("/metrics/job/j/", "foo 1\n", 200),
				put("/metrics/job/j/a/", "foo 2\n", 200),
				put("/metrics/job/k/instance/", "foo 3\n", 200),
			},
			want: lines(`foo{instance="",job="j"} 1`, `foo{a="",instance="",job="j"} 2`, `foo{instance="",job="k"} 3`) +
				times(job, 1, 0) + times(`a="",instance="",job="j"`, 1, 0) + times(`instance="",job="k"`, 1, 0),
		},
		{
			name: "url/invalid-base64",
			steps: []step{
				put("/metrics/job/j/p@base64/!!", "foo 1\n", 400).has(`invalid base64 encoding for label p="!!"`),
				del("/metrics/job@base64/!!!", 400).has("invalid base64 encoding in job name"),
				// Last: the reference wedges this route after it (next case).
				put("/metrics/job@base64/!!!", "foo 1\n", 400).has("invalid base64 encoding in job name"),
			},
		},
		{
			name:    "url/invalid-base64-job-does-not-wedge-the-handler",
			refDiff: "reference v1.5.1 returns from its push handler without releasing the handler's mutex on an invalid base64 job name, so every later request to that route (here PUT /metrics/job@base64/<job>) hangs forever",
			refSkip: true,
			steps: []step{
				put("/metrics/job@base64/!!!", "foo 1\n", 400).has("invalid base64 encoding in job name"),
				put("/metrics/job@base64/Zm9v", "foo 1\n", 200),
			},
			want: `foo{instance="",job="foo"} 1` + "\n" + times(`instance="",job="foo"`, 1, 0),
		},
		{
			name: "url/repeated-and-job-labels-in-path",
			steps: []step{
				put("/metrics/job/j/a/1/a/2", "foo 1\n", 200), // last one wins
				put("/metrics/job/k/job/x", "foo 2\n", 200),   // the job segment wins
			},
			want: lines(`foo{a="2",instance="",job="j"} 1`, `foo{instance="",job="k"} 2`) +
				times(`a="2",instance="",job="j"`, 1, 0) + times(`instance="",job="k"`, 1, 0),
		},
		{
			name:    "url/non-utf8-base64-label-value",
			refDiff: "reference v1.5.1 rejects the push but keeps the new group with its non-UTF-8 label value, after which every push fails its consistency check; pushgate rejects it without storing anything",
			steps: []step{
				// "\xff\xef"; the reference words it in its scrape check.
				put("/metrics/job/j/p@base64/_-8", "foo 1\n", 400).has(`has a label named "p" whose value is not utf8: "\xff\xef"`),
				put("/metrics/job/k", "foo 2\n", 200).refIs(expect{status: 400, contains: "not utf8"}),
			},
			want: `foo{instance="",job="k"} 2` + "\n" + times(`instance="",job="k"`, 1, 0),
		},

		// ---- bodies ----
		{
			name:  "body/missing-final-newline",
			steps: []step{put("/metrics/job/j", "foo 1", 400).has("text format parsing error in line 1: unexpected end of input stream")},
		},
		{
			name: "body/garbage",
			steps: []step{
				put("/metrics/job/j", "garbage here\n", 400).has("text format parsing error in line 1"),
				put("/metrics/job/j", "\x00\x01\x02\xff\n", 400).has("text format parsing error"),
				put("/metrics/job/j", "garbage", 400).hdr("Content-Type", protoDelimCT),
				put("/metrics/job/j", "foo 1\n", 400).hdr("Content-Encoding", "gzip"),
			},
		},
		{
			name: "body/text-types-and-values",
			steps: []step{put("/metrics/job/j", lines(
				"# HELP c a counter",
				"# TYPE c counter",
				`c{l="v"} 3`,
				"# TYPE g gauge",
				"g -1.5e-3",
				"# TYPE s summary",
				`s{quantile="0.5"} 2`,
				"s_sum 10",
				"s_count 4",
				"# TYPE h histogram",
				`h_bucket{le="1"} 1`,
				`h_bucket{le="+Inf"} 2`,
				"h_sum 3",
				"h_count 2",
				"u NaN",
				"v +Inf",
				`w{esc="a\"b\\c\nd"} 1`,
			), 200)},
			want: lines(
				"# HELP c a counter",
				"# TYPE c counter",
				`c{instance="",job="j",l="v"} 3`,
				"# TYPE g gauge",
				`g{instance="",job="j"} -0.0015`,
				"# TYPE s summary",
				`s{instance="",job="j",quantile="0.5"} 2`,
				`s_sum{instance="",job="j"} 10`,
				`s_count{instance="",job="j"} 4`,
				"# TYPE h histogram",
				`h_bucket{instance="",job="j",le="1"} 1`,
				`h_bucket{instance="",job="j",le="+Inf"} 2`,
				`h_sum{instance="",job="j"} 3`,
				`h_count{instance="",job="j"} 2`,
				`u{instance="",job="j"} NaN`,
				`v{instance="",job="j"} +Inf`,
				`w{esc="a\"b\\c\nd",instance="",job="j"} 1`,
			) + times(job, 1, 0),
		},
		{
			name:  "body/protobuf-delimited",
			steps: []step{put("/metrics/job/j", "", 200).bytes(protoBody(protoFamilies()...)).hdr("Content-Type", protoDelimCT)},
			want: lines(
				"# HELP pc a proto counter",
				"# TYPE pc counter",
				`pc{instance="",job="j",l="v"} 3`,
				"# TYPE pg gauge",
				`pg{instance="",job="j"} -1.5`,
				"# TYPE ps summary",
				`ps{instance="",job="j",quantile="0.5"} 2`,
				`ps_sum{instance="",job="j"} 10`,
				`ps_count{instance="",job="j"} 4`,
				"# TYPE ph histogram",
				`ph_bucket{instance="",job="j",le="1"} 1`,
				`ph_bucket{instance="",job="j",le="+Inf"} 2`,
				`ph_sum{instance="",job="j"} 3`,
				`ph_count{instance="",job="j"} 2`,
			) + times(job, 1, 0),
		},
		{
			name:  "body/gzip",
			steps: []step{put("/metrics/job/j", "", 200).bytes(gzipped("# TYPE foo gauge\nfoo 1\n")).hdr("Content-Encoding", "gzip")},
			want:  "# TYPE foo gauge\n" + `foo{instance="",job="j"} 1` + "\n" + times(job, 1, 0),
		},
		{
			name:  "body/gzip-protobuf",
			steps: []step{put("/metrics/job/j", "", 200).bytes(gzipped(string(protoBody(protoFamilies()[1])))).hdr("Content-Encoding", "gzip").hdr("Content-Type", protoDelimCT)},
			want:  "# TYPE pg gauge\n" + `pg{instance="",job="j"} -1.5` + "\n" + times(job, 1, 0),
		},
		{
			name:   "body/snappy",
			legacy: "snappy decoding added in v1.6",
			steps: []step{
				put("/metrics/job/j", "", 200).bytes(snappyFramed("# TYPE foo gauge\nfoo 1\n")).hdr("Content-Encoding", "snappy").
					oldIs(expect{status: 400}),
			},
			want:       "# TYPE foo gauge\n" + `foo{instance="",job="j"} 1` + "\n" + times(job, 1, 0),
			legacyWant: alt(""),
		},
		{
			name:    "body/openmetrics",
			refDiff: "pushgate parses Content-Type application/openmetrics-text as OpenMetrics; the reference parses it as the text format (foo_total untyped)",
			steps: []step{
				put("/metrics/job/j", "# TYPE foo counter\nfoo_total 1\n# EOF\n", 200).
					hdr("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8"),
			},
			want:    "# TYPE foo_total counter\n" + `foo_total{instance="",job="j"} 1` + "\n" + times(job, 1, 0),
			refWant: alt("# TYPE foo_total untyped\n" + `foo_total{instance="",job="j"} 1` + "\n" + times(job, 1, 0)),
		},

		// ---- semantics ----
		{
			name: "put-replaces-whole-group",
			steps: []step{
				put("/metrics/job/j", "a 1\nb 2\n", 200),
				put("/metrics/job/k", "a 5\n", 200),
				put("/metrics/job/j", "c 3\n", 200),
			},
			want: lines(`a{instance="",job="k"} 5`, `c{instance="",job="j"} 3`) + times(job, 1, 0) + times(`instance="",job="k"`, 1, 0),
		},
		{
			name: "post-replaces-named-families",
			steps: []step{
				put("/metrics/job/j", lines(`a{x="1"} 1`, `a{x="2"} 2`, "b 2"), 200),
				post("/metrics/job/j", lines(`a{x="3"} 3`, "c 4"), 200),
			},
			want: lines(`a{instance="",job="j",x="3"} 3`, `b{instance="",job="j"} 2`, `c{instance="",job="j"} 4`) + times(job, 1, 0),
		},
		{
			name: "empty-put-removes-all-metrics",
			steps: []step{
				put("/metrics/job/j", "a 1\n", 200),
				put("/metrics/job/j", "", 200),
				put("/metrics/job/k", "\n", 200),
			},
			want: times(job, 1, 0) + times(`instance="",job="k"`, 1, 0),
		},
		{
			name: "empty-post-only-updates-push-time",
			steps: []step{
				put("/metrics/job/j", "a 1\n", 200),
				post("/metrics/job/j", "", 200),
			},
			want: `a{instance="",job="j"} 1` + "\n" + times(job, 1, 0),
		},
		{
			name: "delete",
			steps: []step{
				put("/metrics/job/j", "a 1\n", 200),
				put("/metrics/job/j/instance/i", "a 2\n", 200),
				del("/metrics/job/nope", 202),
				del("/metrics/job/j/instance/i", 202),
				get("/metrics", 200),
				del("/metrics/job/j/instance/i", 202), // already gone: no-op
			},
			want: `a{instance="",job="j"} 1` + "\n" + times(job, 1, 0),
		},
		{
			name: "delete-then-put",
			steps: []step{
				put("/metrics/job/j", "a 1\nb 1\n", 200),
				del("/metrics/job/j", 202),
				put("/metrics/job/j", "a 2\n", 200),
			},
			want: `a{instance="",job="j"} 2` + "\n" + times(job, 1, 0),
		},
		{
			name: "grouping-labels-override-body-labels",
			steps: []step{
				put("/metrics/job/j/a/1", `foo{job="other",instance="i2",a="x",b="y"} 1`+"\n", 200),
				put("/metrics/job/k/instance/i", `foo{job="other",instance="i2"} 2`+"\n", 200),
				put("/metrics/job/m", `foo{exported_job="e"} 3`+"\n", 200),
			},
			want: lines(
				`foo{a="1",b="y",instance="i2",job="j"} 1`,
				`foo{instance="i",job="k"} 2`,
				`foo{exported_job="e",instance="",job="m"} 3`,
			) + times(`a="1",instance="",job="j"`, 1, 0) + times(`instance="i",job="k"`, 1, 0) + times(`instance="",job="m"`, 1, 0),
		},
		{
			name: "timestamp-rejected",
			steps: []step{
				put("/metrics/job/j", "foo 1\n", 200),
				put("/metrics/job/j", "foo 2 1234567\n", 400).has("pushed metrics must not have timestamps"),
				post("/metrics/job/j", "bar 2 1234567\n", 400).has("pushed metrics must not have timestamps"),
			},
			// The failed pushes keep the old metrics and set the failure time.
			want: `foo{instance="",job="j"} 1` + "\n" + times(job, 1, 1),
		},
		{
			name: "failed-push-to-new-group",
			steps: []step{
				put("/metrics/job/j", "foo 2 1234567\n", 400).has("pushed metrics must not have timestamps"),
			},
			// A group without metrics remains: push time 0, failure time set.
			want: times(job, 0, 1),
		},
		{
			name: "failed-push-then-success",
			steps: []step{
				put("/metrics/job/j", "foo 2 1234567\n", 400),
				put("/metrics/job/j", "foo 3\n", 200),
			},
			want: `foo{instance="",job="j"} 3` + "\n" + times(job, 1, 1),
		},
		{
			name: "push-time-per-group",
			steps: []step{
				put("/metrics/job/j", "foo 1\n", 200),
				put("/metrics/job/j/instance/a", "foo 1\n", 200),
				put("/metrics/job/j/instance/b", "foo 1\n", 200),
				put("/metrics/job/j/instance/b", "foo 1 5\n", 400),
			},
			want: lines(`foo{instance="",job="j"} 1`, `foo{instance="a",job="j"} 1`, `foo{instance="b",job="j"} 1`) +
				times(job, 1, 0) + times(`instance="a",job="j"`, 1, 0) + times(`instance="b",job="j"`, 1, 1),
		},
		{
			name: "push-time-seconds-in-body-is-overridden",
			steps: []step{
				put("/metrics/job/j", "push_time_seconds 5\nfoo 1\n", 200),
				put("/metrics/job/k", "# TYPE push_time_seconds counter\npush_time_seconds 5\n", 200),
				put("/metrics/job/m", "push_failure_time_seconds 5\n", 200),
				get("/metrics", 200).then(func(t testing.TB, _ *gateway, r response) {
					t.Helper()
					if bytes.Contains(r.body, []byte("} 5\n")) {
						t.Errorf("pushed value 5 of push_time_seconds/push_failure_time_seconds is exposed:\n%s", r.body)
					}
				}),
			},
			want: `foo{instance="",job="j"} 1` + "\n" + times(job, 1, 0) + times(`instance="",job="k"`, 1, 0) + times(`instance="",job="m"`, 1, 0),
		},
		{
			name:    "failed-push-colliding-via-empty-instance",
			refDiff: `reference defect: the rejected push to {job="j"} leaves a group whose push_time_seconds collides with {job="j",instance=""}, and every scrape then answers 500; pushgate rejects the push and stays consistent`,
			steps: []step{
				put("/metrics/job/j/instance/", "foo 1\n", 200),
				put("/metrics/job/j", "bar 1\n", 400).
					hasAll(inconsistent, `collected metric "push_time_seconds" `, "} was collected before with the same name and label values"),
				get("/metrics", 200).refIs(expect{status: 500, contains: "was collected before with the same name and label values"}),
				put("/metrics/job/k", "bar 1\n", 200).refIs(expect{status: 400}),
				get("/metrics", 200).refIs(expect{status: 500}),
			},
			want: lines(`foo{instance="",job="j"} 1`, `bar{instance="",job="k"} 1`) + times(job, 1, 0) + times(`instance="",job="k"`, 1, 0),
		},

		// ---- consistency ----
		{
			name: "consistency/type-clash-across-groups",
			steps: []step{
				put("/metrics/job/a", "# TYPE foo counter\nfoo 1\n", 200),
				put("/metrics/job/b", "# TYPE foo gauge\nfoo 1\n", 400).has(inconsistent),
				put("/metrics/job/a", "# TYPE foo gauge\nfoo 2\n", 200), // replacing the only one is fine
			},
			want: "# TYPE foo gauge\n" + `foo{instance="",job="a"} 2` + "\n" + times(`instance="",job="a"`, 1, 0) + times(`instance="",job="b"`, 0, 1),
		},
		{
			name: "consistency/type-clash-with-own-metrics",
			steps: []step{
				// Reference: "gathered metric family go_goroutines has type COUNTER but should have GAUGE".
				put("/metrics/job/a", "# TYPE go_goroutines counter\ngo_goroutines 1\n", 400).has(inconsistent),
				put("/metrics/job/b", "# TYPE go_goroutines gauge\ngo_goroutines 7\n", 200),
			},
			want: "# TYPE go_goroutines gauge\n" + `go_goroutines{instance="",job="b"} 7` + "\n" +
				times(`instance="",job="a"`, 0, 1) + times(`instance="",job="b"`, 1, 0),
		},
		{
			name: "consistency/duplicate-series-in-one-push",
			steps: []step{
				// Reference: `collected metric "a" {...} was collected before with the same name and label values`.
				put("/metrics/job/j", `a{x="1"} 1`+"\n"+`a{x="1"} 2`+"\n", 400).has(inconsistent),
				put("/metrics/job/k", "a 1\n", 200),
				// Equal after the grouping labels are applied.
				put("/metrics/job/k", `a{job="x"} 1`+"\n"+`a{job="y"} 2`+"\n", 400).has(inconsistent),
			},
			want: `a{instance="",job="k"} 1` + "\n" + times(job, 0, 1) + times(`instance="",job="k"`, 1, 1),
		},
		{
			name: "consistency/duplicate-series-across-groups",
			steps: []step{
				put("/metrics/job/a", `foo{x="1"} 1`+"\n", 200),
				put("/metrics/job/a/x/1", "foo 2\n", 400).has(inconsistent),
				put("/metrics/job/b/instance/i", "bar 1\n", 200),
				put("/metrics/job/b", `bar{instance="i"} 2`+"\n", 400).has(inconsistent),
			},
			want: lines(`foo{instance="",job="a",x="1"} 1`, `bar{instance="i",job="b"} 1`) +
				times(`instance="",job="a"`, 1, 0) + times(`instance="",job="a",x="1"`, 0, 1) +
				times(`instance="i",job="b"`, 1, 0) + times(`instance="",job="b"`, 0, 1),
		},
		{
			name: "consistency/summary-suffix-collision",
			steps: []step{
				put("/metrics/job/a", "# TYPE s summary\ns_sum 1\ns_count 1\n", 200),
				// Reference: `collected metric named "s_count" collides with previously collected summary named "s"`
				// (or the reverse wording, depending on its gathering order).
				put("/metrics/job/b", "# TYPE s_count gauge\ns_count 1\n", 400).has(inconsistent),
				put("/metrics/job/c", "s_sum 1\n", 400).has(inconsistent),
			},
			want: "# TYPE s summary\n" + lines(`s_sum{instance="",job="a"} 1`, `s_count{instance="",job="a"} 1`) +
				times(`instance="",job="a"`, 1, 0) + times(`instance="",job="b"`, 0, 1) + times(`instance="",job="c"`, 0, 1),
		},
		{
			name: "consistency/histogram-suffix-collision",
			steps: []step{
				put("/metrics/job/a", "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", 200),
				put("/metrics/job/b", "h_bucket 1\n", 400).has(inconsistent),
				put("/metrics/job/c", "# TYPE bar_bucket gauge\nbar_bucket 1\n", 200),
				put("/metrics/job/d", "# TYPE bar histogram\nbar_bucket{le=\"+Inf\"} 1\nbar_sum 1\nbar_count 1\n", 400).has(inconsistent),
			},
			want: "# TYPE h histogram\n" + lines(`h_bucket{instance="",job="a",le="+Inf"} 1`, `h_sum{instance="",job="a"} 1`, `h_count{instance="",job="a"} 1`) +
				"# TYPE bar_bucket gauge\n" + `bar_bucket{instance="",job="c"} 1` + "\n" +
				times(`instance="",job="a"`, 1, 0) + times(`instance="",job="b"`, 0, 1) + times(`instance="",job="c"`, 1, 0) + times(`instance="",job="d"`, 0, 1),
		},
		{
			name: "consistency/inconsistent-help-tolerated",
			steps: []step{
				put("/metrics/job/a", "# HELP hh one\nhh 1\n", 200),
				put("/metrics/job/b", "# HELP hh two\nhh 2\n", 200),
				put("/metrics/job/c", "hh 3\n", 200),
			},
			helpAnyOf: map[string][]string{"hh": {"one", "two"}},
			want: "# HELP hh one\n" + lines(`hh{instance="",job="a"} 1`, `hh{instance="",job="b"} 2`, `hh{instance="",job="c"} 3`) +
				times(`instance="",job="a"`, 1, 0) + times(`instance="",job="b"`, 1, 0) + times(`instance="",job="c"`, 1, 0),
		},
		{
			name:  "consistency/check-disabled",
			flags: []string{"--push.disable-consistency-check"},
			steps: []step{
				put("/metrics/job/a", "foo 1\n", 202),
				post("/metrics/job/a", "bar 1\n", 202),
				put("/metrics/job/b", "foo 2\n", 202),
				del("/metrics/job/b", 202),
			},
			want: lines(`foo{instance="",job="a"} 1`, `bar{instance="",job="a"} 1`) + times(`instance="",job="a"`, 1, 0),
		},

		// ---- API ----
		{
			name: "api/status",
			steps: []step{get("/api/v1/status", 200).wantHdr("Content-Type", "application/json").then(func(t testing.TB, _ *gateway, r response) {
				t.Helper()
				var v struct {
					Status string `json:"status"`
					Data   struct {
						BuildInformation map[string]string `json:"build_information"`
						Flags            map[string]string `json:"flags"`
						StartTime        time.Time         `json:"start_time"`
					} `json:"data"`
				}
				if err := json.Unmarshal(r.body, &v); err != nil {
					t.Fatalf("decode status: %v\n%s", err, r.body)
				}
				for _, k := range []string{"version", "revision", "branch", "buildUser", "buildDate", "goVersion"} {
					if _, ok := v.Data.BuildInformation[k]; !ok {
						t.Errorf("build_information lacks %q: %v", k, v.Data.BuildInformation)
					}
				}
				if v.Status != "success" || v.Data.BuildInformation["goVersion"] == "" || v.Data.StartTime.IsZero() ||
					v.Data.Flags["push.disable-consistency-check"] != "false" || v.Data.Flags["web.enable-admin-api"] != "false" ||
					v.Data.Flags["web.telemetry-path"] != "/metrics" || !strings.HasPrefix(v.Data.Flags["web.listen-address"], "127.0.0.1:") {
					t.Errorf("unexpected status answer: %+v", v)
				}
				if time.Since(v.Data.StartTime) > time.Minute || time.Until(v.Data.StartTime) > time.Minute {
					t.Errorf("start_time %v is not now", v.Data.StartTime)
				}
			})},
			noFinal: true,
		},
		{
			name: "api/metrics",
			steps: []step{
				put("/metrics/job/api/a/b", lines(
					"# HELP c a counter", "# TYPE c counter", `c{l="v"} 3`,
					"# TYPE g gauge", "g 1.5",
					"# HELP s a summary", "# TYPE s summary", `s{quantile="0.5"} 2`, `s{quantile="0.9"} 3`, "s_sum 10", "s_count 4",
					"# TYPE h histogram", `h_bucket{le="1"} 1`, `h_bucket{le="+Inf"} 2`, "h_sum 3", "h_count 2",
					"u 7",
				), 200),
				put("/metrics/job/bad", "foo 1 5\n", 400),
				get("/api/v1/metrics", 200).wantHdr("Content-Type", "application/json").wantHdr("Access-Control-Allow-Origin", "*").
					then(jsonEquals(apiMetricsWant)),
			},
			noFinal: true,
		},
		{
			name: "api/cors",
			steps: []step{
				req(http.MethodOptions, "/api/v1/metrics", "", 200).wantHdr("Access-Control-Allow-Origin", "*").
					wantHdr("Access-Control-Allow-Methods", "GET").wantHdr("Access-Control-Allow-Headers", "Content-Type"),
				get("/api/v1/status", 200).wantHdr("Access-Control-Allow-Origin", "*"),
			},
			noFinal: true,
		},
		{
			name: "api/wipe-disabled",
			steps: []step{
				put("/metrics/job/j", "foo 1\n", 200),
				put("/api/v1/admin/wipe", "", 404),
				post("/api/v1/admin/wipe", "", 404),
			},
			want: `foo{instance="",job="j"} 1` + "\n" + times(job, 1, 0),
		},
		{
			name:  "api/wipe-enabled",
			flags: []string{"--web.enable-admin-api"},
			steps: []step{
				put("/metrics/job/j", "foo 1\n", 200),
				put("/metrics/job/k/instance/i", "foo 1\n", 200),
				get("/api/v1/admin/wipe", 405),
				post("/api/v1/admin/wipe", "", 405),
				put("/api/v1/admin/wipe", "", 202),
				put("/metrics/job/m", "bar 1\n", 200),
			},
			want: `bar{instance="",job="m"} 1` + "\n" + times(`instance="",job="m"`, 1, 0),
		},
		{
			name: "health-and-ready",
			steps: []step{
				get("/-/healthy", 200),
				get("/-/ready", 200),
			},
			noFinal: true,
		},
		{
			name: "lifecycle-disabled",
			steps: []step{
				put("/-/quit", "", 403).has("Lifecycle API is not enabled."),
				post("/-/quit", "", 403).has("Lifecycle API is not enabled."),
				get("/-/quit", 405),
				get("/-/healthy", 200),
			},
			noFinal: true,
		},
		{
			name:  "lifecycle-enabled",
			flags: []string{"--web.enable-lifecycle"},
			steps: []step{
				get("/-/quit", 405),
				put("/-/quit", "", 200).exiting().then(func(t testing.TB, g *gateway, _ response) {
					t.Helper()
					if err := g.waitExit(10 * time.Second); err != nil {
						t.Error(err)
					}
				}),
			},
			noFinal: true,
		},

		// ---- route prefix ----
		{
			name:  "route-prefix",
			flags: []string{"--web.route-prefix=/pg"},
			steps: []step{
				put("/pg/metrics/job/j", "foo 1\n", 200),
				put("/metrics/job/k", "foo 1\n", 404),
				get("/metrics", 404),
				get("/-/ready", 404),
				get("/pg/-/ready", 200),
				get("/pg/api/v1/status", 200).has(`"web.route-prefix":"/pg"`),
				get("/pg/api/v1/metrics", 200).has(`"job":"j"`),
				del("/pg/metrics/job/nope", 202),
			},
			want: `foo{instance="",job="j"} 1` + "\n" + times(job, 1, 0),
		},
		{
			name:  "external-url",
			flags: []string{"--web.external-url=http://{addr}/pg/"},
			steps: []step{
				put("/pg/metrics/job/j", "foo 1\n", 200),
				put("/metrics/job/k", "foo 1\n", 404),
				get("/pg/-/healthy", 200),
				get("/pg/api/v1/status", 200).has(`"web.route-prefix":"/pg"`),
			},
			want: `foo{instance="",job="j"} 1` + "\n" + times(job, 1, 0),
		},

		// ---- scrape ----
		{
			name: "scrape/protobuf",
			steps: []step{
				put("/metrics/job/j", "foo 1\n", 200),
				get("/metrics", 200).hdr("Accept", protoDelimCT).then(func(t testing.TB, _ *gateway, r response) {
					t.Helper()
					mediaType("application/vnd.google.protobuf", "")(t, nil, r)
					_, params, _ := mime.ParseMediaType(r.header.Get("Content-Type"))
					if params["encoding"] != "delimited" || params["proto"] != "io.prometheus.client.MetricFamily" {
						t.Errorf("Content-Type = %q", r.header.Get("Content-Type"))
					}
					dec := expfmt.NewDecoder(bytes.NewReader(r.body), expfmt.NewFormat(expfmt.TypeProtoDelim))
					mfs := map[string]*dto.MetricFamily{}
					for {
						mf := &dto.MetricFamily{}
						if err := dec.Decode(mf); err == io.EOF {
							break
						} else if err != nil {
							t.Fatalf("decode protobuf scrape: %v", err)
						}
						mfs[mf.GetName()] = mf
					}
					want := normalizeExpected(t, `foo{instance="",job="j"} 1`+"\n"+times(job, 1, 0), nil)
					if got := normalize(mfs, nil); got != want {
						t.Errorf("protobuf scrape differs:\n%s", diffLines(want, got))
					}
				}),
			},
			want: `foo{instance="",job="j"} 1` + "\n" + times(job, 1, 0),
		},
		{
			name: "scrape/prometheus-default-accept",
			steps: []step{
				get("/metrics", 200).hdr("Accept", prometheus3Accept).then(mediaType("text/plain", "0.0.4")),
				get("/metrics", 200).then(mediaType("text/plain", "0.0.4")),
				get("/metrics", 200).hdr("Accept", "text/plain").then(mediaType("text/plain", "0.0.4")),
			},
			noFinal: true,
		},
		{
			name: "scrape/gzip",
			steps: []step{
				put("/metrics/job/j", "foo 1\n", 200),
				get("/metrics", 200).hdr("Accept-Encoding", "gzip").wantHdr("Content-Encoding", "gzip").then(func(t testing.TB, _ *gateway, r response) {
					t.Helper()
					zr, err := gzip.NewReader(bytes.NewReader(r.body))
					if err != nil {
						t.Fatalf("gzip scrape: %v", err)
					}
					b, err := io.ReadAll(zr)
					if err != nil {
						t.Fatalf("gzip scrape: %v", err)
					}
					if !bytes.Contains(b, []byte(`foo{instance="",job="j"} 1`)) {
						t.Errorf("gzip scrape lacks foo:\n%s", b)
					}
				}),
				get("/metrics", 200).wantHdr("Content-Encoding", ""),
			},
			want: `foo{instance="",job="j"} 1` + "\n" + times(job, 1, 0),
		},
		{
			name:    "scrape/openmetrics-only-accept",
			refDiff: "pushgate serves OpenMetrics to a client accepting only OpenMetrics; the reference answers the text format",
			steps: []step{
				put("/metrics/job/j", "# TYPE foo counter\nfoo 1\n", 200),
				get("/metrics", 200).hdr("Accept", "application/openmetrics-text; version=1.0.0").
					then(func(t testing.TB, g *gateway, r response) {
						t.Helper()
						mediaType("application/openmetrics-text", "1.0.0")(t, g, r)
						if !bytes.HasSuffix(r.body, []byte("# EOF\n")) {
							t.Errorf("OpenMetrics answer does not end with # EOF:\n%s", truncate(string(r.body), 2000))
						}
					}).
					refIs(expect{status: 200, check: mediaType("text/plain", "0.0.4")}),
				get("/metrics", 200).hdr("Accept", prometheus3Accept).then(mediaType("text/plain", "0.0.4")),
			},
			want: "# TYPE foo counter\n" + `foo{instance="",job="j"} 1` + "\n" + times(job, 1, 0),
		},
	}
}

// apiMetricsWant is the /api/v1/metrics answer for the api/metrics case, with
// time stamps masked and push times reduced to zero/non-zero.
const apiMetricsWant = `{"status":"success","data":[
 {"labels":{"job":"api","a":"b"},"last_push_successful":true,
  "c":{"time_stamp":"<ts>","type":"COUNTER","help":"a counter","metrics":[{"labels":{"a":"b","instance":"","job":"api","l":"v"},"value":"3"}]},
  "g":{"time_stamp":"<ts>","type":"GAUGE","metrics":[{"labels":{"a":"b","instance":"","job":"api"},"value":"1.5"}]},
  "h":{"time_stamp":"<ts>","type":"HISTOGRAM","metrics":[{"labels":{"a":"b","instance":"","job":"api"},"buckets":{"+Inf":"2","1":"1"},"count":"2","sum":"3"}]},
  "s":{"time_stamp":"<ts>","type":"SUMMARY","help":"a summary","metrics":[{"labels":{"a":"b","instance":"","job":"api"},"quantiles":{"0.5":"2","0.9":"3"},"count":"4","sum":"10"}]},
  "u":{"time_stamp":"<ts>","type":"UNTYPED","metrics":[{"labels":{"a":"b","instance":"","job":"api"},"value":"7"}]},
  "push_time_seconds":{"time_stamp":"<ts>","type":"GAUGE","help":"Last Unix time when changing this group in the Pushgateway succeeded.","metrics":[{"labels":{"a":"b","instance":"","job":"api"},"value":"<nonzero>"}]},
  "push_failure_time_seconds":{"time_stamp":"<ts>","type":"GAUGE","help":"Last Unix time when changing this group in the Pushgateway failed.","metrics":[{"labels":{"a":"b","instance":"","job":"api"},"value":"0"}]}
 },
 {"labels":{"job":"bad"},"last_push_successful":false,
  "push_time_seconds":{"time_stamp":"<ts>","type":"GAUGE","help":"Last Unix time when changing this group in the Pushgateway succeeded.","metrics":[{"labels":{"instance":"","job":"bad"},"value":"0"}]},
  "push_failure_time_seconds":{"time_stamp":"<ts>","type":"GAUGE","help":"Last Unix time when changing this group in the Pushgateway failed.","metrics":[{"labels":{"instance":"","job":"bad"},"value":"<nonzero>"}]}
 }
]}`

// jsonEquals compares a /api/v1/metrics answer with want after masking
// time stamps and push times, and ignoring the order of groups.
func jsonEquals(want string) func(testing.TB, *gateway, response) {
	return func(t testing.TB, _ *gateway, r response) {
		t.Helper()
		var got, exp any
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatalf("decode answer: %v\n%s", err, r.body)
		}
		if err := json.Unmarshal([]byte(want), &exp); err != nil {
			t.Fatalf("bad expected JSON in test: %v", err)
		}
		got = maskAPI(got, "")
		sortGroups(got)
		sortGroups(exp)
		if !reflect.DeepEqual(got, exp) {
			g, _ := json.MarshalIndent(got, "", " ")
			e, _ := json.MarshalIndent(exp, "", " ")
			t.Errorf("API answer differs:\n%s", diffLines(string(e), string(g)))
		}
	}
}

// maskAPI replaces time_stamp values with "<ts>" and non-zero push time
// values with "<nonzero>"; family is the enclosing family name.
func maskAPI(v any, family string) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			switch {
			case k == "time_stamp":
				x[k] = "<ts>"
			case k == "value" && (family == pushTimeName || family == pushFailureTimeName) && e != "0":
				x[k] = "<nonzero>"
			case k == pushTimeName || k == pushFailureTimeName:
				x[k] = maskAPI(e, k)
			default:
				x[k] = maskAPI(e, family)
			}
		}
	case []any:
		for i, e := range x {
			x[i] = maskAPI(e, family)
		}
	}
	return v
}

func sortGroups(v any) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	groups, ok := m["data"].([]any)
	if !ok {
		return
	}
	key := func(g any) string { b, _ := json.Marshal(g.(map[string]any)["labels"]); return string(b) }
	for i := range groups {
		for j := i + 1; j < len(groups); j++ {
			if key(groups[j]) < key(groups[i]) {
				groups[i], groups[j] = groups[j], groups[i]
			}
		}
	}
}

func TestCompat(t *testing.T) {
	t.Parallel()
	for _, c := range slices.Concat(compatCases(), errorCases(), limitCases()) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, kind := range []gatewayKind{reference, subject} {
				t.Run(kind.String(), func(t *testing.T) {
					t.Parallel()
					runCompatCase(t, c, kind)
				})
			}
		})
	}
}

func runCompatCase(t *testing.T, c compatCase, kind gatewayKind) {
	isRef := kind == reference && c.refDiff != ""
	bin := subjectBin
	if kind == reference {
		bin = referenceBin
	}
	// A reference as the subject (PUSHGATE_BIN) is judged by its version too.
	isLegacy := c.legacy != "" && isReferenceBinary(bin) && binInfo(bin).legacy
	if isLegacy {
		t.Logf("reference before v1.11: %s", c.legacy)
	}
	if isRef {
		t.Logf("intentional difference: %s", c.refDiff)
		if c.refSkip {
			t.Skipf("reference not run: %s", c.refDiff)
		}
	}
	g := startGateway(t, kind, c.flags...)
	for i, s := range c.steps {
		var r response
		if s.exits && kind == reference {
			var err error
			if r, err = g.tryDo(s.method, s.path, s.header, s.body); err != nil {
				t.Logf("%s %s: answer lost as the reference exited: %v", s.method, s.path, err)
				if err := g.waitExit(10 * time.Second); err != nil {
					t.Error(err)
				}
				continue
			}
		} else {
			r = g.do(t, s.method, s.path, s.header, s.body)
		}
		e := s.expect
		switch {
		case isRef && s.ref != nil:
			e = *s.ref
		case isLegacy && s.old != nil:
			e = *s.old
		}
		if e.status == statusCleanRedirect {
			e.status = http.StatusTemporaryRedirect
			if isReferenceBinary(bin) {
				e.status = binInfo(bin).redirect
			}
		}
		desc := func() string {
			return fmt.Sprintf("%s %s (step %d)", s.method, s.path, i)
		}
		if r.status != e.status {
			t.Fatalf("%s: got %s, want status %d", desc(), r, e.status)
		}
		for _, sub := range append([]string{e.contains}, e.all...) {
			if sub != "" && !strings.Contains(string(r.body), sub) {
				t.Errorf("%s: body %q does not contain %q", desc(), truncate(string(r.body), 1000), sub)
			}
		}
		if len(e.anyOf) > 0 && !slices.ContainsFunc(e.anyOf, func(sub string) bool { return strings.Contains(string(r.body), sub) }) {
			t.Errorf("%s: body %q contains none of %q", desc(), truncate(string(r.body), 1000), e.anyOf)
		}
		for k, v := range e.headers {
			got := r.header.Get(k)
			if (v == "" && got != "") || !strings.Contains(got, v) {
				t.Errorf("%s: header %s = %q, want %q", desc(), k, got, v)
			}
		}
		if e.check != nil {
			e.check(t, g, r)
		}
	}
	if c.noFinal {
		return
	}
	want := c.want
	if isLegacy {
		if c.legacyWant == nil {
			t.Logf("final exposition of the reference before v1.11 not checked: %s", c.legacy)
			return
		}
		want = *c.legacyWant
	}
	if isRef {
		if c.refWant == nil {
			t.Logf("final exposition of the reference not checked: %s", c.refDiff)
			return
		}
		want = *c.refWant
	}
	opts := &normOpts{helpAnyOf: c.helpAnyOf}
	exp := normalizeExpected(t, want, opts)
	if got := g.waitPushed(t, exp, opts); got != exp {
		t.Errorf("final exposition differs (- want, + got):\n%s\ngot:\n%s", diffLines(exp, got), got)
	}
}
