package e2e

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// accessConfig writes a --web.access-config file: admin "alice", read-only
// "grafana", the token "billing-token" (push to billing-.*) and, when
// anonRead, anonymous read access.
func accessConfig(t *testing.T, anonRead bool) string {
	t.Helper()
	hash := func(pass string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	sum := sha256.Sum256([]byte("billing-token"))
	cfg := fmt.Sprintf(`users:
  alice: {password_hash: %q, role: admin}
  grafana: {password_hash: %q, role: read}
tokens:
  - name: billing-ci
    sha256: %s
    push: ['job=~"billing-.*"']
`, hash("alice-pass"), hash("grafana-pass"), hex.EncodeToString(sum[:]))
	if anonRead {
		cfg += "anonymous: {role: read}\n"
	}
	path := filepath.Join(t.TempDir(), "access.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func basicAuth(user, pass string) map[string]string {
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}
}

var (
	billingAuth = map[string]string{"Authorization": "Bearer billing-token"}
	aliceAuth   = basicAuth("alice", "alice-pass")
	grafanaAuth = basicAuth("grafana", "grafana-pass")
)

func TestAccessScopes(t *testing.T) {
	requirePushgate(t, "--web.access-config")
	g := startGateway(t, subject, "--web.access-config="+accessConfig(t, false), "--web.enable-admin-api", "--storage.in-memory")
	body := []byte("access_test_metric 1\n")
	scrape := func() string {
		t.Helper()
		r := g.do(t, http.MethodGet, "/metrics", grafanaAuth, nil)
		if r.status != http.StatusOK {
			t.Fatalf("scrape as grafana: %s", r)
		}
		return string(r.body)
	}
	expect := func(what string, r response, status int, bodyHas string) {
		t.Helper()
		if r.status != status || !strings.Contains(string(r.body), bodyHas) {
			t.Errorf("%s: got %s, want %d containing %q", what, r, status, bodyHas)
		}
	}

	expect("billing token pushes to billing-x",
		g.do(t, http.MethodPut, "/metrics/job/billing-x", billingAuth, body), http.StatusOK, "")
	expect("billing token pushes to payments",
		g.do(t, http.MethodPut, "/metrics/job/payments", billingAuth, body), http.StatusForbidden,
		`token "billing-ci" may not push to {job="payments"}`)
	expect("billing token deletes payments",
		g.do(t, http.MethodDelete, "/metrics/job/payments", billingAuth, nil), http.StatusForbidden, "may not delete")
	if s := scrape(); !strings.Contains(s, `access_test_metric{instance="",job="billing-x"} 1`) || strings.Contains(s, `job="payments"`) {
		t.Fatalf("after the pushes, want billing-x and no payments:\n%s", s)
	}
	expect("billing token scrapes", g.do(t, http.MethodGet, "/metrics", billingAuth, nil), http.StatusForbidden, "may not read")

	expect("grafana opens the UI", g.do(t, http.MethodGet, "/", grafanaAuth, nil), http.StatusOK, "billing-x")
	expect("grafana reads the API", g.do(t, http.MethodGet, "/api/v1/metrics", grafanaAuth, nil), http.StatusOK, "billing-x")
	expect("grafana pushes", g.do(t, http.MethodPut, "/metrics/job/billing-x", grafanaAuth, body), http.StatusForbidden,
		`user "grafana" may not push to {job="billing-x"}`)
	expect("grafana wipes", g.do(t, http.MethodPut, "/api/v1/admin/wipe", grafanaAuth, nil), http.StatusForbidden, "may not")

	for _, path := range []string{"/metrics", "/", "/api/v1/status"} {
		r := g.do(t, http.MethodGet, path, nil, nil)
		expect("no credentials: GET "+path, r, http.StatusUnauthorized, "")
		if !strings.Contains(strings.Join(r.header.Values("WWW-Authenticate"), ","), `Basic realm="pushgate"`) {
			t.Errorf("GET %s: no basic auth challenge: %v", path, r.header)
		}
	}
	expect("wrong password", g.do(t, http.MethodGet, "/metrics", basicAuth("grafana", "x"), nil), http.StatusUnauthorized, "")
	expect("healthy without credentials", g.do(t, http.MethodGet, "/-/healthy", nil, nil), http.StatusOK, "")

	expect("alice wipes", g.do(t, http.MethodPut, "/api/v1/admin/wipe", aliceAuth, nil), http.StatusAccepted, "")
	deadline := time.Now().Add(2 * time.Second)
	for strings.Contains(scrape(), "access_test_metric") {
		if time.Now().After(deadline) {
			t.Fatal("groups still there after the wipe")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAccessAnonymousRead(t *testing.T) {
	requirePushgate(t, "--web.access-config")
	g := startGateway(t, subject, "--web.access-config="+accessConfig(t, true), "--storage.in-memory", "--web.route-prefix=/pg")
	if r := g.do(t, http.MethodPut, "/pg/metrics/job/billing-x", billingAuth, []byte("m 1\n")); r.status != http.StatusOK {
		t.Fatalf("push below the route prefix: %s", r)
	}
	if s := g.pushed(t); !strings.Contains(s, `job="billing-x"`) { // scrape without credentials
		t.Fatalf("anonymous scrape lacks the group:\n%s", s)
	}
	if r := g.do(t, http.MethodPut, "/pg/metrics/job/billing-y", nil, []byte("m 1\n")); r.status != http.StatusUnauthorized {
		t.Fatalf("anonymous push: %s, want 401", r)
	}
}

func TestAccessTLS(t *testing.T) {
	requirePushgate(t, "--web.access-config")
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(dir, "web.yml")
	writeWeb := func(basicUsers string) {
		cfg := fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n%s", certFile, keyFile, basicUsers)
		if err := os.WriteFile(webConfig, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	start := func() func(method, path string, hdr map[string]string) int {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		startProcess(t, "subject", subjectBin, "--web.listen-address="+addr, "--web.config.file="+webConfig,
			"--web.access-config="+accessConfig(t, false), "--storage.in-memory")
		send := func(method, path string, hdr map[string]string) int {
			req, err := http.NewRequest(method, "https://"+addr+path, strings.NewReader("access_tls 1\n"))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				return 0
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			return resp.StatusCode
		}
		for deadline := time.Now().Add(readyTimeout); send(http.MethodGet, "/-/ready", aliceAuth) != http.StatusOK; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("gateway with TLS did not become ready")
			}
		}
		return send
	}

	writeWeb("")
	send := start()
	for _, c := range []struct {
		what         string
		method, path string
		hdr          map[string]string
		want         int
	}{
		{"token push in scope", http.MethodPut, "/metrics/job/billing-tls", billingAuth, http.StatusOK},
		{"token push out of scope", http.MethodPut, "/metrics/job/payments", billingAuth, http.StatusForbidden},
		{"read user scrapes", http.MethodGet, "/metrics", grafanaAuth, http.StatusOK},
		{"no credentials", http.MethodGet, "/metrics", nil, http.StatusUnauthorized},
	} {
		if got := send(c.method, c.path, c.hdr); got != c.want {
			t.Errorf("TLS, %s: %d, want %d", c.what, got, c.want)
		}
	}

	// With exporter-toolkit's basic_auth_users as well, both apply: only
	// alice is in both.
	writeWeb(fmt.Sprintf("basic_auth_users:\n  alice: %s\n", hash))
	send = start()
	for _, c := range []struct {
		what string
		hdr  map[string]string
		want int
	}{
		{"alice (in both)", aliceAuth, http.StatusOK},
		{"grafana (not in web config)", grafanaAuth, http.StatusUnauthorized},
		{"token (web config wants basic auth)", billingAuth, http.StatusUnauthorized},
	} {
		if got := send(http.MethodPut, "/metrics/job/billing-tls", c.hdr); got != c.want {
			t.Errorf("TLS and basic_auth_users, %s: %d, want %d", c.what, got, c.want)
		}
	}
}

func TestAccessBadConfig(t *testing.T) {
	requirePushgate(t, "--web.access-config")
	path := filepath.Join(t.TempDir(), "access.yml")
	if err := os.WriteFile(path, []byte("users:\n  bob: {password_hash: plain, role: root}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, "subject", subjectBin, "--web.listen-address=127.0.0.1:0", "--web.access-config="+path, "--storage.in-memory")
	if err := p.waitExit(readyTimeout); err != nil || p.err == nil {
		t.Fatalf("want a failed start with a bad access config: %v, exit %v", err, p.err)
	}
	out := p.out.String()
	for _, want := range []string{"load --web.access-config", `user "bob": password_hash is not a bcrypt hash`, `user "bob": unknown role "root"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
