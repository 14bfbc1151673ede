package store

import (
	"encoding/binary"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pushgate/pushgate/internal/grouping"
)

// FuzzDecodeGroup fuzzes the decoder behind the checksum: the fuzzer's
// bytes are sealed with a valid magic, version and CRC, so mutations reach
// the field parsing that FuzzReplay's random bytes rarely get past. Nothing
// may panic, and whatever decodes must encode to the same bytes.
func FuzzDecodeGroup(f *testing.F) {
	s := New(Options{})
	k, _ := grouping.FromMap(map[string]string{"job": "a", "instance": "i"})
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, _ := p.TextToMetricFamilies(strings.NewReader("# TYPE x counter\nx{l=\"v\"} 1\ny 2\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n"))
	if err := s.Push(k, fams, true); err != nil {
		f.Fatal(err)
	}
	v := encodeGroup(s.Group(k.ID()))
	f.Add(v[len(codecMagic)+1 : len(v)-4])
	f.Fuzz(func(t *testing.T, body []byte) {
		b := append([]byte(codecMagic), codecVersion)
		b = append(b, body...)
		b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
		g, err := decodeGroup(b)
		if err != nil {
			return
		}
		// Map order makes the encoding order vary; compare by decoding again.
		again, err := decodeGroup(encodeGroup(g))
		if err != nil {
			t.Fatalf("re-encoded group does not decode: %v", err)
		}
		if again.Key.ID() != g.Key.ID() || again.Families.Len() != g.Families.Len() {
			t.Fatalf("round trip changed the group: %v -> %v", g.Key, again.Key)
		}
	})
}

func TestCodecExpiry(t *testing.T) {
	s := New(Options{})
	k, _ := grouping.FromMap(map[string]string{"job": "a"})
	for _, expire := range []time.Duration{0, NeverExpire, 90 * time.Second, 26 * time.Hour} {
		p := expfmt.NewTextParser(model.LegacyValidation)
		fams, _ := p.TextToMetricFamilies(strings.NewReader("x 1\n")) // Push takes ownership
		if err := s.PushExpiring(k, fams, true, expire); err != nil {
			t.Fatal(err)
		}
		g := s.Group(k.ID())
		v := encodeGroup(g)
		if v[len(codecMagic)] != codecVersion {
			t.Fatalf("encoded version %d, want %d", v[len(codecMagic)], codecVersion)
		}
		d, err := decodeGroup(v)
		if err != nil {
			t.Fatal(err)
		}
		if d.ExpireAfter != expire || !d.PushTime.Equal(g.PushTime) {
			t.Fatalf("round trip: expiry %v push time %v, want %v %v", d.ExpireAfter, d.PushTime, expire, g.PushTime)
		}
	}
}

// A value of version 2 (before expiry) still decodes, with no expiry of
// its own. It is built here the way version 2 wrote it: the version 3
// layout without the expiry varint.
func TestCodecDecodesVersion2(t *testing.T) {
	s := New(Options{})
	k, _ := grouping.FromMap(map[string]string{"job": "a", "instance": "i"})
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, _ := p.TextToMetricFamilies(strings.NewReader("x 1\ny{l=\"v\"} 2\n"))
	if err := s.Push(k, fams, true); err != nil {
		t.Fatal(err)
	}
	g := s.Group(k.ID())
	v3 := encodeGroup(g) // expiry 0: a one-byte varint
	body := v3[len(codecMagic)+1 : len(v3)-4]
	// labels, push time, fail time, then the expiry byte to drop.
	d := &decoder{b: body}
	for i, n := 0, d.uvarint(); uint64(i) < n; i++ {
		d.string()
		d.string()
	}
	d.varint()
	d.varint()
	at := len(body) - len(d.b)
	if d.b[0] != 0 {
		t.Fatalf("expected a zero expiry byte at %d", at)
	}
	v2 := append([]byte(codecMagic), codecNoExpiry)
	v2 = append(v2, body[:at]...)
	v2 = append(v2, body[at+1:]...)
	v2 = binary.LittleEndian.AppendUint32(v2, crc32.Checksum(v2, castagnoli))

	r := New(Options{})
	if err := r.Replay(v2); err != nil {
		t.Fatalf("replay version 2: %v", err)
	}
	got := r.Group(k.ID())
	if got == nil || got.ExpireAfter != 0 || !got.PushTime.Equal(g.PushTime) || got.Series() != g.Series() {
		t.Fatalf("version 2 value decoded as %+v", got)
	}
	// An unknown version is still refused.
	v4 := append([]byte(codecMagic), codecVersion+1)
	v4 = append(v4, body...)
	v4 = binary.LittleEndian.AppendUint32(v4, crc32.Checksum(v4, castagnoli))
	if _, err := decodeGroup(v4); err == nil {
		t.Fatal("unknown version decoded")
	}
}
