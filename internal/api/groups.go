package api

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/pushgate/pushgate/internal/access"
	"github.com/pushgate/pushgate/internal/store"
)

// Paging of GET /api/v1/groups.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// groups serves /api/v1/groups: GET lists the groups matching match[],
// DELETE deletes them. Both take selectors over the grouping labels in the
// syntax of access.ParseSelector; several match[] are OR-ed, as in
// Prometheus's APIs. Like only, it answers the CORS preflight and 405 with
// Allow for other methods.
func (a *API) groups() http.Handler {
	list, del := cors(http.HandlerFunc(a.listGroups)), cors(http.HandlerFunc(a.deleteGroups))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			list.ServeHTTP(w, r)
		case http.MethodDelete:
			del.ServeHTTP(w, r)
		case http.MethodOptions:
			cors(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(w, r)
		default:
			w.Header().Set("Allow", "GET, DELETE")
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		}
	})
}

// groupInfo is one group in the answer of GET /api/v1/groups.
type groupInfo struct {
	Labels map[string]string `json:"labels"`
	// Times are null when there was no such push.
	LastPushTime       *time.Time `json:"last_push_time"`
	LastFailureTime    *time.Time `json:"last_push_failure_time"`
	LastPushSuccessful bool       `json:"last_push_successful"`
	Families           int        `json:"families"`
	Series             int        `json:"series"`
	// ExpiresAt is when the group expires (Store.Deadline); null when it
	// never does.
	ExpiresAt *time.Time `json:"expires_at"`
}

type groupList struct {
	Groups []groupInfo `json:"groups"`
	// Next is the start token of the next page; absent on the last one.
	Next string `json:"next,omitempty"`
}

// deletion is the answer of DELETE /api/v1/groups, also carried by its
// errors when some groups were deleted before one failed.
type deletion struct {
	DryRun bool `json:"dry_run"`
	// Count is len(Groups): the groups deleted (with dry_run, those that
	// would be).
	Count  int                 `json:"count"`
	Groups []map[string]string `json:"groups"`
	// Skipped counts matching groups outside the principal's push scopes
	// (--web.access-config); they are left alone.
	Skipped int `json:"skipped"`
}

// matchers parses the match[] parameters. None gives nil (every group).
func matchers(r *http.Request) ([]access.Selector, error) {
	var sels []access.Selector
	for _, m := range r.URL.Query()["match[]"] {
		s, err := access.ParseSelector(m)
		if err != nil {
			return nil, fmt.Errorf("match[] %q: %w", m, err)
		}
		sels = append(sels, s)
	}
	return sels, nil
}

func matchesAny(sels []access.Selector, g *store.Group) bool {
	if sels == nil {
		return true
	}
	for _, s := range sels {
		if s.Matches(g.Key) {
			return true
		}
	}
	return false
}

// EncodeStart turns a grouping key ID into a start token. Tokens are opaque
// to clients; this one is the base64url of the first key ID of the page, so
// that paging stays correct while groups come and go.
func EncodeStart(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

func decodeStart(tok string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", errors.New("start: invalid token")
	}
	return string(b), nil
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request) {
	sels, err := matchers(r)
	if err != nil {
		a.respondError(w, http.StatusBadRequest, "bad_data", err.Error(), nil)
		return
	}
	q := r.URL.Query()
	limit := DefaultLimit
	if s := q.Get("limit"); s != "" {
		limit, err = strconv.Atoi(s)
		if err != nil || limit < 1 || limit > MaxLimit {
			a.respondError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("limit: want an integer from 1 to %d, got %q", MaxLimit, s), nil)
			return
		}
	}
	start, err := decodeStart(q.Get("start"))
	if err != nil {
		a.respondError(w, http.StatusBadRequest, "bad_data", err.Error(), nil)
		return
	}

	groups := a.store.View().Groups // sorted by key ID
	i := sort.Search(len(groups), func(i int) bool { return groups[i].Key.ID() >= start })
	list := groupList{Groups: []groupInfo{}}
	for ; i < len(groups); i++ {
		g := groups[i]
		if !matchesAny(sels, g) {
			continue
		}
		if len(list.Groups) == limit {
			list.Next = EncodeStart(g.Key.ID())
			break
		}
		info := groupInfo{
			Labels:             g.Key.Map(),
			LastPushTime:       timeOrNil(g.PushTime),
			LastFailureTime:    timeOrNil(g.FailTime),
			LastPushSuccessful: g.LastPushSuccessful(),
			Families:           g.Families.Len(),
			Series:             g.Series(),
		}
		if at, ok := a.store.Deadline(g); ok {
			info.ExpiresAt = &at
		}
		list.Groups = append(list.Groups, info)
	}
	a.respond(w, list)
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// deleteGroups deletes the matching groups one at a time, each durably
// (Store.Delete), in key order. It stops at the first failure and answers
// 503 with the groups deleted so far.
//
// Who may: with an access config, the guard attached the principal's scope
// and only groups in it are deleted (the others count as skipped); without
// one, --web.enable-admin-api allows every group.
func (a *API) deleteGroups(w http.ResponseWriter, r *http.Request) {
	scope, scoped := access.ScopeFrom(r.Context())
	if !scoped && !a.opts.EnableAdmin {
		a.respondError(w, http.StatusForbidden, "forbidden",
			"deleting groups by matcher needs --web.enable-admin-api or a --web.access-config principal", nil)
		return
	}
	sels, err := matchers(r)
	if err != nil {
		a.respondError(w, http.StatusBadRequest, "bad_data", err.Error(), nil)
		return
	}
	if len(sels) == 0 {
		a.respondError(w, http.StatusBadRequest, "bad_data",
			"no match[] given (to delete every group, use PUT /api/v1/admin/wipe)", nil)
		return
	}
	dryRun := false
	if s := r.URL.Query().Get("dry_run"); s != "" {
		if dryRun, err = strconv.ParseBool(s); err != nil {
			a.respondError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("dry_run: want true or false, got %q", s), nil)
			return
		}
	}

	var todo []*store.Group
	d := deletion{DryRun: dryRun, Groups: []map[string]string{}}
	for _, g := range a.store.View().Groups {
		switch {
		case !matchesAny(sels, g):
		case scoped && !scope(g.Key):
			d.Skipped++
		default:
			todo = append(todo, g)
		}
	}
	for _, g := range todo {
		if !dryRun {
			if err := a.store.Delete(g.Key); err != nil {
				a.logger.Error("delete by matcher", "grouping_key", g.Key.String(), "remote_addr", r.RemoteAddr, "err", err)
				code, typ := http.StatusServiceUnavailable, "unavailable"
				if !errors.Is(err, store.ErrStorage) {
					code, typ = http.StatusInternalServerError, "internal"
				}
				msg := fmt.Sprintf("deleted %d of %d matching groups, then delete %s: %v", d.Count, len(todo), g.Key, err)
				a.respondError(w, code, typ, msg, d)
				return
			}
		}
		d.Groups = append(d.Groups, g.Key.Map())
		d.Count++
	}
	if !dryRun && d.Count > 0 {
		a.logger.Info("deleted groups by matcher", "count", d.Count, "skipped", d.Skipped, "remote_addr", r.RemoteAddr)
	}
	a.respond(w, d)
}
