package ui

import (
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/histogram"
)

func TestPageNumbers(t *testing.T) {
	f := func(cur, total int, want ...int) {
		t.Helper()
		if got := pageNumbers(cur, total); !slices.Equal(got, want) {
			t.Errorf("pageNumbers(%d, %d) = %v, want %v", cur, total, got, want)
		}
	}
	f(1, 1, 1)
	f(1, 3, 1, 2, 3)
	f(1, 10, 1, 2, 3, 0, 10)
	f(5, 10, 1, 0, 3, 4, 5, 6, 7, 0, 10)
	f(4, 10, 1, 2, 3, 4, 5, 6, 0, 10)
	f(10, 10, 1, 0, 8, 9, 10)
}

func TestAgo(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	f := func(d time.Duration, want string) {
		t.Helper()
		if got := ago(now.Add(-d), now); got != want {
			t.Errorf("ago(%v) = %q, want %q", d, got, want)
		}
	}
	f(0, "a moment ago")
	f(42*time.Second, "42 s ago")
	f(3*time.Minute+10*time.Second, "3 min ago")
	f(5*time.Hour+12*time.Minute, "5 h 12 min ago")
	f(5*time.Hour, "5 h ago")
	f(30*time.Hour+5*time.Minute, "30 h ago")
	f(80*time.Hour, "3 days ago")
	f(-time.Minute, "in the future")
	if got := ago(time.Time{}, now); got != "never" {
		t.Errorf("ago(zero) = %q", got)
	}
}

func TestFormat(t *testing.T) {
	for in, want := range map[float64]string{1.23456789e10: "12345678900", 0.5: "0.5", 1e20: "1e+20", -3: "-3", 1.7e9: "1700000000"} {
		if got := formatFloat(in); got != want {
			t.Errorf("formatFloat(%v) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 10000: "10,000", -1234567: "-1,234,567"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%d) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[int64]string{-1: "unknown", 512: "512 B", 1536: "1.5 KiB", 3 << 30: "3.0 GiB"} {
		if got := humanBytes(in); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", in, got, want)
		}
	}
	if got := shellQuote(`it's`); got != `'it'\''s'` {
		t.Errorf("shellQuote = %s", got)
	}
}

func TestNativeBuckets(t *testing.T) {
	h := &dto.Histogram{
		Schema: proto.Int32(-1), ZeroThreshold: proto.Float64(0.5), ZeroCountFloat: proto.Float64(0.5),
		PositiveSpan:  []*dto.BucketSpan{{Offset: proto.Int32(1), Length: proto.Uint32(1)}, {Offset: proto.Int32(2), Length: proto.Uint32(2)}},
		PositiveCount: []float64{1, 0, 3},
		NegativeSpan:  []*dto.BucketSpan{{Offset: proto.Int32(0), Length: proto.Uint32(2)}},
		NegativeCount: []float64{2, 4},
	}
	nv := native(h)
	var got []string
	for _, b := range nv.Buckets {
		got = append(got, b.Range+"="+b.Count)
	}
	// Schema -1: bucket i is (4^(i-1), 4^i]; negative ones mirror it.
	want := []string{"[-4, -1)=4", "[-1, -0.25)=2", "[-0.5, 0.5]=0.5", "(1, 4]=1", "(256, 1024]=3"}
	if !slices.Equal(got, want) {
		t.Errorf("buckets %q, want %q", got, want)
	}
	if nv.Factor != "4" || nv.Buckets[0].Width != 100 || nv.Buckets[1].Width != 50 {
		t.Errorf("factor %s, widths %v %v", nv.Factor, nv.Buckets[0].Width, nv.Buckets[1].Width)
	}
	if !histogram.IsNative(&dto.Histogram{ZeroThreshold: proto.Float64(0)}) || histogram.IsNative(&dto.Histogram{Bucket: []*dto.Bucket{{}}}) {
		t.Errorf("isNative")
	}
}

func TestParseQuery(t *testing.T) {
	q := parseQuery(map[string][]string{"q": {"  " + string(make([]byte, 300)) + "é"}, "size": {"5000"}, "sort": {"series"}}, "/p")
	if len(q.Q) > maxQueryLen || q.Size != maxPageSize || q.Sort != sortSeries || !q.Desc {
		t.Errorf("parseQuery: %+v", q)
	}
	if u := (query{Sort: sortKey, Page: 1, Size: defaultPageSize, prefix: "/p"}).URL(); u != "/p/" {
		t.Errorf("URL of the default query = %q", u)
	}
}
