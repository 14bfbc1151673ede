package push_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/push"
	"github.com/pushgate/pushgate/internal/store"
)

func TestLimitsAnswer413NamingTheFlag(t *testing.T) {
	tests := []struct {
		name, body, flag string
		opts             store.Options
	}{
		{"series per push", "a 1\nb 2\nc 3\n", "--push.max-series-per-push", store.Options{MaxSeriesPerPush: 2}},
		{"total series", "a 1\nb 2\nc 3\n", "--storage.max-series", store.Options{MaxSeries: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := push.New(store.New(tt.opts), push.Options{}, nil)
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPut, "/metrics/job/j", strings.NewReader(tt.body))
			api.Push(true).ServeHTTP(rec, req)
			if rec.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("status = %d, want 413 (%s)", rec.Code, rec.Body)
			}
			body := strings.TrimSuffix(rec.Body.String(), "\n")
			if !strings.Contains(body, tt.flag) || strings.Contains(body, "\n") {
				t.Errorf("body %q should be one line naming %s", body, tt.flag)
			}
		})
	}
}

// blockingStore holds every push until released, to fill the in-flight slots.
type blockingStore struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingStore) PushExpiring(grouping.Key, map[string]*dto.MetricFamily, bool, time.Duration) error {
	b.entered <- struct{}{}
	<-b.release
	return nil
}
func (b *blockingStore) Delete(grouping.Key) error { return nil }

func TestTooManyPushesInFlightAnswer429(t *testing.T) {
	st := &blockingStore{entered: make(chan struct{}), release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	api := push.New(st, push.Options{MaxInFlight: 1}, reg)
	srv := httptest.NewServer(api.Push(true))
	defer srv.Close()

	done := make(chan int)
	go func() {
		resp, err := http.Post(srv.URL+"/metrics/job/a", "text/plain", strings.NewReader("a 1\n"))
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-st.entered // the first push holds the only slot

	resp, err := http.Post(srv.URL+"/metrics/job/b", "text/plain", strings.NewReader("b 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "--push.max-concurrent") || resp.Header.Get("Retry-After") == "" {
		t.Errorf("second push: %d %q (Retry-After %q), want 429 naming the flag", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	close(st.release)
	if code := <-done; code != http.StatusOK {
		t.Errorf("first push: %d, want 200", code)
	}

	// The refusal is counted by reason.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "pushgate_push_rejections_total" {
			continue
		}
		for _, m := range mf.Metric {
			if m.Label[0].GetValue() == "overload" && m.GetCounter().GetValue() == 1 {
				found = true
			}
		}
	}
	if !found {
		t.Error("pushgate_push_rejections_total{reason=\"overload\"} is not 1")
	}
}
