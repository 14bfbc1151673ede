package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgate/pushgate/internal/server"
)

// echo answers 200 with its name and the decoded path it was given.
func echo(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, name+" "+r.URL.Path)
	})
}

func newServer(t *testing.T, prefix string) *server.Server {
	t.Helper()
	s := server.New(server.Options{RoutePrefix: prefix, TelemetryPath: "/metrics"}, server.Parts{
		Put: echo("put"), Post: echo("post"), Delete: echo("delete"), Scrape: echo("scrape"),
	}, prometheus.NewRegistry())
	s.SetReady(true)
	return s
}

func serve(s http.Handler, method, target string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(method, target, strings.NewReader("foo 1\n")))
	return w
}

// A path that is not clean as sent gets 307 to the cleaned path, for every
// method, so that clients repeat a PUT or POST with its body (a 301 makes them
// send a GET without body). The reference does this through its ServeMux
// (built with Go 1.26 or later).
func TestNonCleanPathRedirects307(t *testing.T) {
	f := func(prefix, method, target, location string) {
		t.Helper()
		w := serve(newServer(t, prefix), method, target)
		if w.Code != http.StatusTemporaryRedirect || w.Header().Get("Location") != location {
			t.Errorf("%s %s (prefix %q): got %d Location %q, want 307 Location %q",
				method, target, prefix, w.Code, w.Header().Get("Location"), location)
		}
	}
	for _, method := range []string{http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodGet, http.MethodHead} {
		f("", method, "/metrics/job/j/a//b/c", "/metrics/job/j/a/b/c")
		f("", method, "/metrics/job/j/./a/b", "/metrics/job/j/a/b")
		f("", method, "/metrics/job/j/x/../a/b", "/metrics/job/j/a/b")
		f("", method, "//metrics", "/metrics")
		f("", method, "/api/v1//status", "/api/v1/status")
		f("", method, "/metrics/job/j/a/./", "/metrics/job/j/a/")
		f("/pg", method, "/pg/metrics/job/j//a/b", "/pg/metrics/job/j/a/b")
		f("/pg", method, "//pg/metrics/job/j", "/pg/metrics/job/j")
		f("/pg", method, "/x/../pg/-/ready", "/pg/-/ready")
	}
	// The query stays, and so does the client's escaping.
	f("", http.MethodPut, "/metrics/job/j//a/%2Fb?x=1", "/metrics/job/j/a/%2Fb?x=1")
}

// A %2F is decoded before the push API splits the path, as in the reference:
// it separates components, and it does not make the path unclean.
func TestEncodedSlashReachesPushAPI(t *testing.T) {
	f := func(prefix, method, target, want string) {
		t.Helper()
		w := serve(newServer(t, prefix), method, target)
		if w.Code != http.StatusOK || w.Body.String() != want {
			t.Errorf("%s %s (prefix %q): got %d %q, want 200 %q", method, target, prefix, w.Code, w.Body.String(), want)
		}
	}
	f("", http.MethodPut, "/metrics/job/j/path/%2Fvar%2Ftmp", "put /metrics/job/j/path//var/tmp")
	f("", http.MethodPost, "/metrics/job/j/path/%2F%2F", "post /metrics/job/j/path///")
	f("", http.MethodDelete, "/metrics/job/%2Fj", "delete /metrics/job//j")
	f("", http.MethodPut, "/metrics/job@base64/%2Fa", "put /metrics/job@base64//a")
	f("", http.MethodPut, "/metrics%2Fjob/j", "put /metrics/job/j")
	f("/pg", http.MethodPut, "/pg/metrics/job/j/path/%2Fvar", "put /metrics/job/j/path//var")
}

func TestPushPathsOtherMethods(t *testing.T) {
	s := newServer(t, "")
	if w := serve(s, http.MethodGet, "/metrics/job/j/a/b/"); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET of a push path: got %d, want 405", w.Code)
	}
	if w := serve(s, http.MethodPut, "/metrics/job"); w.Code != http.StatusNotFound {
		t.Errorf("PUT /metrics/job: got %d, want 404", w.Code)
	}
	if w := serve(s, http.MethodGet, "/metrics"); w.Code != http.StatusOK || w.Body.String() != "scrape /metrics" {
		t.Errorf("GET /metrics: got %d %q", w.Code, w.Body.String())
	}
}
