package access_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pushgate/pushgate/internal/access"
)

func TestParseTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			c, err := access.Parse(data)
			switch {
			case strings.HasSuffix(f, ".good.yml"):
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if _, err := access.New(c); err != nil {
					t.Fatalf("New: %v", err)
				}
				if _, err := access.Load(f); err != nil {
					t.Fatalf("Load: %v", err)
				}
			case strings.HasSuffix(f, ".bad.yml"):
				if err == nil {
					t.Fatal("Parse accepted a bad file")
				}
				if _, err := access.Load(f); err == nil || !strings.Contains(err.Error(), f) {
					t.Fatalf("Load: want an error naming the file, got %v", err)
				}
			default:
				t.Fatal("testdata name must end in .good.yml or .bad.yml")
			}
		})
	}
}

// TestValidateReportsEverything checks that one run names every problem.
func TestValidateReportsEverything(t *testing.T) {
	data, err := os.ReadFile("testdata/many.bad.yml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = access.Parse(data)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`user "bob:x": a user name must be non-empty and contain no ':'`,
		`user "carol": password_hash is not a bcrypt hash`,
		`user "dave": password_hash is required`,
		`user "dave": unknown role "writer"`,
		`user "erin": grants nothing`,
		`token 1 (""): name is required`,
		`token 2 ("dup"): the same token as an earlier one`,
		`token 3 ("dup"): duplicate token name`,
		`token 3 ("dup"): sha256 must be 64 hex digits`,
		`token 3 ("dup"): push[0] "job=~\"(\"": regexp of "job"`,
		`token 3 ("dup"): push[1] "job": expected one of`,
		`token 3 ("dup"): push[2] "": empty selector`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q; got:\n%v", want, err)
		}
	}
}

func TestLoad(t *testing.T) {
	p, err := access.Load("")
	if p != nil || err != nil {
		t.Fatalf("Load(\"\") = %v, %v; want nil, nil (access control off)", p, err)
	}
	if _, err := access.Load("testdata/does-not-exist.yml"); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
}
