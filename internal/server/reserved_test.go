package server_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/access"
	"github.com/pushgate/pushgate/internal/api"
	"github.com/pushgate/pushgate/internal/disk"
	"github.com/pushgate/pushgate/internal/exposition"
	"github.com/pushgate/pushgate/internal/push"
	"github.com/pushgate/pushgate/internal/server"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/store/storetest"
)

// TestOwnMetricsReserved wires every part that registers metrics into one
// registry, as cmd/pushgate does, computes the reserved families the way
// it does at start (reservedFamilies: what is gathered before the store
// exists, plus push.Reserved and server.Reserved for the parts built after
// it), then serves traffic so that every vector has series, and checks
// that the store refuses each gathered family pushed with another type. A
// metric added to a part without being reserved fails here, before the
// e2e test (e2e/own_metrics_test.go) would.
//
// Keep the wiring in step with cmd/pushgate's run.
func TestOwnMetricsReserved(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("pushgateway"),
	)
	// One token (billing-token) that may push anything and read.
	policy, err := access.Load("../access/testdata/token-only.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	guard := access.NewGuard(policy, access.Options{Registerer: reg})
	db, err := disk.Open(t.TempDir(), disk.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "pushgate_storage_replay_duration_seconds", Help: "As in cmd/pushgate."}))

	// As reservedFamilies in cmd/pushgate/main.go.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	reserved := append(push.Reserved(), server.Reserved()...)
	for _, mf := range mfs {
		reserved = append(reserved, store.Reserved{Name: mf.GetName(), Type: mf.GetType()})
	}

	st := store.New(store.Options{Reserved: reserved, Journal: db})
	st.RegisterMetrics(reg)
	pushAPI := push.New(st, push.Options{}, reg)
	srv := server.New(server.Options{TelemetryPath: "/metrics", Access: guard.Wrap}, server.Parts{
		Put:    pushAPI.Push(true),
		Post:   pushAPI.Push(false),
		Delete: pushAPI.Delete(),
		Scrape: exposition.New(st, reg, nil),
		API:    api.New(st, api.Options{EnableAdmin: true}).Routes(),
	}, reg)
	srv.SetReady(true)

	// Traffic that gives every vector its series: pushes and deletes that
	// succeed and fail, reads, and requests the access guard refuses.
	for _, r := range []struct{ method, target, body string }{
		{http.MethodPut, "/metrics/job/a", "# TYPE x gauge\nx 1\n"},
		{http.MethodPost, "/metrics/job/a", "# TYPE y gauge\ny 1\n"},
		{http.MethodPut, "/metrics/job/a", "x{"},
		{http.MethodDelete, "/metrics/job/a", ""},
		{http.MethodGet, "/api/v1/status", ""},
		{http.MethodGet, "/metrics", ""},
	} {
		for _, auth := range []string{"", "Bearer wrong", "Bearer billing-token"} {
			req := httptest.NewRequest(r.method, r.target, strings.NewReader(r.body))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			srv.ServeHTTP(httptest.NewRecorder(), req)
		}
	}

	mfs, err = reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	key := storetest.Key(t, "job=reserved")
	for _, mf := range mfs {
		other := dto.MetricType_GAUGE
		if mf.GetType() == dto.MetricType_GAUGE {
			other = dto.MetricType_COUNTER
		}
		m := &dto.Metric{Gauge: &dto.Gauge{Value: proto.Float64(1)}}
		if other == dto.MetricType_COUNTER {
			m = &dto.Metric{Counter: &dto.Counter{Value: proto.Float64(1)}}
		}
		fam := &dto.MetricFamily{Name: proto.String(mf.GetName()), Type: other.Enum(), Metric: []*dto.Metric{m}}
		err := st.Push(key, map[string]*dto.MetricFamily{mf.GetName(): fam}, true)
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("own family %s (%s) pushed as a %s: %v; want it refused as reserved", mf.GetName(), mf.GetType(), other, err)
		}
	}
	if len(mfs) < 20 {
		t.Errorf("only %d families gathered; the wiring looks incomplete", len(mfs))
	}
}
