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
// groups of 100) and 100k series (1000 groups), in text, protobuf and both
// gzipped. The gzip cases are warm (every family's deflate fragments are
// cached by an earlier scrape) except gzip-cold, where every group is pushed
// again (untimed) before each scrape, so the scrape compresses everything.
// wire-B/op is the response size; gzip-B/series and s2-B/series are what
// the cached fragments and the stored (s2) forms hold per series. Run with:
//
//	go test -run=^$ -bench=Scrape -benchmem ./internal/exposition/
func BenchmarkScrape(b *testing.B) {
	body := string(storetest.BenchBody())
	for _, groups := range []int{100, 1000} {
		st := store.New(store.Options{})
		pushAll := func() {
			for i := range groups {
				key := storetest.Key(b, fmt.Sprintf("job=bench,instance=batch-worker-%06d.prod.eu-west-1.example.net:9091", i))
				if err := st.Push(key, storetest.Families(b, body), true); err != nil {
					b.Fatal(err)
				}
			}
		}
		pushAll()
		series := groups * storetest.BenchSeries
		h := exposition.New(st, prometheus.NewRegistry(), nil)
		for _, tc := range []struct {
			name, accept, encoding string
			cold                   bool
		}{
			{name: "text", accept: "text/plain;version=0.0.4"},
			{name: "gzip", accept: "text/plain;version=0.0.4", encoding: "gzip"},
			{name: "protobuf", accept: string(expfmt.NewFormat(expfmt.TypeProtoDelim))},
			{name: "gzip-protobuf", accept: string(expfmt.NewFormat(expfmt.TypeProtoDelim)), encoding: "gzip"},
			{name: "gzip-cold", accept: "text/plain;version=0.0.4", encoding: "gzip", cold: true},
		} {
			b.Run(fmt.Sprintf("series=%d/%s", series, tc.name), func(b *testing.B) {
				scrape := func() int64 {
					req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
					req.Header.Set("Accept", tc.accept)
					if tc.encoding != "" {
						req.Header.Set("Accept-Encoding", tc.encoding)
					}
					rec := &countingWriter{header: http.Header{}}
					h.ServeHTTP(rec, req)
					return rec.n
				}
				scrape() // warm: the plan, and the fragments for gzip
				b.ReportAllocs()
				var n int64
				for b.Loop() {
					if tc.cold {
						b.StopTimer()
						pushAll()
						b.StartTimer()
					}
					n = scrape()
				}
				b.SetBytes(n)
				b.ReportMetric(float64(n), "wire-B/op")
				if tc.encoding != "" && !tc.cold {
					var gz, s2 int
					for _, g := range st.View().Groups {
						for _, f := range g.Families.All() {
							gz += f.GzipSize()
							s2 += f.Size()
						}
					}
					b.ReportMetric(float64(gz)/float64(series), "gzip-B/series")
					b.ReportMetric(float64(s2)/float64(series), "s2-B/series")
				}
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
