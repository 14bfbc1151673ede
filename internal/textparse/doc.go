// Package textparse parses push bodies in the Prometheus text exposition
// format 0.0.4 into dto.MetricFamily values, as the reference gateway does
// with expfmt.TextParser (prometheus/common v0.72.1).
//
// Why our own parser: expfmt decodes a whole body before a caller can check
// anything, so --push.max-series-per-push refused a 60 MB body of 2.5M
// series only after holding all of it decoded (16 such pushes at once took
// the gateway to 12.8 GiB). Parse calls Options.Charge for every new series
// and every few KiB of decoded data, so the caller's limits stop a body at
// the first series over them, and it reads the body through a small buffer
// instead of holding it. It also allocates far less: messages are cut from
// slabs, label names are interned and repeated label values shared, and
// tokens are read in place. Measured against expfmt in the same run
// (bench_test.go; 2 cores shared with other work, so times are medians of
// noisy runs):
//
//	                                textparse         expfmt
//	100 series, 11 KiB   time/op    90 µs             400 µs
//	                     allocs/op  145               4,422
//	                     B/op       84 KB             119 KB
//	100k short series,   time/op    50-70 ms          105-210 ms
//	3.6 MB               allocs/op  2,357             1,700,222
//	                     B/op       32 MB             43 MB
//	live heap of the result         301 B/series      305 B/series
//
// The live heap of the result barely shrinks: it is made of the same dto
// messages (per short series a Metric of 112 bytes, a LabelPair of 56, an
// Untyped of 48 and its float, a value string and two slice slots), which
// Parse cannot make smaller; what it saves is the other allocations (expfmt
// makes 17 per short series, Parse 0.02) and the garbage GC has to chase.
// What bounds memory is Charge.
//
// expfmt is the behavioural spec, odd corners included: Parse returns the
// same families (same metric order) or an expfmt.ParseError with the same
// text and line number, for both validation schemes. FuzzParse checks this
// differentially on every input. The one known difference: on a line like
// {"s",a="b"} where s is a summary or histogram and no earlier line started
// one, expfmt panics (it writes to a map it has not made yet); Parse returns
// an error.
package textparse
