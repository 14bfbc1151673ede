package access_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgate/pushgate/internal/access"
	"github.com/pushgate/pushgate/internal/grouping"
)

// Principals of testdata/full.good.yml.
const (
	alice   = "Basic alice:alice-pass"     // admin
	grafana = "Basic grafana:grafana-pass" // read
	ci      = "Basic ci:ci-pass"           // push {job="batch", instance=~"ci-[0-9]+"}
	billing = "Bearer billing-token"       // push job=~"billing-.*" or {job="shared", team="billing"}
	reader  = "Bearer read-token"          // read
	anon    = ""                           // anonymous: read
)

func authHeader(a string) string {
	if userPass, ok := strings.CutPrefix(a, "Basic "); ok {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(userPass))
	}
	return a
}

// recorder is the guarded handler: it notes the call and reads the body,
// as the UI does after the guard read the form.
type recorder struct {
	called bool
	body   string
}

func (rec *recorder) ServeHTTP(_ http.ResponseWriter, r *http.Request) {
	rec.called = true
	b, _ := io.ReadAll(r.Body)
	rec.body = string(b)
}

type req struct {
	method, target, auth string
	form                 url.Values // for POST /delete
}

func do(t *testing.T, h http.Handler, rec *recorder, q req) *httptest.ResponseRecorder {
	t.Helper()
	*rec = recorder{}
	var body io.Reader
	if q.form != nil {
		body = strings.NewReader(q.form.Encode())
	}
	r := httptest.NewRequest(q.method, q.target, body)
	if q.form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if q.auth != "" {
		r.Header.Set("Authorization", authHeader(q.auth))
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestGuardTable(t *testing.T) {
	rec := &recorder{}
	reg := prometheus.NewPedanticRegistry()
	h := access.NewGuard(loadPolicy(t, "testdata/full.good.yml"), access.Options{Registerer: reg}).Wrap(rec)
	del := func(group string) url.Values { return url.Values{"group": {group}, "csrf": {"x"}} }

	type route struct {
		name   string
		method string
		target string
		form   url.Values
	}
	routes := []route{
		{"healthy", "GET", "/-/healthy", nil},
		{"ready", "GET", "/-/ready", nil},
		{"scrape", "GET", "/metrics", nil},
		{"scrape head", "HEAD", "/metrics", nil},
		{"ui overview", "GET", "/", nil},
		{"ui group", "GET", "/groups/job/x", nil},
		{"ui static", "GET", "/static/style.css", nil},
		{"api status", "GET", "/api/v1/status", nil},
		{"api metrics", "GET", "/api/v1/metrics", nil},
		{"api preflight", "OPTIONS", "/api/v1/metrics", nil},
		{"admin wipe", "PUT", "/api/v1/admin/wipe", nil},
		{"api groups", "GET", "/api/v1/groups?match[]=job%3D%22x%22", nil},
		{"api delete groups", "DELETE", "/api/v1/groups?match[]=job%3D%22x%22", nil},
		{"api delete groups subpath", "DELETE", "/api/v1/groups/x", nil},
		{"ui wipe", "POST", "/wipe", nil},
		{"ui confirm delete matching", "GET", "/delete-matching?q=billing", nil},
		{"ui delete matching", "POST", "/delete-matching", url.Values{"q": {"billing"}, "csrf": {"x"}}},
		{"quit", "POST", "/-/quit", nil},
		{"pprof", "GET", "/debug/pprof/heap", nil},
		{"push billing", "PUT", "/metrics/job/billing-x", nil},
		{"post billing", "POST", "/metrics/job/billing-x/instance/a", nil},
		{"delete billing", "DELETE", "/metrics/job/billing-x", nil},
		{"push billing base64", "PUT", "/metrics/job@base64/YmlsbGluZy15", nil}, // billing-y
		{"push shared team", "PUT", "/metrics/job/shared/team/billing", nil},
		{"push shared", "PUT", "/metrics/job/shared", nil},
		{"push payments", "PUT", "/metrics/job/payments", nil},
		{"push batch ci", "PUT", "/metrics/job/batch/instance/ci-12", nil},
		{"push batch other", "PUT", "/metrics/job/batch/instance/laptop", nil},
		{"push bad path", "PUT", "/metrics/job/x/odd", nil},
		{"ui delete billing", "POST", "/delete", del("job/billing-x")},
		{"ui delete payments", "POST", "/delete", del("job/payments")},
	}
	// Expected status per principal; 200 means the handler was called.
	want := map[string]map[string]int{
		"healthy":       {alice: 200, grafana: 200, ci: 200, billing: 200, reader: 200, anon: 200},
		"ready":         {alice: 200, grafana: 200, ci: 200, billing: 200, reader: 200, anon: 200},
		"scrape":        {alice: 200, grafana: 200, ci: 403, billing: 403, reader: 200, anon: 200},
		"scrape head":   {alice: 200, grafana: 200, ci: 403, billing: 403, reader: 200, anon: 200},
		"ui overview":   {alice: 200, grafana: 200, ci: 403, billing: 403, reader: 200, anon: 200},
		"ui group":      {alice: 200, grafana: 200, ci: 403, billing: 403, reader: 200, anon: 200},
		"ui static":     {alice: 200, grafana: 200, ci: 403, billing: 403, reader: 200, anon: 200},
		"api status":    {alice: 200, grafana: 200, ci: 403, billing: 403, reader: 200, anon: 200},
		"api metrics":   {alice: 200, grafana: 200, ci: 403, billing: 403, reader: 200, anon: 200},
		"api preflight": {alice: 200, grafana: 200, ci: 200, billing: 200, reader: 200, anon: 200},
		"admin wipe":    {alice: 200, grafana: 403, ci: 403, billing: 403, reader: 403, anon: 401},
		"api groups":    {alice: 200, grafana: 200, ci: 403, billing: 403, reader: 200, anon: 200},
		// Anyone with push scopes reaches the handler, which deletes only
		// the groups in scope (TestGuardScope).
		"api delete groups":         {alice: 200, grafana: 403, ci: 200, billing: 200, reader: 403, anon: 401},
		"api delete groups subpath": {alice: 200, grafana: 403, ci: 403, billing: 403, reader: 403, anon: 401},
		"ui wipe":                   {alice: 200, grafana: 403, ci: 403, billing: 403, reader: 403, anon: 401},
		// Like wiping: the UI's bulk delete is for admins only, even for
		// groups inside a principal's push scopes.
		"ui confirm delete matching": {alice: 200, grafana: 200, ci: 403, billing: 403, reader: 200, anon: 200},
		"ui delete matching":         {alice: 200, grafana: 403, ci: 403, billing: 403, reader: 403, anon: 401},
		"quit":                       {alice: 200, grafana: 403, ci: 403, billing: 403, reader: 403, anon: 401},
		"pprof":                      {alice: 200, grafana: 403, ci: 403, billing: 403, reader: 403, anon: 401},
		"push billing":               {alice: 200, grafana: 403, ci: 403, billing: 200, reader: 403, anon: 401},
		"post billing":               {alice: 200, grafana: 403, ci: 403, billing: 200, reader: 403, anon: 401},
		"delete billing":             {alice: 200, grafana: 403, ci: 403, billing: 200, reader: 403, anon: 401},
		"push billing base64":        {alice: 200, grafana: 403, ci: 403, billing: 200, reader: 403, anon: 401},
		"push shared team":           {alice: 200, grafana: 403, ci: 403, billing: 200, reader: 403, anon: 401},
		"push shared":                {alice: 200, grafana: 403, ci: 403, billing: 403, reader: 403, anon: 401},
		"push payments":              {alice: 200, grafana: 403, ci: 403, billing: 403, reader: 403, anon: 401},
		"push batch ci":              {alice: 200, grafana: 403, ci: 200, billing: 403, reader: 403, anon: 401},
		"push batch other":           {alice: 200, grafana: 403, ci: 403, billing: 403, reader: 403, anon: 401},
		// An unparsable key reaches the handler (which answers 400) for
		// anyone with push scopes.
		"push bad path":      {alice: 200, grafana: 403, ci: 200, billing: 200, reader: 403, anon: 401},
		"ui delete billing":  {alice: 200, grafana: 403, ci: 403, billing: 200, reader: 403, anon: 401},
		"ui delete payments": {alice: 200, grafana: 403, ci: 403, billing: 403, reader: 403, anon: 401},
	}
	for _, rt := range routes {
		for _, who := range []string{alice, grafana, ci, billing, reader, anon} {
			name := rt.name + "/anonymous"
			if who != anon {
				name = rt.name + "/" + strings.Fields(who)[1]
			}
			t.Run(name, func(t *testing.T) {
				w := do(t, h, rec, req{rt.method, rt.target, who, rt.form})
				code := want[rt.name][who]
				if code == 0 {
					t.Fatal("no expectation")
				}
				if code == 200 {
					if !rec.called || w.Code != 200 {
						t.Fatalf("want the handler called; got %d %q", w.Code, w.Body)
					}
					if rt.form != nil && rec.body != rt.form.Encode() {
						t.Fatalf("handler got body %q, want %q", rec.body, rt.form.Encode())
					}
					return
				}
				if rec.called {
					t.Fatal("handler called for a refused request")
				}
				if w.Code != code {
					t.Fatalf("status %d %q, want %d", w.Code, w.Body, code)
				}
				if code == 401 && len(w.Header().Values("WWW-Authenticate")) != 2 {
					t.Fatalf("401 without both WWW-Authenticate challenges: %v", w.Header())
				}
			})
		}
	}
	if got := deniedCount(t, reg, "403"); got == 0 {
		t.Error("pushgate_access_denied_total{code=\"403\"} not counted")
	}
}

func deniedCount(t *testing.T, reg *prometheus.Registry, code string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "pushgate_access_denied_total" {
			continue
		}
		for _, m := range mf.Metric {
			if m.Label[0].GetValue() == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no pushgate_access_denied_total{code=%q}", code)
	return 0
}

func TestGuardAnswers(t *testing.T) {
	rec := &recorder{}
	h := access.NewGuard(loadPolicy(t, "testdata/full.good.yml"), access.Options{}).Wrap(rec)
	cases := []struct {
		name string
		req  req
		code int
		body string
	}{
		{"forbidden push", req{"PUT", "/metrics/job/payments", billing, nil}, 403,
			`token "billing-ci" may not push to {job="payments"}` + "\n"},
		{"forbidden delete", req{"DELETE", "/metrics/job/payments/instance/a", billing, nil}, 403,
			`token "billing-ci" may not delete {instance="a", job="payments"}` + "\n"},
		{"forbidden read", req{"GET", "/metrics", "Bearer billing-token", nil}, 403,
			`token "billing-ci" may not read /metrics` + "\n"},
		{"forbidden wipe", req{"PUT", "/api/v1/admin/wipe", grafana, nil}, 403,
			`user "grafana" may not PUT /api/v1/admin/wipe` + "\n"},
		{"anonymous push", req{"PUT", "/metrics/job/x", anon, nil}, 401,
			`anonymous may not push to {job="x"}` + "\n"},
		{"wrong password", req{"GET", "/metrics", "Basic grafana:nope", nil}, 401,
			"Unauthorized: invalid credentials\n"},
		{"unknown user", req{"GET", "/metrics", "Basic mallory:grafana-pass", nil}, 401,
			"Unauthorized: invalid credentials\n"},
		{"unknown token", req{"GET", "/metrics", "Bearer billing-token2", nil}, 401,
			"Unauthorized: invalid credentials\n"},
		{"empty token", req{"GET", "/metrics", "Bearer ", nil}, 401,
			"Unauthorized: invalid credentials\n"},
		{"other scheme", req{"GET", "/metrics", "Digest x", nil}, 401,
			"Unauthorized: invalid credentials\n"},
		{"bearer lower case", req{"PUT", "/metrics/job/billing-x", "bearer billing-token", nil}, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := do(t, h, rec, c.req)
			if w.Code != c.code || (c.code != 200 && w.Body.String() != c.body) {
				t.Fatalf("got %d %q, want %d %q", w.Code, w.Body, c.code, c.body)
			}
		})
	}

	// Without anonymous access, no credentials is 401 everywhere but
	// health and readiness.
	h = access.NewGuard(loadPolicy(t, "testdata/token-only.good.yml"), access.Options{}).Wrap(rec)
	for _, target := range []string{"/metrics", "/", "/api/v1/status"} {
		if w := do(t, h, rec, req{"GET", target, "", nil}); w.Code != 401 {
			t.Errorf("GET %s without credentials: %d, want 401", target, w.Code)
		}
	}
	if w := do(t, h, rec, req{"GET", "/-/ready", "", nil}); w.Code != 200 {
		t.Errorf("GET /-/ready without credentials: %d, want 200", w.Code)
	}
	// The stored hash was upper-case hex.
	if w := do(t, h, rec, req{"PUT", "/metrics/job/anything", billing, nil}); w.Code != 200 {
		t.Errorf("push with the token: %d %q", w.Code, w.Body)
	}
}

func TestGuardOff(t *testing.T) {
	rec := &recorder{}
	reg := prometheus.NewPedanticRegistry()
	h := access.NewGuard(nil, access.Options{Registerer: reg}).Wrap(rec)
	if _, ok := h.(*recorder); !ok {
		t.Fatal("without a policy, Wrap must return the handler itself")
	}
	if mfs, _ := reg.Gather(); len(mfs) != 0 {
		t.Fatal("without a policy, nothing may be registered")
	}
}

func TestGuardUTF8Names(t *testing.T) {
	c, err := access.Parse([]byte(`tokens: [{name: t, sha256: a351b85dde0cfbe62345dd4f3e362b0e61535e7df62a2f0e1f1615240b0b54fd, push: ['job="j", "team.name"="billing"']}]`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := access.New(c)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	// U__team_2e_name is "team.name" in the U__ escaping.
	target := "/metrics/job/j/U__team_2e_name/billing"
	if w := do(t, access.NewGuard(p, access.Options{UTF8Names: true}).Wrap(rec), rec, req{"PUT", target, billing, nil}); w.Code != 200 {
		t.Errorf("UTF-8 names on: %d %q", w.Code, w.Body)
	}
	// Off, the push handler refuses the name (400); the guard lets that
	// through but would not match "team.name".
	if w := do(t, access.NewGuard(p, access.Options{}).Wrap(rec), rec, req{"PUT", "/metrics/job/j/U__team_2e_name/billing", billing, nil}); w.Code != 403 {
		t.Errorf("UTF-8 names off: %d %q, want 403", w.Code, w.Body)
	}
}

// TestGuardMultipartDelete checks the UI delete form in multipart encoding,
// which the UI also accepts.
func TestGuardMultipartDelete(t *testing.T) {
	rec := &recorder{}
	h := access.NewGuard(loadPolicy(t, "testdata/full.good.yml"), access.Options{}).Wrap(rec)
	for group, code := range map[string]int{"job/billing-x": 200, "job/payments": 403} {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("group", group)
		_ = mw.Close()
		body := buf.String()
		r := httptest.NewRequest("POST", "/delete", strings.NewReader(body))
		r.Header.Set("Content-Type", mw.FormDataContentType())
		r.Header.Set("Authorization", billing)
		w := httptest.NewRecorder()
		*rec = recorder{}
		h.ServeHTTP(w, r)
		if w.Code != code {
			t.Errorf("delete %s: %d %q, want %d", group, w.Code, w.Body, code)
		}
		if code == 200 && rec.body != body {
			t.Errorf("delete %s: handler got body %q, want it unchanged", group, rec.body)
		}
	}
	// An oversized form is not parsed: the UI refuses it with 400, so it
	// goes through as an unparsable key (billing has push scopes) with its
	// body intact.
	big := url.Values{"pad": {strings.Repeat("x", 70<<10)}, "group": {"job/payments"}}.Encode()
	r := httptest.NewRequest("POST", "/delete", strings.NewReader(big))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Authorization", billing)
	*rec = recorder{}
	h.ServeHTTP(httptest.NewRecorder(), r)
	if !rec.called || rec.body != big {
		t.Errorf("oversized form: called=%v, body intact=%v", rec.called, rec.body == big)
	}
}

func loadPolicy(t *testing.T, file string) *access.Policy {
	t.Helper()
	p, err := access.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestGuardScope checks the scope that the guard hands to DELETE
// /api/v1/groups: the principal's push scopes, everything for an admin, and
// no scope on other routes.
func TestGuardScope(t *testing.T) {
	policy, err := access.Load("testdata/full.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	var (
		scope  access.Scope
		scoped bool
	)
	h := access.NewGuard(policy, access.Options{}).Wrap(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		scope, scoped = access.ScopeFrom(r.Context())
	}))
	key := func(labels ...string) grouping.Key {
		m := map[string]string{}
		for i := 0; i < len(labels); i += 2 {
			m[labels[i]] = labels[i+1]
		}
		k, err := grouping.FromMap(m)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	keys := []grouping.Key{
		key("job", "billing-x"),
		key("job", "shared", "team", "billing"),
		key("job", "batch", "instance", "ci-1"),
		key("job", "payments"),
	}
	tests := []struct {
		name, auth, method, target string
		want                       []bool // per key; nil: no scope attached
	}{
		{"billing", billing, "DELETE", "/api/v1/groups", []bool{true, true, false, false}},
		{"ci", ci, "DELETE", "/api/v1/groups", []bool{false, false, true, false}},
		{"admin", alice, "DELETE", "/api/v1/groups", []bool{true, true, true, true}},
		{"list", alice, "GET", "/api/v1/groups", nil},
		{"push", billing, "PUT", "/metrics/job/billing-x", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scope, scoped = nil, false
			w := httptest.NewRecorder()
			r := httptest.NewRequest(tt.method, tt.target, nil)
			r.Header.Set("Authorization", authHeader(tt.auth))
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				t.Fatalf("%d %q", w.Code, w.Body)
			}
			if scoped != (tt.want != nil) {
				t.Fatalf("scope attached: %v, want %v", scoped, tt.want != nil)
			}
			for i, k := range keys {
				if tt.want != nil && scope(k) != tt.want[i] {
					t.Errorf("scope(%s) = %v, want %v", k, scope(k), tt.want[i])
				}
			}
		})
	}
}
