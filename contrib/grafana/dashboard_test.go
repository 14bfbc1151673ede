package grafana_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

var update = flag.Bool("update", false, "rewrite metrics.txt from the dashboard's queries")

const (
	dashboardFile = "pushgate.json"
	metricsFile   = "metrics.txt"
	// dsVar is how every panel and query names its data source: the
	// dashboard's datasource variable, so that an import picks one.
	dsVar = "${datasource}"
)

// Values that stand for the template variables when a query is parsed: a
// multi-value variable becomes a regex alternative, as Grafana formats it
// for =~ (or the "all" value).
var substitutions = map[string]string{
	"__rate_interval": "1m",
	"__interval":      "30s",
	"__range":         "6h",
	"job":             "pushgate",
	"instance":        "(gw-a:9091|gw-b:9091)",
}

// groupLabelled are metrics whose job and instance labels are a pushed
// group's, not the gateway's (with honor_labels: true the scraped labels
// win), so filtering them by the job and instance variables would hide
// them. Every other selector must be filtered by both.
var groupLabelled = map[string]bool{"pushgate_group_up": true}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Datasource *datasource `json:"datasource"`
}

type gridPos struct {
	H, W, X, Y int
}

type panel struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Description string      `json:"description"`
	Datasource  *datasource `json:"datasource"`
	GridPos     *gridPos    `json:"gridPos"`
	Targets     []target    `json:"targets"`
	Collapsed   bool        `json:"collapsed"`
	Panels      []panel     `json:"panels"` // of a collapsed row
}

type variable struct {
	Type       string          `json:"type"`
	Name       string          `json:"name"`
	Query      json.RawMessage `json:"query"`
	Datasource *datasource     `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
}

type dashboardJSON struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

func load(t *testing.T) dashboardJSON {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboardJSON
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("%s: title %q, uid %q, %d panels: not a dashboard", dashboardFile, d.Title, d.UID, len(d.Panels))
	}
	return d
}

// allPanels returns the panels with those of collapsed rows.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

func TestVariables(t *testing.T) {
	d := load(t)
	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v := vars["datasource"]; v.Type != "datasource" || string(v.Query) != `"prometheus"` {
		t.Errorf("variable datasource: type %q query %s, want a datasource variable of type prometheus", v.Type, v.Query)
	}
	for _, name := range []string{"job", "instance"} {
		v, ok := vars[name]
		if !ok || v.Type != "query" {
			t.Errorf("variable %s: missing or not a query variable", name)
			continue
		}
		if v.Datasource == nil || *v.Datasource != (datasource{"prometheus", dsVar}) {
			t.Errorf("variable %s: data source %+v, want the datasource variable", name, v.Datasource)
		}
	}
	if v := vars["instance"]; !v.Multi || !v.IncludeAll {
		t.Errorf("variable instance: multi %v, includeAll %v; want both", v.Multi, v.IncludeAll)
	}
}

func TestPanels(t *testing.T) {
	d := load(t)
	ids := map[int]string{}
	for _, p := range allPanels(d.Panels) {
		name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 {
			t.Errorf("%s: id must be positive", name)
		}
		if other, dup := ids[p.ID]; dup {
			t.Errorf("%s: id also used by %q", name, other)
		}
		ids[p.ID] = p.Title
		if p.Title == "" {
			t.Errorf("%s: no title", name)
		}
		g := p.GridPos
		switch {
		case g == nil:
			t.Errorf("%s: no gridPos", name)
		case g.W < 1 || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > 24:
			t.Errorf("%s: gridPos %+v outside the 24-column grid", name, *g)
		}
		if p.Type == "row" {
			if len(p.Targets) > 0 {
				t.Errorf("%s: a row with queries", name)
			}
			continue
		}
		if p.Description == "" {
			t.Errorf("%s: no description (the operator's tooltip)", name)
		}
		if p.Datasource == nil || *p.Datasource != (datasource{"prometheus", dsVar}) {
			t.Errorf("%s: data source %+v, want {prometheus %s}", name, p.Datasource, dsVar)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no queries", name)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s: query %q has no expr", name, tg.RefID)
			}
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("%s: refId %q empty or repeated", name, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && *tg.Datasource != (datasource{"prometheus", dsVar}) {
				t.Errorf("%s: query %s has data source %+v", name, tg.RefID, *tg.Datasource)
			}
		}
	}
	// Panels of the dashboard's top level (and of expanded rows) must not
	// overlap; collapsed rows' panels are only laid out when expanded.
	for i, a := range d.Panels {
		for _, b := range d.Panels[i+1:] {
			if a.GridPos != nil && b.GridPos != nil && overlap(*a.GridPos, *b.GridPos) {
				t.Errorf("panels %q and %q overlap: %+v, %+v", a.Title, b.Title, *a.GridPos, *b.GridPos)
			}
		}
	}
}

func overlap(a, b gridPos) bool {
	return a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H
}

// varRef matches $name, ${name}, ${name:format} and [[name]].
var varRef = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`)

// substitute replaces template variables by the values Grafana could send.
func substitute(q string) (string, error) {
	var unknown []string
	out := varRef.ReplaceAllStringFunc(q, func(m string) string {
		sub := varRef.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3]
		v, ok := substitutions[name]
		if !ok {
			unknown = append(unknown, m)
		}
		return v
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("unknown template variables %v", unknown)
	}
	return out, nil
}

// selected parses a query after substitution and returns its vector
// selectors (those of range selectors included).
func selected(q string) ([]*parser.VectorSelector, error) {
	s, err := substitute(q)
	if err != nil {
		return nil, err
	}
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(s)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", s, err)
	}
	var vss []*parser.VectorSelector
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			vss = append(vss, vs)
		}
		return nil
	})
	return vss, nil
}

// metricName is the name a selector selects: its name, or an equality
// matcher on __name__; "" if it selects by a regex or not by name.
func metricName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

func hasMatcher(vs *parser.VectorSelector, name string) bool {
	want := substitutions[name]
	for _, m := range vs.LabelMatchers {
		if m.Name == name && m.Type == labels.MatchRegexp && m.Value == want {
			return true
		}
	}
	return false
}

// labelValues matches a variable query label_values(selector, label).
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// TestQueries parses every panel query and variable query with
// Prometheus' parser, checks that gateway metrics are filtered by the job
// and instance variables, and compares the metrics selected with
// metrics.txt.
func TestQueries(t *testing.T) {
	d := load(t)
	names := map[string]bool{}
	check := func(where, q string, filtered bool) {
		t.Helper()
		vss, err := selected(q)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			return
		}
		if len(vss) == 0 {
			t.Errorf("%s: %q selects no metric", where, q)
		}
		for _, vs := range vss {
			name := metricName(vs)
			if name == "" {
				t.Errorf("%s: selector %s has no metric name", where, vs)
				continue
			}
			names[name] = true
			if !filtered {
				continue
			}
			want := !groupLabelled[name]
			for _, l := range []string{"job", "instance"} {
				if got := hasMatcher(vs, l); got != want {
					t.Errorf("%s: selector %s: filtered by %s=~\"$%s\": %v, want %v", where, vs, l, l, got, want)
				}
			}
		}
	}
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			check(fmt.Sprintf("panel %d %q query %s", p.ID, p.Title, tg.RefID), tg.Expr, true)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Errorf("variable %s: query %s: %v", v.Name, v.Query, err)
			continue
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, q.Query)
			continue
		}
		check("variable "+v.Name, m[1], false)
	}

	got := slices.Sorted(func(yield func(string) bool) {
		for n := range names {
			if !yield(n) {
				return
			}
		}
	})
	if *update {
		if err := os.WriteFile(metricsFile, []byte(formatMetrics(got)), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := readMetrics(metricsFile)
	if err != nil {
		t.Fatalf("%v (run go test ./... -update to write it)", err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s does not list the metrics the dashboard selects (run go test ./... -update):\n%s", metricsFile, diff(want, got))
	}
}

const metricsHeader = `# Metrics selected by the queries of pushgate.json, one per line. Written by
# "go test ./... -update" in contrib/grafana (never by hand); the e2e test
# e2e/grafana_test.go checks that a running pushgate exposes each of them.
`

func formatMetrics(names []string) string {
	return metricsHeader + strings.Join(names, "\n") + "\n"
}

func readMetrics(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var names []string
	for l := range strings.Lines(string(b)) {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			names = append(names, l)
		}
	}
	return names, nil
}

// diff lists the names only in want (-) and only in got (+).
func diff(want, got []string) string {
	var b strings.Builder
	for _, n := range want {
		if !slices.Contains(got, n) {
			b.WriteString("- " + n + "\n")
		}
	}
	for _, n := range got {
		if !slices.Contains(want, n) {
			b.WriteString("+ " + n + "\n")
		}
	}
	return b.String()
}
