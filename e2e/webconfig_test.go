package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestWebConfigBasicAuth runs the gateway behind exporter-toolkit's basic
// auth (--web.config.file, as the reference supports it): every endpoint
// needs the password, except health and readiness, which exporter-toolkit
// also protects.
func TestWebConfigBasicAuth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(dir, "web.yml")
	cfg := fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  ops: %s\n", certFile, keyFile, hash)
	if err := os.WriteFile(webConfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := startWithWebConfig(t, webConfig)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	send := func(method, path, user, pass, body string) int {
		req, err := http.NewRequest(method, "https://"+addr+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	for deadline := time.Now().Add(readyTimeout); send(http.MethodGet, "/-/ready", "ops", "s3cret", "") != http.StatusOK; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("gateway did not become ready")
		}
	}
	for _, ep := range []struct{ method, path, body string }{
		{http.MethodPut, "/metrics/job/webcfg", "webcfg_value 1\n"},
		{http.MethodGet, "/metrics", ""},
		{http.MethodGet, "/api/v1/status", ""},
		{http.MethodGet, "/", ""},
		{http.MethodDelete, "/metrics/job/webcfg", ""},
	} {
		for _, c := range []struct {
			who, user, pass string
			want            int
		}{
			{"no credentials", "", "", http.StatusUnauthorized},
			{"wrong password", "ops", "guess", http.StatusUnauthorized},
			{"unknown user", "eve", "s3cret", http.StatusUnauthorized},
		} {
			if got := send(ep.method, ep.path, c.user, c.pass, ep.body); got != c.want {
				t.Errorf("%s %s, %s: %d, want %d", ep.method, ep.path, c.who, got, c.want)
			}
		}
		if got := send(ep.method, ep.path, "ops", "s3cret", ep.body); got != http.StatusOK && got != http.StatusAccepted {
			t.Errorf("%s %s with the password: %d, want success", ep.method, ep.path, got)
		}
	}
	// Plain HTTP to the TLS port gets no answer from the application.
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr + "/metrics")
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP to the TLS listener answered 200")
		}
	}
}

// TestWebConfigMutualTLS requires client certificates: a client without
// one, or with one from another CA, is refused during the handshake; one
// signed by the configured CA pushes and scrapes.
func TestWebConfigMutualTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, caKey, caFile := writeCA(t, dir, "pushgate e2e CA")
	otherCA, otherKey, _ := writeCA(t, filepath.Join(dir, "other"), "other CA")
	serverCert, serverKey := writeSignedCert(t, dir, "server", ca, caKey, x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := writeSignedCert(t, dir, "client", ca, caKey, x509.ExtKeyUsageClientAuth)
	strangerCert, strangerKey := writeSignedCert(t, dir, "stranger", otherCA, otherKey, x509.ExtKeyUsageClientAuth)

	webConfig := filepath.Join(dir, "web.yml")
	cfg := fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: %s\n",
		serverCert, serverKey, caFile)
	if err := os.WriteFile(webConfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := startWithWebConfig(t, webConfig)

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	clientFor := func(certFile, keyFile string) *http.Client {
		tc := &tls.Config{RootCAs: pool}
		if certFile != "" {
			pair, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	}
	trusted := clientFor(clientCert, clientKey)
	for deadline := time.Now().Add(readyTimeout); ; time.Sleep(50 * time.Millisecond) {
		resp, err := trusted.Get("https://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway with mTLS did not become ready: %v", err)
		}
	}
	req, _ := http.NewRequest(http.MethodPut, "https://"+addr+"/metrics/job/mtls", strings.NewReader("mtls_value 1\n"))
	resp, err := trusted.Do(req)
	if err != nil {
		t.Fatalf("push with a trusted client certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("push with a trusted client certificate: %d", resp.StatusCode)
	}
	for _, c := range []struct {
		who    string
		client *http.Client
	}{
		{"no client certificate", clientFor("", "")},
		{"certificate of another CA", clientFor(strangerCert, strangerKey)},
	} {
		resp, err := c.client.Get("https://" + addr + "/metrics")
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: got %d, want the handshake refused", c.who, resp.StatusCode)
		}
	}
}

// startWithWebConfig starts the subject in memory behind a web config and
// returns its address (readiness is the caller's: it needs the credentials).
func startWithWebConfig(t testing.TB, webConfig string) string {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args := []string{"--web.listen-address=" + addr, "--web.config.file=" + webConfig}
	if isReferenceBinary(subjectBin) {
		args = append(args, "--persistence.file=")
	} else {
		args = append(args, "--storage.in-memory")
	}
	startProcess(t, "subject", subjectBin, args...)
	return addr
}

// writeCA creates a CA certificate in dir and returns it with its key and file.
func writeCA(t testing.TB, dir, name string) (*x509.Certificate, *ecdsa.PrivateKey, string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	der, key := issue(t, &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil, nil)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key, file
}

// writeSignedCert creates a certificate for 127.0.0.1 signed by ca, or
// self-signed when ca is nil.
func writeSignedCert(t testing.TB, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	der, key := issue(t, &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}, ca, caKey)
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	writeCertAndKey(t, certFile, keyFile, der, key)
	return certFile, keyFile
}

// issue signs tmpl for a new key, by parent with parentKey, or by itself
// when parent is nil. It returns the certificate (DER) and the key.
func issue(t testing.TB, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

// writeCertAndKey writes a DER certificate and its key as PEM files.
func writeCertAndKey(t testing.TB, certFile, keyFile string, der []byte, key *ecdsa.PrivateKey) {
	t.Helper()
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}
