// Package ui serves the web pages: the overview of all groups (filtered,
// sorted and paginated on the server, so that a store of any size sends a
// page of rows), the detail page of one group, the status page, and the
// forms that delete a group, the groups a filter matches, or all of them.
//
// Pages are html/template files embedded in the binary and parsed once in
// New; they are executed into a buffer, so a template error is a clean 500.
// The stylesheet and script are embedded too: the UI loads nothing from
// elsewhere, and every page is readable without JavaScript, which only adds
// a live filter, relative times that keep up and copy buttons.
//
// State changes are POST forms only. Each carries a token, an HMAC under a
// per-process random key, bound to the action (and group); requests must
// also come from the same origin (Sec-Fetch-Site or Origin), checked with
// net/http's CrossOriginProtection.
package ui

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Store is what the UI needs of the store.
type Store interface {
	View() *store.View
	Group(id string) *store.Group
	// Deadline is when a group expires, if it does (README, Group expiry).
	Deadline(g *store.Group) (time.Time, bool)
	Stats() store.Stats
	Delete(key grouping.Key) error
	Wipe() error
}

// StorageState describes where the groups are kept, for the status page.
type StorageState struct {
	// Durable is false in memory-only mode.
	Durable bool
	// Path is the database file, or in memory-only mode the persistence
	// file; "" if there is none.
	Path string
	// Size is the size of Path in bytes; negative if unknown.
	Size int64
	// Modified is the last write of Path (in memory-only mode: the last
	// snapshot written); zero if unknown.
	Modified time.Time
	// LastCompaction is the last compaction of the database file; zero if
	// none ran.
	LastCompaction time.Time
	// Err is why the storage is unhealthy; nil if it is healthy.
	Err error
	// Etcd describes the etcd cluster shared with other replicas; nil
	// unless the groups are kept there.
	Etcd *EtcdState
}

// EtcdState is how far this replica follows etcd.
type EtcdState struct {
	Endpoints []string
	Prefix    string
	// AppliedRevision is the revision up to which this replica has
	// applied every change; KnownRevision the newest etcd revision it has
	// seen (changes of other prefixes count too).
	AppliedRevision, KnownRevision int64
}

// Options describe the gateway for the pages. The zero value serves a bare
// UI at the root path.
type Options struct {
	// Prefix is the path prefix of every link, "" or "/x": the path of
	// --web.external-url, or the route prefix when the gateway is reached
	// directly.
	Prefix string
	// ExternalURL, if set, is the gateway's URL as users reach it; it
	// forms the URLs of copyable commands and is a trusted origin for
	// forms. Otherwise the request's scheme and host are used.
	ExternalURL *url.URL
	// TelemetryPath is the scrape endpoint, linked from every page.
	TelemetryPath string
	// UTF8Names formats grouping keys for --push.enable-utf8-names.
	UTF8Names bool
	// EnableAdmin offers wiping all groups and deleting the groups a
	// filter matches (--web.enable-admin-api).
	EnableAdmin bool
	Flags       map[string]string
	BuildInfo   map[string]string
	StartTime   time.Time
	// Storage reports the storage state for the status page; nil shows
	// none.
	Storage func() StorageState
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

// UI serves the pages. Its methods are safe for concurrent use.
type UI struct {
	store  Store
	opts   Options
	gopts  grouping.Options
	now    func() time.Time
	logger *slog.Logger

	pages        map[string]*template.Template // by file name
	assets       map[string]asset              // by file name
	assetVersion string                        // hash of all assets, for cache busting
	secret       []byte                        // CSRF token key
	origins      *http.CrossOriginProtection

	// ordered caches the latest view's groups in key order.
	ordered atomic.Pointer[keyOrdered]
}

type asset struct {
	body        []byte
	contentType string
}

// Route is one page or action of the UI, relative to the route prefix.
type Route struct {
	// Pattern is an http.ServeMux pattern with a method.
	Pattern string
	// Name is the handler label of pushgateway_http_requests_total.
	Name string
	// Write marks an action that changes state; it must wait until the
	// stored state is restored.
	Write   bool
	Handler http.Handler
}

// New parses the templates and loads the assets; an error means a broken
// build.
func New(s Store, opts Options) (*UI, error) {
	u := &UI{
		store:   s,
		opts:    opts,
		gopts:   grouping.Options{UTF8Names: opts.UTF8Names},
		now:     opts.Now,
		logger:  opts.Logger,
		origins: http.NewCrossOriginProtection(),
		secret:  make([]byte, 32),
	}
	if u.now == nil {
		u.now = time.Now
	}
	if u.logger == nil {
		u.logger = slog.New(slog.DiscardHandler)
	}
	if _, err := rand.Read(u.secret); err != nil {
		return nil, fmt.Errorf("generate form token key: %w", err)
	}
	if e := opts.ExternalURL; e != nil && e.Scheme != "" && e.Host != "" {
		if err := u.origins.AddTrustedOrigin(e.Scheme + "://" + e.Host); err != nil {
			return nil, fmt.Errorf("trust origin of --web.external-url: %w", err)
		}
	}
	var err error
	if u.pages, err = parsePages(); err != nil {
		return nil, err
	}
	if u.assets, u.assetVersion, err = loadAssets(); err != nil {
		return nil, err
	}
	return u, nil
}

// parsePages parses each page together with the shared layout.
func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("parse layout: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, name := range names {
		file := path.Base(name)
		if file == "layout.html" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, name)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", file, err)
		}
		pages[file] = t
	}
	return pages, nil
}

func loadAssets() (map[string]asset, string, error) {
	assets := map[string]asset{}
	h := sha256.New()
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		assets[path.Base(p)] = asset{body: b, contentType: ct}
		h.Write([]byte(p))
		h.Write(b)
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("load assets: %w", err)
	}
	return assets, hex.EncodeToString(h.Sum(nil))[:12], nil
}

// Routes lists the pages and actions. GETs never change state.
func (u *UI) Routes() []Route {
	return []Route{
		{Pattern: "GET /{$}", Name: "status", Handler: http.HandlerFunc(u.Overview)},
		{Pattern: "GET /groups/{key...}", Name: "status", Handler: http.HandlerFunc(u.Group)},
		{Pattern: "GET /status", Name: "status", Handler: http.HandlerFunc(u.Status)},
		{Pattern: "GET /static/{file}", Name: "static", Handler: http.HandlerFunc(u.static)},
		{Pattern: "POST /delete", Name: "delete", Write: true, Handler: http.HandlerFunc(u.DeleteGroup)},
		{Pattern: "POST /wipe", Name: "wipe", Write: true, Handler: http.HandlerFunc(u.WipeAll)},
		{Pattern: "GET /delete-matching", Name: "status", Handler: http.HandlerFunc(u.ConfirmDeleteMatching)},
		{Pattern: "POST /delete-matching", Name: "delete", Write: true, Handler: http.HandlerFunc(u.DeleteMatching)},
	}
}

// page is what every template gets; Data is the page's own.
type page struct {
	Title   string
	Nav     string // "groups" or "status": the current navigation entry
	Prefix  string
	Asset   string // asset version
	Metrics string // link to the scrape endpoint
	Now     time.Time
	Version string
	Flash   string
	Data    any
}

func (u *UI) newPage(title, nav string, data any) *page {
	return &page{
		Title:   title,
		Nav:     nav,
		Prefix:  u.opts.Prefix,
		Asset:   u.assetVersion,
		Metrics: u.opts.Prefix + u.opts.TelemetryPath,
		Now:     u.now(),
		Version: u.opts.BuildInfo["version"],
		Data:    data,
	}
}

// securityHeaders keeps pages from loading anything but their own assets
// and from being framed.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
}

// render executes into a buffer so that a template error is a clean 500.
func (u *UI) render(w http.ResponseWriter, status int, name string, p *page) {
	var buf bytes.Buffer
	t := u.pages[name]
	if t == nil {
		http.Error(w, "render page: no template "+name, http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		u.logger.Error("render page", "page", name, "err", err)
		http.Error(w, "render page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	securityHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage is a page that explains a failed request.
type errorPage struct {
	Status  int
	Message string
}

func (u *UI) fail(w http.ResponseWriter, status int, msg string) {
	u.render(w, status, "error.html", u.newPage(http.StatusText(status), "", errorPage{Status: status, Message: msg}))
}

func (u *UI) static(w http.ResponseWriter, r *http.Request) {
	a, ok := u.assets[r.PathValue("file")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	// Pages link assets with ?v=<version>, so such a URL never changes.
	if r.URL.Query().Get("v") == u.assetVersion {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	etag := `"` + u.assetVersion + `"`
	h.Set("ETag", etag)
	if strings.Contains(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(a.body)
}

// groupPath is the path of a group's detail page below the prefix.
func (u *UI) groupPath(k grouping.Key) string {
	return "/groups" + strings.TrimPrefix(k.Path(u.gopts), "/metrics")
}
