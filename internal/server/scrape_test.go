package server_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pushgate/pushgate/internal/exposition"
	"github.com/pushgate/pushgate/internal/server"
	"github.com/pushgate/pushgate/internal/store"
)

// Scrapes through the server's telemetry path, plain and gzipped, are
// counted by encoding and format, and the size is what the client got.
func TestScrapeMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	st := store.New(store.Options{})
	st.RegisterMetrics(reg)
	srv := server.New(server.Options{TelemetryPath: "/metrics"}, server.Parts{
		Scrape: exposition.New(st, reg, nil),
	}, reg)

	sent := map[string]int{} // by "encoding/format"
	for _, r := range []struct{ accept, encoding, key string }{
		{"", "", "identity/text"},
		{"", "gzip", "gzip/text"},
		{"", "gzip", "gzip/text"},
		{"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", "", "identity/protobuf"},
		{"application/openmetrics-text;version=1.0.0", "gzip", "gzip/openmetrics"},
	} {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if r.accept != "" {
			req.Header.Set("Accept", r.accept)
		}
		if r.encoding != "" {
			req.Header.Set("Accept-Encoding", r.encoding)
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("scrape %+v: %d %s", r, w.Code, w.Body)
		}
		sent[r.key] += w.Body.Len()
	}

	got := map[string]map[string]*dto.Histogram{}
	for _, name := range []string{"pushgate_scrape_duration_seconds", "pushgate_scrape_size_bytes"} {
		got[name] = server.Histograms(t, reg, name)
	}
	for _, name := range []string{"pushgate_scrape_duration_seconds", "pushgate_scrape_size_bytes"} {
		if len(got[name]) != len(sent) {
			t.Errorf("%s: %d series, want %d (%v)", name, len(got[name]), len(sent), sent)
		}
	}
	counts := map[string]uint64{"identity/text": 1, "gzip/text": 2, "identity/protobuf": 1, "gzip/openmetrics": 1}
	for key, n := range sent {
		size := got["pushgate_scrape_size_bytes"][key]
		if size.GetSampleCount() != counts[key] || size.GetSampleSum() != float64(n) {
			t.Errorf("pushgate_scrape_size_bytes{%s}: count %d sum %v, want %d and %d (bytes received)",
				key, size.GetSampleCount(), size.GetSampleSum(), counts[key], n)
		}
		if d := got["pushgate_scrape_duration_seconds"][key]; d.GetSampleCount() != counts[key] || d.GetSampleSum() <= 0 {
			t.Errorf("pushgate_scrape_duration_seconds{%s}: count %d sum %v", key, d.GetSampleCount(), d.GetSampleSum())
		}
	}
}
