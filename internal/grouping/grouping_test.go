package grouping_test

import (
	"errors"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pushgate/pushgate/internal/grouping"
)

var (
	legacy = grouping.Options{}
	utf8   = grouping.Options{UTF8Names: true}
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		name string
		path string
		opts grouping.Options
		want map[string]string
	}{
		{"job only", "job/a", legacy, map[string]string{"job": "a"}},
		{"trailing slash", "job/a/", legacy, map[string]string{"job": "a"}},
		{"one label", "job/a/instance/i1", legacy, map[string]string{"job": "a", "instance": "i1"}},
		{"two labels", "job/a/instance/i1/zone/z", legacy, map[string]string{"job": "a", "instance": "i1", "zone": "z"}},
		{"empty value before trailing slash", "job/a/x/", legacy, map[string]string{"job": "a", "x": ""}},
		{"later duplicate wins", "job/a/x/1/x/2", legacy, map[string]string{"job": "a", "x": "2"}},
		{"job label overwritten by job segment", "job/a/job/b", legacy, map[string]string{"job": "a"}},
		{"value with spaces and unicode", "job/a/x/hello wörld", legacy, map[string]string{"job": "a", "x": "hello wörld"}},
		{"value with percent and equals", "job/a/x/50%=", legacy, map[string]string{"job": "a", "x": "50%="}},
		{"base64 job", "job@base64/Zm9vL2Jhcg", legacy, map[string]string{"job": "foo/bar"}},
		{"base64 job padded", "job@base64/Zm9vL2Jhcg==", legacy, map[string]string{"job": "foo/bar"}},
		{"base64 job with labels", "job@base64/Zm9v/x/y", legacy, map[string]string{"job": "foo", "x": "y"}},
		{"base64 label", "job/a/path@base64/L3Zhci90bXA", legacy, map[string]string{"job": "a", "path": "/var/tmp"}},
		{"base64 label padded", "job/a/x@base64/YQ==", legacy, map[string]string{"job": "a", "x": "a"}},
		{"base64 url alphabet", "job/a/x@base64/Pz8-/y@base64/Pz8_", legacy, map[string]string{"job": "a", "x": "??>", "y": "???"}},
		{"lone equals is empty value", "job/a/x@base64/=", legacy, map[string]string{"job": "a", "x": ""}},
		{"empty base64 value", "job/a/x@base64/", legacy, map[string]string{"job": "a", "x": ""}},
		{"legacy name starting with U__ kept", "job/a/U__foo_2e_bar/v", legacy, map[string]string{"job": "a", "U__foo_2e_bar": "v"}},
		{"utf8 name", "job/a/foo.bar/v", utf8, map[string]string{"job": "a", "foo.bar": "v"}},
		{"utf8 escaped name", "job/a/U__foo_2e_bar/v", utf8, map[string]string{"job": "a", "foo.bar": "v"}},
		{"utf8 escaped name with base64 value", "job/a/U__foo_2e_bar@base64/YQ", utf8, map[string]string{"job": "a", "foo.bar": "a"}},
		{"utf8 escaped job label overwritten", "job/a/U__job/b", utf8, map[string]string{"job": "a"}},
		{"utf8 legacy name unchanged", "job/a/instance/i", utf8, map[string]string{"job": "a", "instance": "i"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := grouping.ParsePath(tt.path, tt.opts)
			if err != nil {
				t.Fatalf("ParsePath(%q) = error %v", tt.path, err)
			}
			if got := k.Map(); !maps.Equal(got, tt.want) {
				t.Errorf("ParsePath(%q) = %v, want %v", tt.path, got, tt.want)
			}
			want, err := grouping.FromMap(tt.want)
			if err != nil {
				t.Fatal(err)
			}
			if k.ID() != want.ID() {
				t.Errorf("ID differs from FromMap(%v)", tt.want)
			}
		})
	}
}

func TestParsePathErrors(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		opts    grouping.Options
		wantErr string // exact error text, or prefix ending in "..."
	}{
		{"empty", "", legacy, `path must start with /metrics/job/ or /metrics/job@base64/, got "/metrics/"`},
		{"not job", "foo/a", legacy, `path must start with /metrics/job/ or /metrics/job@base64/, got "/metrics/foo/a"`},
		{"job without slash", "job", legacy, "job name is required"},
		{"empty job", "job/", legacy, "job name is required"},
		{"empty job with label", "job//x/y", legacy, "job name is required"},
		{"empty base64 job", "job@base64/", legacy, "job name is required"},
		{"lone equals base64 job", "job@base64/=", legacy, "job name is required"},
		{"odd components", "job/a/x", legacy, `odd number of components in label string "/x"`},
		{"odd components three", "job/a/x/y/z", legacy, `odd number of components in label string "/x/y/z"`},
		{"trailing slash after pair", "job/a/x/y/", legacy, `odd number of components in label string "/x/y/"`},
		{"empty label name", "job/a//y", legacy, `improper label name ""`},
		{"reserved prefix", "job/a/__name__/y", legacy, `improper label name "__name__"`},
		{"reserved prefix base64", "job/a/__x@base64/YQ", legacy, `improper label name "__x"`},
		{"digit first", "job/a/1x/y", legacy, `improper label name "1x"`},
		{"dot in legacy", "job/a/foo.bar/y", legacy, `improper label name "foo.bar"`},
		{"colon in label name", "job/a/foo:bar/y", legacy, `improper label name "foo:bar"`},
		{"reserved prefix utf8", "job/a/__x/y", utf8, `improper label name "__x"`},
		{"escaped reserved prefix utf8", "job/a/U______x/y", utf8, `improper label name "U______x" (unescaped: "__x")`},
		{"bad base64 label", "job/a/x@base64/!!", legacy, `invalid base64 encoding for label x="!!": ...`},
		{"std alphabet rejected", "job/a/x@base64/+/8", legacy, `odd number of components in label string "/x@base64/+/8"`},
		{"std alphabet plus rejected", "job/a/x@base64/a+8", legacy, `invalid base64 encoding for label x="a+8": ...`},
		{"base64 one char", "job/a/x@base64/a", legacy, `invalid base64 encoding for label x="a": ...`},
		{"bad base64 job", "job@base64/!!", legacy, `invalid base64 encoding in job name "": illegal base64 data at input byte 0 (job@base64 segment "!!")`},
		{"bad base64 job after a valid part", "job@base64/Zm9v!", legacy, `invalid base64 encoding in job name "foo": illegal base64 data at input byte 4 (job@base64 segment "Zm9v!")`},
		{"bad base64 utf8 label", "job/a/U__x_2e_y@base64/!", utf8, `invalid base64 encoding for label U__x_2e_y="!": ...`},
		{"invalid utf8 job", "job/a\xff", legacy, `the grouping key has a label named "job" whose value is not utf8: "a\xff"`},
		{"invalid utf8 value", "job/a/x/\xff", legacy, `the grouping key has a label named "x" whose value is not utf8: "\xff"`},
		{"invalid utf8 base64 value", "job/a/x@base64/_w", legacy, `the grouping key has a label named "x" whose value is not utf8: ...`},
		{"invalid utf8 base64 job", "job@base64/_w", legacy, `the grouping key has a label named "job" whose value is not utf8: ...`},
		{"invalid utf8 name", "job/a/\xff/y", utf8, `improper label name "\xff"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := grouping.ParsePath(tt.path, tt.opts)
			if err == nil {
				t.Fatalf("ParsePath(%q) = %v, want error %q", tt.path, k, tt.wantErr)
			}
			if prefix, ok := strings.CutSuffix(tt.wantErr, "..."); ok {
				if !strings.HasPrefix(err.Error(), prefix) {
					t.Errorf("ParsePath(%q) error = %q, want prefix %q", tt.path, err, prefix)
				}
			} else if err.Error() != tt.wantErr {
				t.Errorf("ParsePath(%q) error = %q, want %q", tt.path, err, tt.wantErr)
			}
		})
	}
}

func TestParsePathJobRequiredIs(t *testing.T) {
	_, err := grouping.ParsePath("job/", legacy)
	if !errors.Is(err, grouping.ErrJobRequired) {
		t.Errorf("error %v is not ErrJobRequired", err)
	}
}

func TestFromMap(t *testing.T) {
	tests := []struct {
		name    string
		in      map[string]string
		wantErr bool
	}{
		{"job only", map[string]string{"job": "a"}, false},
		{"nil", nil, true},
		{"no job", map[string]string{"instance": "a"}, true},
		{"empty job", map[string]string{"job": ""}, true},
		{"invalid utf8", map[string]string{"job": "a", "x": "\xc3"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := grouping.FromMap(tt.in)
			if (err != nil) != tt.wantErr {
				t.Errorf("FromMap(%v) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
		})
	}
}

func TestKeyCanonical(t *testing.T) {
	a, err := grouping.ParsePath("job/j/a/1/b/2/c/3", legacy)
	if err != nil {
		t.Fatal(err)
	}
	b, err := grouping.ParsePath("job/j/c/3/a/1/b/2", legacy)
	if err != nil {
		t.Fatal(err)
	}
	c, err := grouping.FromMap(map[string]string{"c": "3", "b": "2", "a": "1", "job": "j"})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() != b.ID() || a.ID() != c.ID() {
		t.Errorf("IDs differ: %q %q %q", a.ID(), b.ID(), c.ID())
	}
	if a.String() != b.String() {
		t.Errorf("String differs: %s vs %s", a, b)
	}
	if a.Path(legacy) != b.Path(legacy) {
		t.Errorf("Path differs: %s vs %s", a.Path(legacy), b.Path(legacy))
	}

	// Labels are sorted by name.
	var names []string
	for _, l := range a.Labels() {
		names = append(names, l.Name)
	}
	if got := strings.Join(names, ","); got != "a,b,c,job" {
		t.Errorf("Labels order = %s", got)
	}

	// Keys that differ only in how names and values are split must differ.
	x, _ := grouping.FromMap(map[string]string{"job": "j", "ab": "c"})
	y, _ := grouping.FromMap(map[string]string{"job": "j", "a": "bc"})
	if x.ID() == y.ID() {
		t.Errorf("different keys share the ID %q", x.ID())
	}
	// An empty value is not an absent label.
	z, _ := grouping.FromMap(map[string]string{"job": "j", "x": ""})
	w, _ := grouping.FromMap(map[string]string{"job": "j"})
	if z.ID() == w.ID() {
		t.Errorf("x=\"\" and no x share the ID %q", z.ID())
	}
}

func TestKeyAccessors(t *testing.T) {
	k, err := grouping.FromMap(map[string]string{"job": "j", "instance": "i", "x": ""})
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Get("instance"); got != "i" {
		t.Errorf("Get(instance) = %q", got)
	}
	if got := k.Get("nope"); got != "" {
		t.Errorf("Get(nope) = %q", got)
	}
	if !k.Has("x") || k.Has("nope") {
		t.Errorf("Has(x) = %v, Has(nope) = %v", k.Has("x"), k.Has("nope"))
	}
	m := k.Map()
	m["job"] = "changed"
	if k.Get("job") != "j" {
		t.Error("modifying Map() changed the key")
	}
}

func TestKeyString(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]string
		want string
	}{
		{"job only", map[string]string{"job": "a"}, `{job="a"}`},
		{"sorted", map[string]string{"job": "a", "instance": "i", "zone": "z"}, `{instance="i", job="a", zone="z"}`},
		{"quoted", map[string]string{"job": `a"b\c` + "\n"}, `{job="a\"b\\c\n"}`},
		{"utf8", map[string]string{"job": "ä", "foo.bar": "x"}, `{foo.bar="x", job="ä"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := grouping.FromMap(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := k.String(); got != tt.want {
				t.Errorf("String() = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestKeyPath(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]string
		want string
	}{
		{"job only", map[string]string{"job": "a"}, "/metrics/job/a"},
		{"job first then sorted", map[string]string{"zone": "z", "job": "a", "instance": "i"}, "/metrics/job/a/instance/i/zone/z"},
		{"empty value", map[string]string{"job": "a", "x": ""}, "/metrics/job/a/x@base64/="},
		{"slash in job", map[string]string{"job": "foo/bar"}, "/metrics/job@base64/Zm9vL2Jhcg"},
		{"slash in value", map[string]string{"job": "a", "p": "/var/tmp"}, "/metrics/job/a/p@base64/L3Zhci90bXA"},
		{"space escaped", map[string]string{"job": "a b"}, "/metrics/job/a%20b"},
		{"utf8 name", map[string]string{"job": "a", "foo.bar": "v"}, "/metrics/job/a/U__foo_2e_bar/v"},
		{"legacy name looking escaped", map[string]string{"job": "a", "U__x": "v"}, "/metrics/job/a/U__U____x/v"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := grouping.FromMap(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := k.Path(utf8); got != tt.want {
				t.Errorf("Path() = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestPathRoundTrip checks that Path formats every key so that ParsePath
// gives the same key back.
func TestPathRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		opts grouping.Options
		in   map[string]string
	}{
		{"plain", legacy, map[string]string{"job": "a", "instance": "b"}},
		{"empty values", legacy, map[string]string{"job": "a", "x": "", "y": ""}},
		{"slashes", legacy, map[string]string{"job": "/", "x": "a/b/", "y": "//"}},
		{"percent and query chars", legacy, map[string]string{"job": "%2F", "x": "a?b#c", "y": "100%"}},
		{"equals", legacy, map[string]string{"job": "=", "x": "==", "y": "a="}},
		{"spaces and unicode", legacy, map[string]string{"job": " ", "x": "ä ö", "y": "日本"}},
		{"quotes and backslashes", legacy, map[string]string{"job": `"`, "x": `\`, "y": "\n\t"}},
		{"utf8 names", utf8, map[string]string{"job": "a", "foo.bar": "1", "ä": "2", "a/b": "3", "x y": ""}},
		{"utf8 name with underscores", utf8, map[string]string{"job": "a", "foo_bar.baz": "1"}},
		{"utf8 name ending in @base64", utf8, map[string]string{"job": "a", "x@base64": "v"}},
		// A legal legacy label name that happens to look like the U__
		// escaping: Path must not let ParsePath decode it into another name.
		{"legacy name with U__ prefix", utf8, map[string]string{"job": "a", "U__x": "v"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := grouping.FromMap(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			checkRoundTrip(t, k, tt.opts)
		})
	}
}

func checkRoundTrip(t *testing.T, k grouping.Key, opts grouping.Options) {
	t.Helper()
	p := k.Path(opts)
	decoded, err := url.PathUnescape(p)
	if err != nil {
		t.Fatalf("Path() = %q is not a valid escaped path: %v", p, err)
	}
	rest, ok := strings.CutPrefix(decoded, "/metrics/")
	if !ok {
		t.Fatalf("Path() = %q does not start with /metrics/", p)
	}
	back, err := grouping.ParsePath(rest, opts)
	if err != nil {
		t.Fatalf("key %s: ParsePath(Path() = %q) = error %v", k, p, err)
	}
	if back.ID() != k.ID() {
		t.Errorf("key %s: Path() = %q parses back as %s", k, p, back)
	}
}

// FuzzParsePath checks that ParsePath never panics and that every key it
// accepts survives Path and ParsePath.
func FuzzParsePath(f *testing.F) {
	for _, name := range []string{"paths.good.txt", "paths.bad.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			f.Add(line, false)
			f.Add(line, true)
		}
	}
	f.Fuzz(func(t *testing.T, p string, utf8Names bool) {
		opts := grouping.Options{UTF8Names: utf8Names}
		k, err := grouping.ParsePath(p, opts)
		if err != nil {
			return
		}
		if k.Get("job") == "" {
			t.Fatalf("ParsePath(%q) accepted a key without job: %s", p, k)
		}
		_ = k.String()
		checkRoundTrip(t, k, opts)
		m, err := grouping.FromMap(k.Map())
		if err != nil {
			t.Fatalf("FromMap(Map()) of %s: %v", k, err)
		}
		if m.ID() != k.ID() {
			t.Fatalf("FromMap(Map()) of %s gives %s", k, m)
		}
	})
}
