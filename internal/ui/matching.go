package ui

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/store"
)

// actionDeleteMatching is the action of "delete the matching groups"; its
// token's subject is the digest of the set of groups confirmed.
const actionDeleteMatching = "delete-matching"

// maxListed bounds the groups the confirmation lists by key; it counts the
// rest.
const maxListed = 100

// matchSet is the groups that an overview filter shows, in key order.
type matchSet struct {
	groups []*store.Group
	series int
	// digest identifies the set: the hex SHA-256 of its sorted group IDs.
	digest string
}

// matching returns the groups the overview filtered by q shows, on every
// page.
func (u *UI) matching(q query) matchSet {
	index := u.keyOrder(u.store.View())
	terms := parseTerms(q.Q)
	var m matchSet
	var ids []string
	for _, e := range index.entries {
		if !q.matches(e, terms) {
			continue
		}
		m.groups = append(m.groups, e.g)
		m.series += e.series
		ids = append(ids, e.g.Key.ID())
	}
	slices.Sort(ids)
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, id := range ids {
		// Length-prefixed, so that no two sets of IDs hash the same bytes.
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(id)))])
		h.Write([]byte(id))
	}
	m.digest = hex.EncodeToString(h.Sum(nil))
	return m
}

// DeleteMatchingURL links to the confirmation of deleting the groups the
// filter matches; sorting and paging do not change the set.
func (q query) DeleteMatchingURL() string {
	return q.prefix + "/delete-matching?" + q.filterValues().Encode()
}

// filterValues is the part of the query that selects groups.
func (q query) filterValues() url.Values {
	v := url.Values{}
	if q.Q != "" {
		v.Set("q", q.Q)
	}
	if q.Failed {
		v.Set("failed", "1")
	}
	return v
}

// confirmPage is the data of the confirmation of deleting the matching
// groups.
type confirmPage struct {
	Query  query
	Count  int
	Series int
	Keys   []grouping.Key // the first maxListed groups
	More   int            // groups not in Keys
	Set    string         // matchSet.digest
	Token  string
	// Changed says why the confirmation is shown again; "" the first time.
	Changed string
}

// deleteMatchingAllowed answers 403 unless the UI may delete groups in
// bulk; it reports whether to go on. Like wiping, that needs
// --web.enable-admin-api, and with --web.access-config the admin role
// (the guard classifies POST /delete-matching as an admin action).
func (u *UI) deleteMatchingAllowed(w http.ResponseWriter) bool {
	if !u.opts.EnableAdmin {
		u.fail(w, http.StatusForbidden, "Deleting the groups a filter matches needs --web.enable-admin-api.")
		return false
	}
	return true
}

// ConfirmDeleteMatching lists the groups that the overview's filter (?q=,
// ?failed=) matches and offers to delete exactly these. It changes nothing.
func (u *UI) ConfirmDeleteMatching(w http.ResponseWriter, r *http.Request) {
	if !u.deleteMatchingAllowed(w) {
		return
	}
	q := parseQuery(r.URL.Query(), u.opts.Prefix)
	if !q.Filtered() {
		u.fail(w, http.StatusBadRequest, "No filter given: filter the overview first (to delete every group, use Wipe).")
		return
	}
	u.confirmDeleteMatching(w, http.StatusOK, q, u.matching(q), "")
}

func (u *UI) confirmDeleteMatching(w http.ResponseWriter, status int, q query, m matchSet, changed string) {
	d := confirmPage{
		Query:   q,
		Count:   len(m.groups),
		Series:  m.series,
		Set:     m.digest,
		Token:   u.token(actionDeleteMatching, m.digest),
		Changed: changed,
	}
	for _, g := range m.groups[:min(len(m.groups), maxListed)] {
		d.Keys = append(d.Keys, g.Key)
	}
	d.More = d.Count - len(d.Keys)
	u.render(w, status, "matching.html", u.newPage(fmt.Sprintf("Delete %d groups", d.Count), "groups", d))
}

// DeleteMatching deletes the groups that the confirmation named, one at a
// time through the store like DeleteGroup, and redirects to the filtered
// overview with their count.
//
// The form carries the filter and the digest of the set it matched when
// the confirmation was rendered (the token is bound to that digest). If
// the filter matches another set now (a group was pushed, deleted, or
// changed its metrics), nothing is deleted and the new set is shown for
// confirmation (409), so a click never deletes groups nobody saw.
func (u *UI) DeleteMatching(w http.ResponseWriter, r *http.Request) {
	if !u.deleteMatchingAllowed(w) || !u.sameOrigin(w, r, actionDeleteMatching) {
		return
	}
	set := r.PostFormValue("set")
	if !u.validToken(w, r, actionDeleteMatching, set) {
		return
	}
	q := parseQuery(r.PostForm, u.opts.Prefix)
	if !q.Filtered() {
		u.fail(w, http.StatusBadRequest, "No filter given: filter the overview first (to delete every group, use Wipe).")
		return
	}
	m := u.matching(q)
	if m.digest != set {
		confirmed, _ := strconv.Atoi(r.PostFormValue("n"))
		u.logger.Info("refused to delete matching groups: they changed since the confirmation", "filter", q.Q, "confirmed", confirmed, "matching", len(m.groups), "remote_addr", r.RemoteAddr)
		u.confirmDeleteMatching(w, http.StatusConflict, q, m, fmt.Sprintf(
			"Nothing was deleted: the groups matching the filter changed after you confirmed (you confirmed %d, %d match now). Review them and confirm again.",
			confirmed, len(m.groups)))
		return
	}
	u.logger.Info("deleting matching groups from the web UI", "filter", q.Q, "failed_only", q.Failed, "groups", len(m.groups), "remote_addr", r.RemoteAddr)
	for i, g := range m.groups {
		if err := u.store.Delete(g.Key); err != nil {
			u.logger.Error("delete matching groups", "grouping_key", g.Key.String(), "deleted", i, "remote_addr", r.RemoteAddr, "err", err)
			status := http.StatusInternalServerError
			if errors.Is(err, store.ErrStorage) {
				status = http.StatusServiceUnavailable
			}
			u.fail(w, status, fmt.Sprintf("Deleted %d of the %d matching groups, then %s: %v. The other %d are still there.",
				i, len(m.groups), g.Key, err, len(m.groups)-i))
			return
		}
	}
	v := q.filterValues()
	v.Set("deleted_matching", strconv.Itoa(len(m.groups)))
	http.Redirect(w, r, u.opts.Prefix+"/?"+v.Encode(), http.StatusSeeOther)
}
