package ui

import (
	"cmp"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/store"
)

// Page sizes of the overview.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
	maxQueryLen     = 256
	// maxMatched bounds the metric names listed as the reason a row matched.
	maxMatched = 3
)

// Sort orders of the overview, as in ?sort=.
const (
	sortKey      = "key"
	sortPush     = "push"
	sortStatus   = "status"
	sortFamilies = "families"
	sortSeries   = "series"
)

// defaultDesc is the direction a column sorts in when first chosen: newest,
// failed and biggest first.
var defaultDesc = map[string]bool{sortKey: false, sortPush: true, sortStatus: true, sortFamilies: true, sortSeries: true}

// query is the overview's state in the URL: ?q=&failed=1&sort=&dir=&page=&size=.
type query struct {
	Q      string
	Failed bool
	Sort   string
	Desc   bool
	Page   int
	Size   int
	prefix string
}

func parseQuery(v url.Values, prefix string) query {
	q := query{Sort: sortKey, Page: 1, Size: defaultPageSize, prefix: prefix}
	q.Q = strings.TrimSpace(v.Get("q"))
	if len(q.Q) > maxQueryLen {
		q.Q = q.Q[:maxQueryLen]
		for !utf8.ValidString(q.Q) {
			q.Q = q.Q[:len(q.Q)-1]
		}
	}
	q.Failed = v.Get("failed") != ""
	if s := v.Get("sort"); s != "" {
		if _, ok := defaultDesc[s]; ok {
			q.Sort = s
		}
	}
	q.Desc = defaultDesc[q.Sort]
	switch v.Get("dir") {
	case "asc":
		q.Desc = false
	case "desc":
		q.Desc = true
	}
	if n, err := strconv.Atoi(v.Get("page")); err == nil && n > 0 {
		q.Page = n
	}
	if n, err := strconv.Atoi(v.Get("size")); err == nil && n > 0 {
		q.Size = min(n, maxPageSize)
	}
	return q
}

// URL renders the query as a link to the overview; only non-defaults
// appear.
func (q query) URL() string {
	v := url.Values{}
	if q.Q != "" {
		v.Set("q", q.Q)
	}
	if q.Failed {
		v.Set("failed", "1")
	}
	if q.Sort != sortKey {
		v.Set("sort", q.Sort)
	}
	if q.Desc != defaultDesc[q.Sort] {
		if q.Desc {
			v.Set("dir", "desc")
		} else {
			v.Set("dir", "asc")
		}
	}
	if q.Page > 1 {
		v.Set("page", strconv.Itoa(q.Page))
	}
	if q.Size != defaultPageSize {
		v.Set("size", strconv.Itoa(q.Size))
	}
	if len(v) == 0 {
		return q.prefix + "/"
	}
	return q.prefix + "/?" + v.Encode()
}

// SortURL links to the first page sorted by column: in its default
// direction, or reversed if it is the current column.
func (q query) SortURL(column string) string {
	desc := defaultDesc[column]
	if q.Sort == column {
		desc = !q.Desc
	}
	q.Sort, q.Desc, q.Page = column, desc, 1
	return q.URL()
}

// column is a sortable column header.
type column struct {
	Label    string
	URL      string
	AriaSort string // "none", "ascending" or "descending"
	Arrow    string
	Num      bool // a numeric column, aligned right
}

// Col describes the header of a column.
func (q query) Col(name, label string) column {
	c := column{Label: label, URL: q.SortURL(name), AriaSort: "none", Num: name == sortFamilies || name == sortSeries}
	if q.Sort == name {
		c.AriaSort, c.Arrow = "ascending", "▲"
		if q.Desc {
			c.AriaSort, c.Arrow = "descending", "▼"
		}
	}
	return c
}

// PageURL links to page n.
func (q query) PageURL(n int) string {
	q.Page = n
	return q.URL()
}

// DirParam is ?dir= if the direction is not the column's default, else "".
func (q query) DirParam() string {
	switch {
	case q.Desc == defaultDesc[q.Sort]:
		return ""
	case q.Desc:
		return "desc"
	default:
		return "asc"
	}
}

// term is one word of the filter: it matches a group if it is contained in
// a label value or a pushed metric name, or, as "name=value", if the label
// name is equal and the value contains value. Matching ignores case.
type term struct {
	name  string // "" for a plain term
	value string // lower case
}

func parseTerms(q string) []term {
	var terms []term
	// A control character matches nothing people see; dropping them keeps
	// NUL, the search text's separator, out of terms.
	q = strings.Map(func(r rune) rune {
		if r < ' ' {
			return ' '
		}
		return r
	}, q)
	for _, f := range strings.Fields(q) {
		if n, v, ok := strings.Cut(f, "="); ok && n != "" {
			terms = append(terms, term{name: n, value: strings.ToLower(strings.Trim(v, `"`))})
			continue
		}
		terms = append(terms, term{value: strings.ToLower(f)})
	}
	return terms
}

// isTimestampFamily reports whether name is one of the families every group
// has, which are shown as the group's push times rather than as its metrics.
func isTimestampFamily(name string) bool {
	return name == store.PushTimeName || name == store.PushFailureName
}

// matchTerm reports whether t matches g; matched collects metric names that
// matched, up to maxMatched, if non-nil.
func matchTerm(g *store.Group, t term, matched *[]string) bool {
	if t.name != "" {
		for _, l := range g.Key.Labels() {
			if strings.EqualFold(l.Name, t.name) && containsFold(l.Value, t.value) {
				return true
			}
		}
		return false
	}
	for _, l := range g.Key.Labels() {
		if containsFold(l.Value, t.value) {
			return true
		}
	}
	found := false
	for name := range g.Families.All() {
		if isTimestampFamily(name) || !containsFold(name, t.value) {
			continue
		}
		if matched == nil {
			return true
		}
		found = true
		if !slices.Contains(*matched, name) {
			*matched = append(*matched, name)
		}
	}
	return found
}

// matchAll reports whether every term matches g, whose search text is
// text.
func matchAll(g *store.Group, text string, terms []term) bool {
	for _, t := range terms {
		if t.name == "" {
			if !strings.Contains(text, t.value) {
				return false
			}
		} else if !matchTerm(g, t, nil) {
			return false
		}
	}
	return true
}

// matches reports whether the overview filtered by q (whose ?q= is
// terms) shows e.
func (q query) matches(e entry, terms []term) bool {
	if q.Failed && e.g.LastPushSuccessful() {
		return false
	}
	return matchAll(e.g, e.text, terms)
}

// Filtered reports whether the overview shows only some groups.
func (q query) Filtered() bool { return q.Q != "" || q.Failed }

// containsFold reports whether s contains lower, which is lower case,
// ignoring case. It allocates only for a string with upper-case letters.
func containsFold(s, lower string) bool {
	if strings.Contains(s, lower) {
		return true
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' || c >= utf8.RuneSelf {
			return strings.Contains(strings.ToLower(s), lower)
		}
	}
	return false
}

// overviewRow is one group on the overview page.
type overviewRow struct {
	Key      grouping.Key
	URL      string
	PushTime time.Time
	FailTime time.Time
	Expires  time.Time // zero: never
	Failed   bool
	Families int
	Series   int
	// Matched lists metric names that matched the filter.
	Matched     []string
	MoreMatched bool
}

// overviewPage is the data of the overview.
type overviewPage struct {
	Query      query
	Rows       []overviewRow
	Total      int // groups in the store
	Matching   int // groups that match the filter
	Series     int // series in the store
	First      int // 1-based position of the first row shown
	Last       int
	Pages      int
	PageNums   []int // page numbers to link, 0 for a gap
	Admin      bool
	WipeToken  string
	DeletedKey string
	Wiped      string
	// DeletedMatching is the count of groups the last "delete the
	// matching groups" deleted, from ?deleted_matching=.
	DeletedMatching string
	// Example is a push command for an empty gateway.
	Example string
}

// candidate is a matching group with the value it is sorted by.
type candidate struct {
	g                *store.Group
	pos              int   // in key order, to break ties
	n                int64 // the value of the sorted column
	families, series int
}

// Overview serves the list of groups: ?q= filters, ?sort= and ?dir= order,
// ?page= and ?size= paginate. It costs one pass over the store's groups
// plus sorting the matches; only one page of rows is rendered.
func (u *UI) Overview(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := parseQuery(v, u.opts.Prefix)
	data := u.overview(q)
	data.DeletedKey = v.Get("deleted")
	data.Wiped = v.Get("wiped")
	data.DeletedMatching = v.Get("deleted_matching")
	if data.Total == 0 {
		data.Example = `echo "some_metric 3.14" | curl --data-binary @- ` + shellQuote(u.baseURL(r)+"/metrics/job/some_job")
	}
	p := u.newPage("Groups", "groups", data)
	if q.Q != "" {
		p.Title = "Groups matching " + q.Q
	}
	u.render(w, http.StatusOK, "overview.html", p)
}

func (u *UI) overview(q query) *overviewPage {
	view := u.store.View()
	stats := u.store.Stats()
	terms := parseTerms(q.Q)

	index := u.keyOrder(view)
	cands := make([]candidate, 0, len(index.entries))
	for pos, e := range index.entries {
		g, info := e.g, e.groupInfo
		if !q.matches(e, terms) {
			continue
		}
		c := candidate{g: g, pos: pos, families: info.families, series: info.series}
		switch q.Sort {
		case sortPush:
			c.n = math.MinInt64 // never
			if !g.PushTime.IsZero() {
				c.n = g.PushTime.UnixNano()
			}
		case sortStatus:
			if !g.LastPushSuccessful() {
				c.n = 1
			}
		case sortFamilies:
			c.n = int64(info.families)
		case sortSeries:
			c.n = int64(info.series)
		}
		cands = append(cands, c)
	}
	sortCandidates(cands, q)

	d := &overviewPage{
		Query:    q,
		Total:    len(view.Groups),
		Matching: len(cands),
		Series:   stats.Series,
		Admin:    u.opts.EnableAdmin,
	}
	if d.Admin {
		d.WipeToken = u.token(actionWipe, "")
	}
	d.Pages = max(1, (len(cands)+q.Size-1)/q.Size)
	d.Query.Page = min(q.Page, d.Pages)
	start := (d.Query.Page - 1) * q.Size
	end := min(start+q.Size, len(cands))
	d.First, d.Last = start+1, end
	d.PageNums = pageNumbers(d.Query.Page, d.Pages)

	d.Rows = make([]overviewRow, 0, end-start)
	for _, c := range cands[start:end] {
		g := c.g
		row := overviewRow{
			Key:      g.Key,
			URL:      u.opts.Prefix + u.groupPath(g.Key),
			PushTime: g.PushTime,
			FailTime: g.FailTime,
			Failed:   !g.LastPushSuccessful(),
			Families: c.families,
			Series:   c.series,
		}
		row.Expires, _ = u.store.Deadline(g)
		for _, t := range terms {
			if t.name == "" {
				matchTerm(g, t, &row.Matched)
			}
		}
		slices.Sort(row.Matched)
		if len(row.Matched) > maxMatched {
			row.Matched, row.MoreMatched = row.Matched[:maxMatched], true
		}
		d.Rows = append(d.Rows, row)
	}
	return d
}

// keyOrdered is a view's groups in the order people read keys: by job,
// then by the other labels (name and value) in name order. (The view is
// ordered by key ID, which starts with the alphabetically first label name,
// so {env="prod", job="b"} would come before {job="a"}.)
type keyOrdered struct {
	view    *store.View
	entries []entry
	// byGroup holds what was derived from each group, to reuse for
	// unchanged groups (a Group value is immutable) in the next view.
	byGroup map[*store.Group]*groupInfo
}

type entry struct {
	g *store.Group
	*groupInfo
}

// groupInfo is what the overview derives from a group.
type groupInfo struct {
	// sortKey orders keys: the job, then each other label's name and
	// value, in name order.
	sortKey string
	// text is what plain terms search: the label values and metric names
	// in lower case, separated by NUL (which terms never contain, so a
	// term cannot match across two of them).
	text             string
	families, series int
}

// keyOrder returns the groups of view in key order, with what the overview
// derives from them. It sorts once per view, since views are immutable and
// shared until the store changes, and derives only from new groups.
func (u *UI) keyOrder(view *store.View) *keyOrdered {
	prev := u.ordered.Load()
	if prev != nil && prev.view == view {
		return prev
	}
	c := &keyOrdered{view: view, entries: make([]entry, len(view.Groups)), byGroup: make(map[*store.Group]*groupInfo, len(view.Groups))}
	for i, g := range view.Groups {
		var info *groupInfo
		if prev != nil {
			info = prev.byGroup[g]
		}
		if info == nil {
			info = newGroupInfo(g)
		}
		c.entries[i] = entry{g: g, groupInfo: info}
		c.byGroup[g] = info
	}
	slices.SortFunc(c.entries, func(a, b entry) int { return strings.Compare(a.sortKey, b.sortKey) })
	u.ordered.Store(c)
	return c
}

func newGroupInfo(g *store.Group) *groupInfo {
	info := &groupInfo{}
	var sk, text strings.Builder
	sk.WriteString(g.Key.Get(grouping.JobLabel))
	sk.WriteByte(0)
	for _, l := range g.Key.Labels() {
		text.WriteString(l.Value)
		text.WriteByte(0)
		if l.Name == grouping.JobLabel {
			continue
		}
		// Separators below any printable character make a shorter name
		// or value sort first, as comparing label by label would.
		sk.WriteString(l.Name)
		sk.WriteByte(1)
		sk.WriteString(l.Value)
		sk.WriteByte(0)
	}
	for name, f := range g.Families.All() {
		if isTimestampFamily(name) {
			continue
		}
		text.WriteString(name)
		text.WriteByte(0)
		info.families++
		info.series += f.Series
	}
	info.sortKey = sk.String()
	info.text = strings.ToLower(text.String())
	return info
}

// sortCandidates orders by the query's column; ties keep the key order.
func sortCandidates(cands []candidate, q query) {
	if q.Sort == sortKey {
		if q.Desc {
			slices.Reverse(cands)
		}
		return
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		c := cmp.Compare(a.n, b.n)
		if q.Desc {
			c = -c
		}
		if c == 0 {
			c = cmp.Compare(a.pos, b.pos)
		}
		return c
	})
}

// pageNumbers lists the pages to link around cur: the first, the last and
// two on each side of cur, with 0 for each gap.
func pageNumbers(cur, total int) []int {
	var out []int
	last := 0
	for n := 1; n <= total; n++ {
		if n == 1 || n == total || n >= cur-2 && n <= cur+2 {
			if last != 0 && n != last+1 {
				out = append(out, 0)
			}
			out = append(out, n)
			last = n
		}
	}
	return out
}
