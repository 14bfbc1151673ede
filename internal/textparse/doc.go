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
// (bench_test.go, 2 shared cores):
//
//	                          textparse            expfmt
//	100 series, 11 KiB        TODO
//	100k short series         TODO
//	live heap, 100k series    TODO
//
// The live heap of the result barely shrinks: the result is made of the
// same dto messages (a Metric alone is 112 bytes, a LabelPair 56, an Untyped
// 48), which Parse cannot make smaller. What bounds memory is Charge.
//
// expfmt is the behavioural spec, odd corners included: Parse returns the
// same families (same metric order) or an expfmt.ParseError with the same
// text and line number, for both validation schemes. FuzzParse checks this
// differentially on every input. The one known difference: on a line like
// {"s",a="b"} where s is a summary or histogram and no earlier line started
// one, expfmt panics (it writes to a map it has not made yet); Parse returns
// an error.
package textparse
