package exposition

import (
	"net/http"
	"testing"

	"github.com/prometheus/common/expfmt"
)

// prometheus3Accept is the Accept header of a Prometheus 3 scrape with the
// default scrape_protocols.
const prometheus3Accept = `application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2`

// prometheus2Accept is the Accept header of a Prometheus 2 scrape with
// native histograms enabled (protobuf first).
const prometheus2Accept = `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,application/openmetrics-text;version=0.0.1;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1`

func TestNegotiate(t *testing.T) {
	tests := []struct {
		name        string
		accept      string
		wantType    expfmt.FormatType
		wantVersion string // checked when set
	}{
		{"empty", "", expfmt.TypeTextPlain, "0.0.4"},
		{"prometheus 3 default", prometheus3Accept, expfmt.TypeTextPlain, "0.0.4"},
		{"prometheus 2 with protobuf", prometheus2Accept, expfmt.TypeProtoDelim, ""},
		{"protobuf delimited", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", expfmt.TypeProtoDelim, ""},
		{"protobuf text", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text", expfmt.TypeProtoText, ""},
		{"plain text", "text/plain", expfmt.TypeTextPlain, "0.0.4"},
		{"plain text 0.0.4", "text/plain;version=0.0.4", expfmt.TypeTextPlain, "0.0.4"},
		{"anything", "*/*", expfmt.TypeTextPlain, "0.0.4"},
		{"unknown type", "application/json", expfmt.TypeTextPlain, "0.0.4"},
		{"openmetrics 1.0.0 only", "application/openmetrics-text;version=1.0.0", expfmt.TypeOpenMetrics, "1.0.0"},
		{"openmetrics 1.0.0 only with escaping", "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8", expfmt.TypeOpenMetrics, "1.0.0"},
		{"openmetrics both versions", "application/openmetrics-text;version=1.0.0;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5", expfmt.TypeOpenMetrics, "1.0.0"},
		{"openmetrics 0.0.1 only", "application/openmetrics-text;version=0.0.1", expfmt.TypeOpenMetrics, "0.0.1"},
		{"openmetrics then text", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5", expfmt.TypeTextPlain, "0.0.4"},
		{"openmetrics then wildcard", "application/openmetrics-text;version=1.0.0,*/*;q=0.1", expfmt.TypeTextPlain, "0.0.4"},
		{"openmetrics and refused text", "application/openmetrics-text;version=1.0.0,text/plain;q=0", expfmt.TypeOpenMetrics, "1.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.accept != "" {
				h.Set("Accept", tt.accept)
			}
			got := negotiate(h)
			if got.FormatType() != tt.wantType {
				t.Errorf("negotiate(%q) = %q, want type %v", tt.accept, got, tt.wantType)
			}
			if tt.wantVersion != "" && got.Version() != tt.wantVersion {
				t.Errorf("negotiate(%q) = %q, want version %s", tt.accept, got, tt.wantVersion)
			}
		})
	}
}

func TestGzipAccepted(t *testing.T) {
	tests := []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"GZIP", true},
		{"Gzip", true},
		{"deflate, gzip", true},
		{"gzip, deflate, br", true},
		{" deflate ,  gzip ", true},
		{"deflate", false},
		{"identity", false},
		{"x-gzip", false},
		{"gzip;q=1.0", true},
		{"gzip;q=0.5", true},
		{"gzip; q=0.001", true},
		{"gzip;q=0", false},
		{"gzip;q=0.0", false},
		{"gzip;q=0.000", false},
		{"gzip ; q=0", false},
		{"gzip;Q=0", false},
		{"br;q=1.0, gzip;q=0.8, *;q=0.1", true},
		{"br, gzip;q=0", false},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			h := http.Header{}
			h.Set("Accept-Encoding", tt.header)
			if got := gzipAccepted(h); got != tt.want {
				t.Errorf("gzipAccepted(%q) = %v, want %v", tt.header, got, tt.want)
			}
		})
	}
}
