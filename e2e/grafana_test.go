package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

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
		g := startDashboardGateway(t)
		dashboardTraffic(t, g)
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

// startDashboardGateway starts a gateway with every optional part the
// dashboard shows: durable storage (the default --storage.path=data, in the
// process's own directory), a rules file with expect_every for the jobs
// dash and other, and scoped access with anonymous reads.
func startDashboardGateway(t *testing.T) *gateway {
	t.Helper()
	rules := filepath.Join(t.TempDir(), "rules.yml")
	writeFile(t, rules, []byte("rules:\n  - match: '{job=~\"dash|other\"}'\n    expect_every: 1h\n"))
	return startGateway(t, subject, "--push.rules.file="+rules, "--web.access-config="+accessConfig(t, true))
}

// dashboardTraffic sends a push, a failed push (which leaves the group
// other down), a push the access config refuses and one with a bad body.
func dashboardTraffic(t *testing.T, g *gateway) {
	t.Helper()
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

const grafanaDashboardFile = "../contrib/grafana/pushgate.json"

// dashboardQuery is one query of the dashboard: a panel's, or the selector
// of a label_values variable query.
type dashboardQuery struct {
	where, expr string
}

// dashboardQueries reads every query of the dashboard.
func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	b, err := os.ReadFile(grafanaDashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
		Panels json.RawMessage `json:"panels"`
	}
	var d struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", grafanaDashboardFile, err)
	}
	var qs []dashboardQuery
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				qs = append(qs, dashboardQuery{fmt.Sprintf("panel %q query %s", p.Title, tg.RefID), tg.Expr})
			}
			var inner []panel
			if len(p.Panels) > 0 {
				if err := json.Unmarshal(p.Panels, &inner); err != nil {
					t.Fatalf("%s: panel %q: %v", grafanaDashboardFile, p.Title, err)
				}
			}
			walk(inner)
		}
	}
	walk(d.Panels)
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("%s: variable %s: %v", grafanaDashboardFile, v.Name, err)
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Fatalf("%s: variable %s: %q is not label_values(selector, label)", grafanaDashboardFile, v.Name, q.Query)
		}
		qs = append(qs, dashboardQuery{"variable " + v.Name, m[1]})
	}
	if len(qs) < 20 {
		t.Fatalf("%s: only %d queries found", grafanaDashboardFile, len(qs))
	}
	return qs
}

// TestGrafanaDashboardQueries runs every query of the Grafana dashboard on
// a real Prometheus that scrapes a gateway (as in the README: job
// "pushgateway", honor_labels), with the template variables set as Grafana
// would set them for that gateway. Every query must evaluate without error
// (the PromQL parser in contrib/grafana cannot see errors of evaluation,
// such as many-to-many matches), and every query but the etcd ones must
// return data at least once while the gateway gets the traffic of
// dashboardTraffic: so the job and instance filters match what Prometheus
// attaches, and the groups-down table (whose labels are the group's) fills.
func TestGrafanaDashboardQueries(t *testing.T) {
	t.Parallel()
	requirePushgate(t, "pushgate_* metrics")
	requireBinary(t, prometheusBin)
	queries := dashboardQueries(t)
	g := startDashboardGateway(t)
	promAddr, prom := startPrometheus(t, g, t.TempDir(), "1m", "")

	// What Grafana sends: the variables' values, a multi-value variable as
	// an escaped regex, and a $__rate_interval of four scrape intervals.
	instance := strings.ReplaceAll(regexp.QuoteMeta(g.addr), `\`, `\\`)
	vars := strings.NewReplacer("$__rate_interval", "4s", "$job", "pushgateway", "$instance", instance)

	// Prometheus answers once it has started, and scrapes once a second.
	deadline := time.Now().Add(30 * time.Second)
	for {
		up, err := promQuery(promAddr, `up{job="pushgateway"} == 1`)
		if err == nil && len(up) == 1 {
			break
		}
		if prom.exited() || time.Now().After(deadline) {
			t.Fatalf("prometheus does not scrape the gateway: %v %v", up, err)
		}
		time.Sleep(250 * time.Millisecond)
	}

	seen := map[int]bool{} // indexes of queries that returned data
	deadline = time.Now().Add(30 * time.Second)
	for {
		if prom.exited() {
			t.Fatal("prometheus exited early")
		}
		dashboardTraffic(t, g)
		for i, q := range queries {
			expr := vars.Replace(q.expr)
			if strings.Contains(expr, "$") {
				t.Fatalf("%s: a template variable is left in %q", q.where, expr)
			}
			res, err := promQuery(promAddr, expr)
			if err != nil {
				t.Fatalf("%s: %v", q.where, err)
			}
			if len(res) > 0 {
				seen[i] = true
			}
		}
		var empty []string
		for i, q := range queries {
			if !seen[i] && !strings.Contains(q.expr, "pushgate_etcd_") {
				empty = append(empty, fmt.Sprintf("%s: %s", q.where, q.expr))
			}
		}
		if len(empty) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d dashboard queries returned no data in 30s:\n%s", len(empty), strings.Join(empty, "\n"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}
