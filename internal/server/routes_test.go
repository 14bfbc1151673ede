package server_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pushgate/pushgate/internal/api"
	"github.com/pushgate/pushgate/internal/server"
	"github.com/pushgate/pushgate/internal/ui"
)

// parts routes every kind of handler to an echo of its name, so that a
// test sees which one a request reached.
func parts() server.Parts {
	return server.Parts{
		Put: echo("put"), Post: echo("post"), Delete: echo("delete"), Scrape: echo("scrape"),
		API: []api.Route{
			{Path: "/status", Name: "api/v1/status", Handler: echo("api status")},
			{Path: "/admin/wipe", Name: "wipe", Handler: echo("api wipe"), Write: true},
		},
		Pages: []ui.Route{
			{Pattern: "GET /{$}", Name: "status", Handler: echo("page")},
			{Pattern: "POST /wipe", Name: "wipe", Handler: echo("page wipe"), Write: true},
		},
	}
}

// TestRoutePrefix pins that every route lives below the route prefix, with
// the prefix stripped before the handlers (and the access guard) see the
// path, and that nothing answers outside it.
func TestRoutePrefix(t *testing.T) {
	var guarded []string
	s := server.New(server.Options{
		RoutePrefix:   "/pg",
		TelemetryPath: "/metrics",
		Access: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				guarded = append(guarded, r.URL.Path)
				next.ServeHTTP(w, r)
			})
		},
	}, parts(), prometheus.NewRegistry())
	s.SetReady(true)
	tests := []struct {
		method, target string
		code           int
		body           string
	}{
		{http.MethodGet, "/pg/metrics", 200, "scrape /metrics"},
		{http.MethodPut, "/pg/metrics/job/j", 200, "put /metrics/job/j"},
		{http.MethodPost, "/pg/metrics/job/j", 200, "post /metrics/job/j"},
		{http.MethodDelete, "/pg/metrics/job/j", 200, "delete /metrics/job/j"},
		{http.MethodGet, "/pg/api/v1/status", 200, "api status /api/v1/status"},
		{http.MethodPut, "/pg/api/v1/admin/wipe", 200, "api wipe /api/v1/admin/wipe"},
		{http.MethodGet, "/pg/", 200, "page /"},
		{http.MethodPost, "/pg/wipe", 200, "page wipe /wipe"},
		{http.MethodGet, "/pg/-/healthy", 200, "OK"},
		{http.MethodGet, "/pg/-/ready", 200, "OK"},
		{http.MethodGet, "/metrics", 404, ""},
		{http.MethodPut, "/metrics/job/j", 404, ""},
		{http.MethodGet, "/-/healthy", 404, ""},
		{http.MethodGet, "/", 404, ""},
		{http.MethodGet, "/pgx/metrics", 404, ""},
	}
	for _, tt := range tests {
		w := serve(s, tt.method, tt.target)
		if w.Code != tt.code || (tt.body != "" && w.Body.String() != tt.body) {
			t.Errorf("%s %s: %d %q, want %d %q", tt.method, tt.target, w.Code, w.Body.String(), tt.code, tt.body)
		}
	}
	for _, p := range guarded {
		if strings.HasPrefix(p, "/pg") {
			t.Errorf("the access guard saw %q, with the route prefix", p)
		}
	}
	if len(guarded) == 0 {
		t.Error("the access guard saw no request")
	}
}

// TestReadiness pins the split the orchestrator relies on: /-/healthy
// answers at once, /-/ready and writes wait for the restore, reads do not,
// and a failing storage makes the gateway unready again.
func TestReadiness(t *testing.T) {
	var healthErr error
	s := server.New(server.Options{
		TelemetryPath: "/metrics",
		Health:        func() error { return healthErr },
	}, parts(), prometheus.NewRegistry())
	type want struct {
		code int
		body string
	}
	check := func(state string, checks map[string]want) {
		t.Helper()
		for req, w := range checks {
			method, target, _ := strings.Cut(req, " ")
			got := serve(s, method, target)
			if got.Code != w.code || !strings.Contains(got.Body.String(), w.body) {
				t.Errorf("%s: %s: %d %q, want %d containing %q", state, req, got.Code, got.Body.String(), w.code, w.body)
			}
		}
	}
	check("restoring", map[string]want{
		"GET /-/healthy":         {200, "OK"},
		"GET /-/ready":           {503, "not ready: restoring state"},
		"GET /metrics":           {200, "scrape"},
		"GET /api/v1/status":     {200, "api status"},
		"GET /":                  {200, "page"},
		"PUT /metrics/job/j":     {503, "not ready"},
		"PUT /api/v1/admin/wipe": {503, "not ready"},
		"POST /wipe":             {503, "not ready"},
	})
	s.SetReady(true)
	check("ready", map[string]want{
		"GET /-/healthy":     {200, "OK"},
		"GET /-/ready":       {200, "OK"},
		"PUT /metrics/job/j": {200, "put"},
	})
	healthErr = errors.New("storage failed: disk full")
	check("storage failing", map[string]want{
		"GET /-/healthy": {200, "OK"},
		"GET /-/ready":   {503, "not ready: storage failed: disk full"},
	})
	s.SetReady(false)
	healthErr = nil
	check("unready again", map[string]want{
		"GET /-/ready":          {503, "not ready"},
		"DELETE /metrics/job/j": {503, "not ready"},
	})
}

// TestLifecycle pins /-/quit as in the reference: GET is refused with 405,
// PUT and POST with 403 unless --web.enable-lifecycle, and when enabled they
// close Quit (once, however often they come).
func TestLifecycle(t *testing.T) {
	closed := func(s *server.Server) bool {
		select {
		case <-s.Quit():
			return true
		default:
			return false
		}
	}
	tests := []struct {
		name    string
		enabled bool
		method  string
		code    int
		body    string
		quits   bool
	}{
		{"GET disabled", false, http.MethodGet, 405, "Only POST or PUT requests allowed.", false},
		{"GET enabled", true, http.MethodGet, 405, "Only POST or PUT requests allowed.", false},
		{"PUT disabled", false, http.MethodPut, 403, "Lifecycle API is not enabled.", false},
		{"POST disabled", false, http.MethodPost, 403, "Lifecycle API is not enabled.", false},
		{"PUT enabled", true, http.MethodPut, 200, "Requesting termination... Goodbye!", true},
		{"POST enabled", true, http.MethodPost, 200, "Requesting termination... Goodbye!", true},
		{"DELETE enabled", true, http.MethodDelete, 405, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := server.New(server.Options{TelemetryPath: "/metrics", EnableLifecycle: tt.enabled}, parts(), prometheus.NewRegistry())
			// Quitting works before the restore is done: an operator may
			// stop a gateway that is still replaying.
			for range 2 {
				w := serve(s, tt.method, "/-/quit")
				if w.Code != tt.code || (tt.body != "" && w.Body.String() != tt.body) {
					t.Errorf("%s /-/quit: %d %q, want %d %q", tt.method, w.Code, w.Body.String(), tt.code, tt.body)
				}
			}
			if closed(s) != tt.quits {
				t.Errorf("Quit closed: %v, want %v", closed(s), tt.quits)
			}
		})
	}
}

// TestRequestsCounted pins pushgateway_http_requests_total: every routed
// request except scrapes, health and readiness is counted by code, the
// route's handler name and method, as the reference does.
func TestRequestsCounted(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s := server.New(server.Options{TelemetryPath: "/metrics"}, parts(), reg)
	serve(s, http.MethodPut, "/metrics/job/j") // 503: not ready yet
	s.SetReady(true)
	for _, r := range []struct{ method, target string }{
		{http.MethodPut, "/metrics/job/j"},
		{http.MethodPost, "/metrics/job/j"},
		{http.MethodDelete, "/metrics/job/j"},
		{http.MethodGet, "/api/v1/status"},
		{http.MethodGet, "/"},
		{http.MethodGet, "/metrics"},
		{http.MethodGet, "/-/healthy"},
		{http.MethodGet, "/-/ready"},
	} {
		serve(s, r.method, r.target)
	}
	want := []string{
		`code="200",handler="api/v1/status",method="get" 1`,
		`code="200",handler="delete",method="delete" 1`,
		`code="200",handler="push",method="post" 1`,
		`code="200",handler="push",method="put" 1`,
		`code="200",handler="status",method="get" 1`,
		`code="503",handler="push",method="put" 1`,
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "pushgate_scrape_") {
			continue // scrapes are timed and measured instead (scrape_test.go)
		}
		if mf.GetName() != "pushgateway_http_requests_total" || mf.GetType() != dto.MetricType_COUNTER {
			t.Errorf("unexpected family %s of type %s", mf.GetName(), mf.GetType())
			continue
		}
		for _, m := range mf.GetMetric() {
			var pairs []string
			for _, lp := range m.GetLabel() {
				pairs = append(pairs, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			got = append(got, fmt.Sprintf("%s %g", strings.Join(pairs, ","), m.GetCounter().GetValue()))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("requests counted:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestProfilingEndpoints(t *testing.T) {
	s := newServer(t, "")
	for _, target := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/symbol"} {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
		if w.Code != http.StatusOK {
			t.Errorf("GET %s: %d", target, w.Code)
		}
	}
}

// TestReload pins /-/reload, gated like /-/quit: 405 for GET, 403 without
// --web.enable-lifecycle; enabled, 200 once reloaded and 500 with the error
// when the reload fails, as Prometheus answers. Without anything to reload
// it succeeds.
func TestReload(t *testing.T) {
	failing := func() error { return errors.New("rules.yml: rule 0: match: unclosed '{'") }
	tests := []struct {
		name    string
		enabled bool
		reload  func() error
		method  string
		code    int
		body    string
		calls   int
	}{
		{"GET", true, nil, http.MethodGet, 405, "Only POST or PUT requests allowed.", 0},
		{"POST disabled", false, nil, http.MethodPost, 403, "Lifecycle API is not enabled.", 0},
		{"PUT disabled", false, nil, http.MethodPut, 403, "Lifecycle API is not enabled.", 0},
		{"POST nothing to reload", true, nil, http.MethodPost, 200, "", 0},
		{"POST", true, func() error { return nil }, http.MethodPost, 200, "", 1},
		{"PUT", true, func() error { return nil }, http.MethodPut, 200, "", 1},
		{"POST failing", true, failing, http.MethodPost, 500, "failed to reload config: rules.yml: rule 0: match: unclosed '{'\n", 1},
		{"DELETE", true, func() error { return nil }, http.MethodDelete, 405, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			opts := server.Options{TelemetryPath: "/metrics", EnableLifecycle: tt.enabled}
			if tt.reload != nil {
				opts.Reload = func() error { calls++; return tt.reload() }
			}
			s := server.New(opts, parts(), prometheus.NewRegistry())
			w := serve(s, tt.method, "/-/reload")
			if w.Code != tt.code || (tt.body != "" && w.Body.String() != tt.body) {
				t.Errorf("%s /-/reload: %d %q, want %d %q", tt.method, w.Code, w.Body.String(), tt.code, tt.body)
			}
			if calls != tt.calls {
				t.Errorf("Reload called %d times, want %d", calls, tt.calls)
			}
		})
	}
}
