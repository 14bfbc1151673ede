package push_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/push"
	"github.com/pushgate/pushgate/internal/store"
)

// unreadable fails the test if the handler reads it.
type unreadable struct{ t *testing.T }

func (u unreadable) Read([]byte) (int, error) {
	u.t.Error("the body was read")
	return 0, io.EOF
}

func TestContentLengthOverLimitRefusedUnread(t *testing.T) {
	tests := []struct {
		name   string
		length int64
		want   int
	}{
		{"over", 1001, http.StatusRequestEntityTooLarge},
		{"far over", 300 << 20, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &fakeStore{}
			api := push.New(st, push.Options{MaxBodyBytes: 1000}, nil)
			r := httptest.NewRequest(http.MethodPut, "/metrics/job/j", unreadable{t})
			r.ContentLength = tt.length
			w := httptest.NewRecorder()
			api.Push(true).ServeHTTP(w, r)
			if w.Code != tt.want || !strings.Contains(w.Body.String(), "--push.max-body-size") {
				t.Errorf("got %d %q, want %d naming --push.max-body-size", w.Code, w.Body, tt.want)
			}
			if len(st.pushes) != 0 {
				t.Error("the store was called")
			}
		})
	}
}

// gatedStore holds pushes to job "hold" until released, so that they keep
// their share of the decoding budget, and accepts every other push.
type gatedStore struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	pushes  int
}

func (s *gatedStore) PushExpiring(key grouping.Key, _ map[string]*dto.MetricFamily, _ bool, _ time.Duration) error {
	if key.Get("job") == "hold" {
		s.entered <- struct{}{}
		<-s.release
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pushes++
	return nil
}
func (s *gatedStore) Delete(grouping.Key) error { return nil }

// seriesBody is a text body of n short series.
func seriesBody(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "m{i=\"%d\"} 1\n", i)
	}
	return b.Bytes()
}

func TestDecodingBudget(t *testing.T) {
	// Short series are estimated at 260 (text) to 400 (OpenMetrics) bytes
	// each, and the first 64 KiB of each push are free: 1000 of them fit in
	// a budget of 1 MiB, 5000 exceed it alone.
	const limit = 1 << 20
	tests := []struct {
		name       string
		held       int // series of a push that holds its share meanwhile; 0: none
		series     int
		ctype      string
		want       int
		wantReason string
	}{
		{name: "fits", series: 1000, want: http.StatusOK},
		{name: "fits beside another", held: 1000, series: 1000, want: http.StatusOK},
		{name: "does not fit beside another", held: 3000, series: 2000, want: http.StatusTooManyRequests, wantReason: "overload"},
		{name: "does not fit beside another, protobuf", held: 3000, series: 2000, ctype: protoContentType, want: http.StatusTooManyRequests, wantReason: "overload"},
		{name: "small push within the free part", held: 3400, series: 10, want: http.StatusOK},
		{name: "never fits", series: 5000, want: http.StatusRequestEntityTooLarge, wantReason: "too_large"},
		{name: "never fits, openmetrics", series: 5000, ctype: "application/openmetrics-text", want: http.StatusRequestEntityTooLarge, wantReason: "too_large"},
		{name: "never fits, protobuf", series: 5000, ctype: protoContentType, want: http.StatusRequestEntityTooLarge, wantReason: "too_large"},
		// While others hold the budget, a push is refused as soon as it
		// does not fit, before it could know that it never will.
		{name: "never fits, others holding", held: 3000, series: 5000, want: http.StatusTooManyRequests, wantReason: "overload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &gatedStore{entered: make(chan struct{}), release: make(chan struct{})}
			reg := prometheus.NewRegistry()
			api := push.New(st, push.Options{MaxDecodingBytes: limit, MaxInFlight: 10}, reg)
			srv := httptest.NewServer(api.Push(true))
			defer srv.Close()

			held := make(chan int, 1)
			if tt.held > 0 {
				go func() { held <- post(t, srv.URL+"/metrics/job/hold", "", seriesBody(tt.held)).StatusCode }()
				<-st.entered
			}
			body := seriesBody(tt.series)
			switch tt.ctype {
			case protoContentType:
				body = protoBody(t, gaugeFamily("m", make([]float64, tt.series)...))
			case "application/openmetrics-text":
				body = append(body, "# EOF\n"...)
			}
			resp := post(t, srv.URL+"/metrics/job/j", tt.ctype, body)
			if tt.held > 0 {
				close(st.release)
				if code := <-held; code != http.StatusOK {
					t.Errorf("the push holding the budget got %d", code)
				}
			}
			if resp.StatusCode != tt.want {
				t.Fatalf("got %d %q, want %d", resp.StatusCode, resp.body, tt.want)
			}
			if tt.want == http.StatusOK {
				return
			}
			if !strings.Contains(resp.body, "--push.max-decoding-memory") || strings.Count(resp.body, "\n") != 1 {
				t.Errorf("body %q: want one line naming --push.max-decoding-memory", resp.body)
			}
			if got := resp.Header.Get("Retry-After"); (tt.want == http.StatusTooManyRequests) != (got != "") {
				t.Errorf("Retry-After %q with status %d", got, tt.want)
			}
			if n := rejected(t, reg, tt.wantReason); n != 1 {
				t.Errorf("rejections{reason=%q} = %v, want 1", tt.wantReason, n)
			}
			st.mu.Lock()
			defer st.mu.Unlock()
			if wantPushes := min(tt.held, 1); st.pushes != wantPushes {
				t.Errorf("the store got %d pushes, want %d: the refused one must not reach it", st.pushes, wantPushes)
			}
		})
	}
}

type answer struct {
	*http.Response
	body string
}

func post(t *testing.T, url, ctype string, body []byte) answer {
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		t.Error(err)
		return answer{Response: &http.Response{}}
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return answer{Response: &http.Response{}}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp, string(b)}
}

// rejected reads pushgate_push_rejections_total{reason}.
func rejected(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "pushgate_push_rejections_total" {
			continue
		}
		for _, m := range mf.Metric {
			if m.Label[0].GetValue() == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no rejections{reason=%q}", reason)
	return 0
}

func TestSeriesLimitStopsDecoding(t *testing.T) {
	// Protobuf is counted a message (a family) at a time.
	for ctype, got := range map[string]int{"": 101, protoContentType: 1000, "application/openmetrics-text": 101} {
		t.Run(ctype, func(t *testing.T) {
			st := &fakeStore{}
			api := push.New(st, push.Options{MaxSeriesPerPush: 100}, nil)
			body := seriesBody(1_000)
			switch ctype {
			case protoContentType:
				body = protoBody(t, gaugeFamily("m", make([]float64, 1_000)...))
			case "application/openmetrics-text":
				body = append(body, "# EOF\n"...)
			}
			w := serve(t, api, request{method: http.MethodPut, path: "/metrics/job/j", body: body, ctype: ctype})
			if want := fmt.Sprintf("push has %d series, more than the limit of 100 per push (--push.max-series-per-push)\n", got); w.Code != http.StatusRequestEntityTooLarge || w.Body.String() != want {
				t.Errorf("got %d %q, want 413 %q", w.Code, w.Body, want)
			}
			if len(st.pushes) != 0 {
				t.Error("the store was called")
			}
		})
	}
}

// TestRefusalReachesClientThatSendsFirst checks that the answer to a push
// refused before its body was read reaches a client that sends its whole
// body before it reads (as Python's http.client does), instead of a reset.
func TestRefusalReachesClientThatSendsFirst(t *testing.T) {
	big := bytes.Repeat([]byte("\x00\n"), 4<<20) // invalid at its first line
	tests := []struct {
		name    string
		opts    push.Options
		body    []byte
		chunked bool
		want    int
	}{
		{name: "invalid body", body: big, want: http.StatusBadRequest},
		{name: "invalid body, chunked", body: big, chunked: true, want: http.StatusBadRequest},
		{name: "series limit", opts: push.Options{MaxSeriesPerPush: 10}, body: seriesBody(400_000), want: http.StatusRequestEntityTooLarge},
		{name: "decoding budget", opts: push.Options{MaxDecodingBytes: 1 << 20}, body: seriesBody(400_000), want: http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.MaxBodyBytes = 64 << 20
			api := push.New(&fakeStore{}, tt.opts, nil)
			srv := httptest.NewServer(api.Push(true))
			defer srv.Close()
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
			var req bytes.Buffer
			fmt.Fprintf(&req, "PUT /metrics/job/j HTTP/1.1\r\nHost: test\r\n")
			if tt.chunked {
				fmt.Fprintf(&req, "Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(tt.body), tt.body)
			} else {
				fmt.Fprintf(&req, "Content-Length: %d\r\n\r\n%s", len(tt.body), tt.body)
			}
			if _, err := conn.Write(req.Bytes()); err != nil {
				t.Fatalf("sending the body: %v", err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("got %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

// TestRejectionWarningsThrottled checks that a flood of rejected pushes
// logs a handful of warnings and a count of the rest, while the metric
// counts every one.
func TestRejectionWarningsThrottled(t *testing.T) {
	now := time.Unix(1700000000, 0)
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg := prometheus.NewRegistry()
	st := &fakeStore{err: fmt.Errorf("%w: inconsistent", store.ErrInvalid)}
	api := push.New(st, push.Options{Logger: logger, Now: func() time.Time { return now }}, reg)

	const flood = 1000
	for range flood {
		serve(t, api, request{method: http.MethodPut, path: "/metrics/job/j", body: textBody})
	}
	now = now.Add(time.Second)
	serve(t, api, request{method: http.MethodPut, path: "/metrics/job/j", body: textBody})

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	var warned, summaries []string
	for _, l := range lines {
		switch {
		case strings.Contains(l, `msg="push rejected"`):
			warned = append(warned, l)
		case strings.Contains(l, `msg="similar lines suppressed"`):
			summaries = append(summaries, l)
		default:
			t.Errorf("unexpected line %q", l)
		}
	}
	if len(warned) < 2 || len(warned) > 20 {
		t.Errorf("%d warnings for %d rejected pushes, want a handful", len(warned), flood+1)
	}
	if want := fmt.Sprintf("suppressed_lines=%d", flood+1-len(warned)); len(summaries) != 1 || !strings.Contains(summaries[0], want) {
		t.Errorf("summaries %q, want one with %s", summaries, want)
	}
	if n := rejected(t, reg, "invalid_or_inconsistent"); n != flood+1 {
		t.Errorf("rejections counted %v, want %d", n, flood+1)
	}
}

// zeros is an endless body.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestContentLengthOverLimitAnswerReachesClient checks that a body refused
// unread for its Content-Length gets its 413 to a client that reads while
// it sends (Go's, curl): the connection must be closed gracefully, not
// reset while the client still sends.
func TestContentLengthOverLimitAnswerReachesClient(t *testing.T) {
	api := push.New(&fakeStore{}, push.Options{MaxBodyBytes: 1 << 20}, nil)
	srv := httptest.NewServer(api.Push(true))
	defer srv.Close()
	for i := range 10 {
		req, err := http.NewRequest(http.MethodPut, srv.URL+"/metrics/job/j", io.LimitReader(zeros{}, 1<<30))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = 1 << 30
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("attempt %d: status %d, want 413", i, resp.StatusCode)
		}
	}
}
