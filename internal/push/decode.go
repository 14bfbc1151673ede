package push

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/openmetrics"
	"github.com/pushgate/pushgate/internal/textparse"
)

// errTooLarge is returned by reads past the decompressed-size limit.
type errTooLarge struct{ limit int64 }

func (e errTooLarge) Error() string {
	return fmt.Sprintf("decompressed body exceeds the limit of %d bytes (--push.max-decompressed-size)", e.limit)
}

// limitedReader fails once more than n bytes are read, unlike io.LimitReader
// which would silently truncate a body.
type limitedReader struct {
	r     io.Reader
	n     int64
	limit int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// Find out whether the body really goes on; a reader may return
		// (0, nil), and its errors (a corrupt stream) must not be lost.
		var b [1]byte
		for {
			n, err := l.r.Read(b[:])
			switch {
			case n > 0:
				return 0, errTooLarge{limit: l.limit}
			case err != nil:
				return 0, err
			}
		}
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// decompress wraps body according to Content-Encoding (gzip or framed
// snappy, like the reference); other encodings are read as they are.
func decompress(r *http.Request, body io.Reader) (io.Reader, func(), error) {
	switch strings.ToLower(r.Header.Get("Content-Encoding")) {
	case "gzip":
		gr, err := gzip.NewReader(body)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip body: %w", err)
		}
		return gr, func() { _ = gr.Close() }, nil
	case "snappy":
		return snappy.NewReader(body), func() {}, nil
	default:
		return body, func() {}, nil
	}
}

// decodeBody parses a push body into families by name. The Content-Type
// chooses the format: delimited protobuf MetricFamily messages, OpenMetrics
// (which the reference would misread as text), and anything else is read
// as the text format 0.0.4, as the reference does. Every decoder calls
// charge as its result grows and stops at the first error charge returns,
// which it returns unwrapped. arena (may be nil) is for the text parser.
func decodeBody(contentType string, body io.Reader, scheme model.ValidationScheme, charge chargeFunc, arena *textparse.Arena) (map[string]*dto.MetricFamily, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	switch {
	case err != nil:
	case mt == expfmt.ProtoType && params["encoding"] == "delimited" && params["proto"] == expfmt.ProtoProtocol:
		return decodeProtobuf(body, charge)
	case mt == expfmt.OpenMetricsType:
		return openmetrics.Parse(body, openmetrics.Options{Scheme: scheme, Charge: charge})
	}
	return decodeText(body, scheme, charge, arena)
}

// maxTextLine is the longest line of the text format accepted, as for
// OpenMetrics.
const maxTextLine = 16 << 20

// decodeText parses the text format 0.0.4; it is the one place that calls
// the text parser.
func decodeText(body io.Reader, scheme model.ValidationScheme, charge chargeFunc, arena *textparse.Arena) (map[string]*dto.MetricFamily, error) {
	return textparse.Parse(body, textparse.Options{Scheme: scheme, Charge: charge, MaxLineBytes: maxTextLine, Arena: arena})
}

// protoChunk is how much of a protobuf message is read at a time, so that
// its buffer grows (and is charged) only as bytes arrive: a length prefix
// alone cannot make us allocate what the body does not contain (protodelim
// would allocate the announced size).
const protoChunk = 64 << 10

// decodeProtobuf reads length-delimited MetricFamily messages. A later
// message of the same name replaces an earlier one (documented reference
// behaviour). Each message is charged, with its series, before it is
// unmarshalled.
func decodeProtobuf(body io.Reader, charge chargeFunc) (map[string]*dto.MetricFamily, error) {
	r := bufio.NewReader(body)
	fams := map[string]*dto.MetricFamily{}
	costs := map[string]int64{} // the bytes each family in fams was charged
	var buf []byte
	for i := 1; ; i++ {
		size, err := binary.ReadUvarint(r)
		if errors.Is(err, io.EOF) {
			// The buffer is garbage from here on.
			return fams, charge(0, -int64(cap(buf)))
		}
		if err != nil {
			return nil, fmt.Errorf("protobuf message %d: length prefix: %w", i, unexpectedEOF(err))
		}
		if size == 0 {
			// An empty message is an empty family named "". A body of
			// zero bytes (a decompressed bomb) is a run of them: skip the
			// run at once instead of a message per byte.
			if old, ok := fams[""]; ok {
				if err := charge(-len(old.Metric), -costs[""]); err != nil {
					return nil, err
				}
				delete(costs, "")
			}
			fams[""] = &dto.MetricFamily{}
			if err := skipZeros(r); errors.Is(err, io.EOF) {
				return fams, charge(0, -int64(cap(buf)))
			} else if err != nil {
				return nil, fmt.Errorf("protobuf message %d: %w", i, err)
			}
			continue
		}
		if buf, err = readMessage(r, buf, i, size, charge); err != nil {
			return nil, err
		}
		name, series, cost, scanErr := scanFamily(buf)
		mf := &dto.MetricFamily{}
		if scanErr != nil {
			// Report what proto.Unmarshal finds wrong, as before.
			if err := proto.Unmarshal(buf, mf); err != nil {
				scanErr = err
			}
			return nil, fmt.Errorf("protobuf message %d: %w", i, scanErr)
		}
		if old, ok := fams[name]; ok {
			// The family replaces an earlier one, which is garbage now.
			if err := charge(-len(old.Metric), -costs[name]); err != nil {
				return nil, err
			}
		}
		if err := charge(series, cost); err != nil {
			return nil, err
		}
		if err := proto.Unmarshal(buf, mf); err != nil {
			return nil, fmt.Errorf("protobuf message %d: %w", i, err)
		}
		fams[name] = mf
		costs[name] = cost
	}
}

// readMessage reads message i of size bytes into buf (reused), which grows
// by protoChunk as bytes arrive; growth is charged before it is allocated,
// and a refusal is returned unwrapped.
func readMessage(r io.Reader, buf []byte, i int, size uint64, charge chargeFunc) ([]byte, error) {
	buf = buf[:0]
	for uint64(len(buf)) < size {
		chunk := int(min(size-uint64(len(buf)), protoChunk))
		if cap(buf)-len(buf) < chunk {
			grown := slices.Grow(buf, chunk)
			if err := charge(0, int64(cap(grown)-cap(buf))); err != nil {
				return nil, err
			}
			buf = grown
		}
		n, err := io.ReadFull(r, buf[len(buf):len(buf)+chunk])
		buf = buf[:len(buf)+n]
		if err != nil {
			return nil, fmt.Errorf("protobuf message %d: %d of %d bytes: %w", i, len(buf), size, unexpectedEOF(err))
		}
	}
	return buf, nil
}

// skipZeros discards the zero bytes at the head of r, in bulk. It returns
// the error of a read (io.EOF at the end of the body); bufio hands an error
// out only once, so it must not be dropped here.
func skipZeros(r *bufio.Reader) error {
	for {
		p, err := r.Peek(max(1, r.Buffered()))
		n := len(p) - len(bytes.TrimLeft(p, "\x00"))
		_, _ = r.Discard(n)
		if n < len(p) || err != nil {
			return err
		}
	}
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
