// Package deflatetest checks gzip output in tests. Responses built by
// package deflate splice fragments into one stream, so a test must hold
// them to more than one decoder: each decoder has its own tolerance of odd
// block sequences, and a client may use either.
package deflatetest

import (
	"bytes"
	stdgzip "compress/gzip"
	"io"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"
)

// Gunzip decodes b, which must be exactly one gzip member with nothing
// after it, with both the standard library's reader and klauspost's, which
// must agree; it returns the decoded bytes and fails t otherwise.
func Gunzip(t testing.TB, b []byte) []byte {
	t.Helper()
	br := bytes.NewReader(b)
	zr, err := stdgzip.NewReader(br)
	if err != nil {
		t.Fatalf("compress/gzip: %v", err)
	}
	// One member: a second one after it would be decoded silently.
	zr.Multistream(false)
	std, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("compress/gzip: %v", err)
	}
	if br.Len() != 0 {
		t.Fatalf("%d bytes after the gzip member", br.Len())
	}
	kr, err := kgzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("klauspost gzip: %v", err)
	}
	kr.Multistream(false)
	k, err := io.ReadAll(kr)
	if err != nil {
		t.Fatalf("klauspost gzip: %v", err)
	}
	if !bytes.Equal(std, k) {
		t.Fatalf("compress/gzip and klauspost gzip decode differently: %d and %d bytes", len(std), len(k))
	}
	return std
}
