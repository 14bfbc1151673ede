package exposition_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/deflate/deflatetest"
	"github.com/pushgate/pushgate/internal/exposition"
	"github.com/pushgate/pushgate/internal/store"
)

var allAccepts = []string{"", acceptText, acceptProto, acceptOM, acceptTextUTF8, acceptProtoUTF8, prometheus3Accept}

// checkGzipIdentity checks that for every format a gzip scrape decodes to
// the identity scrape, byte for byte.
func checkGzipIdentity(t *testing.T, h *exposition.Handler) {
	t.Helper()
	for _, accept := range allAccepts {
		plain := get(t, h, accept, "")
		gz := get(t, h, accept, "gzip")
		if got := gz.header.Get("Content-Encoding"); got != "gzip" {
			t.Fatalf("Accept %q: Content-Encoding %q", accept, got)
		}
		if plain.header.Get("Content-Type") != gz.header.Get("Content-Type") {
			t.Fatalf("Accept %q: Content-Type %q with gzip, %q without", accept, gz.header.Get("Content-Type"), plain.header.Get("Content-Type"))
		}
		if got := deflatetest.Gunzip(t, gz.body); !bytes.Equal(got, plain.body) {
			t.Fatalf("Accept %q: gzip scrape decodes to %d bytes that differ from the %d of the identity scrape:\n%s\n----\n%s",
				accept, len(got), len(plain.body), got, plain.body)
		}
	}
}

// ownRegistry returns a registry of fixed own gauges, one sharing its name
// with pushed families, so that scrapes are reproducible.
func ownRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	own := prometheus.NewGauge(prometheus.GaugeOpts{Name: "own_gauge", Help: "An own gauge."})
	own.Set(42)
	shared := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shared_gauge", Help: "Own help wins."}, []string{"source"})
	shared.WithLabelValues("own").Set(1)
	reg.MustRegister(own, shared)
	return reg
}

func TestGzipScrapeMatchesIdentity(t *testing.T) {
	t.Run("empty store", func(t *testing.T) {
		checkGzipIdentity(t, exposition.New(store.New(store.Options{}), nil, nil))
	})
	t.Run("own metrics only", func(t *testing.T) {
		checkGzipIdentity(t, exposition.New(store.New(store.Options{}), ownRegistry(), nil))
	})
	t.Run("fixture", func(t *testing.T) {
		// Own and pushed families sharing a name, histograms, summaries,
		// an empty family, a native histogram.
		h, _ := newFixture(t)
		checkGzipIdentity(t, h)
	})
	t.Run("escaping", func(t *testing.T) {
		st := store.New(store.Options{UTF8Names: true, Now: func() time.Time { return now }})
		for i := range 3 {
			push(t, st, key(t, "job", "j", "key.label", fmt.Sprint(i)), parseText(t, model.UTF8Validation, fmt.Sprintf(`# HELP "my.metric" A UTF-8 name.
# TYPE "my.metric" counter
{"my.metric", "lab.el"="v"} %d
# TYPE plain_metric gauge
plain_metric{a="b"} 2
# TYPE shared_gauge gauge
shared_gauge{source="%d"} 3
`, i, i)))
		}
		push(t, st, key(t, "job", "k"), parseText(t, model.UTF8Validation, "# TYPE plain_metric gauge\nplain_metric 5\n"))
		checkGzipIdentity(t, exposition.New(st, ownRegistry(), nil))
	})
	t.Run("many groups", func(t *testing.T) {
		st := store.New(store.Options{Now: func() time.Time { return now }})
		for i := range 300 {
			var b strings.Builder
			b.WriteString("# HELP requests_total Requests.\n# TYPE requests_total counter\n")
			for j := range 40 {
				fmt.Fprintf(&b, "requests_total{code=\"%d\",path=\"/p/%d\"} %d\n", 200+j%5, j, i*j)
			}
			fmt.Fprintf(&b, "# TYPE group_%d gauge\ngroup_%d 1\n", i%7, i%7)
			push(t, st, key(t, "job", "many", "instance", fmt.Sprint(i)), parseText(t, model.LegacyValidation, b.String()))
		}
		h := exposition.New(st, ownRegistry(), nil)
		checkGzipIdentity(t, h)
		// Replace and delete groups: scrapes must show the new families,
		// not fragments cached for the old ones.
		for i := 0; i < 300; i += 3 {
			push(t, st, key(t, "job", "many", "instance", fmt.Sprint(i)), parseText(t, model.LegacyValidation,
				fmt.Sprintf("# TYPE requests_total counter\nrequests_total{code=\"500\"} %d\n", 1000+i)))
			if err := st.Delete(key(t, "job", "many", "instance", fmt.Sprint(i+1))); err != nil {
				t.Fatal(err)
			}
		}
		checkGzipIdentity(t, h)
		s := string(deflatetest.Gunzip(t, get(t, h, acceptText, "gzip").body))
		if !strings.Contains(s, `requests_total{code="500",instance="0",job="many"} 1000`) || strings.Contains(s, `instance="1",`) {
			t.Errorf("gzip scrape after replacing groups shows old content")
		}
	})
	t.Run("large family", func(t *testing.T) {
		// Larger than the chunks in which fresh data is compressed.
		st := store.New(store.Options{Now: func() time.Time { return now }})
		mf := &dto.MetricFamily{Name: proto.String("own_gauge"), Type: dto.MetricType_GAUGE.Enum()}
		for i := range 20000 {
			mf.Metric = append(mf.Metric, &dto.Metric{
				Label: []*dto.LabelPair{{Name: proto.String("n"), Value: proto.String(fmt.Sprintf("%x", i*7919))}},
				Gauge: &dto.Gauge{Value: proto.Float64(float64(i))},
			})
		}
		push(t, st, key(t, "job", "big"), map[string]*dto.MetricFamily{"big_gauge": withName(mf, "big_gauge")})
		reg := prometheus.NewRegistry()
		big := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "own_big", Help: "Many own series."}, []string{"n"})
		for i := range 5000 {
			big.WithLabelValues(fmt.Sprint(i)).Set(float64(i))
		}
		reg.MustRegister(big)
		checkGzipIdentity(t, exposition.New(st, reg, nil))
	})
}

func withName(mf *dto.MetricFamily, name string) *dto.MetricFamily {
	mf.Name = proto.String(name)
	return mf
}

// TestGzipScrapeRandomStores compares gzip and identity scrapes of random
// stores: random groups pushing random subsets of a few names, some of
// which need escaping or are also own metrics, with random replacements.
func TestGzipScrapeRandomStores(t *testing.T) {
	names := []string{"a_total", "b_gauge", "own_gauge", "shared_gauge", "c.utf8", "d_hist", "e"}
	types := []dto.MetricType{dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_GAUGE, dto.MetricType_GAUGE, dto.MetricType_GAUGE, dto.MetricType_HISTOGRAM, dto.MetricType_UNTYPED}
	// Kept small: make test runs it under -race, where each scrape
	// compared is slow.
	iterations := 4
	if testing.Short() {
		iterations = 2
	}
	for seed := range uint64(iterations) {
		rng := rand.New(rand.NewPCG(seed, 7))
		st := store.New(store.Options{
			UTF8Names: true,
			Now:       func() time.Time { return now },
			Reserved: []store.Reserved{
				{Name: "own_gauge", Type: dto.MetricType_GAUGE},
				{Name: "shared_gauge", Type: dto.MetricType_GAUGE},
			},
		})
		var reg prometheus.Gatherer
		if rng.IntN(2) == 0 {
			reg = ownRegistry()
		}
		h := exposition.New(st, reg, nil)
		groups := 1 + rng.IntN(40)
		for round := range 3 {
			for g := range groups {
				if round > 0 && rng.IntN(3) != 0 {
					continue
				}
				fams := map[string]*dto.MetricFamily{}
				for i, name := range names {
					if rng.IntN(2) == 0 || (name == "own_gauge" && reg != nil) {
						continue
					}
					mf := &dto.MetricFamily{Name: proto.String(name), Type: types[i].Enum()}
					if rng.IntN(2) == 0 {
						mf.Help = proto.String(fmt.Sprintf("Help of %s, group %d.", name, g))
					}
					for s := range rng.IntN(80) {
						m := &dto.Metric{Label: []*dto.LabelPair{{Name: proto.String("s"), Value: proto.String(fmt.Sprint(s, rng.IntN(1000)))}}}
						v := proto.Float64(rng.Float64() * 1e6)
						switch types[i] {
						case dto.MetricType_COUNTER:
							m.Counter = &dto.Counter{Value: v}
						case dto.MetricType_GAUGE:
							m.Gauge = &dto.Gauge{Value: v}
						case dto.MetricType_HISTOGRAM:
							m.Histogram = &dto.Histogram{SampleCount: proto.Uint64(3), SampleSum: v, Bucket: []*dto.Bucket{
								{UpperBound: proto.Float64(1), CumulativeCount: proto.Uint64(1)},
							}}
						default:
							m.Untyped = &dto.Untyped{Value: v}
						}
						mf.Metric = append(mf.Metric, m)
					}
					fams[name] = mf
				}
				if err := st.Push(key(t, "job", "rand", "g", fmt.Sprint(g)), fams, rng.IntN(2) == 0); err != nil {
					t.Fatalf("seed %d: push: %v", seed, err)
				}
			}
			t.Run(fmt.Sprintf("seed=%d/round=%d", seed, round), func(t *testing.T) { checkGzipIdentity(t, h) })
		}
	}
}
