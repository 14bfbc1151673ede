package push

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"
)

const protoContentType = `application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited`

// noCharge accepts every charge.
func noCharge(int, int64) error { return nil }

// seedBodies returns the text bodies in testdata.
func seedBodies(f *testing.F) [][]byte {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		f.Fatal(err)
	}
	var bodies [][]byte
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		bodies = append(bodies, b)
	}
	return bodies
}

// protoSeeds converts the parseable text bodies to delimited protobuf.
func protoSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, b := range seedBodies(f) {
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
		if err != nil {
			continue
		}
		var buf bytes.Buffer
		for _, mf := range fams {
			if _, err := protodelim.MarshalTo(&buf, mf); err != nil {
				f.Fatal(err)
			}
		}
		seeds = append(seeds, buf.Bytes())
	}
	return seeds
}

func FuzzDecodeText(f *testing.F) {
	for _, b := range seedBodies(f) {
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Fuzz(func(t *testing.T, body []byte, utf8Names bool) {
		scheme := model.LegacyValidation
		if utf8Names {
			scheme = model.UTF8Validation
		}
		fams, err := decodeBody("text/plain; version=0.0.4", bytes.NewReader(body), scheme, noCharge, nil)
		if err != nil {
			return
		}
		for name, mf := range fams {
			if mf == nil || mf.GetName() != name {
				t.Fatalf("family %v keyed as %q", mf, name)
			}
		}
	})
}

func FuzzDecodeProtobuf(f *testing.F) {
	for _, b := range protoSeeds(f) {
		f.Add(b)
		if len(b) > 3 {
			f.Add(b[:len(b)-3])
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, body []byte) {
		// A length prefix must not make the decoder allocate more than
		// the body can fill: a 10-byte body claiming a 1 TiB message
		// would kill the process.
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var m meter
		fams, err := decodeProtobuf(bytes.NewReader(body), m.charge)
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20+100*uint64(len(body)) {
			t.Fatalf("decoding a %d-byte body allocated %d bytes", len(body), alloc)
		}
		viaBody, errViaBody := decodeBody(protoContentType, bytes.NewReader(body), model.LegacyValidation, noCharge, nil)
		if (err == nil) != (errViaBody == nil) || len(fams) != len(viaBody) {
			t.Fatalf("decodeProtobuf and decodeBody disagree: %v vs %v", err, errViaBody)
		}
		if err != nil {
			return
		}
		// The series charged (scanned before unmarshalling, given back for
		// replaced families) are the series decoded.
		series := 0
		for _, mf := range fams {
			series += len(mf.Metric)
		}
		if m.series != series {
			t.Fatalf("charged %d series, decoded %d", m.series, series)
		}
		// Re-encoding what was decoded decodes to the same families.
		var buf bytes.Buffer
		for name, mf := range fams {
			if mf == nil || mf.GetName() != name {
				t.Fatalf("family %v keyed as %q", mf, name)
			}
			if _, err := protodelim.MarshalTo(&buf, mf); err != nil {
				t.Fatal(err)
			}
		}
		again, err := decodeProtobuf(&buf, noCharge)
		if err != nil {
			t.Fatalf("re-encoded body does not decode: %v", err)
		}
		if len(again) != len(fams) {
			t.Fatalf("re-decoded %d families, want %d", len(again), len(fams))
		}
		for name, mf := range fams {
			if !sameMessage(t, again[name], mf) {
				t.Fatalf("family %q changed after re-encoding", name)
			}
		}
	})
}

func sameMessage(t *testing.T, a, b *dto.MetricFamily) bool {
	t.Helper()
	opts := proto.MarshalOptions{Deterministic: true}
	x, err := opts.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := opts.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

const (
	encNone = iota
	encGzip
	encSnappy
	numEncodings
)

var encodingNames = [numEncodings]string{"", "gzip", "snappy"}

func compress(t testing.TB, enc int, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch enc {
	case encGzip:
		w = gzip.NewWriter(&buf)
	case encSnappy:
		w = snappy.NewBufferedWriter(&buf)
	default:
		return b
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readLimited reads body the way readBody does: MaxBytesReader on the body
// as sent, decompress, then limitedReader on the decompressed stream.
func readLimited(t *testing.T, enc string, body []byte, maxBody, maxDecompressed int64) ([]byte, error) {
	r := httptest.NewRequest(http.MethodPut, "/metrics/job/j", bytes.NewReader(body))
	if enc != "" {
		r.Header.Set("Content-Encoding", enc)
	}
	var rd io.Reader = r.Body
	if maxBody > 0 {
		rd = http.MaxBytesReader(httptest.NewRecorder(), r.Body, maxBody)
	}
	decoded, done, err := decompress(r, rd)
	if err != nil {
		return nil, err
	}
	defer done()
	if maxDecompressed > 0 {
		decoded = &limitedReader{r: decoded, n: maxDecompressed, limit: maxDecompressed}
	}
	return io.ReadAll(decoded)
}

// FuzzDecompress checks that the body limits are never exceeded silently:
// a body read without error is complete (what an unlimited read gives) and
// within both limits, and a limit error is only reported when the limit is
// really exceeded.
func FuzzDecompress(f *testing.F) {
	for _, b := range seedBodies(f) {
		for enc := range numEncodings {
			n := uint16(len(b))
			f.Add(b, []byte(nil), uint8(enc), true, uint16(0), uint16(0))
			f.Add(b, []byte(nil), uint8(enc), true, uint16(0), n)
			f.Add(b, []byte(nil), uint8(enc), true, uint16(0), n-1)
			f.Add(b, []byte(nil), uint8(enc), true, uint16(20), uint16(0))
			f.Add(b, []byte("trailing"), uint8(enc), true, uint16(0), n)
			f.Add(b, b, uint8(enc), false, uint16(0), uint16(10))
		}
	}
	f.Fuzz(func(t *testing.T, payload, tail []byte, enc uint8, doCompress bool, maxBody, maxDecompressed uint16) {
		e := int(enc) % numEncodings
		body := payload
		if doCompress {
			body = compress(t, e, payload)
		}
		body = append(body[:len(body):len(body)], tail...)
		name := encodingNames[e]

		want, wantErr := readLimited(t, name, body, 0, 0)
		got, err := readLimited(t, name, body, int64(maxBody), int64(maxDecompressed))

		var maxBytes *http.MaxBytesError
		var tooLarge errTooLarge
		switch {
		case err == nil:
			if wantErr != nil {
				t.Fatalf("limited read succeeded with %d bytes, unlimited read fails: %v", len(got), wantErr)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("limited read gave %d bytes, unlimited %d", len(got), len(want))
			}
			if maxDecompressed > 0 && len(got) > int(maxDecompressed) {
				t.Fatalf("read %d decompressed bytes, limit %d", len(got), maxDecompressed)
			}
			if maxBody > 0 && len(body) > int(maxBody) {
				t.Fatalf("accepted a %d-byte body, limit %d", len(body), maxBody)
			}
		case errors.As(err, &tooLarge):
			if maxDecompressed == 0 || len(want) <= int(maxDecompressed) {
				t.Fatalf("decompressed limit %d reported, but the body decompresses to %d bytes (%v)", maxDecompressed, len(want), wantErr)
			}
		case errors.As(err, &maxBytes):
			if maxBody == 0 || len(body) <= int(maxBody) {
				t.Fatalf("body limit %d reported for a %d-byte body", maxBody, len(body))
			}
		default:
			if wantErr == nil {
				t.Fatalf("limited read fails (%v), unlimited read succeeds", err)
			}
		}
		if maxDecompressed > 0 && len(got) > int(maxDecompressed) {
			t.Fatalf("read %d decompressed bytes, limit %d", len(got), maxDecompressed)
		}
	})
}
