package packaging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pushgate/pushgate/internal/testenv"
)

// What the package installs and creates.
const (
	pkgName     = "pushgate"
	account     = "pushgate" // user and group
	unitName    = "pushgate.service"
	binPath     = "/usr/bin/pushgate"
	unitPath    = "/usr/lib/systemd/system/pushgate.service"
	defaultPath = "/etc/default/pushgate"
	dataDir     = "/var/lib/pushgate"
	dataFile    = "/var/lib/pushgate/pushgate.db"
	// deb-systemd-helper enables the unit without a running systemd too;
	// purge removes the link and the helper's record of it.
	wantsLink = "/etc/systemd/system/multi-user.target.wants/pushgate.service"
	dshState  = "/var/lib/systemd/deb-systemd-helper-enabled/pushgate.service.dsh-also"
)

// The series the first run pushes, and the one it imports from a
// persistence file of the reference, as README "Packaging" says to do when
// switching from prometheus-pushgateway; every later run expects both.
const (
	pushPath      = "/metrics/job/deb_test"
	pushBody      = "deb_test_pushed 42\n"
	referenceFile = "../internal/gobfile/testdata/reference-v1.5.1.good.gob" // has temperature 20, job sensor
	importFile    = "/var/lib/pushgate/pushgateway.data"
)

// The series every run after the first checks.
func requireData(t *testing.T, g *gateway) {
	t.Helper()
	g.requireSeries(t, "deb_test_pushed", "deb_test", "42")
	g.requireSeries(t, "temperature", "sensor", "20")
}

// TestDeb builds the package twice with `make deb` (the second with a higher
// version) and takes it through its life on this machine: install; the
// pushgate user, /var/lib/pushgate and the conffile; the installed unit
// (systemd-analyze verify, and the same as contrib/pushgate.service); the
// binary run as the unit runs it (its ExecStart, as its user, with the ARGS
// of /etc/default/pushgate) imports a reference's persistence file, takes a
// push and serves both; remove keeps the data; reinstall and upgrade serve
// it again; purge. With a running systemd
// the service is also started by systemd.
//
// It needs root or `sudo -n`, dpkg, make, setpriv and systemd-analyze
// (Debian package systemd); without them it is skipped, except with
// CI=true, where it fails. It refuses a machine that already has a pushgate
// package, user, group or /var/lib/pushgate, and leaves none behind, even
// when it fails. It is the only test that installs packages, and it uses its
// own ports, so it runs beside the other packages' tests.
func TestDeb(t *testing.T) {
	m := newMachine(t)
	m.requireClean(t)

	dist := t.TempDir()
	first := makeDeb(t, filepath.Join(dist, "first"), "")
	second := makeDeb(t, filepath.Join(dist, "second"), first.version+"+1")
	if err := exec.Command("dpkg", "--compare-versions", second.version, "gt", first.version).Run(); err != nil {
		t.Fatalf("the upgrade's version %s is not higher than %s", second.version, first.version)
	}

	// From here on the machine changes; put it back whatever happens.
	t.Cleanup(func() { m.restore(t) })
	if m.systemd {
		// postinst would start the service on :9091 with the packaged
		// ARGS; a runtime mask keeps it down until the "service" step.
		m.run(t, "systemctl", "mask", "--runtime", unitName)
		m.masked = true
	}

	var uid string // of the first install, kept by the others
	// reinstall installs deb over the package (what names the step in the
	// messages): the changed conffile, the account and the data stay.
	reinstall := func(deb debFile, what string) func(t *testing.T) {
		return func(t *testing.T) {
			args := readFile(t, defaultPath)
			m.run(t, "dpkg", "-i", deb.path)
			m.requireStatus(t, "ii", deb.version)
			if got := readFile(t, defaultPath); got != args {
				t.Errorf("%s replaced the changed conffile %s:\n%s", what, defaultPath, got)
			}
			if got := m.checkAccount(t); got != uid {
				t.Errorf("uid of pushgate after %s: %s, was %s", what, got, uid)
			}
			m.checkLayout(t)
			g := m.startGateway(t)
			requireData(t, g)
			g.stop(t)
		}
	}
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"install", func(t *testing.T) {
			m.run(t, "dpkg", "-i", first.path)
			m.requireStatus(t, "ii", first.version)
			uid = m.checkAccount(t)
			m.checkLayout(t)
			if !m.exists(t, wantsLink) {
				t.Errorf("%s is missing: postinst did not enable the unit", wantsLink)
			}
		}},
		{"unit", func(t *testing.T) {
			m.run(t, "systemd-analyze", "verify", unitPath)
			installed := readFile(t, unitPath)
			repo := readFile(t, filepath.Join("..", "contrib", "pushgate.service"))
			// What `make deb` changes, and nothing else.
			repo = strings.Replace(repo, "\nExecStart=/usr/local/bin/", "\nExecStart=/usr/bin/", 1)
			if a, b := unitBody(installed), unitBody(repo); a != b {
				t.Errorf("%s differs from contrib/pushgate.service beyond ExecStart and comments:\n%s\n--- repo:\n%s", unitPath, a, b)
			}
		}},
		{"run", func(t *testing.T) {
			src, err := filepath.Abs(referenceFile)
			if err != nil {
				t.Fatal(err)
			}
			m.run(t, "install", "-o", account, "-g", account, "-m", "0640", src, importFile)
			g := m.startGateway(t, "--persistence.file="+importFile)
			g.requireSeries(t, "temperature", "sensor", "20")
			g.push(t)
			requireData(t, g)
			g.stop(t)
			// Written by the gateway, so it ran as the pushgate user.
			if got := m.stat(t, dataFile); got != "regular file pushgate pushgate" {
				t.Errorf("%s: %q, want a file of pushgate:pushgate", dataFile, got)
			}
		}},
		{"remove", func(t *testing.T) {
			args := readFile(t, defaultPath)
			m.run(t, "dpkg", "-r", pkgName)
			m.requireStatus(t, "rc", first.version)
			if m.exists(t, binPath) || m.exists(t, unitPath) {
				t.Errorf("%s or %s is still there after dpkg -r", binPath, unitPath)
			}
			if got := m.stat(t, dataFile); !strings.HasPrefix(got, "regular file pushgate") {
				t.Errorf("%s after dpkg -r: %q, want it kept", dataFile, got)
			}
			if got := readFile(t, defaultPath); got != args {
				t.Errorf("dpkg -r changed the conffile %s:\n%s", defaultPath, got)
			}
			if got := m.checkAccount(t); got != uid {
				t.Errorf("uid of pushgate after dpkg -r: %s, was %s", got, uid)
			}
		}},
		{"reinstall", reinstall(first, "reinstalling")},
		{"upgrade", reinstall(second, "the upgrade")},
		{"service", func(t *testing.T) {
			if !m.systemd {
				t.Skip("systemd is not running (no /run/systemd/system): the other steps ran the unit's command themselves")
			}
			m.run(t, "systemctl", "unmask", "--runtime", unitName)
			m.masked = false
			addr := m.setListenAddress(t)
			m.run(t, "systemctl", "restart", unitName)
			t.Cleanup(func() {
				if t.Failed() {
					out, _ := m.try("journalctl", "--no-pager", "-n", "50", "-u", unitName)
					t.Logf("journal of %s:\n%s", unitName, out)
				}
				m.try("systemctl", "stop", unitName)
			})
			g := &gateway{addr: addr}
			g.waitReady(t, nil)
			requireData(t, g)
			m.run(t, "systemctl", "stop", unitName)
		}},
		{"purge", func(t *testing.T) {
			m.run(t, "dpkg", "--purge", pkgName)
			if m.installed(t) {
				t.Errorf("dpkg --purge left the package known to dpkg")
			}
			for _, path := range []string{binPath, unitPath, defaultPath, wantsLink, dshState} {
				if m.exists(t, path) {
					t.Errorf("%s is still there after dpkg --purge", path)
				}
			}
			// Kept on purge too (see scripts/postrm); restore deletes them.
			if !m.exists(t, dataFile) {
				t.Errorf("dpkg --purge deleted %s", dataFile)
			}
			if got := m.checkAccount(t); got != uid {
				t.Errorf("uid of pushgate after purge: %s, was %s", got, uid)
			}
		}},
	}
	for _, s := range steps {
		// Each step starts from where the last one left the machine.
		if !t.Run(s.name, s.run) {
			break
		}
	}
}

// machine runs the privileged commands of the test: directly as root, else
// through `sudo -n`.
type machine struct {
	sudo    bool
	systemd bool // systemd is the running init system
	masked  bool // the test masked the unit (systemctl mask --runtime)
}

func newMachine(t *testing.T) *machine {
	t.Helper()
	for _, prog := range []string{"dpkg", "dpkg-deb", "dpkg-query", "make", "setpriv", "systemd-analyze"} {
		if _, err := exec.LookPath(prog); err != nil {
			testenv.Missing(t, "%s is not installed (systemd-analyze: Debian package systemd): %v", prog, err)
		}
	}
	m := &machine{}
	if os.Geteuid() != 0 {
		if out, err := exec.Command("sudo", "-n", "true").CombinedOutput(); err != nil {
			testenv.Missing(t, "installing a package needs root or sudo -n: %v %s", err, out)
		}
		m.sudo = true
	}
	if st, err := os.Stat("/run/systemd/system"); err == nil && st.IsDir() {
		m.systemd = true
	}
	return m
}

// command returns the privileged command name args.
func (m *machine) command(name string, args ...string) *exec.Cmd {
	if m.sudo {
		return exec.Command("sudo", append([]string{"-n", "--", name}, args...)...)
	}
	return exec.Command(name, args...)
}

// try runs a privileged command and returns its combined output.
func (m *machine) try(name string, args ...string) (string, error) {
	// No input: dpkg must never wait for an answer (a conffile prompt fails).
	cmd := m.command(name, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// run is try that fails the test.
func (m *machine) run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := m.try(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// exists reports whether path exists (not following a last symlink), also
// in directories the test's user may not read.
func (m *machine) exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := m.try("test", "-e", path)
	if err == nil {
		return true
	}
	_, err = m.try("test", "-L", path)
	return err == nil
}

// stat returns "<type> <owner> <group>" of path, or "" when it is missing.
func (m *machine) stat(t *testing.T, path string) string {
	t.Helper()
	if !m.exists(t, path) {
		return ""
	}
	return strings.TrimSpace(m.run(t, "stat", "-c", "%F %U %G", path))
}

// installed reports whether dpkg knows the package in any state but "not
// installed" (so config-files counts).
func (m *machine) installed(t *testing.T) bool {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Abbrev}", pkgName).Output()
	return err == nil && len(out) >= 2 && out[1] != 'n'
}

// requireStatus fails unless dpkg has the package in state abbrev ("ii",
// "rc") at version.
func (m *machine) requireStatus(t *testing.T, abbrev, version string) {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Abbrev}|${Version}", pkgName).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-query %s: %v\n%s", pkgName, err, out)
	}
	if got, want := strings.Replace(string(out), " |", "|", 1), abbrev+"|"+version; got != want {
		t.Fatalf("dpkg status|version of %s: %q, want %q", pkgName, got, want)
	}
}

// getent returns the entry of name in database db, or "" when there is none.
func getent(t *testing.T, db, name string) string {
	t.Helper()
	out, err := exec.Command("getent", db, name).Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 2 {
		return ""
	}
	if err != nil {
		t.Fatalf("getent %s %s: %v", db, name, err)
	}
	return strings.TrimSpace(string(out))
}

// requireClean stops the test on a machine where it would change or delete
// a pushgate that is not its own.
func (m *machine) requireClean(t *testing.T) {
	t.Helper()
	var found []string
	if m.installed(t) {
		found = append(found, "the package pushgate")
	}
	if getent(t, "passwd", account) != "" {
		found = append(found, "the user pushgate")
	}
	if getent(t, "group", account) != "" {
		found = append(found, "the group pushgate")
	}
	for _, path := range []string{dataDir, defaultPath, binPath, unitPath, wantsLink, dshState} {
		if m.exists(t, path) {
			found = append(found, path)
		}
	}
	if len(found) > 0 {
		testenv.Missing(t, "a machine without pushgate: this one has %s, which the test would delete "+
			"(when it is a test's leftover: dpkg --purge pushgate; userdel pushgate; groupdel pushgate; rm -r %s)",
			strings.Join(found, ", "), dataDir)
	}
}

// restore puts the machine back as requireClean found it: no package, user,
// group or data directory.
func (m *machine) restore(t *testing.T) {
	if m.installed(t) {
		if out, err := m.try("dpkg", "--purge", pkgName); err != nil {
			t.Errorf("restore: dpkg --purge %s: %v\n%s", pkgName, err, out)
		}
	}
	if m.masked {
		if out, err := m.try("systemctl", "unmask", "--runtime", unitName); err != nil {
			t.Errorf("restore: systemctl unmask --runtime %s: %v\n%s", unitName, err, out)
		}
	}
	if getent(t, "passwd", account) != "" {
		if out, err := m.try("/usr/sbin/userdel", account); err != nil {
			t.Errorf("restore: userdel %s: %v\n%s", account, err, out)
		}
	}
	// userdel removes the group too when it is the user's own.
	if getent(t, "group", account) != "" {
		if out, err := m.try("/usr/sbin/groupdel", account); err != nil {
			t.Errorf("restore: groupdel %s: %v\n%s", account, err, out)
		}
	}
	if out, err := m.try("rm", "-rf", "--", dataDir); err != nil {
		t.Errorf("restore: rm -rf %s: %v\n%s", dataDir, err, out)
	}
	for _, path := range []string{defaultPath, binPath, unitPath, wantsLink, dshState} {
		if m.exists(t, path) {
			t.Errorf("restore: %s is still there", path)
		}
	}
}

// checkAccount checks the pushgate user and group, and returns the uid.
func (m *machine) checkAccount(t *testing.T) string {
	t.Helper()
	// name:password:uid:gid:gecos:home:shell
	user := strings.Split(getent(t, "passwd", account), ":")
	group := strings.Split(getent(t, "group", account), ":")
	if len(user) != 7 || len(group) < 3 {
		t.Fatalf("getent: user %q, group %q; want both", user, group)
	}
	if user[3] != group[2] {
		t.Errorf("the user's group is %s, want pushgate's, %s", user[3], group[2])
	}
	if uid, err := strconv.Atoi(user[2]); err != nil || uid == 0 || uid >= 1000 {
		t.Errorf("uid %s, want a system user's", user[2])
	}
	if user[5] != dataDir || user[6] != "/usr/sbin/nologin" {
		t.Errorf("home %s, shell %s; want %s and /usr/sbin/nologin", user[5], user[6], dataDir)
	}
	return user[2]
}

// checkLayout checks the installed files, the conffile and the data
// directory.
func (m *machine) checkLayout(t *testing.T) {
	t.Helper()
	list, err := exec.Command("dpkg-query", "-L", pkgName).Output()
	if err != nil {
		t.Fatalf("dpkg-query -L %s: %v", pkgName, err)
	}
	for _, path := range []string{binPath, unitPath, defaultPath} {
		if !strings.Contains("\n"+string(list), "\n"+path+"\n") {
			t.Errorf("dpkg -L %s does not list %s:\n%s", pkgName, path, list)
		}
	}
	conffiles, err := exec.Command("dpkg-query", "-W", "-f=${Conffiles}", pkgName).Output()
	if err != nil {
		t.Fatalf("dpkg-query Conffiles: %v", err)
	}
	if fields := strings.Fields(string(conffiles)); len(fields) != 2 || fields[0] != defaultPath {
		t.Errorf("conffiles: %q, want %s only", conffiles, defaultPath)
	}
	if got := m.stat(t, dataDir); got != "directory pushgate pushgate" {
		t.Errorf("%s: %q, want a directory of pushgate:pushgate", dataDir, got)
	}
	if got := strings.TrimSpace(m.run(t, "stat", "-c", "%a", dataDir)); got != "750" {
		t.Errorf("mode of %s: %s, want 750", dataDir, got)
	}
	if out, err := exec.Command(binPath, "--version").CombinedOutput(); err != nil || !strings.Contains(string(out), "version") {
		t.Errorf("%s --version: %v\n%s", binPath, err, out)
	}
}

// setListenAddress sets ARGS in /etc/default/pushgate to listen on a free
// port of 127.0.0.1 (9091 may be taken, and other tests run meanwhile),
// followed by flags, and returns the address.
func (m *machine) setListenAddress(t *testing.T, flags ...string) string {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	args := strings.Join(append([]string{"--web.listen-address=" + addr}, flags...), " ")
	text := readFile(t, defaultPath)
	var out []string
	found := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "ARGS=") {
			line = `ARGS="` + args + `"`
			found = true
		}
		out = append(out, line)
	}
	if !found {
		t.Fatalf("%s has no ARGS= line:\n%s", defaultPath, text)
	}
	cmd := m.command("tee", defaultPath)
	cmd.Stdin = strings.NewReader(strings.Join(out, "\n"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("write %s: %v\n%s", defaultPath, err, b)
	}
	return addr
}

// gateway is a pushgate started as its unit would start it.
type gateway struct {
	addr string
	m    *machine
	cmd  *exec.Cmd // nil when systemd runs it
	out  *testenv.SyncBuffer
	done chan struct{} // closed when cmd has exited
	err  error         // of cmd.Wait, once done is closed
}

// startGateway sets a free listen address and flags as ARGS in
// /etc/default/pushgate and runs the ExecStart line of the installed unit as
// its User and Group, in its WorkingDirectory, with the ARGS of its
// EnvironmentFile. It waits until the gateway is ready; a cleanup stops it.
func (m *machine) startGateway(t *testing.T, flags ...string) *gateway {
	t.Helper()
	addr := m.setListenAddress(t, flags...)
	svc := parseService(t, readFile(t, unitPath))
	env := parseEnvironment(readFile(t, strings.TrimPrefix(svc["EnvironmentFile"], "-")))
	var argv []string
	for _, word := range strings.Fields(svc["ExecStart"]) {
		switch {
		case word == "$ARGS":
			// systemd splits an unbraced variable at white space.
			argv = append(argv, strings.Fields(env["ARGS"])...)
		case strings.Contains(word, "$"):
			t.Fatalf("ExecStart: the test knows only $ARGS, not %s", word)
		default:
			argv = append(argv, word)
		}
	}
	if len(argv) == 0 || argv[0] != binPath {
		t.Fatalf("ExecStart of %s: %q, want %s first", unitPath, svc["ExecStart"], binPath)
	}
	// env and setpriv exec, so as root the process started is pushgate
	// itself; with sudo it is sudo's child, in the group of processes that
	// stop signals.
	wrapped := append([]string{
		"--ignore-environment", "--chdir=" + svc["WorkingDirectory"], "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		// A change of user clears the parent-death signal; setpriv sets it
		// again, so a killed test leaves no gateway behind.
		"setpriv", "--reuid=" + svc["User"], "--regid=" + svc["Group"], "--init-groups", "--pdeathsig=KILL", "--",
	}, argv...)
	g := &gateway{addr: addr, m: m, out: &testenv.SyncBuffer{}, done: make(chan struct{})}
	g.cmd = m.command("env", wrapped...)
	g.cmd.Stdout, g.cmd.Stderr = g.out, g.out
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", g.cmd, err)
	}
	go func() {
		g.err = g.cmd.Wait()
		close(g.done)
	}()
	t.Cleanup(func() {
		g.kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", g.cmd, g.out)
		}
	})
	g.waitReady(t, g.done)
	return g
}

// waitReady waits until /-/ready answers 200, or exited is closed.
func (g *gateway) waitReady(t *testing.T, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + g.addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("the gateway exited before it was ready: %v\n%s", g.err, g.out)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway on %s is not ready after 30 s (last: %v)", g.addr, err)
		}
	}
}

// signal sends sig to the gateway's process group (a group the test made).
func (g *gateway) signal(sig syscall.Signal) error {
	pgid := g.cmd.Process.Pid
	if g.m.sudo {
		return g.m.command("kill", "-s", strconv.Itoa(int(sig)), "--", "-"+strconv.Itoa(pgid)).Run()
	}
	return syscall.Kill(-pgid, sig)
}

// stop ends the gateway with SIGTERM, as systemd does (KillSignal), and
// fails unless it exits cleanly within the unit's TimeoutStopSec.
func (g *gateway) stop(t *testing.T) {
	t.Helper()
	if err := g.signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to the gateway: %v", err)
	}
	select {
	case <-g.done:
		if g.err != nil {
			t.Fatalf("the gateway exited with %v after SIGTERM:\n%s", g.err, g.out)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the gateway did not exit within 60 s of SIGTERM:\n%s", g.out)
	}
}

// kill makes sure the gateway is gone (cleanup).
func (g *gateway) kill() {
	select {
	case <-g.done:
		return
	default:
	}
	_ = g.signal(syscall.SIGKILL)
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
	}
}

// push puts the test's group, as curl --data-binary with -X PUT would.
func (g *gateway) push(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+g.addr+pushPath, strings.NewReader(pushBody))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT %s: %v", pushPath, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s: %s %s", pushPath, resp.Status, body)
	}
}

// requireSeries fails unless /metrics serves a series name{...} of the job
// with value.
func (g *gateway) requireSeries(t *testing.T, name, job, value string) {
	t.Helper()
	resp, err := http.Get("http://" + g.addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s %v", resp.Status, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name+"{") && strings.Contains(line, `job="`+job+`"`) && strings.HasSuffix(line, " "+value) {
			return
		}
	}
	t.Fatalf("GET /metrics has no %s{job=%q} %s:\n%s", name, job, value, body)
}

// parseService returns the settings of the unit's [Service] section (the
// last value of a key wins; the test needs single-valued ones only).
func parseService(t *testing.T, unit string) map[string]string {
	t.Helper()
	svc := map[string]string{}
	section := ""
	for _, line := range strings.Split(unit, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			if k, v, ok := strings.Cut(line, "="); ok {
				svc[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
	}
	for _, k := range []string{"ExecStart", "User", "Group", "WorkingDirectory", "EnvironmentFile"} {
		if svc[k] == "" {
			t.Fatalf("the unit has no %s= in [Service]", k)
		}
	}
	return svc
}

// parseEnvironment reads an EnvironmentFile of simple NAME=value and
// NAME="value" lines, which is what /etc/default/pushgate holds.
func parseEnvironment(text string) map[string]string {
	env := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			env[k] = v
		}
	}
	return env
}

// unitBody is a unit without comments and blank lines.
func unitBody(unit string) string {
	var b strings.Builder
	for _, line := range strings.Split(unit, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

type debFile struct {
	path, version, arch string
}

// makeDeb runs `make deb` with DIST=dist and, unless empty, DEB_VERSION, in
// this environment with env added (e.g. GOARCH=arm), and checks the name of
// the one package it makes.
func makeDeb(t *testing.T, dist, version string, env ...string) debFile {
	t.Helper()
	args := []string{"-C", "..", "deb", "DIST=" + dist, "BINARY=" + filepath.Join(dist, "pushgate")}
	if version != "" {
		args = append(args, "DEB_VERSION="+version)
	}
	cmd := exec.Command("make", args...)
	// Run as a make of its own, not as a part of a `make test` above.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "MAKEFLAGS" && k != "MFLAGS" && k != "MAKELEVEL" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("make deb DIST=%s: %v", dist, time.Since(start).Round(time.Second))
	debs, _ := filepath.Glob(filepath.Join(dist, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %q, want one package", debs)
	}
	field := func(name string) string {
		b, err := exec.Command("dpkg-deb", "--field", debs[0], name).Output()
		if err != nil {
			t.Fatalf("dpkg-deb --field %s %s: %v", debs[0], name, err)
		}
		return strings.TrimSpace(string(b))
	}
	d := debFile{path: debs[0], version: field("Version"), arch: field("Architecture")}
	if version != "" && d.version != version {
		t.Errorf("version %s, want DEB_VERSION %s", d.version, version)
	}
	if want := fmt.Sprintf("pushgate_%s_%s.deb", d.version, d.arch); filepath.Base(d.path) != want {
		t.Errorf("package %s, want %s", filepath.Base(d.path), want)
	}
	return d
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
