package server_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgate/pushgate/internal/api"
	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/server"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/ui"
)

// countingStore counts wipes and deletes.
type countingStore struct{ wipes, deletes int }

func (s *countingStore) View() *store.View         { return &store.View{} }
func (s *countingStore) Wipe() error               { s.wipes++; return nil }
func (s *countingStore) Delete(grouping.Key) error { s.deletes++; return nil }
func (s *countingStore) Deadline(*store.Group) (time.Time, bool) {
	return time.Time{}, false
}

// TestWritesWaitForRestore sends every write route before the server is
// ready: each is answered 503 with a one-line reason and reaches nothing.
func TestWritesWaitForRestore(t *testing.T) {
	reached := map[string]int{}
	stub := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			reached[name]++
			w.WriteHeader(http.StatusAccepted)
		})
	}
	st := &countingStore{}
	srv := server.New(server.Options{TelemetryPath: "/metrics"}, server.Parts{
		Put:    stub("put"),
		Post:   stub("post"),
		Delete: stub("delete"),
		Scrape: stub("scrape"),
		API:    api.New(st, api.Options{EnableAdmin: true}).Routes(),
		Pages: []ui.Route{
			{Pattern: "POST /delete", Name: "delete", Write: true, Handler: stub("ui delete")},
			{Pattern: "POST /wipe", Name: "wipe", Write: true, Handler: stub("ui wipe")},
		},
	}, prometheus.NewRegistry())
	writes := []struct{ method, path string }{
		{http.MethodPut, "/metrics/job/j"},
		{http.MethodPost, "/metrics/job/j"},
		{http.MethodDelete, "/metrics/job/j"},
		{http.MethodPut, "/api/v1/admin/wipe"},
		{http.MethodPost, "/delete"},
		{http.MethodPost, "/wipe"},
	}
	do := func(method, path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest(method, path, nil))
		return w
	}
	for _, wr := range writes {
		w := do(wr.method, wr.path)
		body := strings.TrimSuffix(w.Body.String(), "\n")
		if w.Code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready") || strings.Contains(body, "\n") {
			t.Errorf("%s %s before ready: %d %q, want 503 with a one-line reason", wr.method, wr.path, w.Code, body)
		}
	}
	if len(reached) != 0 || st.wipes != 0 {
		t.Errorf("writes before ready reached handlers %v and wiped %d times", reached, st.wipes)
	}
	// /api/v1/groups lists before the restore, but deletes only after it.
	const groups = "/api/v1/groups?match[]=job%3D%22j%22"
	if w := do(http.MethodDelete, groups); w.Code != http.StatusServiceUnavailable {
		t.Errorf("DELETE %s before ready: %d %q, want 503", groups, w.Code, w.Body)
	}
	if w := do(http.MethodGet, groups); w.Code != http.StatusOK {
		t.Errorf("GET %s before ready: %d %q, want 200", groups, w.Code, w.Body)
	}

	srv.SetReady(true)
	for _, wr := range writes {
		if w := do(wr.method, wr.path); w.Code != http.StatusAccepted {
			t.Errorf("%s %s when ready: %d %q, want 202", wr.method, wr.path, w.Code, w.Body)
		}
	}
	if st.wipes != 1 {
		t.Errorf("%d wipes when ready, want 1", st.wipes)
	}
	if w := do(http.MethodDelete, groups); w.Code != http.StatusOK {
		t.Errorf("DELETE %s when ready: %d %q, want 200", groups, w.Code, w.Body)
	}
}
