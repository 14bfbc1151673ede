package etcdtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/pushgate/pushgate/internal/testenv"
)

const (
	// EnvBinary names the etcd binary Start uses when Options.Binary is empty.
	EnvBinary = "PUSHGATE_ETCD_BIN"
	// EnvCache overrides where the v3.7 build is cached (default: the user
	// cache directory, then pushgate-etcd).
	EnvCache = "PUSHGATE_ETCD_CACHE"

	// aptPackage is what .ci/run installs; named in the failure message.
	aptPackage = "etcd-server"
	// nestedModule is the directory, relative to this package, of the Go
	// module whose main is etcd v3.7.
	nestedModule = "etcd37"
)

// Binary is one etcd server program the tests can run.
type Binary struct {
	Name string // "etcd-" + the version it reports, such as "etcd-3.4.23"
	Path string // absolute path of the executable
}

// missing skips tb, or fails it under CI=true (testenv.Missing), because an
// etcd binary is not available.
func missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	testenv.Missing(tb, "etcd: %s (install the Debian package %s, or set %s)",
		fmt.Sprintf(format, args...), aptPackage, EnvBinary)
}

// DefaultBinary returns the etcd that Start runs when Options.Binary is
// empty: $PUSHGATE_ETCD_BIN, else etcd on PATH. Without one it skips tb, or
// fails it under CI=true.
func DefaultBinary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv(EnvBinary); p != "" {
		abs, err := exec.LookPath(p)
		if err != nil {
			missing(tb, "%s=%s: %v", EnvBinary, p, err)
		}
		return abs
	}
	p, err := exec.LookPath("etcd")
	if err != nil {
		missing(tb, "no etcd on PATH")
	}
	return p
}

// Binaries returns every etcd the replication tests must pass against: the
// default one (Debian's 3.4 in CI, see DefaultBinary) and etcd v3.7 built
// from the module proxy by BuildV37. A version that cannot be had skips
// the test, or fails it under CI=true; locally a failed v3.7 build is only
// logged, so the default binary is still tested. Two entries that report
// the same version are returned once.
func Binaries(tb testing.TB) []Binary {
	tb.Helper()
	var out []Binary
	add := func(path string) error {
		v, err := Version(path)
		if err != nil {
			return err
		}
		for _, b := range out {
			if b.Name == "etcd-"+v {
				return nil
			}
		}
		out = append(out, Binary{Name: "etcd-" + v, Path: path})
		return nil
	}
	if err := add(DefaultBinary(tb)); err != nil {
		missing(tb, "%v", err)
	}
	p, err := BuildV37()
	if err == nil {
		err = add(p)
	}
	if err != nil {
		if testenv.InCI() {
			tb.Fatalf("CI=true and etcd v3.7 is missing: %v", err)
		}
		tb.Logf("etcd v3.7 left out: %v", err)
	}
	return out
}

// Version runs `bin --version` and returns the server version it reports,
// such as "3.4.23".
func Version(bin string) (string, error) {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", bin, err)
	}
	for line := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(line, "etcd Version:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("%s --version: no version in %q", bin, out)
}

// BuildV37 returns the path of an etcd v3.7 server, building it on first
// use with `go build` from the nested module in etcd37/ (its go.mod pins the
// exact version) and caching it under $PUSHGATE_ETCD_CACHE or the user
// cache directory. The cache entry is keyed by a hash of that module's
// files, so a version bump builds afresh. Concurrent test processes
// serialise on a lock file, and the build is renamed into place only when
// complete, so nobody runs a half-written binary.
func BuildV37() (string, error) {
	modDir, err := nestedModuleDir()
	if err != nil {
		return "", fmt.Errorf("find etcd v3.7 module: %w", err)
	}
	version, key, err := moduleKey(modDir)
	if err != nil {
		return "", fmt.Errorf("read etcd v3.7 module: %w", err)
	}
	root := os.Getenv(EnvCache)
	if root == "" {
		// Without $HOME (some CI shells) fall back to the temp directory:
		// a rebuild per machine is better than no v3.7 at all.
		c, err := os.UserCacheDir()
		if err != nil {
			c = os.TempDir()
		}
		root = filepath.Join(c, "pushgate-etcd")
	}
	dir := filepath.Join(root, version+"-"+key)
	bin := filepath.Join(dir, "etcd")
	if isExecutable(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create cache: %w", err)
	}
	unlock, err := lockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return "", fmt.Errorf("lock cache: %w", err)
	}
	defer unlock()
	// Another process may have finished the build while we waited.
	if isExecutable(bin) {
		return bin, nil
	}
	if err := goBuild(modDir, dir, bin); err != nil {
		return "", fmt.Errorf("build etcd %s: %w", version, err)
	}
	return bin, nil
}

// goBuild builds the module in modDir into a temporary directory inside dir
// and renames the result to bin.
func goBuild(modDir, dir, bin string) (err error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(tmp)) }()
	out := filepath.Join(tmp, "etcd")
	cmd := exec.Command(goBin, "build", "-trimpath", "-buildvcs=false", "-o", out, ".")
	cmd.Dir = modDir
	// The caller's flags (-race from `go test -race`, -mod=vendor, a
	// go.work) are for the test binary, not for this separate module.
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(b))
	}
	return os.Rename(out, bin)
}

// nestedModuleDir finds etcd37/ beside this file. The compiled-in source
// path works unless the test was built with -trimpath; then the root module
// found from the working directory (a package directory under `go test`)
// does.
func nestedModuleDir() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Join(filepath.Dir(file), nestedModule)
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the pushgate module")
	}
	dir := filepath.Join(filepath.Dir(gomod), "internal", "etcdtest", nestedModule)
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", err
	}
	return dir, nil
}

// moduleKey returns the etcd server version required by the module in dir
// and a short hash of the files that decide what gets built.
func moduleKey(dir string) (version, key string, err error) {
	h := sha256.New()
	for _, name := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", "", err
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
		if name != "go.mod" {
			continue
		}
		for line := range strings.Lines(string(b)) {
			f := strings.Fields(line)
			if len(f) >= 2 && f[len(f)-2] == "go.etcd.io/etcd/server/v3" {
				version = f[len(f)-1]
			}
		}
	}
	if version == "" {
		return "", "", fmt.Errorf("%s/go.mod requires no go.etcd.io/etcd/server/v3", dir)
	}
	return version, hex.EncodeToString(h.Sum(nil))[:12], nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
