package push_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pushgate/pushgate/internal/push"
	"github.com/pushgate/pushgate/internal/store"
)

func TestExpireHeader(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header string // "" sends none
		status int
		want   time.Duration
	}{
		{name: "absent", status: http.StatusOK, want: 0},
		{name: "seconds", header: "90s", status: http.StatusOK, want: 90 * time.Second},
		{name: "hours", header: "26h", status: http.StatusOK, want: 26 * time.Hour},
		{name: "zero means never", header: "0", status: http.StatusOK, want: store.NeverExpire},
		{name: "negative", header: "-1s", status: http.StatusBadRequest},
		{name: "no unit", header: "90", status: http.StatusBadRequest},
		{name: "garbage", header: "soon", status: http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &fakeStore{}
			api := push.New(st, push.Options{}, nil)
			r := httptest.NewRequest(http.MethodPut, "http://gateway.test/", strings.NewReader("x 1\n"))
			r.URL.Path = "/metrics/job/j"
			if tc.header != "" {
				r.Header.Set(push.ExpireHeader, tc.header)
			}
			w := httptest.NewRecorder()
			api.Push(true).ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d (%s)", w.Code, tc.status, w.Body)
			}
			if tc.status != http.StatusOK {
				if len(st.pushes) != 0 {
					t.Fatalf("refused push reached the store")
				}
				if body := strings.TrimSuffix(w.Body.String(), "\n"); body == "" || strings.Contains(body, "\n") {
					t.Fatalf("want a one-line body, got %q", w.Body)
				}
				return
			}
			if len(st.pushes) != 1 || st.pushes[0].expire != tc.want {
				t.Fatalf("pushes %+v, want one with expiry %v", st.pushes, tc.want)
			}
		})
	}
}
