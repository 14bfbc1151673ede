package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// The differential test sends one deterministic pseudo-random sequence of
// PUT/POST/DELETE requests to the reference and to the subject in lockstep
// and compares every status code and, periodically, the pushed exposition.
//
// The generator stays clear of the documented intentional differences (see
// compat_test.go):
//   - no grouping key with instance="" (no /instance/ with an empty value),
//     so a rejected push can never collide with another group only via
//     instance="" (the reference's 500-on-scrape defect);
//   - bodies are text or protobuf, never OpenMetrics, never snappy;
//   - no base64 job without labels after an invalid base64 job (the
//     reference wedges that route), no non-UTF-8 label values.
// HELP is not compared for families pushed with different HELP strings by
// different groups: which one the exposition shows is not specified.

const (
	diffSteps        = 300
	diffCompareEvery = 20
)

// diffSeeds are the sequences run by default; E2E_DIFF_SEED replaces them
// with one seed to explore or reproduce another sequence.
func diffSeeds(t testing.TB) []uint64 {
	if s := os.Getenv("E2E_DIFF_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("E2E_DIFF_SEED: %v", err)
		}
		return []uint64{n}
	}
	return []uint64{1, 2, 3}
}

// Grouping keys: overlapping label sets, so that body labels and other
// groups' series collide now and then.
var diffGroups = []string{
	"/metrics/job/a",
	"/metrics/job/a/instance/i1",
	"/metrics/job/a/x/1",
	"/metrics/job/b/instance/i1",
	"/metrics/job/b/instance/i2/x/1",
	"/metrics/job@base64/Yi9j/instance/i1", // job "b/c"
	"/metrics/job/c/path@base64/L3Zhci90bXA",
}

// diffFamily renders one family with value v. Several entries share a name
// with another type, HELP, or a summary/histogram suffix, so some pushes are
// rejected.
var diffFamilies = []func(v int) string{
	func(v int) string { return fmt.Sprintf("# TYPE foo counter\nfoo %d\n", v) },
	func(v int) string {
		return fmt.Sprintf("# TYPE foo counter\nfoo{x=\"1\"} %d\nfoo{x=\"2\"} %d\n", v, v+1)
	},
	func(v int) string { return fmt.Sprintf("# TYPE foo gauge\nfoo %d\n", v) },
	func(v int) string { return fmt.Sprintf("# HELP bar help one\n# TYPE bar gauge\nbar %d\n", v) },
	func(v int) string { return fmt.Sprintf("# HELP bar help two\n# TYPE bar gauge\nbar{y=\"z\"} %d\n", v) },
	func(v int) string {
		return fmt.Sprintf("# HELP s a summary\n# TYPE s summary\ns{quantile=\"0.5\"} %d\ns_sum %d\ns_count %d\n", v, 2*v, v+1)
	},
	func(v int) string { return fmt.Sprintf("# TYPE s_count gauge\ns_count %d\n", v) },
	func(v int) string {
		return fmt.Sprintf("# TYPE h histogram\nh_bucket{le=\"1\"} %d\nh_bucket{le=\"+Inf\"} %d\nh_sum %d\nh_count %d\n", v, v+1, v, v+1)
	},
	func(v int) string { return fmt.Sprintf("h_bucket %d\n", v) },
	func(v int) string { return fmt.Sprintf("baz{instance=\"i1\"} %d\n", v) },
	func(v int) string { return fmt.Sprintf("baz{x=\"1\"} %d\n", v) },
	func(v int) string { return fmt.Sprintf("qux %d\nqux %d\n", v, v) }, // duplicate series
	func(v int) string { return fmt.Sprintf("ts %d 1234567\n", v) },     // timestamp
	func(v int) string { return fmt.Sprintf("# TYPE go_goroutines gauge\ngo_goroutines %d\n", v) },
	func(v int) string {
		return fmt.Sprintf("# TYPE process_start_time_seconds counter\nprocess_start_time_seconds %d\n", v)
	},
}

// diffHelpVaries lists families that the pool pushes with different HELP.
var diffHelpVaries = map[string]bool{"bar": true}

type diffRequest struct {
	method string
	path   string
	header map[string]string
	body   []byte
	text   string // the body as text, for messages
}

func (r diffRequest) String() string {
	return fmt.Sprintf("%s %s %v\n%s", r.method, r.path, r.header, r.text)
}

func genDiffRequests(seed uint64, n int) []diffRequest {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]diffRequest, 0, n)
	for range n {
		r := diffRequest{path: diffGroups[rng.IntN(len(diffGroups))]}
		switch p := rng.IntN(10); {
		case p < 2:
			r.method = http.MethodDelete
			out = append(out, r)
			continue
		case p < 6:
			r.method = http.MethodPut
		default:
			r.method = http.MethodPost
		}
		var sb strings.Builder
		if rng.IntN(12) > 0 { // sometimes an empty body
			used := map[int]bool{}
			for range 1 + rng.IntN(3) {
				i := rng.IntN(len(diffFamilies))
				// The same family twice in one text body would be a parse
				// error; keep bodies parseable.
				if used[i] {
					continue
				}
				used[i] = true
				sb.WriteString(diffFamilies[i](rng.IntN(100)))
			}
		}
		r.text = sb.String()
		r.body = []byte(r.text)
		if rng.IntN(4) == 0 {
			if b, ok := textToProto(r.text); ok {
				r.body = b
				r.header = map[string]string{"Content-Type": protoDelimCT}
			}
		}
		out = append(out, r)
	}
	return out
}

// textToProto re-encodes a text body as delimited protobuf; false if the
// text does not parse (then the text body is sent).
func textToProto(text string) ([]byte, bool) {
	mfs, err := parseText([]byte(text))
	if err != nil {
		return nil, false
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeProtoDelim))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return nil, false
		}
	}
	return b.Bytes(), true
}

func TestDifferential(t *testing.T) {
	t.Parallel()
	for _, seed := range diffSeeds(t) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			runDifferential(t, seed)
		})
	}
}

func runDifferential(t *testing.T, seed uint64) {
	ref := startGateway(t, reference)
	sub := startGateway(t, subject)
	reqs := genDiffRequests(seed, diffSteps)
	opts := &normOpts{ignoreHelp: diffHelpVaries}
	codes := map[int]int{}
	for i, r := range reqs {
		ra, err := ref.tryDo(r.method, r.path, r.header, r.body)
		if err != nil {
			t.Fatalf("seed %d step %d: reference: %v\nrequest: %s", seed, i, err, r)
		}
		sa, err := sub.tryDo(r.method, r.path, r.header, r.body)
		if err != nil {
			t.Fatalf("seed %d step %d: subject: %v\nrequest: %s", seed, i, err, r)
		}
		codes[ra.status]++
		if ra.status != sa.status {
			t.Fatalf("seed %d step %d: status differs\nrequest: %s\nreference: %s\nsubject:   %s", seed, i, r, ra, sa)
		}
		if (i+1)%diffCompareEvery == 0 || i == len(reqs)-1 {
			compareExpositions(t, ref, sub, opts, fmt.Sprintf("seed %d after step %d (%s)", seed, i, r))
		}
	}
	final := normalize(scrapeOrFail(t, ref, "end"), opts)
	t.Logf("seed %d: %d requests, status codes %v, final exposition %d lines", seed, len(reqs), codes, strings.Count(final, "\n"))
	// The sequence must exercise both acceptance and rejection.
	if codes[http.StatusOK] == 0 || codes[http.StatusBadRequest] == 0 || codes[http.StatusAccepted] == 0 {
		t.Errorf("generator produced a one-sided sequence: %v", codes)
	}
}

// compareExpositions scrapes both gateways until their pushed expositions
// agree or a deadline passes (the reference applies DELETE after answering
// 202). The deadline is generous: on a loaded CI machine one round of two
// scrapes has taken 0.7 s, and a few rounds must fit.
func compareExpositions(t *testing.T, ref, sub *gateway, opts *normOpts, where string) {
	t.Helper()
	start := time.Now()
	for tries := 1; ; tries++ {
		a := normalize(scrapeOrFail(t, ref, where), opts)
		b := normalize(scrapeOrFail(t, sub, where), opts)
		if a == b {
			return
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%s: expositions still differ after %d scrapes in %v (- reference, + subject):\n%s\nreference:\n%s\nsubject:\n%s",
				where, tries, time.Since(start).Round(time.Millisecond), diffLines(a, b), a, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func scrapeOrFail(t *testing.T, g *gateway, where string) map[string]*dto.MetricFamily {
	t.Helper()
	r, err := g.tryDo(http.MethodGet, g.prefix+"/metrics", nil, nil)
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("%s: scrape %s: %v %v", where, g.name, err, r)
	}
	mfs, err := parseText(r.body)
	if err != nil {
		t.Fatalf("%s: scrape %s: %v", where, g.name, err)
	}
	return mfs
}
