package store

import (
	"encoding/binary"
	"hash/crc32"
	"strings"
	"testing"

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
		if again.Key.ID() != g.Key.ID() || len(again.Families) != len(g.Families) {
			t.Fatalf("round trip changed the group: %v -> %v", g.Key, again.Key)
		}
	})
}
