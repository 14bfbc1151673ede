package storetest

import (
	"bytes"
	"fmt"
)

// BenchSeries is the number of series in BenchBody.
const BenchSeries = 100

// BenchBody is one realistic push for benchmarks: 49 counters, 50 gauges
// and a histogram with 10 buckets (100 series), with the name and label
// lengths of real batch jobs, in the text format (about 13 KB).
func BenchBody() []byte {
	var b bytes.Buffer
	b.WriteString("# HELP http_requests_total Total number of HTTP requests by handler, method and status code.\n")
	b.WriteString("# TYPE http_requests_total counter\n")
	handlers := []string{"/api/v1/query", "/api/v1/query_range", "/api/v1/series", "/api/v1/labels", "/api/v1/label/:name/values", "/metrics", "/-/healthy"}
	methods := []string{"GET", "POST"}
	codes := []string{"200", "204", "400", "404", "500", "503"}
	for i := range 49 {
		fmt.Fprintf(&b, "http_requests_total{code=%q,handler=%q,method=%q,pod=\"api-server-7d9f8b6c5d-x2v9k\"} %d\n",
			codes[i%len(codes)], handlers[i%len(handlers)], methods[i/42], 1000+i*37)
	}
	b.WriteString("# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes.\n")
	b.WriteString("# TYPE node_filesystem_avail_bytes gauge\n")
	for i := range 50 {
		fmt.Fprintf(&b, "node_filesystem_avail_bytes{device=\"/dev/nvme%dn1p%d\",fstype=\"ext4\",mountpoint=\"/var/lib/kubelet/pods/%08x/volumes\"} %g\n",
			i/10, i%10, i*2654435761, 1.2e11-float64(i)*3.3e8)
	}
	b.WriteString("# HELP batch_job_duration_seconds Duration of the batch job's phases in seconds.\n")
	b.WriteString("# TYPE batch_job_duration_seconds histogram\n")
	for i, le := range []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"} {
		fmt.Fprintf(&b, "batch_job_duration_seconds_bucket{phase=\"transform\",le=%q} %d\n", le, 10*(i+1))
	}
	b.WriteString("batch_job_duration_seconds_sum{phase=\"transform\"} 53.7\n")
	b.WriteString("batch_job_duration_seconds_count{phase=\"transform\"} 100\n")
	return b.Bytes()
}
