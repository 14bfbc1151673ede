package push_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
