package api_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pushgate/pushgate/internal/access"
	"github.com/pushgate/pushgate/internal/api"
	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/store/storetest"
)

// answer is the envelope of every /api/v1/groups answer.
type answer struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		// GET
		Groups json.RawMessage `json:"groups"`
		Next   string          `json:"next"`
		// DELETE
		DryRun  bool `json:"dry_run"`
		Count   int  `json:"count"`
		Skipped int  `json:"skipped"`
	} `json:"data"`
}

func decode(t *testing.T, w *httptest.ResponseRecorder) answer {
	t.Helper()
	var a answer
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
		t.Fatalf("answer %d %q: %v", w.Code, w.Body, err)
	}
	if got := w.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
	return a
}

// jobs returns the job label of each group in a groups list, in order.
func jobs(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var gs []struct {
		Labels map[string]string `json:"labels"`
	}
	if err := json.Unmarshal(raw, &gs); err != nil {
		t.Fatalf("groups %s: %v", raw, err)
	}
	out := []string{}
	for _, g := range gs {
		out = append(out, g.Labels["job"])
	}
	return out
}

// deletedJobs is jobs for DELETE's groups, which are bare label sets.
func deletedJobs(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var gs []map[string]string
	if err := json.Unmarshal(raw, &gs); err != nil {
		t.Fatalf("groups %s: %v", raw, err)
	}
	out := []string{}
	for _, g := range gs {
		out = append(out, g["job"])
	}
	return out
}

// query builds ?match[]=...&match[]=... plus extra "k=v" pairs.
func query(matches []string, extra ...string) string {
	v := url.Values{}
	for _, m := range matches {
		v.Add("match[]", m)
	}
	for _, e := range extra {
		k, val, _ := strings.Cut(e, "=")
		v.Set(k, val)
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// fiveGroups pushes jobs a..e; c also has zone="z1", and d's last push
// failed.
func fiveGroups(t *testing.T) *store.Store {
	t.Helper()
	s := newStore(t)
	push(t, s, "job=a", "# TYPE x gauge\nx 1\n")
	push(t, s, "job=b", "# TYPE x gauge\nx{l=\"1\"} 1\nx{l=\"2\"} 2\n# TYPE y counter\ny 3\n")
	push(t, s, "job=c,zone=z1", "# TYPE x gauge\nx 1\n")
	push(t, s, "job=d", "# TYPE x gauge\nx 1\n")
	if err := s.Push(storetest.Key(t, "job=d"), storetest.Families(t, "# TYPE x counter\nx 1\n"), true); err == nil {
		t.Fatal("inconsistent push to d accepted")
	}
	push(t, s, "job=e", "# TYPE x gauge\nx 1\n")
	return s
}

func TestListGroups(t *testing.T) {
	s := fiveGroups(t)
	h := mux(api.New(s, api.Options{}))
	tests := []struct {
		name    string
		matches []string
		extra   []string
		want    []string
		next    bool
		errHas  string // a 400 bad_data answer containing this
	}{
		{name: "all", want: []string{"a", "b", "c", "d", "e"}},
		{name: "equal", matches: []string{`job="b"`}, want: []string{"b"}},
		{name: "braces", matches: []string{`{job="b"}`}, want: []string{"b"}},
		{name: "regexp", matches: []string{`job=~"[a-c]"`}, want: []string{"a", "b", "c"}},
		{name: "not equal", matches: []string{`job!="a"`}, want: []string{"b", "c", "d", "e"}},
		{name: "label present", matches: []string{`zone!=""`}, want: []string{"c"}},
		{name: "and", matches: []string{`job=~".*", zone="z1"`}, want: []string{"c"}},
		{name: "or", matches: []string{`job="e"`, `job="a"`}, want: []string{"a", "e"}},
		{name: "or overlapping", matches: []string{`job=~"a|b"`, `job="b"`}, want: []string{"a", "b"}},
		{name: "no match", matches: []string{`job="zzz"`}, want: []string{}},
		{name: "limit", extra: []string{"limit=2"}, want: []string{"a", "b"}, next: true},
		{name: "limit exact", matches: []string{`job=~"a|b"`}, extra: []string{"limit=2"}, want: []string{"a", "b"}},
		{name: "empty selector", matches: []string{``}, errHas: "empty selector"},
		{name: "bad selector", matches: []string{`job=`}, errHas: `match[] "job="`},
		{name: "bad regexp", matches: []string{`job=~"("`}, errHas: "regexp"},
		{name: "limit zero", extra: []string{"limit=0"}, errHas: "limit"},
		{name: "limit too big", extra: []string{"limit=1001"}, errHas: "limit"},
		{name: "limit not a number", extra: []string{"limit=x"}, errHas: "limit"},
		{name: "bad token", extra: []string{"start=!!"}, errHas: "start"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(h, http.MethodGet, "/api/v1/groups"+query(tt.matches, tt.extra...))
			a := decode(t, w)
			if tt.errHas != "" {
				if w.Code != http.StatusBadRequest || a.Status != "error" || a.ErrorType != "bad_data" || !strings.Contains(a.Error, tt.errHas) {
					t.Errorf("%d %s, want 400 bad_data containing %q", w.Code, w.Body, tt.errHas)
				}
				return
			}
			if w.Code != http.StatusOK || a.Status != "success" {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			if got := jobs(t, a.Data.Groups); !slices.Equal(got, tt.want) {
				t.Errorf("jobs %q, want %q", got, tt.want)
			}
			if (a.Data.Next != "") != tt.next {
				t.Errorf("next %q, want one: %v", a.Data.Next, tt.next)
			}
		})
	}
}

// TestListGroupsShape pins the JSON of one group: b expires an hour after
// its push (by a rule), d never does.
func TestListGroupsShape(t *testing.T) {
	s := store.New(store.Options{
		Now: func() time.Time { return pushedAt },
		ExpireRule: func(k grouping.Key) (time.Duration, bool) {
			return time.Hour, k.Get("job") == "b"
		},
	})
	push(t, s, "job=b", "# TYPE x gauge\nx{l=\"1\"} 1\nx{l=\"2\"} 2\n# TYPE y counter\ny 3\n")
	push(t, s, "job=d", "# TYPE x gauge\nx 1\n")
	if err := s.Push(storetest.Key(t, "job=d"), storetest.Families(t, "# TYPE x counter\nx 1\n"), true); err == nil {
		t.Fatal("inconsistent push to d accepted")
	}
	h := mux(api.New(s, api.Options{}))
	w := do(h, http.MethodGet, "/api/v1/groups"+query([]string{`job=~"b|d"`}))
	ts := pushedAt.Format(time.RFC3339Nano)
	exp := pushedAt.Add(time.Hour).Format(time.RFC3339Nano)
	want := `{"status":"success","data":{"groups":[` +
		`{"labels":{"job":"b"},"last_push_time":"` + ts + `","last_push_failure_time":null,"last_push_successful":true,"families":4,"series":5,"expires_at":"` + exp + `"},` +
		`{"labels":{"job":"d"},"last_push_time":"` + ts + `","last_push_failure_time":"` + ts + `","last_push_successful":true,"families":3,"series":3,"expires_at":null}]}}`
	if got := w.Body.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestListGroupsPaging follows the start tokens through every page, with
// and without a selector, and while groups are deleted between pages.
func TestListGroupsPaging(t *testing.T) {
	page := func(h http.Handler, matches []string, limit int, start string) ([]string, string) {
		t.Helper()
		extra := []string{fmt.Sprint("limit=", limit)}
		if start != "" {
			extra = append(extra, "start="+start)
		}
		w := do(h, http.MethodGet, "/api/v1/groups"+query(matches, extra...))
		if w.Code != http.StatusOK {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		a := decode(t, w)
		return jobs(t, a.Data.Groups), a.Data.Next
	}
	tests := []struct {
		name    string
		matches []string
		limit   int
		want    [][]string
	}{
		{"by two", nil, 2, [][]string{{"a", "b"}, {"c", "d"}, {"e"}}},
		{"by one", nil, 1, [][]string{{"a"}, {"b"}, {"c"}, {"d"}, {"e"}}},
		{"all at once", nil, 1000, [][]string{{"a", "b", "c", "d", "e"}}},
		{"selector", []string{`job!="b"`, `job="b"`}, 2, [][]string{{"a", "b"}, {"c", "d"}, {"e"}}},
		{"sparse", []string{`job=~"a|e"`}, 1, [][]string{{"a"}, {"e"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := mux(api.New(fiveGroups(t), api.Options{}))
			var got [][]string
			start := ""
			for range 10 {
				js, next := page(h, tt.matches, tt.limit, start)
				got = append(got, js)
				if next == "" {
					break
				}
				start = next
			}
			if !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Errorf("pages %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("group deleted between pages", func(t *testing.T) {
		s := fiveGroups(t)
		h := mux(api.New(s, api.Options{}))
		js, next := page(h, nil, 2, "")
		if err := s.Delete(storetest.Key(t, "job=c,zone=z1")); err != nil { // the next page's first group
			t.Fatal(err)
		}
		js2, _ := page(h, nil, 2, next)
		if !slices.Equal(js, []string{"a", "b"}) || !slices.Equal(js2, []string{"d", "e"}) {
			t.Errorf("pages %q, %q; want [a b], [d e]", js, js2)
		}
	})
	t.Run("token is the base64url key ID", func(t *testing.T) {
		h := mux(api.New(fiveGroups(t), api.Options{}))
		_, next := page(h, nil, 3, "")
		if want := api.EncodeStart(storetest.Key(t, "job=d").ID()); next != want {
			t.Errorf("next %q, want %q", next, want)
		}
	})
}

// deletingStore fails Delete from the failAt-th call on (0: never).
type deletingStore struct {
	*store.Store
	calls, failAt int
}

func (s *deletingStore) Delete(k grouping.Key) error {
	s.calls++
	if s.failAt > 0 && s.calls >= s.failAt {
		return fmt.Errorf("%w: disk full", store.ErrStorage)
	}
	return s.Store.Delete(k)
}

func remaining(t *testing.T, s *store.Store) []string {
	t.Helper()
	out := []string{}
	for _, g := range s.View().Groups {
		out = append(out, g.Key.Get("job"))
	}
	return out
}

func TestDeleteGroups(t *testing.T) {
	tests := []struct {
		name    string
		admin   bool
		matches []string
		extra   []string
		failAt  int
		code    int
		errType string
		deleted []string // the answer's groups
		left    []string
	}{
		{name: "one", admin: true, matches: []string{`job="b"`}, code: 200,
			deleted: []string{"b"}, left: []string{"a", "c", "d", "e"}},
		{name: "or", admin: true, matches: []string{`job="e"`, `job=~"a|b"`}, code: 200,
			deleted: []string{"a", "b", "e"}, left: []string{"c", "d"}},
		{name: "none match", admin: true, matches: []string{`job="zzz"`}, code: 200,
			deleted: []string{}, left: []string{"a", "b", "c", "d", "e"}},
		{name: "dry run", admin: true, matches: []string{`job=~"a|b"`}, extra: []string{"dry_run=true"}, code: 200,
			deleted: []string{"a", "b"}, left: []string{"a", "b", "c", "d", "e"}},
		{name: "dry run false", admin: true, matches: []string{`job="a"`}, extra: []string{"dry_run=false"}, code: 200,
			deleted: []string{"a"}, left: []string{"b", "c", "d", "e"}},
		{name: "bad dry run", admin: true, matches: []string{`job="a"`}, extra: []string{"dry_run=maybe"}, code: 400, errType: "bad_data",
			left: []string{"a", "b", "c", "d", "e"}},
		{name: "no selector", admin: true, code: 400, errType: "bad_data",
			left: []string{"a", "b", "c", "d", "e"}},
		{name: "empty selector", admin: true, matches: []string{""}, code: 400, errType: "bad_data",
			left: []string{"a", "b", "c", "d", "e"}},
		{name: "empty braces", admin: true, matches: []string{"{}"}, code: 400, errType: "bad_data",
			left: []string{"a", "b", "c", "d", "e"}},
		{name: "one bad selector", admin: true, matches: []string{`job="a"`, `job=`}, code: 400, errType: "bad_data",
			left: []string{"a", "b", "c", "d", "e"}},
		{name: "without admin API", matches: []string{`job="a"`}, code: 403, errType: "forbidden",
			left: []string{"a", "b", "c", "d", "e"}},
		{name: "storage fails on the third", admin: true, matches: []string{`job!="c"`}, failAt: 3, code: 503, errType: "unavailable",
			deleted: []string{"a", "b"}, left: []string{"c", "d", "e"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fiveGroups(t)
			h := mux(api.New(&deletingStore{Store: s, failAt: tt.failAt}, api.Options{EnableAdmin: tt.admin}))
			w := do(h, http.MethodDelete, "/api/v1/groups"+query(tt.matches, tt.extra...))
			a := decode(t, w)
			if w.Code != tt.code || a.ErrorType != tt.errType {
				t.Fatalf("%d %s, want %d %q", w.Code, w.Body, tt.code, tt.errType)
			}
			if tt.deleted != nil {
				if got := deletedJobs(t, a.Data.Groups); !slices.Equal(got, tt.deleted) || a.Data.Count != len(got) {
					t.Errorf("answer lists %q (count %d), want %q", got, a.Data.Count, tt.deleted)
				}
			}
			if a.Data.DryRun != slices.Contains(tt.extra, "dry_run=true") {
				t.Errorf("dry_run %v", a.Data.DryRun)
			}
			if got := remaining(t, s); !slices.Equal(got, tt.left) {
				t.Errorf("left %q, want %q", got, tt.left)
			}
		})
	}
}

// TestDeleteGroupsScoped runs DELETE behind an access.Guard: a token may
// delete only the groups its push scopes cover, and the answer counts the
// others as skipped.
func TestDeleteGroupsScoped(t *testing.T) {
	tok := func(name, role string, push ...string) access.Token {
		sum := sha256.Sum256([]byte(name))
		return access.Token{Name: name, SHA256: hex.EncodeToString(sum[:]), Grant: access.Grant{Role: access.Role(role), Push: push}}
	}
	policy, err := access.New(&access.Config{Tokens: []access.Token{
		tok("ab", "", `job=~"a|b"`),
		tok("ac", "read", `job="a"`, `zone="z1"`),
		tok("admin", "admin"),
		tok("reader", "read"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, token string
		admin       bool // --web.enable-admin-api
		matches     []string
		extra       []string
		code        int
		deleted     []string
		skipped     int
		left        []string
	}{
		{name: "all in scope", token: "ab", matches: []string{`job=~"a|b"`}, code: 200,
			deleted: []string{"a", "b"}, left: []string{"c", "d", "e"}},
		{name: "some outside", token: "ab", matches: []string{`job=~".+"`}, code: 200,
			deleted: []string{"a", "b"}, skipped: 3, left: []string{"c", "d", "e"}},
		{name: "some outside, admin API on", token: "ab", admin: true, matches: []string{`job=~".+"`}, code: 200,
			deleted: []string{"a", "b"}, skipped: 3, left: []string{"c", "d", "e"}},
		{name: "dry run", token: "ab", matches: []string{`job!="b"`}, extra: []string{"dry_run=true"}, code: 200,
			deleted: []string{"a"}, skipped: 3, left: []string{"a", "b", "c", "d", "e"}},
		{name: "two scopes", token: "ac", matches: []string{`job=~".+"`}, code: 200,
			deleted: []string{"a", "c"}, skipped: 3, left: []string{"b", "d", "e"}},
		{name: "nothing in scope", token: "ab", matches: []string{`job="e"`}, code: 200,
			deleted: []string{}, skipped: 1, left: []string{"a", "b", "c", "d", "e"}},
		{name: "admin role", token: "admin", matches: []string{`job=~".+"`}, code: 200,
			deleted: []string{"a", "b", "c", "d", "e"}, left: []string{}},
		{name: "read role only", token: "reader", matches: []string{`job=~".+"`}, code: 403,
			left: []string{"a", "b", "c", "d", "e"}},
		{name: "no credentials", matches: []string{`job=~".+"`}, code: 401,
			left: []string{"a", "b", "c", "d", "e"}},
		{name: "empty selector still refused", token: "admin", code: 400,
			left: []string{"a", "b", "c", "d", "e"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fiveGroups(t)
			h := access.NewGuard(policy, access.Options{}).Wrap(mux(api.New(s, api.Options{EnableAdmin: tt.admin})))
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodDelete, "/api/v1/groups"+query(tt.matches, tt.extra...), nil)
			if tt.token != "" {
				r.Header.Set("Authorization", "Bearer "+tt.token)
			}
			h.ServeHTTP(w, r)
			if w.Code != tt.code {
				t.Fatalf("%d %s, want %d", w.Code, w.Body, tt.code)
			}
			if tt.code == http.StatusOK {
				a := decode(t, w)
				if got := deletedJobs(t, a.Data.Groups); !slices.Equal(got, tt.deleted) || a.Data.Skipped != tt.skipped {
					t.Errorf("answer lists %q, skipped %d; want %q, %d", got, a.Data.Skipped, tt.deleted, tt.skipped)
				}
			}
			if got := remaining(t, s); !slices.Equal(got, tt.left) {
				t.Errorf("left %q, want %q", got, tt.left)
			}
		})
	}
}
