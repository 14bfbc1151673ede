package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/api"
	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/store/storetest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// pushedAt is the clock of every store in these tests, so that the
// time_stamp fields of the golden answer do not change between runs.
var pushedAt = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func newStore(t *testing.T) *store.Store {
	t.Helper()
	return store.New(store.Options{Now: func() time.Time { return pushedAt }})
}

func push(t *testing.T, s *store.Store, key, text string) {
	t.Helper()
	if err := s.Push(storetest.Key(t, key), storetest.Families(t, text), true); err != nil {
		t.Fatalf("push %s: %v", key, err)
	}
}

// mux mounts the routes the way the server does, below /api/v1.
func mux(a *api.API) *http.ServeMux {
	m := http.NewServeMux()
	for _, r := range a.Routes() {
		m.Handle("/api/v1"+r.Path, r.Handler)
	}
	return m
}

func do(h http.Handler, method, target string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, target, nil))
	return w
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update after checking):\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

// indent re-indents a JSON answer so that the golden file diffs line by
// line; encoding/json sorts map keys, so the order is stable.
func indent(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, b)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

// TestMetricsJSON pins the shape of /api/v1/metrics, which tools written
// for the reference parse: one object per group with its labels, the
// families by name (push_time_seconds and push_failure_time_seconds
// included), values as strings, summaries with quantiles and histograms
// with cumulative buckets.
func TestMetricsJSON(t *testing.T) {
	s := newStore(t)
	push(t, s, "job=batch,instance=a", `# HELP jobs_done Jobs done.
# TYPE jobs_done counter
jobs_done{queue="q1"} 3
# TYPE temperature gauge
temperature -1.5
# TYPE untyped_thing untyped
untyped_thing 1e+06
# HELP latency_seconds Latency.
# TYPE latency_seconds summary
latency_seconds{quantile="0.5"} 0.2
latency_seconds{quantile="0.9"} 0.7
latency_seconds_sum 12.5
latency_seconds_count 40
# TYPE size_bytes histogram
size_bytes_bucket{le="100"} 2
size_bytes_bucket{le="1000"} 5
size_bytes_bucket{le="+Inf"} 6
size_bytes_sum 3100
size_bytes_count 6
`)
	push(t, s, "job=other", "# TYPE up gauge\nup 1\n")

	w := do(mux(api.New(s, api.Options{})), http.MethodGet, "/api/v1/metrics")
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/v1/metrics: %d %q %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	golden(t, "metrics.golden.json", indent(t, w.Body.Bytes()))
}

// An empty gateway answers an empty list, not null: clients iterate over
// data without checking it.
func TestMetricsJSONEmpty(t *testing.T) {
	w := do(mux(api.New(newStore(t), api.Options{})), http.MethodGet, "/api/v1/metrics")
	if got := w.Body.String(); got != `{"status":"success","data":[]}` {
		t.Errorf("empty store: %s", got)
	}
}

// A failed push leaves last_push_successful false, which is how the
// reference's API tells a stale group from a fresh one.
func TestMetricsLastPushFailed(t *testing.T) {
	now := pushedAt
	s := store.New(store.Options{Now: func() time.Time { return now }})
	push(t, s, "job=a", "# TYPE y gauge\ny 1\n")
	push(t, s, "job=b", "# TYPE x gauge\nx 1\n")
	now = now.Add(time.Second)
	// x is a gauge in job=b: as a counter it would make the scrape
	// inconsistent, so the push to job=a fails.
	if err := s.Push(storetest.Key(t, "job=a"), storetest.Families(t, "# TYPE x counter\nx 1\n"), true); err == nil {
		t.Fatal("an inconsistent push was accepted")
	}
	w := do(mux(api.New(s, api.Options{})), http.MethodGet, "/api/v1/metrics")
	var resp struct {
		Data []map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || len(resp.Data) != 2 {
		t.Fatalf("answer %s: %v", w.Body, err)
	}
	for i, want := range []string{"false", "true"} { // job=a, job=b
		if got := string(resp.Data[i]["last_push_successful"]); got != want {
			t.Errorf("group %s: last_push_successful %s, want %s", resp.Data[i]["labels"], got, want)
		}
	}
}

func TestStatusJSON(t *testing.T) {
	start := time.Date(2024, 1, 2, 3, 4, 5, 600, time.UTC)
	a := api.New(newStore(t), api.Options{
		Flags:     map[string]string{"web.listen-address": ":9091", "web.enable-admin-api": "false"},
		BuildInfo: map[string]string{"version": "1.2.3", "goVersion": "go1.26"},
		StartTime: start,
	})
	w := do(mux(a), http.MethodGet, "/api/v1/status")
	want := `{"status":"success","data":{"build_information":{"goVersion":"go1.26","version":"1.2.3"},` +
		`"flags":{"web.enable-admin-api":"false","web.listen-address":":9091"},"start_time":"2024-01-02T03:04:05.0000006Z"}}`
	if w.Code != http.StatusOK || w.Body.String() != want {
		t.Errorf("GET /api/v1/status: %d\n got %s\nwant %s", w.Code, w.Body, want)
	}
}

// failingStore fails every wipe, as a store whose journal is broken does.
type failingStore struct{ err error }

func (s failingStore) View() *store.View         { return &store.View{} }
func (s failingStore) Wipe() error               { return s.err }
func (s failingStore) Delete(grouping.Key) error { return s.err }

func (s failingStore) Deadline(*store.Group) (time.Time, bool) { return time.Time{}, false }

// TestRoutes pins what each method gets on each path: the reference's
// router answers 405 with Allow for a known path and another method, 404
// for an unknown path, and the CORS preflight (OPTIONS) everywhere.
func TestRoutes(t *testing.T) {
	const (
		cors = "cors"
		none = ""
	)
	tests := []struct {
		name         string
		admin        bool
		method, path string
		code         int
		allow        string
		headers      string // cors: the CORS headers are set
	}{
		{"status", false, http.MethodGet, "/api/v1/status", 200, "", cors},
		{"status HEAD", false, http.MethodHead, "/api/v1/status", 200, "", cors},
		{"status POST", false, http.MethodPost, "/api/v1/status", 405, "GET", none},
		{"status preflight", false, http.MethodOptions, "/api/v1/status", 200, "", cors},
		{"metrics", false, http.MethodGet, "/api/v1/metrics", 200, "", cors},
		{"metrics DELETE", false, http.MethodDelete, "/api/v1/metrics", 405, "GET", none},
		{"metrics preflight", false, http.MethodOptions, "/api/v1/metrics", 200, "", cors},
		{"unknown", false, http.MethodGet, "/api/v1/nothing", 404, "", cors},
		{"unknown preflight", false, http.MethodOptions, "/api/v1/nothing", 200, "", cors},
		{"wipe without admin", false, http.MethodPut, "/api/v1/admin/wipe", 404, "", cors},
		{"wipe", true, http.MethodPut, "/api/v1/admin/wipe", 202, "", none},
		{"wipe GET", true, http.MethodGet, "/api/v1/admin/wipe", 405, "PUT", none},
		{"wipe POST", true, http.MethodPost, "/api/v1/admin/wipe", 405, "PUT", none},
		{"wipe preflight", true, http.MethodOptions, "/api/v1/admin/wipe", 200, "", cors},
		{"groups", false, http.MethodGet, "/api/v1/groups", 200, "", cors},
		{"groups HEAD", false, http.MethodHead, "/api/v1/groups", 200, "", cors},
		{"groups DELETE without admin", false, http.MethodDelete, "/api/v1/groups?match[]=job%3D%22a%22", 403, "", cors},
		{"groups DELETE", true, http.MethodDelete, "/api/v1/groups?match[]=job%3D%22a%22", 200, "", cors},
		{"groups PUT", true, http.MethodPut, "/api/v1/groups", 405, "GET, DELETE", none},
		{"groups preflight", false, http.MethodOptions, "/api/v1/groups", 200, "", cors},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(mux(api.New(newStore(t), api.Options{EnableAdmin: tt.admin})), tt.method, tt.path)
			if w.Code != tt.code {
				t.Errorf("%s %s: %d, want %d (%s)", tt.method, tt.path, w.Code, tt.code, w.Body)
			}
			if got := w.Header().Get("Allow"); got != tt.allow {
				t.Errorf("Allow: %q, want %q", got, tt.allow)
			}
			gotCORS := w.Header().Get("Access-Control-Allow-Origin") == "*"
			if gotCORS != (tt.headers == cors) {
				t.Errorf("Access-Control-Allow-Origin set: %v, want %v", gotCORS, tt.headers == cors)
			}
		})
	}
}

// TestRouteList pins what the server relies on: the wipe route exists only
// with --web.enable-admin-api; it and /groups (whose DELETE writes) are the
// routes marked Write, so that they wait for the restore.
func TestRouteList(t *testing.T) {
	for _, admin := range []bool{false, true} {
		var paths, writes []string
		for _, r := range api.New(newStore(t), api.Options{EnableAdmin: admin}).Routes() {
			paths = append(paths, r.Path)
			if r.Write {
				writes = append(writes, r.Path)
			}
			if r.Name == "" || r.Handler == nil {
				t.Errorf("admin %v: route %q has no name or handler", admin, r.Path)
			}
		}
		wantPaths, wantWrites := []string{"/status", "/metrics", "/groups", "/"}, []string{"/groups"}
		if admin {
			wantPaths, wantWrites = append(wantPaths, "/admin/wipe"), append(wantWrites, "/admin/wipe")
		}
		if !slices.Equal(paths, wantPaths) || !slices.Equal(writes, wantWrites) {
			t.Errorf("admin %v: paths %q, writes %q; want %q, %q", admin, paths, writes, wantPaths, wantWrites)
		}
	}
}

func TestWipe(t *testing.T) {
	t.Run("wipes", func(t *testing.T) {
		s := newStore(t)
		push(t, s, "job=a", "# TYPE x gauge\nx 1\n")
		w := do(mux(api.New(s, api.Options{EnableAdmin: true})), http.MethodPut, "/api/v1/admin/wipe")
		if w.Code != http.StatusAccepted || w.Body.Len() != 0 {
			t.Errorf("PUT /api/v1/admin/wipe: %d %q, want 202 and no body", w.Code, w.Body)
		}
		if n := s.Stats().Groups; n != 0 {
			t.Errorf("%d groups left after the wipe", n)
		}
	})
	// A wipe the store could not make durable is a 503 with the reason on
	// one line: the client may retry, and nothing was wiped.
	t.Run("store fails", func(t *testing.T) {
		st := failingStore{err: errors.New("storage failed: disk full")}
		w := do(mux(api.New(st, api.Options{EnableAdmin: true})), http.MethodPut, "/api/v1/admin/wipe")
		body := strings.TrimSuffix(w.Body.String(), "\n")
		if w.Code != http.StatusServiceUnavailable || body != "storage failed: disk full" {
			t.Errorf("failed wipe: %d %q, want 503 with the store's error", w.Code, body)
		}
	})
}

// TestMetricsNative pins the JSON of a native histogram: Prometheus's query
// API form, [boundary rule, lower, upper, count] per populated bucket,
// with the total count (zero bucket included) as a string.
func TestMetricsNative(t *testing.T) {
	mf := &dto.MetricFamily{
		Name: proto.String("h"),
		Type: dto.MetricType_HISTOGRAM.Enum(),
		Metric: []*dto.Metric{{Histogram: &dto.Histogram{
			SampleCount:   proto.Uint64(4),
			SampleSum:     proto.Float64(3),
			Schema:        proto.Int32(0),
			ZeroThreshold: proto.Float64(0.001),
			ZeroCount:     proto.Uint64(1),
			PositiveSpan:  []*dto.BucketSpan{{Offset: proto.Int32(0), Length: proto.Uint32(2)}},
			PositiveDelta: []int64{1, 1}, // buckets (0.5,1] and (1,2] with 1 and 2
		}}},
	}
	got, err := json.Marshal(api.Metrics(mf))
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"buckets":[[3,"-0.001","0.001","1"],[0,"0.5","1","1"],[0,"1","2","2"]],"count":"4","labels":{},"sum":"3"}]`
	if string(got) != want {
		t.Errorf("native histogram:\n got %s\nwant %s", got, want)
	}
}
