package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"

	"github.com/pushgate/pushgate/internal/testenv"
)

// Real clients push to the subject. (Run the suite with
// PUSHGATE_BIN=/usr/bin/prometheus-pushgateway to check these tests against
// the reference.)

// assertPushed compares the subject's pushed exposition with want.
func assertPushed(t *testing.T, g *gateway, what, want string) {
	t.Helper()
	exp := normalizeExpected(t, want, nil)
	if got := g.waitPushed(t, exp, nil); got != exp {
		t.Fatalf("after %s: exposition differs (- want, + got):\n%s\ngot:\n%s", what, diffLines(exp, got), got)
	}
}

func TestGoClient(t *testing.T) {
	t.Parallel()
	g := startGateway(t, subject)

	counter := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "client_requests_total", Help: "Requests handled."}, []string{"code"})
	counter.WithLabelValues("200").Add(3)
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "client_last_success_unixtime", Help: "Last success."})
	gauge.Set(1234)
	hist := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "client_duration_seconds", Help: "Duration.", Buckets: []float64{0.1, 1}})
	hist.Observe(0.05)
	hist.Observe(0.5)
	summary := prometheus.NewSummary(prometheus.SummaryOpts{Name: "client_size_bytes", Help: "Size.", Objectives: map[float64]float64{0.5: 0.05}})
	for _, v := range []float64{1, 2, 3} {
		summary.Observe(v)
	}

	// "/" in a grouping value makes client_golang base64-encode it.
	pusher := func() *push.Pusher {
		return push.New(g.url(), "gojob").Grouping("instance", "host1").Grouping("path", "/var/tmp")
	}
	const group = `instance="host1",job="gojob",path="/var/tmp"`
	all := lines(
		"# HELP client_requests_total Requests handled.",
		"# TYPE client_requests_total counter",
		`client_requests_total{code="200",`+group+`} 3`,
		"# HELP client_last_success_unixtime Last success.",
		"# TYPE client_last_success_unixtime gauge",
		`client_last_success_unixtime{`+group+`} 1234`,
		"# HELP client_duration_seconds Duration.",
		"# TYPE client_duration_seconds histogram",
		`client_duration_seconds_bucket{`+group+`,le="0.1"} 1`,
		`client_duration_seconds_bucket{`+group+`,le="1"} 2`,
		`client_duration_seconds_bucket{`+group+`,le="+Inf"} 2`,
		`client_duration_seconds_sum{`+group+`} 0.55`,
		`client_duration_seconds_count{`+group+`} 2`,
		"# HELP client_size_bytes Size.",
		"# TYPE client_size_bytes summary",
		`client_size_bytes{`+group+`,quantile="0.5"} 2`,
		`client_size_bytes_sum{`+group+`} 6`,
		`client_size_bytes_count{`+group+`} 3`,
	)

	if err := pusher().Collector(counter).Collector(gauge).Collector(hist).Collector(summary).Push(); err != nil {
		t.Fatalf("Push: %v", err)
	}
	assertPushed(t, g, "Push", all+times(group, 1, 0))

	// Add (POST) replaces only the gauge.
	gauge.Set(5678)
	if err := pusher().Collector(gauge).Add(); err != nil {
		t.Fatalf("Add: %v", err)
	}
	assertPushed(t, g, "Add", strings.Replace(all, "} 1234", "} 5678", 1)+times(group, 1, 0))

	// Push (PUT) replaces the whole group.
	if err := pusher().Collector(counter).Push(); err != nil {
		t.Fatalf("second Push: %v", err)
	}
	assertPushed(t, g, "second Push", lines(
		"# HELP client_requests_total Requests handled.",
		"# TYPE client_requests_total counter",
		`client_requests_total{code="200",`+group+`} 3`,
	)+times(group, 1, 0))

	// A rejected push: the gateway's error reaches the caller.
	bad := prometheus.NewGauge(prometheus.GaugeOpts{Name: "client_requests_total", Help: "Requests handled."})
	if err := push.New(g.url(), "otherjob").Collector(bad).Push(); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("Push of a gauge clashing with a counter: error %v, want status 400", err)
	}

	if err := pusher().Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := push.New(g.url(), "otherjob").Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	assertPushed(t, g, "Delete", "")
}

func TestPythonClient(t *testing.T) {
	t.Parallel()
	requirePythonModule(t, "prometheus_client")
	g := startGateway(t, subject)
	script, err := filepath.Abs("testdata/python_client.py")
	if err != nil {
		t.Fatal(err)
	}
	run := func(step string) {
		t.Helper()
		cmd := exec.Command(pythonBin, script, g.url(), step)
		cmd.Env = append(os.Environ(), "PROMETHEUS_DISABLE_CREATED_SERIES=true")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("python %s: %v\n%s", step, err, out)
		}
	}
	// The client sends "a b" as "a+b" (quote_plus); in a URL path "+" is
	// literal, so that is the label value.
	const group = `instance="py-host",job="pyjob",path="/var/tmp",team="a+b"`
	all := lines(
		"# HELP py_requests_total Requests handled.",
		"# TYPE py_requests_total counter",
		`py_requests_total{code="200",`+group+`} 3`,
		`py_requests_total{code="500",`+group+`} 1`,
		"# HELP py_last_success_unixtime Last success.",
		"# TYPE py_last_success_unixtime gauge",
		`py_last_success_unixtime{`+group+`} 1234`,
		"# HELP py_duration_seconds Duration.",
		"# TYPE py_duration_seconds histogram",
		`py_duration_seconds_bucket{`+group+`,le="0.1"} 1`,
		`py_duration_seconds_bucket{`+group+`,le="1"} 2`,
		`py_duration_seconds_bucket{`+group+`,le="+Inf"} 2`,
		`py_duration_seconds_sum{`+group+`} 0.55`,
		`py_duration_seconds_count{`+group+`} 2`,
		"# HELP py_size_bytes Size.",
		"# TYPE py_size_bytes summary",
		`py_size_bytes_sum{`+group+`} 10`,
		`py_size_bytes_count{`+group+`} 1`,
	)
	run("push")
	assertPushed(t, g, "push_to_gateway", all+times(group, 1, 0))
	run("scrape")
	run("pushadd")
	assertPushed(t, g, "pushadd_to_gateway", strings.Replace(all, "} 1234", "} 5678", 1)+times(group, 1, 0))
	run("delete")
	assertPushed(t, g, "delete_from_gateway", "")
}

func TestCurlCronScript(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"sh", "curl", "gzip"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, "%s not found on PATH", tool)
		}
	}
	g := startGateway(t, subject)
	cmd := exec.Command("sh", "testdata/cron_push.sh", g.url())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cron_push.sh: %v\n%s", err, out)
	}
	const backup = `instance="db1",job="nightly_backup"`
	assertPushed(t, g, "cron_push.sh", lines(
		"# TYPE backup_last_success_timestamp_seconds gauge",
		`backup_last_success_timestamp_seconds{`+backup+`} 1700000000`,
		"# HELP backup_size_bytes Size of the last backup.",
		"# TYPE backup_size_bytes gauge",
		`backup_size_bytes{db="main",`+backup+`} 4.2e+09`,
		`backup_size_bytes{db="audit",`+backup+`} 1.5e+06`,
		"# TYPE backup_duration_seconds gauge",
		`backup_duration_seconds{`+backup+`} 812.5`,
		`cleanup_files_removed{instance="",job="cleanup"} 17`,
	)+times(backup, 1, 0)+times(`instance="",job="cleanup"`, 1, 0))
}

// TestNodeExporterBody pushes a node exporter's whole /metrics page, as
// people do, to the reference and the subject. The subject must accept
// whatever the reference accepts and expose the same node_* series.
func TestNodeExporterBody(t *testing.T) {
	t.Parallel()
	requireBinary(t, nodeExpBin)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startProcess(t, "node-exporter", nodeExpBin, "--web.listen-address="+addr, "--log.level=warn")
	var body []byte
	deadline := time.Now().Add(readyTimeout)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			r, rerr := readAll(resp)
			if rerr == nil && r.status == http.StatusOK {
				body = r.body
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node exporter did not answer /metrics: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	ref := startGateway(t, reference)
	sub := startGateway(t, subject)
	const path = "/metrics/job/node/instance/host1"
	ra := ref.do(t, http.MethodPut, path, nil, body)
	sa := sub.do(t, http.MethodPut, path, nil, body)
	if ra.status != http.StatusOK {
		t.Logf("the reference rejects this node exporter page: %s", ra)
	}
	if ra.status == http.StatusOK && sa.status != http.StatusOK {
		t.Fatalf("the reference accepts the node exporter page, the subject does not: %s", sa)
	}
	if ra.status != sa.status {
		t.Fatalf("status: reference %s, subject %s", ra, sa)
	}
	if sa.status != http.StatusOK {
		return
	}
	nodeOnly := func(g *gateway) string {
		mfs := g.scrape(t)
		for name := range mfs {
			if !strings.HasPrefix(name, "node_") {
				delete(mfs, name)
			}
		}
		return normalize(mfs, nil)
	}
	got, want := nodeOnly(sub), nodeOnly(ref)
	if got != want {
		t.Errorf("node_* series differ (- reference, + subject):\n%s", diffLines(want, got))
	}
	if !strings.Contains(got, `node_cpu_seconds_total{cpu="0",instance="host1",job="node",mode="idle"}`) {
		t.Errorf("node_cpu_seconds_total with job=node, instance=host1 not exposed:\n%s", truncate(got, 3000))
	}
	// The exporter's own go_*/process_* series are merged into the gateway's
	// families of the same name, carrying the grouping labels.
	if full := sub.pushed(t); !strings.Contains(full, `go_goroutines{instance="host1",job="node"}`) {
		t.Errorf("pushed go_goroutines of the node exporter not exposed")
	}
}

func readAll(resp *http.Response) (response, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}, err
}
