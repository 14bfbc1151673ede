package exposition_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/pushgate/pushgate/internal/exposition"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/store/storetest"
)

// BenchmarkScrape measures a full scrape of a store of 10k series (100
// groups of 100) and 100k series (1000 groups), in text, gzip and
// protobuf. Run with:
//
//	go test -run=^$ -bench=Scrape -benchmem ./internal/exposition/
func BenchmarkScrape(b *testing.B) {
	body := string(storetest.BenchBody())
	for _, groups := range []int{100, 1000} {
		st := store.New(store.Options{})
		for i := range groups {
			key := storetest.Key(b, fmt.Sprintf("job=bench,instance=batch-worker-%06d.prod.eu-west-1.example.net:9091", i))
			if err := st.Push(key, storetest.Families(b, body), true); err != nil {
				b.Fatal(err)
			}
		}
		h := exposition.New(st, prometheus.NewRegistry(), nil)
		for _, tc := range []struct{ name, accept, encoding string }{
			{"text", "text/plain;version=0.0.4", ""},
			{"gzip", "text/plain;version=0.0.4", "gzip"},
			{"protobuf", string(expfmt.NewFormat(expfmt.TypeProtoDelim)), ""},
		} {
			b.Run(fmt.Sprintf("series=%d/%s", groups*storetest.BenchSeries, tc.name), func(b *testing.B) {
				b.ReportAllocs()
				var n int64
				for b.Loop() {
					req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
					req.Header.Set("Accept", tc.accept)
					if tc.encoding != "" {
						req.Header.Set("Accept-Encoding", tc.encoding)
					}
					rec := &countingWriter{header: http.Header{}}
					h.ServeHTTP(rec, req)
					n = rec.n
				}
				b.SetBytes(n)
			})
		}
	}
}

// countingWriter discards the response, counting its bytes.
type countingWriter struct {
	header http.Header
	n      int64
}

func (c *countingWriter) Header() http.Header { return c.header }
func (c *countingWriter) WriteHeader(int)     {}
func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

var _ io.Writer = (*countingWriter)(nil)
