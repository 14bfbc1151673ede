package access

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgate/pushgate/internal/grouping"
)

// Options configure a Guard.
type Options struct {
	// UTF8Names must equal the push API's --push.enable-utf8-names, so
	// that grouping keys are parsed exactly as the push handler does.
	UTF8Names bool
	// Logger gets refusals; nil discards.
	Logger *slog.Logger
	// Registerer gets the guard's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Guard enforces a Policy on HTTP requests. Safe for concurrent use.
type Guard struct {
	policy *Policy
	gopts  grouping.Options
	logger *slog.Logger
	denied *prometheus.CounterVec
}

// NewGuard returns a guard for policy; with a nil policy, Wrap returns its
// handler unchanged and nothing is registered.
func NewGuard(policy *Policy, opts Options) *Guard {
	g := &Guard{policy: policy, gopts: grouping.Options{UTF8Names: opts.UTF8Names}, logger: opts.Logger}
	if g.logger == nil {
		g.logger = slog.New(slog.DiscardHandler)
	}
	if policy == nil {
		return g
	}
	g.denied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pushgate_access_denied_total",
		Help: "Requests refused by --web.access-config, by status code (401: no or invalid credentials, 403: not allowed).",
	}, []string{"code"})
	// Both series exist from the start, so the family is gathered (and
	// reserved against pushes) before the first refusal.
	g.denied.WithLabelValues("401")
	g.denied.WithLabelValues("403")
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(g.denied)
	}
	return g
}

// Wrap returns next guarded by the policy. It must see paths relative to
// the route prefix (as the routes do), already cleaned.
func (g *Guard) Wrap(next http.Handler) http.Handler {
	if g == nil || g.policy == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := g.classify(r)
		if a.kind == kindOpen {
			next.ServeHTTP(w, r)
			return
		}
		p, err := g.policy.authenticate(r)
		if err != nil {
			g.refuse(w, r, http.StatusUnauthorized, "", err.Error())
			return
		}
		if !a.allowedFor(p) {
			msg := fmt.Sprintf("%s may not %s", p, a.what)
			if p.kind == "anonymous" {
				// Credentials could help: ask for them.
				g.refuse(w, r, http.StatusUnauthorized, p.String(), msg)
				return
			}
			g.refuse(w, r, http.StatusForbidden, p.String(), msg)
			return
		}
		if a.kind == kindScoped {
			r = r.WithContext(withScope(r.Context(), p.mayPush))
		}
		next.ServeHTTP(w, r)
	})
}

func (g *Guard) refuse(w http.ResponseWriter, r *http.Request, code int, who, msg string) {
	g.denied.WithLabelValues(fmt.Sprint(code)).Inc()
	level := slog.LevelWarn
	if code == http.StatusUnauthorized && who == "" {
		// Browsers and clients routinely try without credentials first.
		level = slog.LevelDebug
	}
	g.logger.Log(r.Context(), level, "access denied", "code", code, "remote_addr", r.RemoteAddr,
		"principal", who, "method", r.Method, "path", r.URL.Path, "reason", msg)
	if code == http.StatusUnauthorized {
		w.Header().Add("WWW-Authenticate", `Basic realm="pushgate", charset="UTF-8"`)
		w.Header().Add("WWW-Authenticate", `Bearer realm="pushgate"`)
		if who == "" {
			msg = "Unauthorized: " + msg
		}
	}
	http.Error(w, msg, code)
}

type kind int

const (
	kindOpen   kind = iota // health and readiness, CORS preflight
	kindRead               // scrape, UI pages, read API
	kindPush               // push/delete of one group
	kindScoped             // delete by matcher: authorized per group by the handler (ScopeFrom)
	kindAdmin              // everything else
)

// action is what a request would do.
type action struct {
	kind kind
	key  grouping.Key // kindPush: the group
	// keyErr is set for kindPush when the key does not parse; the
	// handler then answers 400 on its own (it parses the same way), so
	// any principal with push scopes may get that answer.
	keyErr error
	what   string // for "<principal> may not <what>"
}

func (a action) allowedFor(p *principal) bool {
	switch {
	case p.role == RoleAdmin || a.kind == kindOpen:
		return true
	case a.kind == kindRead:
		return p.role == RoleRead
	case a.kind == kindPush && a.keyErr == nil:
		return p.mayPush(a.key)
	case a.kind == kindPush, a.kind == kindScoped:
		// A bad key is refused by the handler; on the scoped route the
		// handler skips the groups outside the push scopes.
		return len(p.push) > 0
	default:
		return false
	}
}

// GroupsPath is the API route whose DELETE is authorized per group (see
// ScopeFrom), relative to the route prefix.
const GroupsPath = "/api/v1/groups"

// maxFormBytes is the UI's limit on an action's form (internal/ui).
const maxFormBytes = 64 << 10

// classify maps a request (path relative to the route prefix) to an action.
// The rules, first match wins:
//
//	/-/healthy, /-/ready (any method)               open
//	OPTIONS /api/v1/...                             open (CORS preflight carries no credentials)
//	/-/quit, /debug/pprof/... (any method)          admin
//	PUT, POST, DELETE /metrics/job[@base64]/...     push to the key in the path
//	POST /delete (UI)                               push to the key in the form's "group"
//	DELETE /api/v1/groups                           scoped: any admin or principal with push
//	                                                scopes; the handler deletes only groups in
//	                                                scope (ScopeFrom)
//	GET, HEAD anything else                         read (telemetry path, UI, /api/v1/status|metrics)
//	anything else                                   admin (PUT /api/v1/admin/wipe, POST /wipe,
//	                                                POST /delete-matching)
func (g *Guard) classify(r *http.Request) action {
	p := r.URL.Path
	switch {
	case p == "/-/healthy" || p == "/-/ready":
		return action{kind: kindOpen}
	case r.Method == http.MethodOptions && strings.HasPrefix(p, "/api/v1/"):
		return action{kind: kindOpen}
	case p == "/-/quit" || strings.HasPrefix(p, "/debug/pprof/"):
		return action{kind: kindAdmin, what: r.Method + " " + p}
	}
	if rest, ok := strings.CutPrefix(p, "/metrics/"); ok && isPushMethod(r.Method) {
		if first, _, _ := strings.Cut(rest, "/"); first == grouping.JobLabel || first == grouping.JobLabel+grouping.Base64Suffix {
			return g.pushAction(r.Method, rest)
		}
	}
	if p == "/delete" && r.Method == http.MethodPost {
		return g.pushAction(http.MethodDelete, formGroup(r))
	}
	if p == GroupsPath && r.Method == http.MethodDelete {
		return action{kind: kindScoped, what: "delete groups by matcher"}
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return action{kind: kindRead, what: "read " + p}
	}
	return action{kind: kindAdmin, what: r.Method + " " + p}
}

func isPushMethod(m string) bool {
	return m == http.MethodPut || m == http.MethodPost || m == http.MethodDelete
}

// pushAction parses the key as push and the UI's delete do: rest is the
// decoded path after "/metrics/".
func (g *Guard) pushAction(method, rest string) action {
	verb := "push to"
	if method == http.MethodDelete {
		verb = "delete"
	}
	key, err := grouping.ParsePath(rest, g.gopts)
	if err != nil {
		return action{kind: kindPush, keyErr: err, what: fmt.Sprintf("%s %q", verb, "/metrics/"+rest)}
	}
	return action{kind: kindPush, key: key, what: verb + " " + key.String()}
}

// formGroup reads the UI delete form's "group" field the way the UI does
// (url-encoded or multipart), and puts the body back for the UI. A body
// over the UI's limit gives "", which the UI refuses with 400 as well.
func formGroup(r *http.Request) string {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFormBytes+1))
	r.Body = readCloser{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
	if err != nil || len(body) > maxFormBytes {
		return ""
	}
	c := r.Clone(r.Context())
	c.Body = io.NopCloser(bytes.NewReader(body))
	c.Form, c.PostForm, c.MultipartForm = nil, nil, nil
	v := c.PostFormValue("group")
	if c.MultipartForm != nil {
		_ = c.MultipartForm.RemoveAll()
	}
	return v
}

type readCloser struct {
	io.Reader
	io.Closer
}
