package family_test

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/klauspost/compress/flate"

	"github.com/pushgate/pushgate/internal/deflate"
	"github.com/pushgate/pushgate/internal/family"
)

func inflate(t testing.TB, fr *deflate.Fragment) []byte {
	t.Helper()
	// A fragment ends with a sync flush, not a final block: the reader
	// reports io.ErrUnexpectedEOF after returning all of it.
	b, err := io.ReadAll(flate.NewReader(bytes.NewReader(fr.Data)))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal(err)
	}
	return b
}

func TestFragments(t *testing.T) {
	for name, mf := range families() {
		t.Run(name, func(t *testing.T) {
			f, err := family.New(mf, pushed)
			if err != nil {
				t.Fatal(err)
			}
			if f.GzipSize() != 0 {
				t.Errorf("GzipSize %d before any fragment was asked for", f.GzipSize())
			}
			// Concurrent first calls (run with -race) all get one fragment.
			var wg sync.WaitGroup
			frags := make([]*deflate.Fragment, 8)
			for i := range frags {
				wg.Go(func() {
					var err error
					if i%2 == 0 {
						frags[i], err = f.MetricsFragment()
					} else {
						frags[i], err = f.TextFragment()
					}
					if err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			for i := 2; i < len(frags); i++ {
				if frags[i] != frags[i%2] {
					t.Fatalf("call %d got another fragment than call %d", i, i%2)
				}
			}
			if got, want := inflate(t, frags[0]), metricsOf(t, f); !bytes.Equal(got, want) || frags[0].Len != len(want) {
				t.Errorf("metrics fragment inflates to %d bytes (Len %d), want %d", len(got), frags[0].Len, len(want))
			}
			if f.HasText() {
				if got, want := inflate(t, frags[1]), textOf(t, f); !bytes.Equal(got, want) || frags[1].Len != len(want) {
					t.Errorf("text fragment inflates to %q, want %q", got, want)
				}
			}
			if want := len(frags[0].Data) + len(frags[1].Data); f.GzipSize() != want {
				t.Errorf("GzipSize %d, want %d", f.GzipSize(), want)
			}
		})
	}
}
