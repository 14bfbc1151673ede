package deflate

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pushgate/pushgate/internal/deflate/deflatetest"
)

func TestCRC32Combine(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 300_000)
	for i := range data {
		data[i] = byte(rng.IntN(256))
	}
	f := func(lenA, lenB int) {
		t.Helper()
		a, b := data[:lenA], data[lenA:lenA+lenB]
		got := crc32Combine(crc32.ChecksumIEEE(a), crc32.ChecksumIEEE(b), xpow8(uint64(lenB)))
		if want := crc32.ChecksumIEEE(data[:lenA+lenB]); got != want {
			t.Errorf("combine(%d, %d) = %08x, want %08x", lenA, lenB, got, want)
		}
	}
	for _, n := range []int{0, 1, 2, 3, 7, 8, 255, 256, 4096, 65535, 65536, 100_001} {
		f(0, n)
		f(n, 0)
		f(n, n)
		f(13, n)
		f(n, 13)
	}
	for range 200 {
		f(rng.IntN(150_000), rng.IntN(150_000))
	}
	// Lengths above 4 GiB use the upper table entries: check them against
	// repeated shifting by smaller lengths.
	const n = 5<<30 + 12345
	if got, want := xpow8(n), mulMod(xpow8(n/2), xpow8(n-n/2)); got != want {
		t.Errorf("xpow8(%d) = %08x, want %08x", uint64(n), got, want)
	}
}

// piece is one part of a member in a test: a fragment or fresh data.
type piece struct {
	fragment bool
	data     []byte
}

func member(t testing.TB, pieces []piece) []byte {
	t.Helper()
	var buf bytes.Buffer
	z := NewWriter(io.Discard)
	z.Reset(&buf)
	for _, p := range pieces {
		if p.fragment {
			if err := z.WriteFragment(Compress(p.data)); err != nil {
				t.Fatal(err)
			}
		} else if _, err := z.Write(p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkMember decodes b with both gzip readers, as one member only, and
// compares it with want.
func checkMember(t testing.TB, b, want []byte) {
	t.Helper()
	if got := deflatetest.Gunzip(t, b); !bytes.Equal(got, want) {
		t.Fatalf("decoded %d bytes, want %d", len(got), len(want))
	}
}

func TestWriter(t *testing.T) {
	text := func(n int) []byte {
		var b strings.Builder
		for i := 0; b.Len() < n; i++ {
			fmt.Fprintf(&b, "http_requests_total{code=\"200\",instance=\"worker-%d\"} %d\n", i%97, i)
		}
		return []byte(b.String()[:n])
	}
	rng := rand.New(rand.NewPCG(3, 4))
	random := make([]byte, 200_000)
	for i := range random {
		random[i] = byte(rng.IntN(256))
	}
	for _, tc := range []struct {
		name   string
		pieces []piece
	}{
		{"empty", nil},
		{"empty fragment", []piece{{true, nil}}},
		{"one fragment", []piece{{true, text(10_000)}}},
		{"fresh small", []piece{{false, []byte("# TYPE foo gauge\n")}}},
		{"fresh large", []piece{{false, text(300_000)}}},
		{"fresh in small writes", []piece{{false, text(40_000)}, {false, text(40_000)}, {false, text(100)}}},
		{"incompressible", []piece{{false, random}, {true, random}, {false, random[:1000]}}},
		{"interleaved", []piece{
			{false, []byte("# TYPE foo gauge\n")}, {true, text(5000)}, {true, text(7000)},
			{false, text(1000)}, {true, text(70_000)}, {false, []byte("x")}, {true, []byte("y\n")},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []byte
			for _, p := range tc.pieces {
				want = append(want, p.data...)
			}
			checkMember(t, member(t, tc.pieces), want)
		})
	}
}

// TestWriterRandom builds members from random pieces, reusing one Writer.
func TestWriterRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	alphabet := []byte("abc {}=\"\n0123456789_")
	z := NewWriter(io.Discard)
	for i := range 200 {
		var buf bytes.Buffer
		z.Reset(&buf)
		var want []byte
		for range rng.IntN(20) {
			n := rng.IntN(3000)
			if rng.IntN(10) == 0 {
				n = rng.IntN(200_000)
			}
			p := make([]byte, n)
			for k := range p {
				p[k] = alphabet[rng.IntN(len(alphabet))]
			}
			want = append(want, p...)
			if rng.IntN(2) == 0 {
				if err := z.WriteFragment(Compress(p)); err != nil {
					t.Fatal(err)
				}
			} else {
				b := append(z.AvailableBuffer(), p...)
				if _, err := z.Write(b); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := z.Close(); err != nil {
			t.Fatal(err)
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkMember(t, buf.Bytes(), want) })
	}
}

// TestCompressPoolsNoHugeBuffer checks that a compressor whose output
// buffer grew for a huge fragment is not pooled. (The pool may drop what it
// is given, so only a failure is certain; without the limit it fails almost
// always.)
func TestCompressPoolsNoHugeBuffer(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	big := make([]byte, 4*maxPooledBuf) // random: compresses to about its size
	for i := range big {
		big[i] = byte(rng.IntN(256))
	}
	for range 4 {
		Compress(big)
		c := compressors.Get().(*compressor)
		if c.buf.Cap() > maxPooledBuf {
			t.Fatalf("a pooled compressor holds a %d-byte buffer, more than %d", c.buf.Cap(), maxPooledBuf)
		}
		compressors.Put(c)
	}
}
