package packaging

import (
	"debug/elf"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pushgate/pushgate/internal/testenv"
)

// TestDebForOtherArchitecture builds the package for 32-bit ARM on this
// machine, as `GOARCH=arm GOARM=7 make deb` does: the package must say
// Debian's name for it (armhf, not Go's "arm", which dpkg refuses) and hold
// an ARM binary, and nfpm itself must still be built to run here. One
// architecture, not all: each is a full cross build of pushgate.
func TestDebForOtherArchitecture(t *testing.T) {
	for _, prog := range []string{"dpkg-deb", "make"} {
		if _, err := exec.LookPath(prog); err != nil {
			testenv.Missing(t, "%s is not installed: %v", prog, err)
		}
	}
	dist := t.TempDir()
	d := makeDeb(t, dist, "", "GOARCH=arm", "GOARM=7")
	if d.arch != "armhf" {
		t.Errorf("Architecture %q, want armhf", d.arch)
	}
	f, err := elf.Open(filepath.Join(dist, "pushgate"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_ARM || f.Class != elf.ELFCLASS32 {
		t.Errorf("the packaged binary is %v %v, want a 32-bit ARM one", f.Class, f.Machine)
	}
}
