package etcd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("secret", "s3cret\n")
	tests := []struct {
		name, yaml string
		check      func(t *testing.T, f File)
		err        string
	}{
		{name: "empty gives defaults", yaml: "", check: func(t *testing.T, f File) {
			if f.DialTimeout != defaultDialTimeout || f.RequestTimeout != defaultRequestTimeout {
				t.Errorf("timeouts %v %v", f.DialTimeout, f.RequestTimeout)
			}
		}},
		{name: "everything", yaml: "username: pg\npassword_file: secret\ndial_timeout: 2s\nrequest_timeout: 3s\ntls_config:\n  ca_file: ca.pem\n  server_name: etcd\n", check: func(t *testing.T, f File) {
			if f.Username != "pg" || f.DialTimeout != 2*time.Second || f.RequestTimeout != 3*time.Second {
				t.Errorf("got %+v", f)
			}
			if pw, err := f.password(); err != nil || pw != "s3cret" {
				t.Errorf("password %q, %v; want the file's, relative to the config", pw, err)
			}
			if f.TLS.CAFile != filepath.Join(dir, "ca.pem") || f.TLS.ServerName != "etcd" {
				t.Errorf("tls %+v: files relative to the config file", f.TLS)
			}
		}},
		{name: "password inline", yaml: "password: x\n", check: func(t *testing.T, f File) {
			if pw, _ := f.password(); pw != "x" {
				t.Errorf("password %q", pw)
			}
		}},
		{name: "both passwords", yaml: "password: x\npassword_file: secret\n", err: "at most one"},
		{name: "unknown field", yaml: "endpoints: [a]\n", err: "not found"},
		{name: "bad duration", yaml: "dial_timeout: soon\n", err: "soon"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := LoadFile(write("c.yml", tt.yaml))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, f)
		})
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.yml")); err == nil {
		t.Error("missing file: no error")
	}
}

func TestTLSConfig(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want bool
	}{
		{"plain", Config{Endpoints: []string{"http://a:2379"}}, false},
		{"https endpoint", Config{Endpoints: []string{"https://a:2379"}}, true},
	} {
		got, err := tt.cfg.tlsConfig()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if (got != nil) != tt.want {
			t.Errorf("%s: TLS %v, want %v", tt.name, got != nil, tt.want)
		}
	}
}
