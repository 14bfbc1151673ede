package server

import (
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// scrapeMetrics time and measure the answers of the scrape handler. They
// are taken around the handler, not inside it, so that they count what
// reached the wire whatever the handler does inside (caching, coalescing,
// compression).
type scrapeMetrics struct {
	duration *prometheus.HistogramVec
	size     *prometheus.HistogramVec
}

// Labels of the scrape metrics: how the answer was compressed and in which
// exposition format, as the answer's headers say.
var scrapeLabels = []string{"encoding", "format"}

func newScrapeMetrics() *scrapeMetrics {
	return &scrapeMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pushgate_scrape_duration_seconds",
			Help: "Time to answer a scrape of the telemetry path, from the request to the last byte written.",
			// 1ms to about 16s: a scrape of a large gateway takes seconds.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, scrapeLabels),
		size: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pushgate_scrape_size_bytes",
			Help: "Bytes of a scrape's response body as written to the wire, after compression.",
			// 1 KiB to 1 GiB.
			Buckets: prometheus.ExponentialBuckets(1024, 4, 11),
		}, scrapeLabels),
	}
}

func (m *scrapeMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.duration, m.size}
}

// instrumentScrape returns h timed with now and measured into m. Every
// answer counts, also a failed or aborted one (http.ErrAbortHandler is
// observed, then passed on): it took time and bytes all the same.
func instrumentScrape(m *scrapeMetrics, now func() time.Time, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := now()
		cw := &countingWriter{ResponseWriter: w}
		defer func() {
			encoding, format := cw.labels()
			m.duration.WithLabelValues(encoding, format).Observe(now().Sub(start).Seconds())
			m.size.WithLabelValues(encoding, format).Observe(float64(cw.n))
		}()
		h.ServeHTTP(cw, r)
	})
}

// countingWriter counts the body bytes written through it and keeps the
// headers as they were when the answer started.
type countingWriter struct {
	http.ResponseWriter
	n                int64
	encoding, format string // set at the first WriteHeader or Write
}

func (c *countingWriter) WriteHeader(code int) {
	c.snapshot()
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.snapshot()
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// snapshot records the labels from the headers once: headers changed after
// the answer started are not sent, so they do not describe it.
func (c *countingWriter) snapshot() {
	if c.format != "" {
		return
	}
	h := c.Header()
	c.encoding = encodingLabel(h.Get("Content-Encoding"))
	c.format = formatLabel(h.Get("Content-Type"))
}

// labels returns the encoding and format labels; an answer that never
// started (no byte, no status) is labelled by the headers set so far.
func (c *countingWriter) labels() (encoding, format string) {
	c.snapshot()
	return c.encoding, c.format
}

// encodingLabel maps a Content-Encoding to a bounded set of label values.
func encodingLabel(ce string) string {
	switch ce = strings.ToLower(strings.TrimSpace(ce)); ce {
	case "", "identity":
		return "identity"
	case "gzip", "zstd":
		return ce
	}
	return "other"
}

// formatLabel maps a Content-Type to a bounded set of label values: text
// (the text format 0.0.4, and plain-text error answers), openmetrics,
// protobuf (delimited, what Prometheus asks for) and protobuf-text (the
// debugging encodings of protobuf).
func formatLabel(ct string) string {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "other"
	}
	switch mt {
	case "text/plain":
		return "text"
	case "application/openmetrics-text":
		return "openmetrics"
	case "application/vnd.google.protobuf":
		if params["encoding"] == "delimited" {
			return "protobuf"
		}
		return "protobuf-text"
	}
	return "other"
}
