package exposition_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/exposition"
	"github.com/pushgate/pushgate/internal/family"
	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/store"
)

// fixedView serves one view, whatever its families hold.
type fixedView struct{ v *store.View }

func (f fixedView) View() *store.View { return f.v }

// brokenFamily passes the checks of a stored family but fails to decode
// when a scrape reads it.
func brokenFamily(t *testing.T, name string) *family.Family {
	t.Helper()
	bad := []byte{100, 0xff, 0xff, 0xff} // s2 block: 100 bytes announced, garbage follows
	f, err := family.FromStored(name, "", dto.MetricType_GAUGE, now, 1, bad, bad, true)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// bigFamily is large enough that part of a scrape is sent before a later
// family is read.
func bigFamily(t *testing.T, name string) *family.Family {
	t.Helper()
	mf := &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_GAUGE.Enum()}
	for i := range 20000 {
		mf.Metric = append(mf.Metric, &dto.Metric{
			Label: []*dto.LabelPair{{Name: proto.String("job"), Value: proto.String("j")}, {Name: proto.String("n"), Value: proto.String(fmt.Sprintf("%x", i*7919))}},
			Gauge: &dto.Gauge{Value: proto.Float64(float64(i))},
		})
	}
	f, err := family.New(mf, now)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func viewOf(t *testing.T, fams ...*family.Family) fixedView {
	t.Helper()
	k, err := grouping.FromMap(map[string]string{"job": "j"})
	if err != nil {
		t.Fatal(err)
	}
	g := &store.Group{Key: k, Families: store.MakeFamilies(fams...)}
	return fixedView{&store.View{Gen: 1, Groups: []*store.Group{g}}}
}

// A scrape that fails after part of the body is out must not end like a
// complete one: the connection is aborted, so the client sees an error
// instead of a truncated body that parses (or a valid gzip stream).
func TestScrapeFailingMidStreamAborts(t *testing.T) {
	srv := httptest.NewServer(exposition.New(viewOf(t, bigFamily(t, "a_big"), brokenFamily(t, "b_broken")), nil, nil))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	for _, c := range []struct{ accept, encoding string }{
		{acceptText, ""}, {acceptText, "gzip"}, {acceptProto, ""}, {acceptProto, "gzip"},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("Accept", c.accept)
		if c.encoding != "" {
			req.Header.Set("Accept-Encoding", c.encoding)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %q: %v", c.accept, c.encoding, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("Accept %s, Accept-Encoding %q: status %d and a complete body of %d bytes; want the connection aborted",
				c.accept, c.encoding, resp.StatusCode, len(body))
		}
	}
}

// A scrape that fails before anything is sent still gets a clean 500.
func TestScrapeFailingEarlyAnswers500(t *testing.T) {
	h := exposition.New(viewOf(t, brokenFamily(t, "b_broken")), nil, nil)
	for _, enc := range []string{"", "gzip"} {
		r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		r.Header.Set("Accept-Encoding", enc)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusInternalServerError || w.Header().Get("Content-Encoding") != "" ||
			!strings.Contains(w.Body.String(), "write scrape response") {
			t.Errorf("Accept-Encoding %q: got %d, Content-Encoding %q, body %q; want a plain 500",
				enc, w.Code, w.Header().Get("Content-Encoding"), w.Body)
		}
	}
}
