package packaging

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/pushgate/pushgate/internal/testenv"
)

// TestDebVersion checks deb-version.sh, and with dpkg that the versions it
// makes sort as the builds they name: cases are in ascending order.
func TestDebVersion(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, describe, count, want string
	}{
		{"untagged", "abc1234", "150", "0.0.0~git150.gabc1234"},
		{"untagged dirty", "abc1234-dirty", "150", "0.0.0~git150.gabc1234.dirty"},
		{"untagged later commit", "0fedcba", "151", "0.0.0~git151.g0fedcba"},
		{"pre-release", "v1.2.3-rc.1", "", "1.2.3~rc.1"},
		{"after pre-release", "v1.2.3-rc.1-4-gabc1234", "", "1.2.3~rc.1+git4.gabc1234"},
		{"release", "v1.2.3", "", "1.2.3"},
		{"release dirty", "v1.2.3-dirty", "", "1.2.3+dirty"},
		{"after release", "v1.2.3-4-gabc1234", "", "1.2.3+git4.gabc1234"},
		{"after release dirty", "v1.2.3-4-gabc1234-dirty", "", "1.2.3+git4.gabc1234.dirty"},
		{"after release, more commits", "v1.2.3-12-gabc1234", "", "1.2.3+git12.gabc1234"},
		{"next release", "1.2.4", "", "1.2.4"},
	}
	var got []string
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := exec.Command("./deb-version.sh", c.describe, c.count).Output()
			if err != nil {
				t.Fatalf("deb-version.sh %q %q: %v", c.describe, c.count, err)
			}
			if v := strings.TrimSpace(string(out)); v != c.want {
				t.Errorf("deb-version.sh %q %q = %q, want %q", c.describe, c.count, v, c.want)
			}
		})
		got = append(got, c.want)
	}

	t.Run("refused", func(t *testing.T) {
		for _, describe := range []string{"", "not a version", "v1.2.3_4"} {
			out, err := exec.Command("./deb-version.sh", describe).Output()
			if err == nil {
				t.Errorf("deb-version.sh %q = %q, want an error", describe, out)
			}
		}
	})

	t.Run("order", func(t *testing.T) {
		dpkg, err := exec.LookPath("dpkg")
		if err != nil {
			testenv.Missing(t, "dpkg is not installed: %v", err)
		}
		for i := 1; i < len(got); i++ {
			if err := exec.Command(dpkg, "--compare-versions", got[i-1], "lt", got[i]).Run(); err != nil {
				t.Errorf("dpkg: %s is not lower than %s", got[i-1], got[i])
			}
		}
	})
}
