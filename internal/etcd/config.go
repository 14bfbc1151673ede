// Package etcd keeps the gateway's groups in etcd, shared by replicas: it
// commits a replica's writes as conditional transactions and feeds every
// committed change, in etcd's order, back to the replica's store.
package etcd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	promconfig "github.com/prometheus/common/config"
	"go.yaml.in/yaml/v2"
)

// Config selects and reaches the etcd cluster.
type Config struct {
	// Endpoints are the client URLs of the cluster's members.
	Endpoints []string
	// Prefix is prepended to every key, so that several independent
	// gateways can share one cluster.
	Prefix string
	// MaxRequestBytes is the largest request the cluster accepts (its
	// --max-request-bytes); a group whose write would be larger is refused.
	MaxRequestBytes int
	File
}

// File is the YAML of --storage.etcd.config.file: what must not be on the
// command line.
type File struct {
	TLS          promconfig.TLSConfig `yaml:"tls_config"`
	Username     string               `yaml:"username"`
	Password     promconfig.Secret    `yaml:"password"`
	PasswordFile string               `yaml:"password_file"`
	// DialTimeout bounds connecting to a member, RequestTimeout one
	// request (a commit, a read).
	DialTimeout    time.Duration `yaml:"dial_timeout"`
	RequestTimeout time.Duration `yaml:"request_timeout"`
}

// Defaults.
const (
	DefaultPrefix          = "/pushgate/"
	DefaultMaxRequestBytes = 1572864 // etcd's own default, 1.5 MiB
	defaultDialTimeout     = 5 * time.Second
	defaultRequestTimeout  = 5 * time.Second
)

// LoadFile reads the YAML configuration file; an empty path gives defaults.
func LoadFile(path string) (File, error) {
	var f File
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return f, fmt.Errorf("read etcd config: %w", err)
		}
		if err := yaml.UnmarshalStrict(b, &f); err != nil {
			return f, fmt.Errorf("parse etcd config %s: %w", path, err)
		}
		f.TLS.SetDirectory(filepath.Dir(path))
		f.PasswordFile = promconfig.JoinDir(filepath.Dir(path), f.PasswordFile)
	}
	if f.Password != "" && f.PasswordFile != "" {
		return f, errors.New("etcd config: at most one of password and password_file")
	}
	if f.DialTimeout <= 0 {
		f.DialTimeout = defaultDialTimeout
	}
	if f.RequestTimeout <= 0 {
		f.RequestTimeout = defaultRequestTimeout
	}
	return f, nil
}

// password returns the password, read from its file if configured.
func (f File) password() (string, error) {
	if f.PasswordFile == "" {
		return string(f.Password), nil
	}
	b, err := os.ReadFile(f.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("read etcd password_file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// tlsConfig returns the TLS configuration, or nil when none is configured
// and the endpoints are plain http.
func (c Config) tlsConfig() (*tls.Config, error) {
	secure := c.TLS != (promconfig.TLSConfig{})
	for _, e := range c.Endpoints {
		if strings.HasPrefix(e, "https://") {
			secure = true
		}
	}
	if !secure {
		return nil, nil
	}
	cfg, err := promconfig.NewTLSConfig(&c.TLS)
	if err != nil {
		return nil, fmt.Errorf("etcd tls_config: %w", err)
	}
	return cfg, nil
}
