// Package server assembles the HTTP side: routes under the route prefix,
// request instrumentation, health, readiness and the lifecycle endpoint.
package server

import (
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pushgate/pushgate/internal/api"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/ui"
)

// Parts are the handlers the server routes to.
type Parts struct {
	// Push and Delete serve /metrics/job/...; Put is Push(true).
	Put, Post, Delete http.Handler
	Scrape            http.Handler
	API               []api.Route
	// Pages are the web UI's pages and actions.
	Pages []ui.Route
}

// Options configure the routes.
type Options struct {
	// RoutePrefix is "" or "/x": all routes live below it.
	RoutePrefix   string
	TelemetryPath string
	// EnableLifecycle serves PUT/POST /-/quit and /-/reload.
	EnableLifecycle bool
	// Reload re-reads the configuration files that can change at run time
	// (PUT/POST /-/reload); nil means there is nothing to reload.
	Reload func() error
	// Health reports a failure that makes the gateway unready (such as
	// failing storage); nil means none.
	Health func() error
	// Access wraps the routes (paths relative to the route prefix, already
	// cleaned) for access control; nil means none.
	Access func(http.Handler) http.Handler
}

// Server routes requests. Its zero value is not usable; use New.
type Server struct {
	handler  http.Handler
	health   func() error
	ready    atomic.Bool
	quit     chan struct{}
	quitOnce sync.Once
	requests *prometheus.CounterVec
}

// Reserved lists the server's own metric families for the store's check.
// It is derived from the collectors New registers, so that the names and
// types are stated once; the vectors have no series until the first
// request or scrape, so private, unregistered copies get one each and are
// gathered.
func Reserved() []store.Reserved {
	requests := newRequests()
	requests.WithLabelValues("200", "push", "put")
	scrapes := newScrapeMetrics()
	scrapes.duration.WithLabelValues("identity", "text")
	scrapes.size.WithLabelValues("identity", "text")
	reg := prometheus.NewRegistry()
	reg.MustRegister(requests)
	reg.MustRegister(scrapes.collectors()...)
	reserved, err := store.ReservedFrom(reg)
	if err != nil {
		// Our own collector, just built: a failure is a programming error.
		panic(fmt.Sprintf("gather the server's own metrics: %v", err))
	}
	return reserved
}

// newRequests builds the counter of requests, by the labels
// promhttp.InstrumentHandlerCounter fills in plus the route's name.
func newRequests() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pushgateway_http_requests_total",
		Help: "Total HTTP requests processed by the Pushgateway, excluding scrapes.",
	}, []string{"code", "handler", "method"})
}

// New builds the routes; metrics are registered with reg.
func New(opts Options, parts Parts, reg prometheus.Registerer) *Server {
	s := &Server{
		health:   opts.Health,
		quit:     make(chan struct{}),
		requests: newRequests(),
	}
	reg.MustRegister(s.requests)
	scrapes := newScrapeMetrics()
	reg.MustRegister(scrapes.collectors()...)

	mux := http.NewServeMux()
	count := func(name string, h http.Handler) http.Handler {
		return promhttp.InstrumentHandlerCounter(s.requests.MustCurryWith(prometheus.Labels{"handler": name}), h)
	}
	// Writes wait for readiness (s.whenReady): the restore must come first.
	mux.Handle("GET "+opts.TelemetryPath, instrumentScrape(scrapes, time.Now, parts.Scrape))
	writes := map[string]http.Handler{
		http.MethodPut:    count("push", s.whenReady(parts.Put)),
		http.MethodPost:   count("push", s.whenReady(parts.Post)),
		http.MethodDelete: count("delete", s.whenReady(parts.Delete)),
	}
	for _, prefix := range pushPrefixes {
		for method, h := range writes {
			// Reached only by paths that pushRoutes did not take, but
			// registered so that other methods get 405, as in the reference.
			mux.Handle(method+" "+prefix, h)
		}
	}
	for _, r := range parts.API {
		h := r.Handler
		if r.Write {
			h = s.whenReadyUnlessRead(h)
		}
		mux.Handle("/api/v1"+r.Path, count(r.Name, h))
	}
	// Without a job segment there is no push route (404, like the
	// reference; ServeMux would redirect to the subtree instead).
	mux.Handle("/metrics/job", http.NotFoundHandler())
	mux.Handle("/metrics/job@base64", http.NotFoundHandler())
	for _, r := range parts.Pages {
		h := r.Handler
		if r.Write {
			h = s.whenReady(h)
		}
		mux.Handle(r.Pattern, count(r.Name, h))
	}
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "OK") })
	mux.HandleFunc("GET /-/ready", s.readyz)
	mux.HandleFunc("GET /-/quit", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = io.WriteString(w, "Only POST or PUT requests allowed.")
	})
	quit := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !opts.EnableLifecycle {
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, "Lifecycle API is not enabled.")
			return
		}
		_, _ = io.WriteString(w, "Requesting termination... Goodbye!")
		s.quitOnce.Do(func() { close(s.quit) })
	})
	mux.Handle("PUT /-/quit", quit)
	mux.Handle("POST /-/quit", quit)
	// /-/reload as in Prometheus: 200 once reloaded, 500 with the error
	// when a file is bad (the old configuration stays in place).
	mux.HandleFunc("GET /-/reload", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = io.WriteString(w, "Only POST or PUT requests allowed.")
	})
	reload := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !opts.EnableLifecycle {
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, "Lifecycle API is not enabled.")
			return
		}
		if opts.Reload == nil {
			return
		}
		if err := opts.Reload(); err != nil {
			http.Error(w, "failed to reload config: "+err.Error(), http.StatusInternalServerError)
		}
	})
	mux.Handle("PUT /-/reload", reload)
	mux.Handle("POST /-/reload", reload)
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)

	s.handler = pushRoutes(writes, mux)
	if opts.Access != nil {
		s.handler = opts.Access(s.handler)
	}
	if opts.RoutePrefix != "" {
		outer := http.NewServeMux()
		outer.Handle(opts.RoutePrefix+"/", http.StripPrefix(opts.RoutePrefix, s.handler))
		s.handler = outer
	}
	s.handler = cleanPaths(s.handler)
	return s
}

// pushPrefixes start the paths of the push API.
var pushPrefixes = []string{"/metrics/job/", "/metrics/job@base64/"}

// pushRoutes sends a PUT, POST or DELETE whose decoded path starts with a
// push prefix to its handler in writes, and everything else to next. The
// reference routes the push API on the decoded path (its router sees
// r.URL.Path), so a "%2F" anywhere in such a path, "/metrics%2Fjob/j" included,
// separates components there; ServeMux would match the escaped path instead.
// (Reference README, "URL": use @base64 for values containing "/".)
func pushRoutes(writes map[string]http.Handler, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := writes[r.Method]; h != nil {
			for _, prefix := range pushPrefixes {
				if strings.HasPrefix(r.URL.Path, prefix) {
					h.ServeHTTP(w, r)
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// cleanPaths answers a request whose path, as sent (still escaped), is not
// clean ("//", "/./", "/../") with 307 Temporary Redirect to the cleaned path,
// for every method and path, before the route prefix is looked at. That is the
// reference's ServeMux in front of its router, as built with Go 1.26 or later
// (older Go answered 301, which makes clients turn PUT and POST into a GET
// without body). The escaped path is what counts: "%2F" is not a "/" here and
// reaches the push API, which splits on it (see pushRoutes). The Location keeps
// the client's escaping (ServeMux would escape its "%" a second time).
func cleanPaths(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			escaped := r.URL.EscapedPath()
			if p := cleanPath(escaped); p != escaped {
				if r.URL.RawQuery != "" {
					p += "?" + r.URL.RawQuery
				}
				http.Redirect(w, r, p, http.StatusTemporaryRedirect)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// cleanPath is path.Clean that keeps a trailing slash, as net/http does.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// SetReady marks the gateway ready (or not) for writes and /-/ready.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Quit is closed when shutdown was requested through /-/quit.
func (s *Server) Quit() <-chan struct{} { return s.quit }

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if !s.ready.Load() {
		http.Error(w, "not ready: restoring state", http.StatusServiceUnavailable)
		return
	}
	if s.health != nil {
		if err := s.health(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	_, _ = io.WriteString(w, "OK")
}

// whenReadyUnlessRead is whenReady for the methods that may change state:
// an API route such as /api/v1/groups lists with GET and deletes with
// DELETE, and only the deletes must wait for the restore.
func (s *Server) whenReadyUnlessRead(h http.Handler) http.Handler {
	gated := s.whenReady(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			h.ServeHTTP(w, r)
		default:
			gated.ServeHTTP(w, r)
		}
	})
}

func (s *Server) whenReady(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready: restoring state, try again shortly", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	})
}
