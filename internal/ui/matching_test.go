package ui_test

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pushgate/pushgate/internal/grouping"
)

var (
	hiddenField = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)
	tag         = regexp.MustCompile(`<[^>]+>`)
)

// confirmForm reads the hidden fields of the confirmation at target.
func confirmForm(t *testing.T, e *env, target string) (url.Values, string) {
	t.Helper()
	code, body := e.get(t, target)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", target, code, body)
	}
	v := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v, body
}

// listed returns the keys a confirmation lists, as the text of their label
// chips ("job=backupinstance=db-1").
func listed(body string) []string {
	_, list, ok := strings.Cut(body, `<ul class="matching" id="matching-groups">`)
	if !ok {
		return nil
	}
	list, _, _ = strings.Cut(list, "</ul>")
	var out []string
	for _, li := range strings.Split(list, "<li>")[1:] {
		out = append(out, tag.ReplaceAllString(strings.TrimSpace(li), ""))
	}
	return out
}

func TestDeleteMatchingOffered(t *testing.T) {
	for _, c := range []struct {
		name, query string
		admin       bool
		want        string // the link's text; "" for none
	}{
		{name: "filtered", query: "q=backup", admin: true, want: "Delete the 2 matching groups…"},
		{name: "one group", query: "q=db-1", admin: true, want: "Delete the 1 matching group…"},
		{name: "failed only", query: "failed=1", admin: true, want: "Delete the 1 matching group…"},
		{name: "not filtered", query: "", admin: true},
		{name: "no match", query: "q=nothing-like-it", admin: true},
		{name: "admin API disabled", query: "q=backup"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOpts{admin: c.admin, prefix: "/pg"})
			_, body := e.get(t, "/?"+c.query+"&sort=series&page=1")
			m := regexp.MustCompile(`id="delete-matching" href="([^"]+)">([^<]+)</a>`).FindStringSubmatch(body)
			if c.want == "" {
				if m != nil {
					t.Fatalf("offers %q", m[2])
				}
				return
			}
			if m == nil {
				t.Fatal("no delete-matching link")
			}
			if m[2] != c.want {
				t.Errorf("link text %q, want %q", m[2], c.want)
			}
			// The link carries the filter only: sorting and paging do not
			// change the set.
			if want := "/pg/delete-matching?" + html.EscapeString(mustQuery(t, c.query).Encode()); m[1] != want {
				t.Errorf("link %q, want %q", m[1], want)
			}
		})
	}
}

func mustQuery(t *testing.T, q string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestDeleteMatching(t *testing.T) {
	sameOrigin := map[string]string{"Sec-Fetch-Site": "same-origin"}
	all := []string{db1, db2, etl, report}
	for _, c := range []struct {
		name   string
		admin  bool
		query  string // of the confirmation
		listed []string
		// between runs after the confirmation, before the POST.
		between func(t *testing.T, e *env)
		// edit changes the confirmation's form before it is posted.
		edit     func(v url.Values)
		header   map[string]string
		status   int
		location string
		left     []string // groups left afterwards
		contains []string // in the answer's body
	}{
		{
			name: "confirm and delete", admin: true, query: "q=backup",
			listed: []string{`job=backupinstance=db-1`, `job=backupinstance=db-2`},
			header: sameOrigin, status: 303, location: "/?deleted_matching=2&q=backup",
			left: []string{etl, report},
		},
		{
			name: "failed only", admin: true, query: "failed=1",
			listed: []string{`job=report`},
			status: 303, location: "/?deleted_matching=1&failed=1",
			left: []string{db1, db2, etl},
		},
		{
			name: "a matching group was pushed since", admin: true, query: "q=backup",
			between: func(t *testing.T, e *env) {
				push(t, e.st, key(t, "job", "backup", "instance", "db-3"), families(t, "# TYPE backup_state untyped\nbackup_state 1\n"))
			},
			header: sameOrigin, status: 409,
			left:     append([]string{"job/backup/instance/db-3"}, all...),
			contains: []string{"Nothing was deleted: the groups matching the filter changed after you confirmed (you confirmed 2, 3 match now).", "Delete 3 groups</button>"},
		},
		{
			name: "a matching group was deleted since", admin: true, query: "q=backup",
			between: func(t *testing.T, e *env) {
				if err := e.st.Delete(key(t, "job", "backup", "instance", "db-1")); err != nil {
					t.Fatal(err)
				}
			},
			header: sameOrigin, status: 409,
			left:     []string{db2, etl, report},
			contains: []string{"(you confirmed 2, 1 match now)", "Delete 1 group</button>"},
		},
		{
			name: "another group now matches by a metric name", admin: true, query: "q=backup_extra",
			between: func(t *testing.T, e *env) {
				push(t, e.st, key(t, "job", "report"), families(t, "# TYPE backup_extra_pages gauge\nbackup_extra_pages 1\n"))
			},
			status: 409, left: all,
			contains: []string{"(you confirmed 1, 2 match now)"},
		},
		{
			name: "the form's filter was changed", admin: true, query: "q=db-1",
			edit:   func(v url.Values) { v.Set("q", "backup") },
			status: 409, left: all,
			contains: []string{"(you confirmed 1, 2 match now)"},
		},
		{
			name: "the set was forged", admin: true, query: "q=db-1",
			edit:   func(v url.Values) { v.Set("set", strings.Repeat("0", 64)) },
			status: 403, left: all,
		},
		{
			name: "no token", admin: true, query: "q=db-1",
			edit:   func(v url.Values) { v.Del("csrf") },
			status: 403, left: all,
		},
		{
			name: "no filter", admin: true, query: "q=db-1",
			edit:   func(v url.Values) { v.Del("q") },
			status: 400, left: all,
		},
		{
			name: "cross-site", admin: true, query: "q=backup",
			header: map[string]string{"Sec-Fetch-Site": "cross-site"},
			status: 403, left: all,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOpts{admin: c.admin})
			v, body := confirmForm(t, e, "/delete-matching?"+c.query)
			if c.listed != nil {
				if got := listed(body); strings.Join(got, " ") != strings.Join(c.listed, " ") {
					t.Errorf("confirmation lists %q, want %q", got, c.listed)
				}
				n := len(c.listed)
				if want := fmt.Sprintf("These <strong>%d group", n); !strings.Contains(body, want) {
					t.Errorf("confirmation lacks %q", want)
				}
			}
			if c.between != nil {
				c.between(t, e)
			}
			if c.edit != nil {
				c.edit(v)
			}
			w := e.do(t, form(http.MethodPost, "/delete-matching", v, c.header))
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if got := w.Header().Get("Location"); got != c.location {
				t.Errorf("Location %q, want %q", got, c.location)
			}
			var left []string
			for _, g := range e.st.View().Groups {
				left = append(left, strings.TrimPrefix(g.Key.Path(grouping.Options{}), "/metrics/"))
			}
			slices.Sort(left)
			want := slices.Sorted(slices.Values(c.left))
			if !slices.Equal(left, want) {
				t.Errorf("left %q, want %q", left, want)
			}
			for _, s := range c.contains {
				if !strings.Contains(w.Body.String(), s) {
					t.Errorf("answer lacks %q", s)
				}
			}
		})
	}
}

// TestDeleteMatchingAfterConflict confirms the set shown by a 409 and
// deletes it.
func TestDeleteMatchingAfterConflict(t *testing.T) {
	e := newEnv(t, envOpts{admin: true})
	v, _ := confirmForm(t, e, "/delete-matching?q=backup")
	push(t, e.st, key(t, "job", "backup", "instance", "db-3"), families(t, "# TYPE backup_state untyped\nbackup_state 1\n"))
	w := e.do(t, form(http.MethodPost, "/delete-matching", v, nil))
	if w.Code != http.StatusConflict {
		t.Fatalf("status %d", w.Code)
	}
	v = url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(w.Body.String(), -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	w = e.do(t, form(http.MethodPost, "/delete-matching", v, nil))
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/?deleted_matching=3&q=backup" {
		t.Fatalf("status %d, Location %q", w.Code, w.Header().Get("Location"))
	}
	if n := e.st.Stats().Groups; n != 2 {
		t.Errorf("%d groups left, want 2", n)
	}
	_, body := e.get(t, w.Header().Get("Location"))
	for _, s := range []string{"Deleted the 3 matching groups.", "No group matches."} {
		if !strings.Contains(body, s) {
			t.Errorf("overview lacks %q", s)
		}
	}
}

func TestDeleteMatchingRefused(t *testing.T) {
	for _, c := range []struct {
		name, method, target string
		admin                bool
		status               int
	}{
		{name: "confirmation, admin API disabled", method: "GET", target: "/delete-matching?q=backup", status: 403},
		{name: "delete, admin API disabled", method: "POST", target: "/delete-matching", status: 403},
		{name: "confirmation without a filter", method: "GET", target: "/delete-matching", admin: true, status: 400},
		{name: "PUT", method: "PUT", target: "/delete-matching", admin: true, status: 405},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOpts{admin: c.admin})
			w := e.do(t, form(c.method, c.target, url.Values{"q": {"backup"}}, nil))
			if w.Code != c.status {
				t.Errorf("status %d, want %d", w.Code, c.status)
			}
			if n := e.st.Stats().Groups; n != 4 {
				t.Errorf("%d groups left, want 4", n)
			}
		})
	}
}

// TestDeleteMatchingListsFirst shows that a long confirmation lists the
// first groups and counts the rest.
func TestDeleteMatchingListsFirst(t *testing.T) {
	e := newEnv(t, envOpts{admin: true})
	for i := range 105 {
		push(t, e.st, key(t, "job", "batch", "instance", fmt.Sprintf("i%03d", i)), families(t, "# TYPE batch_done gauge\nbatch_done 1\n"))
	}
	v, body := confirmForm(t, e, "/delete-matching?q=job%3Dbatch")
	if got := len(listed(body)); got != 100 {
		t.Errorf("lists %d groups, want 100", got)
	}
	for _, s := range []string{"Delete the 105 matching groups?", "…and 5 more.", "Delete 105 groups</button>"} {
		if !strings.Contains(body, s) {
			t.Errorf("confirmation lacks %q", s)
		}
	}
	if w := e.do(t, form(http.MethodPost, "/delete-matching", v, nil)); w.Code != http.StatusSeeOther {
		t.Fatalf("status %d", w.Code)
	}
	if n := e.st.Stats().Groups; n != 4 {
		t.Errorf("%d groups left, want the 4 others", n)
	}
}
