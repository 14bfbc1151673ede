package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// stepClock returns a clock that advances by step on every reading.
func stepClock(step time.Duration) func() time.Time {
	t := time.Unix(0, 0)
	return func() time.Time {
		t = t.Add(step)
		return t
	}
}

// histograms gathers the family name from reg and returns its histograms
// by "encoding/format".
func histograms(t *testing.T, reg prometheus.Gatherer, name string) map[string]*dto.Histogram {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.Histogram{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			lv := map[string]string{}
			for _, l := range m.GetLabel() {
				lv[l.GetName()] = l.GetValue()
			}
			out[lv["encoding"]+"/"+lv["format"]] = m.GetHistogram()
		}
	}
	return out
}

// Histograms is histograms, for the external tests.
var Histograms = histograms

func TestInstrumentScrape(t *testing.T) {
	f := func(name string, h http.HandlerFunc, encoding, format string, size int) {
		t.Helper()
		m := newScrapeMetrics()
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(m.collectors()...)
		wrapped := instrumentScrape(m, stepClock(3*time.Millisecond), h)
		func() {
			defer func() {
				if r := recover(); r != nil && r != http.ErrAbortHandler {
					t.Errorf("%s: panic %v", name, r)
				}
			}()
			wrapped.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/metrics", nil))
		}()
		key := encoding + "/" + format
		for metric, want := range map[string]float64{
			"pushgate_scrape_duration_seconds": 0.003,
			"pushgate_scrape_size_bytes":       float64(size),
		} {
			got := histograms(t, reg, metric)
			if len(got) != 1 || got[key] == nil {
				t.Errorf("%s: %s has series %v, want only %s", name, metric, keys(got), key)
				continue
			}
			if c, s := got[key].GetSampleCount(), got[key].GetSampleSum(); c != 1 || s != want {
				t.Errorf("%s: %s{%s}: count %d sum %v, want 1 and %v", name, metric, key, c, s, want)
			}
		}
	}
	body := strings.Repeat("x", 5000)
	f("text", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = io.WriteString(w, body)
	}, "identity", "text", 5000)
	f("gzip protobuf, two writes", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited")
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = io.WriteString(w, body)
		_, _ = io.WriteString(w, "yz")
	}, "gzip", "protobuf", 5002)
	f("openmetrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
		_, _ = io.WriteString(w, "# EOF\n")
	}, "identity", "openmetrics", 6)
	f("protobuf text", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text")
	}, "identity", "protobuf-text", 0)
	// Headers changed after the answer started were not sent: the labels
	// describe what was.
	f("headers changed late", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Header().Set("Content-Encoding", "gzip")
		w.WriteHeader(http.StatusOK)
		w.Header().Del("Content-Encoding")
		_, _ = io.WriteString(w, "abc")
	}, "gzip", "text", 3)
	// An aborted scrape (the exposition aborts a half-written answer) is
	// counted, and the abort goes on to net/http.
	f("aborted", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Header().Set("Content-Encoding", "br")
		_, _ = io.WriteString(w, "half")
		panic(http.ErrAbortHandler)
	}, "other", "text", 4)
	f("no headers", func(http.ResponseWriter, *http.Request) {}, "identity", "other", 0)
}

func keys(m map[string]*dto.Histogram) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The wrapper keeps http.ResponseController working (Flush reaches the
// recorder through Unwrap).
func TestInstrumentScrapeUnwrap(t *testing.T) {
	m := newScrapeMetrics()
	rec := httptest.NewRecorder()
	instrumentScrape(m, time.Now, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush through the wrapper: %v", err)
		}
	})).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !rec.Flushed {
		t.Error("the recorder was not flushed")
	}
}
