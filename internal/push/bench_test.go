package push_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/push"
	"github.com/pushgate/pushgate/internal/store/storetest"
)

// nopStore accepts everything, so that the benchmark measures the push API
// alone: URL parsing, decompression and body decoding.
type nopStore struct{}

func (nopStore) PushExpiring(grouping.Key, map[string]*dto.MetricFamily, bool, time.Duration) error {
	return nil
}
func (nopStore) Delete(grouping.Key) error { return nil }

// BenchmarkDecode measures parsing a 100-series push body through the push
// handler, in the text format and as delimited protobuf. Run with:
//
//	go test -run=^$ -bench=Decode -benchmem ./internal/push/
func BenchmarkDecode(b *testing.B) {
	text := storetest.BenchBody()
	fams := storetest.Families(b, string(text))
	var pb bytes.Buffer
	enc := expfmt.NewEncoder(&pb, expfmt.NewFormat(expfmt.TypeProtoDelim))
	for _, mf := range fams {
		if err := enc.Encode(mf); err != nil {
			b.Fatal(err)
		}
	}
	api := push.New(nopStore{}, push.Options{}, nil)
	h := api.Push(true)
	for _, tc := range []struct {
		name, contentType string
		body              []byte
	}{
		{"text", "text/plain; version=0.0.4", text},
		{"protobuf", string(expfmt.NewFormat(expfmt.TypeProtoDelim)), pb.Bytes()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.body)))
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPut, "/metrics/job/bench/instance/batch-worker-000042.prod.eu-west-1.example.net:9091", bytes.NewReader(tc.body))
				req.Header.Set("Content-Type", tc.contentType)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
