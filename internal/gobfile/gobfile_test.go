package gobfile_test

import (
	"bytes"
	"encoding/gob"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/gobfile"
)

// referenceFile was written by prometheus/pushgateway v1.5.1 (Debian's
// prometheus-pushgateway, the reference of e2e/) with --persistence.file,
// after these pushes:
//
//	PUT /metrics/job/batch/instance/host-1: jobs_done{queue="q1"} (counter,
//	    with HELP), temperature (gauge), latency_seconds (summary),
//	    size_bytes (histogram)
//	PUT /metrics/job/backup/path@base64/L3Zhci90bXA: backup_ok (untyped)
//	PUT /metrics/job/sensor: temperature 20 (gauge)
const referenceFile = "testdata/reference-v1.5.1.good.gob"

func sample() gobfile.Groups {
	at := time.Date(2024, 5, 6, 7, 8, 9, 10, time.UTC)
	gauge := func(name string, v float64) *gobfile.Family {
		return &gobfile.Family{
			Name: proto.String(name), Help: proto.String("Help of " + name + "."), Type: dto.MetricType_GAUGE.Enum(),
			Metric: []*dto.Metric{{
				Label: []*dto.LabelPair{{Name: proto.String("job"), Value: proto.String("a")}},
				Gauge: &dto.Gauge{Value: proto.Float64(v)},
			}},
		}
	}
	return gobfile.Groups{
		"id-a": {
			Labels: map[string]string{"job": "a"},
			Metrics: map[string]gobfile.TimestampedFamily{
				"x":                 {Timestamp: at, GobbableMetricFamily: gauge("x", 1.5)},
				"push_time_seconds": {Timestamp: at, GobbableMetricFamily: gauge("push_time_seconds", 1714979289)},
			},
		},
		"id-empty": {Labels: map[string]string{"job": "empty"}, Metrics: map[string]gobfile.TimestampedFamily{}},
	}
}

func equal(t *testing.T, got, want gobfile.Groups) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d groups, want %d", len(got), len(want))
	}
	for id, wg := range want {
		gg, ok := got[id]
		if !ok {
			t.Fatalf("group %q missing", id)
		}
		if len(gg.Labels) != len(wg.Labels) || len(gg.Metrics) != len(wg.Metrics) {
			t.Fatalf("group %q: got %v with %d families, want %v with %d", id, gg.Labels, len(gg.Metrics), wg.Labels, len(wg.Metrics))
		}
		for k, v := range wg.Labels {
			if gg.Labels[k] != v {
				t.Errorf("group %q: label %s=%q, want %q", id, k, gg.Labels[k], v)
			}
		}
		for name, wf := range wg.Metrics {
			gf := gg.Metrics[name]
			if !gf.Timestamp.Equal(wf.Timestamp) {
				t.Errorf("group %q family %s: time %v, want %v", id, name, gf.Timestamp, wf.Timestamp)
			}
			if !proto.Equal((*dto.MetricFamily)(gf.GobbableMetricFamily), (*dto.MetricFamily)(wf.GobbableMetricFamily)) {
				t.Errorf("group %q family %s: got %v, want %v", id, name, gf.GobbableMetricFamily, wf.GobbableMetricFamily)
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for name, groups := range map[string]gobfile.Groups{"sample": sample(), "none": {}} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "persistence")
			if err := gobfile.Write(path, groups); err != nil {
				t.Fatal(err)
			}
			got, err := gobfile.Read(path)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, got, groups)
		})
	}
}

// TestReadReference reads a file the reference wrote: the format is the
// reference's, not only one we agree with ourselves on.
func TestReadReference(t *testing.T) {
	groups, err := gobfile.Read(referenceFile)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{ // labels -> families (push_*_seconds included)
		"instance=host-1,job=batch": {"jobs_done", "latency_seconds", "push_failure_time_seconds", "push_time_seconds", "size_bytes", "temperature"},
		"job=backup,path=/var/tmp":  {"backup_ok", "push_failure_time_seconds", "push_time_seconds"},
		"job=sensor":                {"push_failure_time_seconds", "push_time_seconds", "temperature"},
	}
	if len(groups) != len(want) {
		t.Fatalf("%d groups, want %d", len(groups), len(want))
	}
	for _, g := range groups {
		var pairs []string
		for _, k := range []string{"instance", "job", "path"} {
			if v, ok := g.Labels[k]; ok {
				pairs = append(pairs, k+"="+v)
			}
		}
		key := strings.Join(pairs, ",")
		fams, ok := want[key]
		if !ok {
			t.Errorf("unexpected group %v", g.Labels)
			continue
		}
		if len(g.Metrics) != len(fams) {
			t.Errorf("group %s: %d families, want %v", key, len(g.Metrics), fams)
		}
		for _, name := range fams {
			tf, ok := g.Metrics[name]
			if !ok || tf.GobbableMetricFamily == nil || (*dto.MetricFamily)(tf.GobbableMetricFamily).GetName() != name || tf.Timestamp.IsZero() {
				t.Errorf("group %s: family %s missing, unnamed or without time: %+v", key, name, tf)
			}
		}
	}
}

// TestReadErrors pins that a file that cannot be decoded is an error, never
// a panic and never an empty result, so that the caller does not start
// empty and overwrite what it could not read.
func TestReadErrors(t *testing.T) {
	good, err := os.ReadFile(referenceFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content []byte
		want    error // matched with errors.Is when not nil
	}{
		{"empty", nil, io.ErrUnexpectedEOF},
		{"one byte", good[:1], nil},
		{"half", good[:len(good)/2], nil},
		{"last byte missing", good[:len(good)-1], nil},
		{"text", []byte("not a gob file\n"), nil},
		{"other gob type", gobOf(t, []string{"a", "b"}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "persistence")
			if err := os.WriteFile(path, tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			groups, err := gobfile.Read(path)
			if err == nil {
				t.Fatalf("no error, %d groups", len(groups))
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want one wrapping %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// A missing file is the first start: no groups and no error.
func TestReadMissing(t *testing.T) {
	groups, err := gobfile.Read(filepath.Join(t.TempDir(), "nothing"))
	if err != nil || groups == nil || len(groups) != 0 {
		t.Errorf("Read of a missing file: %v, %v; want empty groups and no error", groups, err)
	}
}

func TestReadDirectory(t *testing.T) {
	if _, err := gobfile.Read(t.TempDir()); err == nil {
		t.Error("Read of a directory: no error")
	}
}

// TestWriteAtomic pins that Write replaces the file whole and leaves no
// temporary file behind, whether it succeeds or fails.
func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "persistence")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := gobfile.Write(path, sample()); err != nil {
		t.Fatal(err)
	}
	got, err := gobfile.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, got, sample())
	entries(t, dir, "persistence")

	// A write that fails at the last step (here the rename, over a
	// directory) leaves no temporary file behind either.
	blocked := filepath.Join(dir, "blocked")
	if err := os.MkdirAll(filepath.Join(blocked, "child"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := gobfile.Write(blocked, sample()); err == nil {
		t.Fatal("Write over a directory: no error")
	}
	entries(t, dir, "blocked", "persistence")

	if err := gobfile.Write(filepath.Join(dir, "missing", "persistence"), sample()); err == nil {
		t.Error("Write into a missing directory: no error")
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "persistence")
	for _, name := range []string{"persistence", "persistence.in_progress.123", "persistence.in_progress.456", "other.in_progress.1", "persistence.rejected"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := gobfile.RemoveStale(path); err != nil {
		t.Fatal(err)
	}
	entries(t, dir, "other.in_progress.1", "persistence", "persistence.rejected")
}

// entries fails unless dir holds exactly names (sorted).
func entries(t *testing.T, dir string, names ...string) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, de := range des {
		got = append(got, de.Name())
	}
	if strings.Join(got, " ") != strings.Join(names, " ") {
		t.Errorf("directory holds %q, want %q", got, names)
	}
}

// gobOf is v in gob encoding: a valid gob stream of the wrong type.
func gobOf(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
