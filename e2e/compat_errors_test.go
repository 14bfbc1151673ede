package e2e

import (
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// errorCases pin the wording of every rejection the reference answers:
// scripts and alerts written against the reference look for its text, so
// pushgate's one-line error must contain it (pushgate may add detail).
//
// Where the reference quotes a series, it prints it in protobuf text form
// ({ label:{name:"job" value:"j"} gauge:{value:1}}, with whitespace that
// varies by version and on purpose); pushgate prints {job="j"} there, so the
// cases match the words before and after it. Where the reference's answer
// depends on its map order (which of two colliding families it gathered
// first), a case accepts either of its two messages.
func errorCases() []compatCase {
	const protoCT = protoDelimCT
	gaugeFamily := func(name string, m *dto.Metric) []byte {
		return protoBody(&dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{m}})
	}
	return []compatCase{
		{
			name: "errors/url",
			steps: []step{
				put("/metrics/job/j/a", "foo 1\n", 400).has(`odd number of components in label string "/a"`),
				del("/metrics/job/j/a/b/c", 400).has(`odd number of components in label string "/a/b/c"`),
				put("/metrics/job/j/1a/b", "foo 1\n", 400).has(`improper label name "1a"`),
				post("/metrics/job/j/__x/b", "foo 1\n", 400).has(`improper label name "__x"`),
				put("/metrics/job/j/p@base64/!!", "foo 1\n", 400).has(`invalid base64 encoding for label p="!!": illegal base64 data at input byte 0`),
				put("/metrics/job@base64/=", "foo 1\n", 400).has("job name is required"),
				del("/metrics/job@base64/=/a/b", 400).has("job name is required"),
				// The reference quotes what it decoded before the bad byte.
				// Last, and once per method: v1.5's handler hangs after it
				// (see url/invalid-base64-job-does-not-wedge-the-handler).
				del("/metrics/job@base64/Zm9v!", 400).has(`invalid base64 encoding in job name "foo": illegal base64 data at input byte 4`),
				put("/metrics/job@base64/!!", "foo 1\n", 400).has(`invalid base64 encoding in job name "": illegal base64 data at input byte 0`),
			},
			noFinal: true,
		},
		{
			name: "errors/text-body",
			steps: []step{
				put("/metrics/job/j", "foo 1", 400).has("text format parsing error in line 1: unexpected end of input stream"),
				put("/metrics/job/j", "foo x\n", 400).has(`text format parsing error in line 1: expected float as value, got "x"`),
				put("/metrics/job/j", "1foo 1\n", 400).has("text format parsing error in line 1: invalid metric name"),
				put("/metrics/job/j", `foo{a="1",a="2"} 1`+"\n", 400).has(`text format parsing error in line 1: duplicate label names for metric "foo"`),
				put("/metrics/job/j", "# TYPE foo gauge\n# TYPE foo gauge\nfoo 1\n", 400).
					has(`text format parsing error in line 2: second TYPE line for metric name "foo", or TYPE reported after samples`),
				put("/metrics/job/j", "# HELP foo a\n# HELP foo b\nfoo 1\n", 400).has(`text format parsing error in line 2: second HELP line for metric name "foo"`),
				put("/metrics/job/j", "# TYPE foo bogus\nfoo 1\n", 400).has(`text format parsing error in line 1: unknown metric type "bogus"`),
				put("/metrics/job/j", "foo{a=\"\xff\"} 1\n", 400).has(`text format parsing error in line 1: invalid label value "\xff"`),
				post("/metrics/job/j", "foo 1 123\n", 400).has(inconsistent + "pushed metrics must not have timestamps"),
			},
			noFinal: true,
		},
		{
			name: "errors/encoded-body",
			steps: []step{
				put("/metrics/job/j", "", 400).bytes([]byte("\x05abc")).hdr("Content-Type", protoCT).has("unexpected EOF"),
				put("/metrics/job/j", "", 400).bytes([]byte("garbage")).hdr("Content-Type", protoCT).has("unexpected EOF"),
				put("/metrics/job/j", "foo 1\n", 400).hdr("Content-Encoding", "gzip").has("unexpected EOF"),
				put("/metrics/job/j", "foo 1\nbar 2\nbaz 3\n", 400).hdr("Content-Encoding", "gzip").has("gzip: invalid header"),
			},
			noFinal: true,
		},
		{
			name: "errors/type-conflict-with-own-metric",
			steps: []step{
				put("/metrics/job/a", "# TYPE go_goroutines counter\ngo_goroutines 1\n", 400).
					has(inconsistent + "gathered metric family go_goroutines has type COUNTER but should have GAUGE"),
				put("/metrics/job/a", "go_goroutines 1\n", 400).
					has(inconsistent + "gathered metric family go_goroutines has type UNTYPED but should have GAUGE"),
				post("/metrics/job/a", "# TYPE process_cpu_seconds_total gauge\nprocess_cpu_seconds_total 1\n", 400).
					has(inconsistent + "gathered metric family process_cpu_seconds_total has type GAUGE but should have COUNTER"),
				// A HELP of its own is tolerated: the gateway's wins.
				put("/metrics/job/b", "# HELP go_goroutines mine\n# TYPE go_goroutines gauge\ngo_goroutines 7\n", 200),
			},
			noFinal: true,
		},
		{
			name: "errors/type-conflict-across-groups",
			steps: []step{
				put("/metrics/job/a", "# TYPE foo counter\nfoo 1\n", 200),
				put("/metrics/job/b", "# TYPE foo gauge\nfoo 1\n", 400).
					hasAll(inconsistent+`collected metric "foo" `).hasAnyOf("} is not a COUNTER", "} is not a GAUGE"),
			},
			noFinal: true,
		},
		{
			name: "errors/duplicate-series",
			steps: []step{
				put("/metrics/job/j", `m{a="1"} 1`+"\n"+`m{a="1"} 2`+"\n", 400).
					hasAll(inconsistent+`collected metric "m" `, "} was collected before with the same name and label values"),
				put("/metrics/job/a", `dup{x="1"} 1`+"\n", 200),
				put("/metrics/job/a/x/1", "dup 1\n", 400).
					hasAll(inconsistent+`collected metric "dup" `, "} was collected before with the same name and label values"),
			},
			noFinal: true,
		},
		{
			name: "errors/invalid-label-name-in-body",
			steps: []step{
				put("/metrics/job/j", `m{__x="y"} 1`+"\n", 400).
					hasAll(inconsistent+`collected metric "m" `, "} has a label with an invalid name: __x"),
			},
			noFinal: true,
		},
		{
			name: "errors/protobuf-duplicate-label-name",
			steps: []step{
				put("/metrics/job/j", "", 400).hdr("Content-Type", protoCT).
					bytes(gaugeFamily("m", &dto.Metric{Label: []*dto.LabelPair{lp("a", "1"), lp("a", "2")}, Gauge: &dto.Gauge{Value: proto.Float64(1)}})).
					hasAll(inconsistent+`collected metric "m" `, "} has two or more labels with the same name: a"),
			},
			noFinal: true,
		},
		{
			name: "errors/protobuf-explicit-quantile-label",
			steps: []step{
				put("/metrics/job/j", "", 400).hdr("Content-Type", protoCT).
					bytes(protoBody(&dto.MetricFamily{Name: proto.String("s"), Type: dto.MetricType_SUMMARY.Enum(), Metric: []*dto.Metric{{
						Label:   []*dto.LabelPair{lp("quantile", "0.5")},
						Summary: &dto.Summary{SampleCount: proto.Uint64(1), SampleSum: proto.Float64(1)},
					}}})).
					hasAll(inconsistent+`collected metric "s" `, `} must not have an explicit "quantile" label`),
			},
			noFinal: true,
		},
		{
			name: "errors/protobuf-value-of-another-type",
			steps: []step{
				put("/metrics/job/j", "", 400).hdr("Content-Type", protoCT).
					bytes(gaugeFamily("m", &dto.Metric{Counter: &dto.Counter{Value: proto.Float64(1)}})).
					hasAll(inconsistent+`collected metric "m" `, "} is not a GAUGE"),
			},
			noFinal: true,
		},
		{
			name: "errors/protobuf-label-value-not-utf8",
			steps: []step{
				put("/metrics/job/j", "", 400).hdr("Content-Type", protoCT).
					bytes(gaugeFamily("m", &dto.Metric{Label: []*dto.LabelPair{lp("a", "\xff")}, Gauge: &dto.Gauge{Value: proto.Float64(1)}})).
					hasAll(inconsistent+`collected metric "m" `, `} has a label named "a" whose value is not utf8: "\xff"`),
			},
			noFinal: true,
		},
		{
			name: "errors/suffix-collisions",
			steps: []step{
				put("/metrics/job/a", "# TYPE s summary\ns_sum 1\ns_count 1\n", 200),
				put("/metrics/job/b", "# TYPE s_count gauge\ns_count 1\n", 400).hasAll(inconsistent).hasAnyOf(
					`collected metric named "s_count" collides with previously collected summary named "s"`,
					`collected histogram or summary named "s" collides with previously collected metric named "s_count"`),
				put("/metrics/job/c", "s_sum 1\n", 400).hasAll(inconsistent).hasAnyOf(
					`collected metric named "s_sum" collides with previously collected summary named "s"`,
					`collected histogram or summary named "s" collides with previously collected metric named "s_sum"`),
				put("/metrics/job/a", "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", 200),
				put("/metrics/job/b", "h_bucket 1\n", 400).hasAll(inconsistent).hasAnyOf(
					`collected metric named "h_bucket" collides with previously collected histogram named "h"`,
					`collected histogram named "h" collides with previously collected metric named "h_bucket"`),
				put("/metrics/job/c", "# TYPE x_count gauge\nx_count 1\n# TYPE bb_bucket gauge\nbb_bucket 1\n", 200),
				put("/metrics/job/d", "# TYPE x summary\nx_sum 1\nx_count 1\n", 400).hasAll(inconsistent).hasAnyOf(
					`collected histogram or summary named "x" collides with previously collected metric named "x_count"`,
					`collected metric named "x_count" collides with previously collected summary named "x"`),
				put("/metrics/job/d", "# TYPE bb histogram\nbb_bucket{le=\"+Inf\"} 1\nbb_sum 1\nbb_count 1\n", 400).hasAll(inconsistent).hasAnyOf(
					`collected histogram named "bb" collides with previously collected metric named "bb_bucket"`,
					`collected metric named "bb_bucket" collides with previously collected histogram named "bb"`),
				// The gateway's own summaries are gathered first, so this
				// one is worded one way only.
				put("/metrics/job/d", "# TYPE go_gc_duration_seconds_count gauge\ngo_gc_duration_seconds_count 1\n", 400).
					has(inconsistent + `collected metric named "go_gc_duration_seconds_count" collides with previously collected summary named "go_gc_duration_seconds"`),
			},
			noFinal: true,
		},
	}
}
