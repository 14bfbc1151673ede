package access_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pushgate/pushgate/internal/access"
)

// FuzzParseSelector checks that the selector parser never panics and that
// what it accepts prints back to a selector that parses to the same text.
func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{`job="a"`, `{job=~"billing-.*", instance!=""}`, "job!~`x`", `"a.b"="\u00e9"`, `{`, `job="a\"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := access.ParseSelector(in)
		if err != nil {
			return
		}
		again, err := access.ParseSelector(s.String())
		if err != nil {
			t.Fatalf("ParseSelector(%q) = %s, which does not parse: %v", in, s, err)
		}
		if again.String() != s.String() {
			t.Fatalf("round trip of %q: %s != %s", in, again, s)
		}
	})
}

// FuzzParse checks that no config file makes Parse or New panic, seeded
// with the testdata files.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := access.Parse(data)
		if err != nil {
			return
		}
		if _, err := access.New(c); err != nil {
			t.Fatalf("New refused a config that Parse accepted: %v", err)
		}
	})
}
