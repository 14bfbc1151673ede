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
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/openmetrics"
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
// as the text format 0.0.4, as the reference does.
func decodeBody(contentType string, body io.Reader, scheme model.ValidationScheme) (map[string]*dto.MetricFamily, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	switch {
	case err != nil:
	case mt == expfmt.ProtoType && params["encoding"] == "delimited" && params["proto"] == expfmt.ProtoProtocol:
		return decodeProtobuf(body)
	case mt == expfmt.OpenMetricsType:
		return openmetrics.Parse(body, scheme)
	}
	parser := expfmt.NewTextParser(scheme)
	return parser.TextToMetricFamilies(body)
}

// decodeProtobuf reads length-delimited MetricFamily messages. A later
// message of the same name replaces an earlier one (documented reference
// behaviour). A message is read into a buffer that grows with the bytes
// that actually arrive, so a length prefix cannot make us allocate what the
// body does not contain (protodelim would allocate the announced size).
func decodeProtobuf(body io.Reader) (map[string]*dto.MetricFamily, error) {
	r := bufio.NewReader(body)
	fams := map[string]*dto.MetricFamily{}
	var buf bytes.Buffer
	for i := 1; ; i++ {
		size, err := binary.ReadUvarint(r)
		if errors.Is(err, io.EOF) {
			return fams, nil
		}
		if err != nil {
			return nil, fmt.Errorf("protobuf message %d: length prefix: %w", i, unexpectedEOF(err))
		}
		buf.Reset()
		n, err := io.CopyN(&buf, r, int64(min(size, 1<<62)))
		if err != nil {
			return nil, fmt.Errorf("protobuf message %d: %d of %d bytes: %w", i, n, size, unexpectedEOF(err))
		}
		mf := &dto.MetricFamily{}
		if err := proto.Unmarshal(buf.Bytes(), mf); err != nil {
			return nil, fmt.Errorf("protobuf message %d: %w", i, err)
		}
		fams[mf.GetName()] = mf
	}
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
