package push_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/push"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/store/storetest"
)

const protoContentType = `application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited`

type pushCall struct {
	key     grouping.Key
	fams    map[string]*dto.MetricFamily
	replace bool
	expire  time.Duration
}

// fakeStore records calls and returns a configured error.
type fakeStore struct {
	mu        sync.Mutex
	err       error
	deleteErr error
	pushes    []pushCall
	deletes   []grouping.Key
}

func (s *fakeStore) PushExpiring(key grouping.Key, fams map[string]*dto.MetricFamily, replace bool, expireAfter time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A copy: the handler reuses the messages once the store returns.
	s.pushes = append(s.pushes, pushCall{key, storetest.CloneFamilies(fams), replace, expireAfter})
	return s.err
}

func (s *fakeStore) Delete(key grouping.Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deletes = append(s.deletes, key)
	return s.deleteErr
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func snappied(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := snappy.NewBufferedWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func protoBody(t testing.TB, fams ...*dto.MetricFamily) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeProtoDelim))
	for _, mf := range fams {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func gaugeFamily(name string, values ...float64) *dto.MetricFamily {
	mf := &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_GAUGE.Enum()}
	for i, v := range values {
		mf.Metric = append(mf.Metric, &dto.Metric{
			Label: []*dto.LabelPair{{Name: proto.String("i"), Value: proto.String(fmt.Sprint(i))}},
			Gauge: &dto.Gauge{Value: proto.Float64(v)},
		})
	}
	return mf
}

type request struct {
	method   string
	path     string
	body     []byte
	encoding string
	ctype    string
}

func serve(t testing.TB, api *push.API, req request) *httptest.ResponseRecorder {
	t.Helper()
	var h http.Handler
	switch req.method {
	case http.MethodPut:
		h = api.Push(true)
	case http.MethodPost:
		h = api.Push(false)
	case http.MethodDelete:
		h = api.Delete()
	default:
		t.Fatalf("method %s", req.method)
	}
	r := httptest.NewRequest(req.method, "http://gateway.test/", bytes.NewReader(req.body))
	r.URL.Path = req.path // already decoded, as after routing
	if req.encoding != "" {
		r.Header.Set("Content-Encoding", req.encoding)
	}
	if req.ctype != "" {
		r.Header.Set("Content-Type", req.ctype)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

var textBody = []byte("# TYPE some_metric counter\nsome_metric{a=\"b\"} 3\nother 1\n")

func TestPushStatus(t *testing.T) {
	invalid := fmt.Errorf("%w: metric x is pushed as gauge but exists as counter in another group", store.ErrInvalid)
	tests := []struct {
		name     string
		opts     push.Options
		storeErr error
		req      request
		want     int
		wantBody string // exact body, "" for any
		// wantPush is the replace flag of the expected store call;
		// nil means the store must not be called.
		wantPush *bool
	}{
		{name: "put", req: request{method: "PUT", path: "/metrics/job/j", body: textBody}, want: 200, wantPush: ptr(true)},
		{name: "post", req: request{method: "POST", path: "/metrics/job/j", body: textBody}, want: 200, wantPush: ptr(false)},
		{name: "empty put", req: request{method: "PUT", path: "/metrics/job/j"}, want: 200, wantPush: ptr(true)},
		{name: "delete", req: request{method: "DELETE", path: "/metrics/job/j/instance/i"}, want: 202},
		{
			name: "store rejects", storeErr: invalid,
			req:  request{method: "PUT", path: "/metrics/job/j", body: textBody},
			want: 400, wantBody: invalid.Error() + "\n", wantPush: ptr(true),
		},
		{
			name: "store rejects timestamps", storeErr: store.ErrTimestamp,
			req:  request{method: "POST", path: "/metrics/job/j", body: textBody},
			want: 400, wantBody: "pushed metrics are invalid or inconsistent with existing metrics: pushed metrics must not have timestamps\n", wantPush: ptr(false),
		},
		{
			name: "multi-line store error stays on one line", storeErr: fmt.Errorf("%w: a\nb", store.ErrInvalid),
			req:  request{method: "PUT", path: "/metrics/job/j", body: textBody},
			want: 400, wantBody: store.ErrInvalid.Error() + `: a\nb` + "\n", wantPush: ptr(true),
		},
		{
			name: "store fails", storeErr: errors.New("disk on fire"),
			req:  request{method: "PUT", path: "/metrics/job/j", body: textBody},
			want: 500, wantBody: "disk on fire\n", wantPush: ptr(true),
		},
		{
			name: "store cannot persist", storeErr: fmt.Errorf("%w: journal: disk full", store.ErrStorage),
			req:  request{method: "PUT", path: "/metrics/job/j", body: textBody},
			want: 503, wantBody: "storage failed: journal: disk full\n", wantPush: ptr(true),
		},
		{
			name: "unchecked put", opts: push.Options{DisableConsistencyCheck: true},
			req:  request{method: "PUT", path: "/metrics/job/j", body: textBody},
			want: 202, wantPush: ptr(true),
		},
		{
			name: "unchecked post", opts: push.Options{DisableConsistencyCheck: true},
			req:  request{method: "POST", path: "/metrics/job/j", body: textBody},
			want: 202, wantPush: ptr(false),
		},
		{
			name: "unchecked push the store rejects", opts: push.Options{DisableConsistencyCheck: true}, storeErr: invalid,
			req:  request{method: "PUT", path: "/metrics/job/j", body: textBody},
			want: 202, wantBody: "", wantPush: ptr(true),
		},
		{
			name: "unchecked push with timestamps", opts: push.Options{DisableConsistencyCheck: true}, storeErr: store.ErrTimestamp,
			req:  request{method: "POST", path: "/metrics/job/j", body: textBody},
			want: 202, wantPush: ptr(false),
		},
		{
			name: "unchecked bad path", opts: push.Options{DisableConsistencyCheck: true},
			req:  request{method: "PUT", path: "/metrics/job/j/odd", body: textBody},
			want: 400, wantBody: "odd number of components in label string \"/odd\"\n",
		},
		{
			name: "unchecked bad body", opts: push.Options{DisableConsistencyCheck: true},
			req:  request{method: "PUT", path: "/metrics/job/j", body: []byte("a 1")},
			want: 400, wantBody: "text format parsing error in line 1: unexpected end of input stream\n",
		},
		{
			name: "no job", req: request{method: "PUT", path: "/metrics/job/", body: textBody},
			want: 400, wantBody: "job name is required\n",
		},
		{
			name: "bad label name", req: request{method: "POST", path: "/metrics/job/j/__x/y", body: textBody},
			want: 400, wantBody: "improper label name \"__x\"\n",
		},
		{
			name: "bad base64", req: request{method: "PUT", path: "/metrics/job/j/x@base64/!!", body: textBody},
			want: 400, wantBody: "invalid base64 encoding for label x=\"!!\": illegal base64 data at input byte 0\n",
		},
		{
			name: "bad base64 job", req: request{method: "PUT", path: "/metrics/job@base64/!!", body: textBody},
			want: 400, wantBody: "invalid base64 encoding in job name \"\": illegal base64 data at input byte 0 (job@base64 segment \"!!\")\n",
		},
		{
			name: "not under /metrics/", req: request{method: "PUT", path: "/job/j", body: textBody},
			want: 400,
		},
		{
			name: "delete bad path", req: request{method: "DELETE", path: "/metrics/job/j/x"},
			want: 400, wantBody: "odd number of components in label string \"/x\"\n",
		},
		{
			name: "text without trailing newline", req: request{method: "PUT", path: "/metrics/job/j", body: []byte("some_metric 1")},
			want: 400, wantBody: "text format parsing error in line 1: unexpected end of input stream\n",
		},
		{
			name: "text with invalid label value", req: request{method: "PUT", path: "/metrics/job/j", body: []byte("a{b=\"\xff\"} 1\n")},
			want: 400, wantBody: "text format parsing error in line 1: invalid label value \"\\xff\"\n",
		},
		{
			name: "utf8 name without utf8 names", req: request{method: "PUT", path: "/metrics/job/j", body: []byte("{\"a.b\"} 1\n")},
			want: 400,
		},
		{
			name: "utf8 name with utf8 names", opts: push.Options{UTF8Names: true},
			req:  request{method: "PUT", path: "/metrics/job/j/U__a_2e_b/v", body: []byte("{\"a.b\"} 1\n")},
			want: 200, wantPush: ptr(true),
		},
		{
			name: "utf8 label in path without utf8 names",
			req:  request{method: "PUT", path: "/metrics/job/j/a.b/v", body: textBody},
			want: 400, wantBody: "improper label name \"a.b\"\n",
		},
		{
			name: "gzip", req: request{method: "PUT", path: "/metrics/job/j", body: gzipped(t, textBody), encoding: "gzip"},
			want: 200, wantPush: ptr(true),
		},
		{
			name: "gzip upper case", req: request{method: "PUT", path: "/metrics/job/j", body: gzipped(t, textBody), encoding: "GZIP"},
			want: 200, wantPush: ptr(true),
		},
		{
			name: "snappy", req: request{method: "POST", path: "/metrics/job/j", body: snappied(t, textBody), encoding: "snappy"},
			want: 200, wantPush: ptr(false),
		},
		{
			name: "invalid gzip", req: request{method: "PUT", path: "/metrics/job/j", body: textBody, encoding: "gzip"},
			want: 400,
		},
		{
			name: "truncated gzip", req: request{method: "PUT", path: "/metrics/job/j", body: gzipped(t, textBody)[:20], encoding: "gzip"},
			want: 400,
		},
		{
			name: "invalid snappy", req: request{method: "PUT", path: "/metrics/job/j", body: textBody, encoding: "snappy"},
			want: 400,
		},
		{
			name: "protobuf", req: request{method: "PUT", path: "/metrics/job/j", body: protoBody(t, gaugeFamily("g", 1)), ctype: protoContentType},
			want: 200, wantPush: ptr(true),
		},
		{
			name: "truncated protobuf", req: request{method: "PUT", path: "/metrics/job/j", body: protoBody(t, gaugeFamily("g", 1, 2))[:10], ctype: protoContentType},
			want: 400,
		},
		{
			name: "gzipped protobuf", req: request{method: "PUT", path: "/metrics/job/j", body: gzipped(t, protoBody(t, gaugeFamily("g", 1))), ctype: protoContentType, encoding: "gzip"},
			want: 200, wantPush: ptr(true),
		},
		{
			name: "text body with protobuf content type", req: request{method: "PUT", path: "/metrics/job/j", body: textBody, ctype: protoContentType},
			want: 400,
		},
		{
			name: "body limit", opts: push.Options{MaxBodyBytes: 10},
			req:  request{method: "PUT", path: "/metrics/job/j", body: textBody},
			want: 413,
		},
		{
			name: "body at limit", opts: push.Options{MaxBodyBytes: int64(len(textBody))},
			req:  request{method: "PUT", path: "/metrics/job/j", body: textBody},
			want: 200, wantPush: ptr(true),
		},
		{
			name: "compressed body limit", opts: push.Options{MaxBodyBytes: 10},
			req:  request{method: "PUT", path: "/metrics/job/j", body: gzipped(t, textBody), encoding: "gzip"},
			want: 413,
		},
		{
			name: "protobuf body limit", opts: push.Options{MaxBodyBytes: 10},
			req:  request{method: "PUT", path: "/metrics/job/j", body: protoBody(t, gaugeFamily("g", 1, 2, 3)), ctype: protoContentType},
			want: 413,
		},
		{
			name: "decompressed limit", opts: push.Options{MaxDecompressedBytes: int64(len(textBody)) - 1},
			req:  request{method: "PUT", path: "/metrics/job/j", body: gzipped(t, textBody), encoding: "gzip"},
			want: 413,
		},
		{
			name: "decompressed at limit", opts: push.Options{MaxDecompressedBytes: int64(len(textBody))},
			req:  request{method: "PUT", path: "/metrics/job/j", body: gzipped(t, textBody), encoding: "gzip"},
			want: 200, wantPush: ptr(true),
		},
		{
			name: "snappy decompressed limit", opts: push.Options{MaxDecompressedBytes: 5},
			req:  request{method: "PUT", path: "/metrics/job/j", body: snappied(t, textBody), encoding: "snappy"},
			want: 413,
		},
		{
			name: "uncompressed decompressed limit", opts: push.Options{MaxDecompressedBytes: 5},
			req:  request{method: "PUT", path: "/metrics/job/j", body: textBody},
			want: 413,
		},
		{
			name: "protobuf decompressed limit", opts: push.Options{MaxDecompressedBytes: 5},
			req:  request{method: "PUT", path: "/metrics/job/j", body: gzipped(t, protoBody(t, gaugeFamily("g", 1, 2, 3))), ctype: protoContentType, encoding: "gzip"},
			want: 413,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &fakeStore{err: tt.storeErr}
			w := serve(t, push.New(st, tt.opts, prometheus.NewRegistry()), tt.req)
			if w.Code != tt.want {
				t.Errorf("status = %d, want %d; body %q", w.Code, tt.want, w.Body)
			}
			if tt.wantBody != "" && w.Body.String() != tt.wantBody {
				t.Errorf("body = %q, want %q", w.Body, tt.wantBody)
			}
			if w.Code >= 400 && strings.Count(strings.TrimSuffix(w.Body.String(), "\n"), "\n") > 0 {
				t.Errorf("error body has more than one line: %q", w.Body)
			}
			switch {
			case tt.wantPush == nil && len(st.pushes) > 0:
				t.Errorf("store.Push called: %+v", st.pushes)
			case tt.wantPush != nil && len(st.pushes) != 1:
				t.Errorf("store.Push called %d times, want once", len(st.pushes))
			case tt.wantPush != nil && st.pushes[0].replace != *tt.wantPush:
				t.Errorf("replace = %v, want %v", st.pushes[0].replace, *tt.wantPush)
			}
			if tt.req.method == http.MethodDelete && w.Code == http.StatusAccepted && len(st.deletes) != 1 {
				t.Errorf("store.Delete called %d times, want once", len(st.deletes))
			}
			if tt.req.method == http.MethodDelete && w.Code != http.StatusAccepted && len(st.deletes) != 0 {
				t.Errorf("store.Delete called on a bad request")
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestPushLimitMessages(t *testing.T) {
	tests := []struct {
		name string
		opts push.Options
		req  request
		flag string
	}{
		{"body", push.Options{MaxBodyBytes: 10}, request{method: "PUT", path: "/metrics/job/j", body: textBody}, "--push.max-body-size"},
		{"decompressed", push.Options{MaxDecompressedBytes: 10}, request{method: "PUT", path: "/metrics/job/j", body: gzipped(t, textBody), encoding: "gzip"}, "--push.max-decompressed-size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(t, push.New(&fakeStore{}, tt.opts, nil), tt.req)
			if w.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("status = %d, want 413", w.Code)
			}
			if !strings.Contains(w.Body.String(), tt.flag) || !strings.Contains(w.Body.String(), "10 bytes") {
				t.Errorf("body %q does not mention the limit and %s", w.Body, tt.flag)
			}
		})
	}
}

// TestPushLimitBoundary: a body whose decompressed size is exactly
// MaxDecompressedBytes must be treated like one under the limit: errors that
// the compressed stream reports after its last data byte (corruption, or
// MaxBodyBytes exceeded) must not be dropped.
func TestPushLimitBoundary(t *testing.T) {
	more := []byte(strings.Repeat("more_metric{i=\"x\"} 1\n", 50))
	gz := gzipped(t, textBody)
	corrupt := slices.Clone(gz)
	corrupt[len(corrupt)-8] ^= 0xff // CRC-32 in the trailer
	gzJunk := append(slices.Clone(gz), "junk that is not a gzip header"...)
	gzTwo := append(slices.Clone(gz), gzipped(t, more)...)
	sn := snappied(t, textBody)
	snJunk := append(slices.Clone(sn), 0x00, 0x05, 0x00, 0x00, 1, 2, 3, 4, 5) // compressed chunk with bad CRC
	snTwo := append(slices.Clone(sn), snappied(t, more)...)
	exact := int64(len(textBody))
	tests := []struct {
		name     string
		opts     push.Options
		encoding string
		body     []byte
		want     int
	}{
		{"gzip bad checksum under limit", push.Options{MaxDecompressedBytes: exact + 1}, "gzip", corrupt, 400},
		{"gzip bad checksum at limit", push.Options{MaxDecompressedBytes: exact}, "gzip", corrupt, 400},
		{"gzip trailing junk under limit", push.Options{MaxDecompressedBytes: exact + 1}, "gzip", gzJunk, 400},
		{"gzip trailing junk at limit", push.Options{MaxDecompressedBytes: exact}, "gzip", gzJunk, 400},
		{"gzip body limit in trailer", push.Options{MaxBodyBytes: int64(len(gz)) - 4, MaxDecompressedBytes: exact}, "gzip", gz, 413},
		{"gzip body limit in second member, no decompressed limit", push.Options{MaxBodyBytes: int64(len(gz)) + 12}, "gzip", gzTwo, 413},
		{"gzip body limit in second member, under limit", push.Options{MaxBodyBytes: int64(len(gz)) + 12, MaxDecompressedBytes: exact + 1}, "gzip", gzTwo, 413},
		{"gzip body limit in second member, at limit", push.Options{MaxBodyBytes: int64(len(gz)) + 12, MaxDecompressedBytes: exact}, "gzip", gzTwo, 413},
		{"plain body over body limit, decompressed limit equal", push.Options{MaxBodyBytes: exact, MaxDecompressedBytes: exact}, "", append(slices.Clone(textBody), "extra 1\n"...), 413},
		{"plain body over body limit, decompressed limit larger", push.Options{MaxBodyBytes: exact, MaxDecompressedBytes: exact + 1}, "", append(slices.Clone(textBody), "extra 1\n"...), 413},
		{"snappy bad chunk under limit", push.Options{MaxDecompressedBytes: exact + 1}, "snappy", snJunk, 400},
		{"snappy bad chunk at limit", push.Options{MaxDecompressedBytes: exact}, "snappy", snJunk, 400},
		{"snappy body limit in second stream, no decompressed limit", push.Options{MaxBodyBytes: int64(len(sn)) + 2}, "snappy", snTwo, 413},
		{"snappy body limit in second stream, under limit", push.Options{MaxBodyBytes: int64(len(sn)) + 2, MaxDecompressedBytes: exact + 1}, "snappy", snTwo, 413},
		{"snappy body limit in second stream, at limit", push.Options{MaxBodyBytes: int64(len(sn)) + 2, MaxDecompressedBytes: exact}, "snappy", snTwo, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &fakeStore{}
			w := serve(t, push.New(st, tt.opts, nil), request{method: "PUT", path: "/metrics/job/j", body: tt.body, encoding: tt.encoding})
			if w.Code != tt.want {
				t.Errorf("status = %d, want %d; body %q; store called %d times", w.Code, tt.want, w.Body, len(st.pushes))
			}
		})
	}
}

func TestPushPassesKeyAndFamilies(t *testing.T) {
	tests := []struct {
		name      string
		opts      push.Options
		req       request
		wantKey   map[string]string
		wantFams  map[string]int // name -> number of metrics
		wantValue map[string]float64
	}{
		{
			name:     "text",
			req:      request{method: "PUT", path: "/metrics/job/j/instance/i", body: textBody},
			wantKey:  map[string]string{"job": "j", "instance": "i"},
			wantFams: map[string]int{"some_metric": 1, "other": 1},
		},
		{
			name:     "base64 path",
			req:      request{method: "POST", path: "/metrics/job@base64/Zm9vL2Jhcg/path@base64/=", body: textBody},
			wantKey:  map[string]string{"job": "foo/bar", "path": ""},
			wantFams: map[string]int{"some_metric": 1, "other": 1},
		},
		{
			name: "protobuf, later message of the same name wins",
			req: request{method: "PUT", path: "/metrics/job/j", ctype: protoContentType,
				body: protoBody(t, gaugeFamily("g", 1, 2), gaugeFamily("h", 5), gaugeFamily("g", 3))},
			wantKey:   map[string]string{"job": "j"},
			wantFams:  map[string]int{"g": 1, "h": 1},
			wantValue: map[string]float64{"g": 3, "h": 5},
		},
		{
			name: "protobuf content type with spaces and order",
			req: request{method: "PUT", path: "/metrics/job/j", ctype: `application/vnd.google.protobuf;encoding=delimited;proto=io.prometheus.client.MetricFamily`,
				body: protoBody(t, gaugeFamily("g", 1))},
			wantKey:  map[string]string{"job": "j"},
			wantFams: map[string]int{"g": 1},
		},
		{
			name: "snappy protobuf",
			req: request{method: "PUT", path: "/metrics/job/j", ctype: protoContentType, encoding: "snappy",
				body: snappied(t, protoBody(t, gaugeFamily("g", 1, 2)))},
			wantKey:  map[string]string{"job": "j"},
			wantFams: map[string]int{"g": 2},
		},
		{
			name:     "empty body",
			req:      request{method: "PUT", path: "/metrics/job/j"},
			wantKey:  map[string]string{"job": "j"},
			wantFams: map[string]int{},
		},
		{
			name:     "utf8 names",
			opts:     push.Options{UTF8Names: true},
			req:      request{method: "PUT", path: "/metrics/job/j/U__a_2e_b/v", body: []byte("{\"x.y\", \"l.m\"=\"n\"} 1\n")},
			wantKey:  map[string]string{"job": "j", "a.b": "v"},
			wantFams: map[string]int{"x.y": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &fakeStore{}
			w := serve(t, push.New(st, tt.opts, nil), tt.req)
			if w.Code != http.StatusOK {
				t.Fatalf("status = %d, body %q", w.Code, w.Body)
			}
			if len(st.pushes) != 1 {
				t.Fatalf("store.Push called %d times", len(st.pushes))
			}
			call := st.pushes[0]
			if got := call.key.Map(); !maps.Equal(got, tt.wantKey) {
				t.Errorf("key = %v, want %v", got, tt.wantKey)
			}
			got := map[string]int{}
			for name, mf := range call.fams {
				got[name] = len(mf.Metric)
				if mf.GetName() != name {
					t.Errorf("family %q is keyed as %q", mf.GetName(), name)
				}
			}
			if !maps.Equal(got, tt.wantFams) {
				t.Errorf("families = %v, want %v", got, tt.wantFams)
			}
			for name, v := range tt.wantValue {
				if g := call.fams[name].Metric[0].GetGauge().GetValue(); g != v {
					t.Errorf("%s = %v, want %v", name, g, v)
				}
			}
		})
	}
}

func TestDeletePassesKey(t *testing.T) {
	st := &fakeStore{}
	w := serve(t, push.New(st, push.Options{}, nil), request{method: "DELETE", path: "/metrics/job@base64/YQ/b/c"})
	if w.Code != http.StatusAccepted {
		t.Fatalf("status = %d", w.Code)
	}
	if len(st.deletes) != 1 || !maps.Equal(st.deletes[0].Map(), map[string]string{"job": "a", "b": "c"}) {
		t.Errorf("deletes = %v", st.deletes)
	}
	if len(st.pushes) != 0 {
		t.Errorf("delete pushed: %v", st.pushes)
	}
}

func TestDeleteStoreError(t *testing.T) {
	st := &fakeStore{deleteErr: fmt.Errorf("%w: journal: disk full", store.ErrStorage)}
	w := serve(t, push.New(st, push.Options{}, nil), request{method: "DELETE", path: "/metrics/job/a"})
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("status = %d, want 503", w.Code)
	}
	if want := "storage failed: journal: disk full\n"; w.Body.String() != want {
		t.Errorf("body = %q, want %q", w.Body, want)
	}
}

// TestPushProtobufLengthPrefix: the length prefix of a delimited message is
// client input; the limits must bound what the handler allocates for it. A
// few bytes claiming a huge message must not allocate that much (with a
// prefix of 1 TiB the process dies of an out-of-memory fatal error).
func TestPushProtobufLengthPrefix(t *testing.T) {
	body := binary.AppendUvarint(nil, 1<<28) // 256 MiB claimed
	body = append(body, 0x0a, 0x01, 'a')
	tests := []struct {
		name string
		opts push.Options
		want int
	}{
		{"no limits", push.Options{}, 400},
		{"body limit", push.Options{MaxBodyBytes: 1 << 10}, 400},
		{"decompressed limit", push.Options{MaxDecompressedBytes: 1 << 10}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			w := serve(t, push.New(&fakeStore{}, tt.opts, nil), request{method: "PUT", path: "/metrics/job/j", body: body, ctype: protoContentType})
			runtime.ReadMemStats(&after)
			if w.Code != tt.want && w.Code != http.StatusRequestEntityTooLarge {
				t.Errorf("status = %d, want %d or 413; body %q", w.Code, tt.want, w.Body)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
				t.Errorf("a %d-byte body made the handler allocate %d MiB", len(body), alloc>>20)
			}
		})
	}
}

// TestPushRealStore checks the status codes against the real store's errors.
func TestPushRealStore(t *testing.T) {
	st := store.New(store.Options{})
	api := push.New(st, push.Options{}, nil)
	steps := []struct {
		name string
		req  request
		want int
	}{
		{"counter", request{method: "PUT", path: "/metrics/job/a", body: []byte("# TYPE m counter\nm 1\n")}, 200},
		{"same name as gauge in another group", request{method: "PUT", path: "/metrics/job/b", body: []byte("# TYPE m gauge\nm 1\n")}, 400},
		{"timestamp", request{method: "PUT", path: "/metrics/job/b", body: []byte("m 1 1000\n")}, 400},
		{"duplicate series", request{method: "PUT", path: "/metrics/job/b", body: []byte("x 1\nx 2\n")}, 400},
		{"delete", request{method: "DELETE", path: "/metrics/job/a"}, 202},
		{"gauge now fine", request{method: "POST", path: "/metrics/job/b", body: []byte("# TYPE m gauge\nm 1\n")}, 200},
	}
	for _, s := range steps {
		w := serve(t, api, s.req)
		if w.Code != s.want {
			t.Errorf("%s: status = %d, want %d; body %q", s.name, w.Code, s.want, w.Body)
		}
		if w.Code == 400 && !strings.HasPrefix(w.Body.String(), store.ErrInvalid.Error()) {
			t.Errorf("%s: body %q does not start with the reference's text", s.name, w.Body)
		}
	}
}

func TestReserved(t *testing.T) {
	reg := prometheus.NewRegistry()
	api := push.New(&fakeStore{}, push.Options{}, reg)
	serve(t, api, request{method: "PUT", path: "/metrics/job/j", body: textBody})
	got, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]dto.MetricType{}
	for _, mf := range got {
		types[mf.GetName()] = mf.GetType()
	}
	for _, r := range push.Reserved() {
		if typ, ok := types[r.Name]; !ok || typ != r.Type {
			t.Errorf("reserved %s %v: registered as %v (present %v)", r.Name, r.Type, typ, ok)
		}
	}
}

// TestPushStreamedBody: a body that arrives in pieces is read to its end.
func TestPushStreamedBody(t *testing.T) {
	st := &fakeStore{}
	api := push.New(st, push.Options{}, nil)
	r := httptest.NewRequest(http.MethodPut, "http://gateway.test/metrics/job/j", io.MultiReader(strings.NewReader("a 1\n"), strings.NewReader("b 2\n")))
	w := httptest.NewRecorder()
	api.Push(true).ServeHTTP(w, r)
	if w.Code != 200 || len(st.pushes) != 1 || len(st.pushes[0].fams) != 2 {
		t.Errorf("status %d, pushes %v", w.Code, st.pushes)
	}
}

// TestPushRealStoreKeepsNoParsedMessage guards the contract of Store that
// lets the handler reuse a text push's messages (textparse.Arena): pushes
// of the same shape to another group, which get the first push's messages
// back, must not change what the store holds for the first group.
func TestPushRealStoreKeepsNoParsedMessage(t *testing.T) {
	st := store.New(store.Options{})
	api := push.New(st, push.Options{}, nil)
	body := func(v int) []byte {
		return fmt.Appendf(nil, "# TYPE m counter\nm{code=\"%d\"} %d\n# TYPE s summary\ns{quantile=\"0.5\",code=\"%d\"} %d\ns_sum %d\ns_count 1\n", v, v, v, v, v)
	}
	if w := serve(t, api, request{method: "PUT", path: "/metrics/job/a", body: body(1)}); w.Code != 200 {
		t.Fatalf("push to a: %d %s", w.Code, w.Body)
	}
	key, err := grouping.FromMap(map[string]string{"job": "a"})
	if err != nil {
		t.Fatal(err)
	}
	text := func() string {
		t.Helper()
		var b []byte
		for _, name := range []string{"m", "s"} {
			if b, err = st.Group(key.ID()).Families.Get(name).AppendText(b); err != nil {
				t.Fatal(err)
			}
		}
		return string(b)
	}
	want := text()
	for i := range 50 {
		if w := serve(t, api, request{method: "PUT", path: "/metrics/job/b", body: body(100 + i)}); w.Code != 200 {
			t.Fatalf("push %d to b: %d %s", i, w.Code, w.Body)
		}
		if got := text(); got != want {
			t.Fatalf("after push %d to b, group a holds\n%s\nwant\n%s", i, got, want)
		}
	}
}
