package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// groupsAnswer is the envelope of /api/v1/groups, both methods.
type groupsAnswer struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		Groups  json.RawMessage `json:"groups"`
		Next    string          `json:"next"`
		DryRun  bool            `json:"dry_run"`
		Count   int             `json:"count"`
		Skipped int             `json:"skipped"`
	} `json:"data"`
}

func groupsCall(t *testing.T, g *gateway, method string, header map[string]string, matches []string, extra ...string) (response, groupsAnswer) {
	t.Helper()
	v := url.Values{}
	for _, m := range matches {
		v.Add("match[]", m)
	}
	for _, e := range extra {
		k, val, _ := strings.Cut(e, "=")
		v.Set(k, val)
	}
	r := g.do(t, method, g.prefix+"/api/v1/groups?"+v.Encode(), header, nil)
	var a groupsAnswer
	// The access guard refuses in plain text, as on every route.
	if r.header.Get("Content-Type") != "application/json" {
		return r, a
	}
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("%s /api/v1/groups%v: %s: %v", method, matches, r, err)
	}
	return r, a
}

// groupJobs returns the job of each group of a list (objects with "labels")
// or a delete answer (bare label sets).
func groupJobs(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var gs []map[string]any
	if err := json.Unmarshal(raw, &gs); err != nil {
		t.Fatalf("groups %s: %v", raw, err)
	}
	out := []string{}
	for _, g := range gs {
		if l, ok := g["labels"].(map[string]any); ok {
			g = l
		}
		out = append(out, fmt.Sprint(g["job"]))
	}
	return out
}

func pushJobs(t *testing.T, g *gateway, header map[string]string, jobs ...string) {
	t.Helper()
	for _, j := range jobs {
		if r := g.do(t, http.MethodPut, g.prefix+"/metrics/job/"+j, header, []byte("groups_test_metric 1\n")); r.status != http.StatusOK {
			t.Fatalf("push %s: %s", j, r)
		}
	}
}

func listJobs(t *testing.T, g *gateway, header map[string]string) []string {
	t.Helper()
	r, a := groupsCall(t, g, http.MethodGet, header, nil, "limit=1000")
	if r.status != http.StatusOK {
		t.Fatalf("list: %s", r)
	}
	return groupJobs(t, a.Data.Groups)
}

// TestGroupsAPI lists, pages and deletes groups by matcher with the admin
// API enabled.
func TestGroupsAPI(t *testing.T) {
	requirePushgate(t, "/api/v1/groups")
	g := startGateway(t, subject, "--web.enable-admin-api", "--storage.in-memory")
	pushJobs(t, g, nil, "billing-a", "billing-b", "billing-c", "payments", "web")

	r, a := groupsCall(t, g, http.MethodGet, nil, []string{`job=~"billing-.*"`, `job="web"`})
	if r.status != http.StatusOK || a.Status != "success" {
		t.Fatalf("list: %s", r)
	}
	if got, want := groupJobs(t, a.Data.Groups), []string{"billing-a", "billing-b", "billing-c", "web"}; !slices.Equal(got, want) {
		t.Errorf("list: %q, want %q", got, want)
	}
	// One pushed series plus push_time_seconds and push_failure_time_seconds.
	if !strings.Contains(string(r.body), `"families":3,"series":3`) || !strings.Contains(string(r.body), `"last_push_failure_time":null`) {
		t.Errorf("list: no series count or failure time: %s", r)
	}

	var pages [][]string
	start := ""
	for range 10 {
		extra := []string{"limit=2"}
		if start != "" {
			extra = append(extra, "start="+start)
		}
		r, a := groupsCall(t, g, http.MethodGet, nil, nil, extra...)
		if r.status != http.StatusOK {
			t.Fatalf("page: %s", r)
		}
		pages = append(pages, groupJobs(t, a.Data.Groups))
		if start = a.Data.Next; start == "" {
			break
		}
	}
	want := [][]string{{"billing-a", "billing-b"}, {"billing-c", "payments"}, {"web"}}
	if !slices.EqualFunc(pages, want, slices.Equal) {
		t.Errorf("pages %q, want %q", pages, want)
	}

	if r, _ := groupsCall(t, g, http.MethodGet, nil, []string{`job=`}); r.status != http.StatusBadRequest ||
		!strings.Contains(string(r.body), `"errorType":"bad_data"`) {
		t.Errorf("bad selector: %s, want 400 bad_data", r)
	}
	if r, _ := groupsCall(t, g, http.MethodDelete, nil, nil); r.status != http.StatusBadRequest {
		t.Errorf("delete without match[]: %s, want 400", r)
	}

	r, a = groupsCall(t, g, http.MethodDelete, nil, []string{`job=~"billing-.*"`}, "dry_run=true")
	if r.status != http.StatusOK || !a.Data.DryRun || a.Data.Count != 3 {
		t.Errorf("dry run: %s", r)
	}
	if got := listJobs(t, g, nil); len(got) != 5 {
		t.Errorf("after the dry run: %q, want all 5 groups", got)
	}

	r, a = groupsCall(t, g, http.MethodDelete, nil, []string{`job=~"billing-.*"`, `job="web"`})
	if got, want := groupJobs(t, a.Data.Groups), []string{"billing-a", "billing-b", "billing-c", "web"}; r.status != http.StatusOK ||
		a.Data.DryRun || a.Data.Count != 4 || !slices.Equal(got, want) {
		t.Errorf("delete: %s, want 200 deleting %q", r, want)
	}
	if got := listJobs(t, g, nil); !slices.Equal(got, []string{"payments"}) {
		t.Errorf("after the delete: %q, want [payments]", got)
	}
	if s := string(g.do(t, http.MethodGet, "/metrics", nil, nil).body); strings.Contains(s, "billing-") || !strings.Contains(s, `job="payments"`) {
		t.Errorf("scrape after the delete:\n%s", s)
	}
}

// TestGroupsAPIWithoutAdmin: without --web.enable-admin-api or an access
// config, the list works and the delete is refused.
func TestGroupsAPIWithoutAdmin(t *testing.T) {
	requirePushgate(t, "/api/v1/groups")
	g := startGateway(t, subject, "--storage.in-memory")
	pushJobs(t, g, nil, "a")
	if r, _ := groupsCall(t, g, http.MethodDelete, nil, []string{`job="a"`}); r.status != http.StatusForbidden {
		t.Errorf("delete: %s, want 403", r)
	}
	if got := listJobs(t, g, nil); !slices.Equal(got, []string{"a"}) {
		t.Errorf("list: %q, want [a]", got)
	}
}

// TestGroupsAPIAccess deletes by matcher as principals of an access config
// (without --web.enable-admin-api, below a route prefix): the billing token
// deletes only billing-* groups and is told how many it skipped.
func TestGroupsAPIAccess(t *testing.T) {
	requirePushgate(t, "--web.access-config")
	g := startGateway(t, subject, "--web.access-config="+accessConfig(t, false), "--web.route-prefix=/pg", "--storage.in-memory")
	pushJobs(t, g, aliceAuth, "billing-a", "billing-b", "payments", "web")

	if r, _ := groupsCall(t, g, http.MethodDelete, grafanaAuth, []string{`job=~".+"`}); r.status != http.StatusForbidden {
		t.Errorf("grafana deletes: %s, want 403", r)
	}
	if r, _ := groupsCall(t, g, http.MethodGet, billingAuth, nil); r.status != http.StatusForbidden {
		t.Errorf("billing token lists: %s, want 403 (it may not read)", r)
	}

	r, a := groupsCall(t, g, http.MethodDelete, billingAuth, []string{`job=~".+"`}, "dry_run=true")
	if got := groupJobs(t, a.Data.Groups); r.status != http.StatusOK || !slices.Equal(got, []string{"billing-a", "billing-b"}) || a.Data.Skipped != 2 {
		t.Errorf("billing dry run: %s, want billing-a, billing-b and 2 skipped", r)
	}
	r, a = groupsCall(t, g, http.MethodDelete, billingAuth, []string{`job=~".+"`})
	if got := groupJobs(t, a.Data.Groups); r.status != http.StatusOK || !slices.Equal(got, []string{"billing-a", "billing-b"}) || a.Data.Skipped != 2 {
		t.Errorf("billing delete: %s, want billing-a, billing-b and 2 skipped", r)
	}
	if got := listJobs(t, g, grafanaAuth); !slices.Equal(got, []string{"payments", "web"}) {
		t.Errorf("after the billing delete: %q, want [payments web]", got)
	}

	r, a = groupsCall(t, g, http.MethodDelete, aliceAuth, []string{`job="web"`})
	if r.status != http.StatusOK || a.Data.Count != 1 || a.Data.Skipped != 0 {
		t.Errorf("alice delete: %s, want web deleted", r)
	}
	if got := listJobs(t, g, grafanaAuth); !slices.Equal(got, []string{"payments"}) {
		t.Errorf("after alice's delete: %q, want [payments]", got)
	}
}

// TestGroupsAPIDurable: a delete by matcher that was answered survives a
// SIGKILL right after it, as each group is deleted durably.
func TestGroupsAPIDurable(t *testing.T) {
	requirePushgate(t, "/api/v1/groups")
	dir := t.TempDir()
	g := startDurable(t, dir, "--web.enable-admin-api")
	pushJobs(t, g, nil, "billing-a", "billing-b", "web")
	if r, a := groupsCall(t, g, http.MethodDelete, nil, []string{`job=~"billing-.*"`}); r.status != http.StatusOK || a.Data.Count != 2 {
		t.Fatalf("delete: %s, want 2 deleted", r)
	}
	g.sigkill(t)
	g = startDurable(t, dir)
	if got := listJobs(t, g, nil); !slices.Equal(got, []string{"web"}) {
		t.Errorf("after the restart: %q, want [web]", got)
	}
}
