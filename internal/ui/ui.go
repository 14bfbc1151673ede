// Package ui serves the HTML pages: the groups overview and the status page.
// Templates are embedded and parsed once at start.
package ui

import (
	"bytes"
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"github.com/pushgate/pushgate/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

// Viewer is what the UI needs of the store.
type Viewer interface {
	View() *store.View
	Stats() store.Stats
}

// Options describe the gateway for the pages.
type Options struct {
	// Prefix is the external path prefix for links.
	Prefix        string
	TelemetryPath string
	Flags         map[string]string
	BuildInfo     map[string]string
	StartTime     time.Time
	Logger        *slog.Logger
}

// UI serves the pages.
type UI struct {
	store  Viewer
	opts   Options
	tmpl   *template.Template
	logger *slog.Logger
}

// New parses the templates; an error means a broken build.
func New(s Viewer, opts Options) (*UI, error) {
	tmpl, err := template.ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &UI{store: s, opts: opts, tmpl: tmpl, logger: logger}, nil
}

// Groups serves the overview of all groups.
func (u *UI) Groups(w http.ResponseWriter, _ *http.Request) {
	v := u.store.View()
	u.render(w, "groups.html", map[string]any{
		"Prefix":        u.opts.Prefix,
		"TelemetryPath": u.opts.TelemetryPath,
		"Groups":        v.Groups,
		"Series":        u.store.Stats().Series,
	})
}

// Status serves build information and flags.
func (u *UI) Status(w http.ResponseWriter, _ *http.Request) {
	u.render(w, "status.html", map[string]any{
		"Prefix":        u.opts.Prefix,
		"TelemetryPath": u.opts.TelemetryPath,
		"Flags":         u.opts.Flags,
		"BuildInfo":     u.opts.BuildInfo,
		"StartTime":     u.opts.StartTime,
	})
}

// render executes into a buffer so that a template error is a clean 500.
func (u *UI) render(w http.ResponseWriter, name string, data any) {
	var buf bytes.Buffer
	if err := u.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		u.logger.Error("render page", "page", name, "err", err)
		http.Error(w, "render page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}
