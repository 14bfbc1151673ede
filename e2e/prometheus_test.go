package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// TestPrometheusScrape lets a real Prometheus scrape the subject with
// honor_labels: true (as the Pushgateway README recommends) and checks that
// pushed series arrive with the job/instance labels of their grouping keys.
// Prometheus asks for gzip, so this covers gzip scrapes (the gateway's
// scrape metrics must have counted one): in a text format, and in delimited
// protobuf, which it asks for once native histograms are on; a pushed
// native histogram can only arrive that way.
func TestPrometheusScrape(t *testing.T) {
	t.Parallel()
	requireBinary(t, prometheusBin)
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"text", nil},
		{"protobuf", []string{"--enable-feature=native-histograms"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testPrometheusScrape(t, tc.flags...)
		})
	}
}

func testPrometheusScrape(t *testing.T, promFlags ...string) {
	g := startGateway(t, subject)
	protobuf := len(promFlags) != 0

	for _, p := range []struct{ path, body string }{
		{"/metrics/job/batch1/instance/host-a", "# TYPE e2e_prom_records_total counter\ne2e_prom_records_total{kind=\"x\"} 41\n"},
		{"/metrics/job/batch2", "# TYPE e2e_prom_records_total counter\ne2e_prom_records_total{kind=\"x\"} 7\n"},
	} {
		if r := g.do(t, http.MethodPut, p.path, nil, []byte(p.body)); r.status != http.StatusOK {
			t.Fatalf("PUT %s: %s", p.path, r)
		}
	}
	if protobuf {
		native := &dto.MetricFamily{
			Name: proto.String("e2e_prom_native_seconds"),
			Type: dto.MetricType_HISTOGRAM.Enum(),
			Metric: []*dto.Metric{{Histogram: &dto.Histogram{
				SampleCount:   proto.Uint64(5),
				SampleSum:     proto.Float64(2.5),
				Schema:        proto.Int32(0),
				ZeroThreshold: proto.Float64(1e-128),
				ZeroCount:     proto.Uint64(1),
				PositiveSpan:  []*dto.BucketSpan{{Offset: proto.Int32(0), Length: proto.Uint32(2)}},
				PositiveDelta: []int64{1, 2},
			}}},
		}
		if r := g.do(t, http.MethodPut, "/metrics/job/batch3", map[string]string{"Content-Type": protoDelimCT}, protoBody(native)); r.status != http.StatusOK {
			t.Fatalf("PUT native histogram: %s", r)
		}
	}

	promAddr, prom := startPrometheus(t, g, t.TempDir(), "1m", "", promFlags...)

	want := map[string]string{ // job -> instance
		"batch1": "host-a",
		"batch2": "",
	}
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for {
		if prom.exited() {
			t.Fatalf("prometheus exited early")
		}
		series, err := promQuery(promAddr, "e2e_prom_records_total")
		upSeries, upErr := promQuery(promAddr, `up{job="pushgateway"}`)
		nativeOK, nativeErr := true, error(nil)
		if protobuf {
			var native []promSample
			native, nativeErr = promQuery(promAddr, `histogram_count(e2e_prom_native_seconds{job="batch3"})`)
			nativeOK = len(native) == 1 && native[0].Value[1] == "5"
		}
		if err == nil && upErr == nil && nativeErr == nil {
			got := map[string]string{}
			for _, s := range series {
				if s.Metric["kind"] == "x" {
					got[s.Metric["job"]] = s.Metric["instance"]
				}
			}
			up := len(upSeries) == 1 && upSeries[0].Value[1] == "1"
			if up && nativeOK && len(got) == len(want) && fmt.Sprint(sorted(got)) == fmt.Sprint(sorted(want)) {
				if upSeries[0].Metric["instance"] != g.addr {
					t.Errorf("up has instance %q, want the scrape target %q", upSeries[0].Metric["instance"], g.addr)
				}
				checkGzipScrapes(t, g, protobuf)
				return
			}
			last = fmt.Sprintf("records: %v, up: %v, native histogram arrived: %v", series, upSeries, nativeOK)
		} else {
			last = fmt.Sprintf("query errors: %v, %v, %v", err, upErr, nativeErr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("pushed series did not show up in Prometheus with their grouping labels; want job->instance %v; last answer: %s", want, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// checkGzipScrapes checks, by the gateway's own scrape metrics, that
// Prometheus was answered with gzip, in delimited protobuf if protobuf.
func checkGzipScrapes(t *testing.T, g *gateway, protobuf bool) {
	t.Helper()
	r := g.do(t, http.MethodGet, g.prefix+"/metrics", nil, nil)
	mfs, err := parseText(r.body)
	if err != nil {
		t.Fatalf("scrape the gateway's own metrics: %v", err)
	}
	counts := map[string]uint64{} // format -> gzip scrapes
	for _, m := range mfs["pushgate_scrape_duration_seconds"].GetMetric() {
		if labelValue(m, "encoding") == "gzip" {
			counts[labelValue(m, "format")] += m.GetHistogram().GetSampleCount()
		}
	}
	got := counts["text"] + counts["openmetrics"]
	if protobuf {
		got = counts["protobuf"]
	}
	if got == 0 {
		t.Errorf("no gzip scrape in the expected format (protobuf: %v) counted by the gateway; gzip scrapes by format: %v", protobuf, counts)
	}
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func promQuery(addr, q string) ([]promSample, error) {
	resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	r, err := readAll(resp)
	if err != nil {
		return nil, err
	}
	if r.status != http.StatusOK {
		return nil, fmt.Errorf("query %s: %s", q, r)
	}
	var v struct {
		Status string `json:"status"`
		Data   struct {
			Result []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		return nil, fmt.Errorf("query %s: %w", q, err)
	}
	return v.Data.Result, nil
}

func sorted(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// startPrometheus runs a real Prometheus in dir that scrapes g every second
// with honor_labels, evaluating rules every evalInterval from ruleFile (""
// for none), with extra command-line flags. It returns its address and
// process.
func startPrometheus(t *testing.T, g *gateway, dir, evalInterval, ruleFile string, flags ...string) (string, *process) {
	t.Helper()
	rules := ""
	if ruleFile != "" {
		rules = "rule_files:\n  - " + ruleFile + "\n"
	}
	cfgFile := filepath.Join(dir, "prometheus.yml")
	writeFile(t, cfgFile, fmt.Appendf(nil, `global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: %s
%sscrape_configs:
  - job_name: pushgateway
    honor_labels: true
    metrics_path: %s/metrics
    static_configs:
      - targets: ['%s']
`, evalInterval, rules, g.prefix, g.addr))
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	prom := startProcess(t, "prometheus", prometheusBin, append([]string{
		"--config.file=" + cfgFile,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--log.level=warn",
		"--storage.tsdb.retention.time=1h",
	}, flags...)...)
	return addr, prom
}
