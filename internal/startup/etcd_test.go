package startup_test

import (
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pushgate/pushgate/internal/etcd"
	"github.com/pushgate/pushgate/internal/etcdtest"
	"github.com/pushgate/pushgate/internal/startup"
)

// TestEtcdImportOnce: a replica started against an empty prefix imports the
// single-node storage (or else the reference's file) once; later starts,
// and starts against a prefix with groups, import nothing.
func TestEtcdImportOnce(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 1})
	prefix := func() string {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		return "/startup-" + hex.EncodeToString(b) + "/"
	}
	etcdOpts := func(p, dir, file string) startup.Options {
		return startup.Options{
			Dir:             dir,
			PersistenceFile: file,
			Etcd:            etcd.Config{Endpoints: c.Endpoints(), Prefix: p},
		}
	}
	check := func(t *testing.T, got []string, log string, want []string, wantLog string) {
		t.Helper()
		if want = slices.Sorted(slices.Values(want)); !slices.Equal(got, want) {
			t.Errorf("groups %v, want %v", got, want)
		}
		if !strings.Contains(log, wantLog) {
			t.Errorf("log does not say %q:\n%s", wantLog, log)
		}
	}

	t.Run("persistence file once", func(t *testing.T) {
		p, dir := prefix(), t.TempDir()
		file := filepath.Join(dir, "persistence.gob")
		copyFixture(t, "reference.good.gob", file)
		groups, log := restart(t, etcdOpts(p, filepath.Join(dir, "none"), file), start{remove: "job=fixture_a"})
		check(t, groups, log, []string{fixtureA, fixtureB}, "imported into etcd")
		// The group deleted after the import stays deleted.
		groups, log = restart(t, etcdOpts(p, filepath.Join(dir, "none"), file), start{})
		check(t, groups, log, []string{fixtureB}, "not importing")
	})
	t.Run("storage directory", func(t *testing.T) {
		dir := t.TempDir()
		// A single-node gateway's storage with one group.
		restart(t, startup.Options{Dir: dir}, start{push: "job=other"})
		groups, log := restart(t, etcdOpts(prefix(), dir, ""), start{})
		check(t, groups, log, []string{other}, "imported into etcd")
	})
	t.Run("not into a prefix with groups", func(t *testing.T) {
		p, dir := prefix(), t.TempDir()
		restart(t, etcdOpts(p, filepath.Join(dir, "none"), ""), start{push: "job=other"})
		file := filepath.Join(dir, "persistence.gob")
		copyFixture(t, "reference.good.gob", file)
		groups, log := restart(t, etcdOpts(p, filepath.Join(dir, "none"), file), start{})
		check(t, groups, log, []string{other}, "not importing")
	})
}
