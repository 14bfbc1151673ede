package gobfile

import (
	"bytes"
	"encoding/gob"
	"os"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the decoder. The persistence file is
// whatever the disk holds: it may be torn, corrupted or of another program,
// and reading it must end in groups or an error, never a panic.
func FuzzDecode(f *testing.F) {
	good, err := os.ReadFile("testdata/reference-v1.5.1.good.gob")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	var empty bytes.Buffer
	if err := gob.NewEncoder(&empty).Encode(Groups{}); err != nil {
		f.Fatal(err)
	}
	f.Add(empty.Bytes())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		groups, err := decode(bytes.NewReader(b), "fuzz")
		if err != nil && groups != nil {
			t.Errorf("error %v with %d groups; want no groups with an error", err, len(groups))
		}
		if err == nil && groups == nil {
			t.Error("no groups and no error")
		}
	})
}
