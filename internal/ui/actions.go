package ui

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/store"
)

// Actions a form token is bound to.
const (
	actionDelete = "delete"
	actionWipe   = "wipe"
)

// maxFormBytes bounds the body of an action's form.
const maxFormBytes = 64 << 10

// token is the form token of an action on a subject (a group ID, or "" for
// wipe): an HMAC under the process's random key. A cross-site page cannot
// read it, and a token for one group does not delete another.
func (u *UI) token(action, subject string) string {
	m := hmac.New(sha256.New, u.secret)
	m.Write([]byte(action))
	m.Write([]byte{0})
	m.Write([]byte(subject))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// sameOrigin rejects a cross-origin state change (by Sec-Fetch-Site, or
// Origin against Host) and reads the form; it reports whether to go on.
func (u *UI) sameOrigin(w http.ResponseWriter, r *http.Request, action string) bool {
	if err := u.origins.Check(r); err != nil {
		u.logger.Warn("refused cross-origin form", "action", action, "remote_addr", r.RemoteAddr, "origin", r.Header.Get("Origin"), "err", err)
		u.fail(w, http.StatusForbidden, "Refused: the request came from another site. Use the button on this gateway's own pages.")
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		u.fail(w, http.StatusBadRequest, "Unreadable form: "+err.Error()+".")
		return false
	}
	return true
}

// validToken rejects a form without the action's token for subject; it
// reports whether to go on.
func (u *UI) validToken(w http.ResponseWriter, r *http.Request, action, subject string) bool {
	want := u.token(action, subject)
	if !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(want)) {
		u.logger.Warn("refused form with a missing or invalid token", "action", action, "remote_addr", r.RemoteAddr)
		u.fail(w, http.StatusForbidden, "Refused: the form's token is missing or invalid (the gateway may have restarted). Reload the page and try again.")
		return false
	}
	return true
}

// DeleteGroup deletes the group named by the form field "group" (its
// grouping key path, "job/<job>/..."), through the store like the push API's
// DELETE, and redirects to the overview.
func (u *UI) DeleteGroup(w http.ResponseWriter, r *http.Request) {
	if !u.sameOrigin(w, r, actionDelete) {
		return
	}
	key, err := grouping.ParsePath(r.PostFormValue("group"), u.gopts)
	if err != nil {
		u.fail(w, http.StatusBadRequest, "Not a grouping key: "+err.Error()+".")
		return
	}
	if !u.validToken(w, r, actionDelete, key.ID()) {
		return
	}
	u.logger.Info("deleting group from the web UI", "grouping_key", key.String(), "remote_addr", r.RemoteAddr)
	if err := u.store.Delete(key); err != nil {
		u.storeFailed(w, r, "delete group", err)
		return
	}
	http.Redirect(w, r, u.opts.Prefix+"/?deleted="+url.QueryEscape(key.String()), http.StatusSeeOther)
}

// WipeAll deletes all groups, if the admin API is enabled.
func (u *UI) WipeAll(w http.ResponseWriter, r *http.Request) {
	if !u.opts.EnableAdmin {
		u.fail(w, http.StatusForbidden, "Wiping all groups needs --web.enable-admin-api.")
		return
	}
	if !u.sameOrigin(w, r, actionWipe) || !u.validToken(w, r, actionWipe, "") {
		return
	}
	n := u.store.Stats().Groups
	u.logger.Info("wiping all groups from the web UI", "groups", n, "remote_addr", r.RemoteAddr)
	if err := u.store.Wipe(); err != nil {
		u.storeFailed(w, r, "wipe", err)
		return
	}
	http.Redirect(w, r, u.opts.Prefix+"/?wiped="+strconv.Itoa(n), http.StatusSeeOther)
}

func (u *UI) storeFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	u.logger.Error(what, "remote_addr", r.RemoteAddr, "err", err)
	status := http.StatusInternalServerError
	if errors.Is(err, store.ErrStorage) {
		status = http.StatusServiceUnavailable
	}
	u.fail(w, status, "Nothing was changed: "+err.Error()+".")
}
