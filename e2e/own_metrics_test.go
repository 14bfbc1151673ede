package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// TestOwnMetricNamesAreReserved pushes, for every family the gateway
// exposes about itself, a family of the same name and another type: each
// push must be refused (400), or the scrape would carry one name with two
// types. The list comes from a scrape, so a metric added later is covered.
func TestOwnMetricNamesAreReserved(t *testing.T) {
	t.Parallel()
	requirePushgate(t, "pushgate_* metrics")
	g := startGateway(t, subject, "--storage.in-memory", "--web.enable-admin-api")
	// Touch the handlers so that labelled metrics have series.
	g.do(t, http.MethodPut, "/metrics/job/warmup", nil, []byte("warmup 1\n"))
	g.do(t, http.MethodGet, "/api/v1/status", nil, nil)

	own := 0
	for name, mf := range g.scrape(t) {
		if !isTelemetry(name) {
			continue
		}
		own++
		other := "gauge"
		if mf.GetType() == dto.MetricType_GAUGE {
			other = "counter"
		}
		body := fmt.Sprintf("# TYPE %s %s\n%s 1\n", name, other, name)
		r := g.do(t, http.MethodPut, "/metrics/job/reserved", nil, []byte(body))
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), name) {
			t.Errorf("pushing %s as a %s (it is a %s): %s, want 400 naming it", name, other, strings.ToLower(mf.GetType().String()), r)
		}
	}
	if own < 20 {
		t.Fatalf("only %d own families found; the scrape looks wrong", own)
	}
	if r := g.do(t, http.MethodGet, "/metrics", nil, nil); r.status != http.StatusOK {
		t.Errorf("scrape after the refused pushes: %s", r)
	}
}
