// Package access is pushgate's optional, scoped access control
// (--web.access-config): who may read, push to which groups, and administer.
// It goes beyond the reference, which only has exporter-toolkit's
// all-or-nothing basic auth; without a config file everything is allowed,
// exactly as in the reference.
//
// A Policy is built from a YAML file (see Config); a Guard wraps the
// gateway's routes, authenticates each request (HTTP basic auth against
// bcrypt hashes, or a bearer token against its SHA-256), classifies it
// (open, read, push to a grouping key, admin) and lets it through or answers
// 401 or 403 without calling the route, so a refused push changes nothing.
//
// One route authorizes per group instead: DELETE /api/v1/groups (delete by
// matcher) can touch many groups, not known before the handler reads the
// store. The guard lets any principal with push scopes (or the admin role)
// through and attaches its scope to the request context; the handler asks
// ScopeFrom about each matching group and leaves the others alone.
package access

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v2"
	"golang.org/x/crypto/bcrypt"
)

// Role is what a principal may do beyond its push scopes.
type Role string

// The roles. The zero role grants nothing beyond the push scopes.
const (
	RoleNone  Role = ""
	RoleRead  Role = "read"  // scrape, UI pages, read API
	RoleAdmin Role = "admin" // everything
)

// Grant is what a principal may do.
type Grant struct {
	// Role is "", "read" or "admin".
	Role Role `yaml:"role,omitempty"`
	// Push lists selectors over the grouping key (ParseSelector); the
	// principal may push to, and delete, a group whose key matches any
	// one of them.
	Push []string `yaml:"push,omitempty"`
}

// User is a principal that authenticates with HTTP basic auth.
type User struct {
	// PasswordHash is a bcrypt hash, as exporter-toolkit's
	// basic_auth_users take it.
	PasswordHash string `yaml:"password_hash"`
	Grant        `yaml:",inline"`
}

// Token is a principal that authenticates with "Authorization: Bearer
// <token>".
type Token struct {
	// Name names the token in logs and answers.
	Name string `yaml:"name"`
	// SHA256 is the hex SHA-256 of the token; the token itself is not
	// stored.
	SHA256 string `yaml:"sha256"`
	Grant  `yaml:",inline"`
}

// Config is the access config file.
type Config struct {
	Users  map[string]User `yaml:"users,omitempty"`
	Tokens []Token         `yaml:"tokens,omitempty"`
	// Anonymous is what requests without credentials may do; nil means
	// nothing (they get 401).
	Anonymous *Grant `yaml:"anonymous,omitempty"`
}

// Parse decodes a config strictly (unknown fields are errors) and validates
// it.
func Parse(data []byte) (*Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Load reads and compiles the config file at path. An empty path means no
// access control: it returns a nil Policy, which allows everything.
func Load(path string) (*Policy, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return New(c)
}

// Validate reports every problem of the config at once.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Users) == 0 && len(c.Tokens) == 0 && c.Anonymous == nil {
		errs = append(errs, errors.New("no users, tokens or anonymous access: nothing could use the gateway"))
	}
	names := make([]string, 0, len(c.Users))
	for name := range c.Users {
		names = append(names, name)
	}
	sort.Strings(names) // stable error order
	for _, name := range names {
		u := c.Users[name]
		what := fmt.Sprintf("user %q", name)
		if name == "" || strings.Contains(name, ":") {
			errs = append(errs, fmt.Errorf("%s: a user name must be non-empty and contain no ':'", what))
		}
		if u.PasswordHash == "" {
			errs = append(errs, fmt.Errorf("%s: password_hash is required", what))
		} else if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			errs = append(errs, fmt.Errorf("%s: password_hash is not a bcrypt hash: %w", what, err))
		}
		errs = append(errs, u.Grant.validate(what)...)
	}
	seenName := map[string]bool{}
	seenHash := map[string]bool{}
	for i, t := range c.Tokens {
		what := fmt.Sprintf("token %d (%q)", i+1, t.Name)
		switch {
		case t.Name == "":
			errs = append(errs, fmt.Errorf("%s: name is required", what))
		case seenName[t.Name]:
			errs = append(errs, fmt.Errorf("%s: duplicate token name", what))
		}
		seenName[t.Name] = true
		if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != 32 {
			errs = append(errs, fmt.Errorf("%s: sha256 must be 64 hex digits (printf %%s \"$TOKEN\" | sha256sum)", what))
		} else if h := strings.ToLower(t.SHA256); seenHash[h] {
			errs = append(errs, fmt.Errorf("%s: the same token as an earlier one", what))
		} else {
			seenHash[h] = true
		}
		errs = append(errs, t.Grant.validate(what)...)
	}
	if a := c.Anonymous; a != nil {
		if a.Role == RoleAdmin {
			errs = append(errs, errors.New("anonymous: role admin is not allowed (leave --web.access-config unset for an open gateway)"))
		}
		errs = append(errs, a.validate("anonymous")...)
	}
	return errors.Join(errs...)
}

func (g *Grant) validate(what string) []error {
	var errs []error
	switch g.Role {
	case RoleNone, RoleRead, RoleAdmin:
	default:
		errs = append(errs, fmt.Errorf("%s: unknown role %q (want read or admin)", what, g.Role))
	}
	for i, s := range g.Push {
		if _, err := ParseSelector(s); err != nil {
			errs = append(errs, fmt.Errorf("%s: push[%d] %q: %w", what, i, s, err))
		}
	}
	if g.Role == RoleNone && len(g.Push) == 0 {
		errs = append(errs, fmt.Errorf("%s: grants nothing (give a role or push scopes)", what))
	}
	return errs
}
