package e2e

import (
	"bufio"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/pushgate/pushgate/internal/etcdtest"
)

// grafanaMetricsFile lists the metrics the Grafana dashboard's queries
// select; contrib/grafana's own test writes it from the dashboard.
const grafanaMetricsFile = "../contrib/grafana/metrics.txt"

// TestGrafanaDashboardMetrics checks that a running pushgate exposes every
// metric the Grafana dashboard queries (contrib/grafana/metrics.txt), so a
// renamed metric cannot leave a panel empty: a single durable gateway with
// a rules file and scoped access, after a push, a failed push, a refused
// push and a scrape, for all but pushgate_etcd_*; and for those, a replica
// on a real etcd.
func TestGrafanaDashboardMetrics(t *testing.T) {
	t.Parallel()
	requirePushgate(t, "pushgate_* metrics")
	names := readGrafanaMetrics(t)
	var local, replicated []string
	for _, n := range names {
		if strings.HasPrefix(n, "pushgate_etcd_") {
			replicated = append(replicated, n)
		} else {
			local = append(local, n)
		}
	}

	t.Run("durable", func(t *testing.T) {
		t.Parallel()
		rules := filepath.Join(t.TempDir(), "rules.yml")
		if err := os.WriteFile(rules, []byte("rules:\n  - match: '{job=\"dash\"}'\n    expect_every: 1h\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		// The storage is durable by default (--storage.path=data in the
		// process's own directory).
		g := startGateway(t, subject, "--push.rules.file="+rules, "--web.access-config="+accessConfig(t, true))
		for _, r := range []struct {
			what   string
			auth   map[string]string
			path   string
			body   string
			status int
		}{
			{"a push", aliceAuth, "/metrics/job/dash", "# TYPE dash_runs gauge\ndash_runs 1\n", http.StatusOK},
			{"a failed push (another type for a pushed name)", aliceAuth, "/metrics/job/other", "# TYPE dash_runs counter\ndash_runs 1\n", http.StatusBadRequest},
			{"a push refused by the access config", billingAuth, "/metrics/job/dash", "dash_runs 2\n", http.StatusForbidden},
			{"a push with a bad body", aliceAuth, "/metrics/job/dash", "dash_runs{\n", http.StatusBadRequest},
		} {
			if resp := g.do(t, http.MethodPut, r.path, r.auth, []byte(r.body)); resp.status != r.status {
				t.Fatalf("%s: %s, want %d", r.what, resp, r.status)
			}
		}
		g.scrape(t) // the second scrape sees the first one's metrics
		checkExposed(t, "durable gateway", g.scrape(t), local)
	})

	t.Run("etcd", func(t *testing.T) {
		t.Parallel()
		ha := startHA(t, etcdtest.Options{Members: 1}, 1)
		r := ha.reps[0]
		if resp := r.mustReq(t, http.MethodPut, "/metrics/job/dash", []byte("dash_runs 1\n")); resp.status != http.StatusOK {
			t.Fatalf("push to the replica: %s", resp)
		}
		checkExposed(t, "replica", r.families(t), replicated)
	})
}

// readGrafanaMetrics reads the list: one name per line, # comments.
func readGrafanaMetrics(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(grafanaMetricsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			names = append(names, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(names) < 10 {
		t.Fatalf("%s lists %d metrics; it looks wrong", grafanaMetricsFile, len(names))
	}
	return names
}

// checkExposed fails for every name that mfs has no series of: a family of
// that name, or the _bucket, _sum or _count series of a histogram (and
// _sum, _count of a summary) of the family it is the suffix of.
func checkExposed(t *testing.T, what string, mfs map[string]*dto.MetricFamily, names []string) {
	t.Helper()
	for _, n := range names {
		if exposed(mfs, n) {
			continue
		}
		var near []string
		for fam := range mfs {
			if strings.HasPrefix(fam, strings.Join(strings.Split(n, "_")[:2], "_")) {
				near = append(near, fam)
			}
		}
		slices.Sort(near)
		t.Errorf("%s does not expose %s, which the Grafana dashboard queries (%s); families of that prefix: %v",
			what, n, grafanaMetricsFile, near)
	}
}

func exposed(mfs map[string]*dto.MetricFamily, name string) bool {
	if mf := mfs[name]; mf != nil && len(mf.GetMetric()) > 0 {
		return true
	}
	for suffix, types := range map[string][]dto.MetricType{
		"_bucket": {dto.MetricType_HISTOGRAM},
		"_sum":    {dto.MetricType_HISTOGRAM, dto.MetricType_SUMMARY},
		"_count":  {dto.MetricType_HISTOGRAM, dto.MetricType_SUMMARY},
	} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if mf := mfs[base]; mf != nil && len(mf.GetMetric()) > 0 && slices.Contains(types, mf.GetType()) {
			return true
		}
	}
	return false
}
