package family_test

import (
	"testing"
	"time"

	"github.com/pushgate/pushgate/internal/family"
	"github.com/pushgate/pushgate/internal/store/storetest"
)

// BenchmarkNew measures encoding the families of a 100-series push into
// their stored forms (protobuf and text, s2-compressed), and decoding the
// text back as a scrape does. Run with:
//
//	go test -run=^$ -bench=. -benchmem ./internal/family/
func BenchmarkNew(b *testing.B) {
	fams := storetest.Families(b, string(storetest.BenchBody()))
	now := time.Unix(1700000000, 0)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		size := 0
		for b.Loop() {
			size = 0
			for _, mf := range fams {
				f, err := family.New(mf, now)
				if err != nil {
					b.Fatal(err)
				}
				size += f.Size()
			}
		}
		// What the families hold in memory and on disk: the cost of a
		// faster compressor.
		b.ReportMetric(float64(size), "stored-B/op")
	})
	var encoded []*family.Family
	raw := 0
	for _, mf := range fams {
		f, err := family.New(mf, now)
		if err != nil {
			b.Fatal(err)
		}
		encoded = append(encoded, f)
		text, _ := f.AppendText(nil)
		raw += len(text)
	}
	b.Run("decode-text", func(b *testing.B) {
		b.SetBytes(int64(raw))
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			for _, f := range encoded {
				var err error
				if buf, err = f.AppendText(buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
