// Package deflate builds gzip responses (RFC 1952) out of pre-compressed
// pieces, so that serving cached content gzipped costs about a byte copy.
//
// A Fragment is raw deflate data (RFC 1951) that refers to nothing before it
// and ends with a sync flush: its last block is not final and it ends on a
// byte boundary. Such fragments concatenate into one deflate stream. A Writer
// writes one gzip member: the header, fragments and data compressed as it
// goes, in any order, then a final empty block and the trailer, whose CRC-32
// it combines from the fragments' own (see crc.go).
package deflate

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// FragmentLevel is the compression level of fragments made by Compress.
// Measured on BenchmarkScrape's store (100k series), level 5 makes
// fragments 6% smaller than BestSpeed, level 9 11%, but the first scrape
// after pushes compresses 1.6x and 7.5x slower: BestSpeed keeps a scrape
// after every group changed about as costly as compressing the whole body.
const FragmentLevel = flate.BestSpeed

// Fragment is a self-contained, byte-aligned piece of a deflate stream. It
// is immutable once made and safe for concurrent use.
type Fragment struct {
	// Data is the compressed bytes. It must not be modified.
	Data []byte
	// CRC is the CRC-32 (IEEE) of the uncompressed bytes.
	CRC uint32
	// Len is the number of uncompressed bytes.
	Len int
	// shift is x^(8*Len) mod P, for appending CRC to another one.
	shift uint32
}

type compressor struct {
	fw  *flate.Writer
	buf bytes.Buffer
}

var compressors = sync.Pool{New: func() any {
	c := &compressor{}
	c.fw, _ = flate.NewWriter(nil, FragmentLevel)
	return c
}}

// maxPooledBuf is the largest output buffer kept in the pool: the fragment
// of one huge family must not stay allocated on every P that made one.
const maxPooledBuf = 1 << 20

func (c *compressor) put() {
	if c.buf.Cap() > maxPooledBuf {
		return
	}
	compressors.Put(c)
}

// Compress returns b compressed as a fragment of exactly the size it needs.
// b is not retained.
func Compress(b []byte) *Fragment {
	c := compressors.Get().(*compressor)
	defer c.put()
	c.buf.Reset()
	c.fw.Reset(&c.buf)
	// Writing to a bytes.Buffer cannot fail.
	_, _ = c.fw.Write(b)
	_ = c.fw.Flush()
	c.fw.Reset(nil)
	return &Fragment{
		Data:  bytes.Clone(c.buf.Bytes()),
		CRC:   crc32.ChecksumIEEE(b),
		Len:   len(b),
		shift: xpow8(uint64(len(b))),
	}
}

const (
	// chunk is how much fresh data a Writer gathers before compressing it.
	chunk = 64 << 10
	// storedMax is the size up to which fresh data goes out as a stored
	// (uncompressed) block: for a HELP and TYPE line between two fragments,
	// 5 bytes of block header cost less than starting a compressed block.
	storedMax = 256
)

// header is a gzip member header: deflate, no flags, no time, fastest
// compression (XFL 4), unknown OS.
var header = [10]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255}

// Writer writes one gzip member made of fragments and fresh data. It is not
// safe for concurrent use; Reset lets it be reused.
type Writer struct {
	out *bufio.Writer
	fw  *flate.Writer // BestSpeed, for fresh data
	// pending is fresh data not yet compressed: it is compressed in one go
	// when a fragment follows, when it reaches chunk and on Close.
	pending []byte
	crc     uint32
	size    uint64
}

// NewWriter returns a Writer whose member goes to w.
func NewWriter(w io.Writer) *Writer {
	fw, _ := flate.NewWriter(nil, flate.BestSpeed)
	z := &Writer{out: bufio.NewWriterSize(w, 64<<10), fw: fw, pending: make([]byte, 0, chunk+storedMax)}
	z.Reset(w)
	return z
}

// Reset discards the Writer's state and starts a new member that goes to w.
// Nothing reaches w before the Writer has buffered 64 KiB or is closed.
func (z *Writer) Reset(w io.Writer) {
	z.out.Reset(w)
	z.fw.Reset(nil)
	z.pending = z.pending[:0]
	z.crc, z.size = 0, 0
	_, _ = z.out.Write(header[:]) // into the empty buffer: cannot fail
}

// AvailableBuffer returns an empty buffer whose capacity may be appended to
// and then passed to Write, as for bufio.Writer.
func (z *Writer) AvailableBuffer() []byte { return z.pending[len(z.pending):] }

// Write adds fresh data to the member, compressed with BestSpeed.
func (z *Writer) Write(p []byte) (int, error) {
	if len(p) >= chunk {
		if err := z.flushPending(); err != nil {
			return 0, err
		}
		if err := z.compress(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	z.pending = append(z.pending, p...)
	if len(z.pending) >= chunk {
		if err := z.flushPending(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// WriteFragment adds a fragment to the member.
func (z *Writer) WriteFragment(f *Fragment) error {
	if err := z.flushPending(); err != nil {
		return err
	}
	if _, err := z.out.Write(f.Data); err != nil {
		return err
	}
	z.crc = crc32Combine(z.crc, f.CRC, f.shift)
	z.size += uint64(f.Len)
	return nil
}

// Close ends the member and flushes it to the underlying writer; it does
// not close that.
func (z *Writer) Close() error {
	if err := z.flushPending(); err != nil {
		return err
	}
	// A final empty block with fixed codes: BFINAL 1, BTYPE 01 and the
	// 7-bit end-of-block code, in 10 bits.
	var trailer [10]byte
	trailer[0], trailer[1] = 0x03, 0x00
	binary.LittleEndian.PutUint32(trailer[2:], z.crc)
	binary.LittleEndian.PutUint32(trailer[6:], uint32(z.size)) // ISIZE is the size mod 2^32
	if _, err := z.out.Write(trailer[:]); err != nil {
		return err
	}
	return z.out.Flush()
}

func (z *Writer) flushPending() error {
	if len(z.pending) == 0 {
		return nil
	}
	err := z.compress(z.pending)
	z.pending = z.pending[:0]
	return err
}

// compress writes p as one or more byte-aligned blocks that refer to
// nothing before them (a fragment may precede them).
func (z *Writer) compress(p []byte) error {
	z.crc = crc32.Update(z.crc, crc32.IEEETable, p)
	z.size += uint64(len(p))
	if len(p) <= storedMax {
		// A stored block: BFINAL 0 and BTYPE 00 padded to a byte, then
		// LEN and its complement NLEN, then the bytes.
		var h [5]byte
		binary.LittleEndian.PutUint16(h[1:], uint16(len(p)))
		binary.LittleEndian.PutUint16(h[3:], ^uint16(len(p)))
		if _, err := z.out.Write(h[:]); err != nil {
			return err
		}
		_, err := z.out.Write(p)
		return err
	}
	z.fw.Reset(z.out)
	if _, err := z.fw.Write(p); err != nil {
		return err
	}
	return z.fw.Flush()
}
