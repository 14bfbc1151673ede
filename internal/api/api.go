// Package api serves the JSON API v1 of prometheus/pushgateway: status,
// pushed metrics and the admin wipe, in the reference's response shapes;
// and pushgate's own /api/v1/groups, which lists and deletes groups by
// matcher (groups.go).
package api

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/histogram"
	"github.com/pushgate/pushgate/internal/store"
)

// Store is what the API needs of the store.
type Store interface {
	View() *store.View
	Wipe() error
	// Delete removes one group durably; an error wrapping
	// store.ErrStorage means it is still there.
	Delete(key grouping.Key) error
	// Deadline is when a group expires, if it does (README, Group expiry).
	Deadline(g *store.Group) (time.Time, bool)
}

// Options describe the running gateway for the status endpoint.
type Options struct {
	Flags     map[string]string
	BuildInfo map[string]string
	StartTime time.Time
	// EnableAdmin serves PUT /api/v1/admin/wipe and allows DELETE
	// /api/v1/groups for every group (--web.enable-admin-api). With an
	// access config, that DELETE is allowed per group without it (see
	// access.ScopeFrom).
	EnableAdmin bool
	Logger      *slog.Logger
}

// API serves /api/v1/.
type API struct {
	store  Store
	opts   Options
	logger *slog.Logger
}

// New returns the API.
func New(s Store, opts Options) *API {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &API{store: s, opts: opts, logger: logger}
}

// Route is one endpoint of the API, relative to /api/v1.
type Route struct {
	Path    string // as http.ServeMux takes it, without a method
	Name    string // handler label of pushgateway_http_requests_total
	Handler http.Handler
	// Write marks an endpoint that changes state; its methods other than
	// GET, HEAD and OPTIONS must wait until the stored groups are restored
	// (the server answers 503 until then).
	Write bool
}

// Routes lists the API's endpoints. Each answers its method, the CORS
// preflight (OPTIONS) and 405 for other methods; other paths are 404. That
// is how the reference's router behaves.
func (a *API) Routes() []Route {
	routes := []Route{
		{Path: "/status", Name: "api/v1/status", Handler: only(http.MethodGet, cors(http.HandlerFunc(a.status)))},
		{Path: "/metrics", Name: "api/v1/metrics", Handler: only(http.MethodGet, cors(http.HandlerFunc(a.metrics)))},
		// DELETE is authorized in the handler (deleteGroups), also without
		// --web.enable-admin-api when an access config is in use.
		{Path: "/groups", Name: "api/v1/groups", Handler: a.groups(), Write: true},
		{Path: "/", Name: "api/v1/options", Handler: cors(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodOptions {
				http.NotFound(w, r)
			}
		}))},
	}
	if a.opts.EnableAdmin {
		routes = append(routes, Route{Path: "/admin/wipe", Name: "wipe", Handler: only(http.MethodPut, http.HandlerFunc(a.wipe)), Write: true})
	}
	return routes
}

// only serves method (GET includes HEAD), answers OPTIONS with the CORS
// headers and anything else with 405.
func only(method string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == method, method == http.MethodGet && r.Method == http.MethodHead:
			h.ServeHTTP(w, r)
		case r.Method == http.MethodOptions:
			cors(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(w, r)
		default:
			w.Header().Set("Allow", method)
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		}
	})
}

// cors allows cross-site reads of the API, as the reference does.
func cors(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("Access-Control-Allow-Headers", "Accept, Authorization, Content-Type, Origin")
		hdr.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
		hdr.Set("Access-Control-Allow-Origin", "*")
		hdr.Set("Access-Control-Expose-Headers", "Date")
		hdr.Set("Cache-Control", "no-cache, no-store, must-revalidate")
		h.ServeHTTP(w, r)
	})
}

type response struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType,omitempty"`
	Error     string `json:"error,omitempty"`
	Data      any    `json:"data,omitempty"`
}

func (a *API) respond(w http.ResponseWriter, data any) {
	a.write(w, http.StatusOK, response{Status: "success", Data: data})
}

// respondError answers in the envelope of Prometheus's API errors; data
// (may be nil) tells what was done before the error.
func (a *API) respondError(w http.ResponseWriter, code int, errorType, msg string, data any) {
	a.write(w, code, response{Status: "error", ErrorType: errorType, Error: msg, Data: data})
}

func (a *API) write(w http.ResponseWriter, code int, resp response) {
	b, err := json.Marshal(resp)
	if err != nil {
		a.logger.Error("encode API response", "err", err)
		http.Error(w, `{"status":"error","errorType":"internal","error":"encode response"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if _, err := w.Write(b); err != nil {
		a.logger.Debug("write API response", "err", err)
	}
}

func (a *API) status(w http.ResponseWriter, _ *http.Request) {
	a.respond(w, map[string]any{
		"flags":             a.opts.Flags,
		"start_time":        a.opts.StartTime,
		"build_information": a.opts.BuildInfo,
	})
}

// family is one family of one group in the reference's JSON shape.
type family struct {
	Timestamp time.Time        `json:"time_stamp"`
	Type      string           `json:"type"`
	Help      string           `json:"help,omitempty"`
	Metrics   []map[string]any `json:"metrics"`
}

func (a *API) metrics(w http.ResponseWriter, _ *http.Request) {
	v := a.store.View()
	groups := make([]map[string]any, 0, len(v.Groups))
	for _, g := range v.Groups {
		obj := map[string]any{
			"labels":               g.Key.Map(),
			"last_push_successful": g.LastPushSuccessful(),
		}
		for name, f := range g.Families.All() {
			mf, err := f.Decode()
			if err != nil {
				a.logger.Error("decode stored family", "grouping_key", g.Key.String(), "family", name, "err", err)
				continue
			}
			obj[name] = family{
				Timestamp: f.Time,
				Type:      mf.GetType().String(),
				Help:      mf.GetHelp(),
				Metrics:   Metrics(mf),
			}
		}
		groups = append(groups, obj)
	}
	a.respond(w, groups)
}

// Metrics renders a family's metrics as the reference's API does: values as
// strings, summaries with quantiles, histograms with cumulative buckets.
func Metrics(mf *dto.MetricFamily) []map[string]any {
	out := make([]map[string]any, 0, len(mf.Metric))
	for _, m := range mf.Metric {
		labels := make(map[string]string, len(m.Label))
		for _, lp := range m.Label {
			labels[lp.GetName()] = lp.GetValue()
		}
		obj := map[string]any{"labels": labels}
		switch mf.GetType() {
		case dto.MetricType_SUMMARY:
			s := m.GetSummary()
			quantiles := map[string]string{}
			for _, q := range s.GetQuantile() {
				quantiles[fmt.Sprint(q.GetQuantile())] = fmt.Sprint(q.GetValue())
			}
			obj["quantiles"] = quantiles
			obj["count"] = fmt.Sprint(s.GetSampleCount())
			obj["sum"] = fmt.Sprint(s.GetSampleSum())
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			h := m.GetHistogram()
			obj["sum"] = fmt.Sprint(h.GetSampleSum())
			if histogram.IsNative(h) {
				obj["count"], obj["buckets"] = nativeBuckets(h)
				break
			}
			buckets := map[string]string{}
			for _, b := range h.GetBucket() {
				if c := b.GetCumulativeCountFloat(); c > 0 {
					buckets[fmt.Sprint(b.GetUpperBound())] = fmt.Sprint(c)
				} else {
					buckets[fmt.Sprint(b.GetUpperBound())] = fmt.Sprint(b.GetCumulativeCount())
				}
			}
			obj["buckets"] = buckets
			if c := h.GetSampleCountFloat(); c > 0 {
				obj["count"] = fmt.Sprint(c)
			} else {
				obj["count"] = fmt.Sprint(h.GetSampleCount())
			}
		default:
			obj["value"] = fmt.Sprint(value(m))
		}
		out = append(out, obj)
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

func (a *API) wipe(w http.ResponseWriter, r *http.Request) {
	a.logger.Info("wiping all groups", "remote_addr", r.RemoteAddr)
	if err := a.store.Wipe(); err != nil {
		a.logger.Error("wipe", "remote_addr", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
