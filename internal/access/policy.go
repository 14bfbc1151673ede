package access

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/pushgate/pushgate/internal/grouping"
)

// principal is an authenticated identity (or the anonymous one) with its
// compiled grant. Immutable.
type principal struct {
	kind, name string // "user", "token" or "anonymous"
	role       Role
	push       []Selector
}

func (p *principal) String() string {
	if p.kind == "anonymous" {
		return "anonymous"
	}
	return fmt.Sprintf("%s %q", p.kind, p.name)
}

func (p *principal) mayPush(k grouping.Key) bool {
	if p.role == RoleAdmin {
		return true
	}
	for _, s := range p.push {
		if s.Matches(k) {
			return true
		}
	}
	return false
}

type user struct {
	hash []byte
	*principal
}

type token struct {
	sum [sha256.Size]byte
	*principal
}

// maxCached bounds the cache of verified passwords.
const maxCached = 1024

// Policy is a compiled access config. It is safe for concurrent use; a nil
// *Policy allows everything.
type Policy struct {
	users     map[string]user
	tokens    []token
	anonymous *principal // nil: requests without credentials get 401
	// dummyHash is checked for an unknown user name, so that the answer
	// takes as long as for a known one.
	dummyHash []byte

	mu sync.Mutex // guards verified
	// verified holds sha256(user, password, hash) of passwords that bcrypt
	// accepted: bcrypt costs ~50 ms at cost 10, too much for every push.
	// Failures are not cached, so guessing stays slow.
	verified map[[sha256.Size]byte]struct{}
	// compare is bcrypt.CompareHashAndPassword; tests count calls.
	compare func(hash, password []byte) error
}

// New compiles a config (validating it first).
func New(c *Config) (*Policy, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	p := &Policy{
		users:    make(map[string]user, len(c.Users)),
		verified: map[[sha256.Size]byte]struct{}{},
		compare:  bcrypt.CompareHashAndPassword,
	}
	for name, u := range c.Users {
		p.users[name] = user{hash: []byte(u.PasswordHash), principal: compile("user", name, u.Grant)}
	}
	for _, t := range c.Tokens {
		var sum [sha256.Size]byte
		b, _ := hex.DecodeString(t.SHA256) // checked by Validate
		copy(sum[:], b)
		p.tokens = append(p.tokens, token{sum: sum, principal: compile("token", t.Name, t.Grant)})
	}
	if c.Anonymous != nil {
		p.anonymous = compile("anonymous", "", *c.Anonymous)
	}
	if len(p.users) > 0 {
		h, err := bcrypt.GenerateFromPassword([]byte("no such user"), bcrypt.DefaultCost)
		if err != nil {
			return nil, fmt.Errorf("dummy bcrypt hash: %w", err)
		}
		p.dummyHash = h
	}
	return p, nil
}

func compile(kind, name string, g Grant) *principal {
	pr := &principal{kind: kind, name: name, role: g.Role}
	for _, s := range g.Push {
		sel, _ := ParseSelector(s) // checked by Validate
		pr.push = append(pr.push, sel)
	}
	return pr
}

// Describe summarizes the policy for the start-up log.
func (p *Policy) Describe() string {
	return fmt.Sprintf("%d users, %d tokens, anonymous %s", len(p.users), len(p.tokens), p.anonymousGrant())
}

func (p *Policy) anonymousGrant() string {
	switch {
	case p.anonymous == nil:
		return "none"
	case p.anonymous.role == RoleRead && len(p.anonymous.push) > 0:
		return "read and push"
	case p.anonymous.role == RoleRead:
		return "read"
	default:
		return "push"
	}
}

var (
	errNoCredentials  = errors.New("no credentials")
	errBadCredentials = errors.New("invalid credentials")
)

// authenticate finds the request's principal: from basic auth, a bearer
// token, or else the anonymous one. Wrong credentials never fall back to
// anonymous.
func (p *Policy) authenticate(r *http.Request) (*principal, error) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		if p.anonymous == nil {
			return nil, errNoCredentials
		}
		return p.anonymous, nil
	}
	if name, pass, ok := r.BasicAuth(); ok {
		return p.checkPassword(name, pass)
	}
	scheme, tok, ok := strings.Cut(auth, " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		return p.checkToken(strings.TrimSpace(tok))
	}
	return nil, errBadCredentials
}

func (p *Policy) checkPassword(name, pass string) (*principal, error) {
	u, known := p.users[name]
	hash := u.hash
	if !known {
		hash = p.dummyHash
	}
	if hash == nil { // no users at all
		return nil, errBadCredentials
	}
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(pass))
	h.Write([]byte{0})
	h.Write(hash)
	var key [sha256.Size]byte
	h.Sum(key[:0])

	p.mu.Lock()
	_, ok := p.verified[key]
	p.mu.Unlock()
	if !ok {
		ok = p.compare(hash, []byte(pass)) == nil
		if ok && known {
			p.mu.Lock()
			if len(p.verified) >= maxCached {
				clear(p.verified)
			}
			p.verified[key] = struct{}{}
			p.mu.Unlock()
		}
	}
	if !ok || !known {
		return nil, errBadCredentials
	}
	return u.principal, nil
}

// checkToken compares the token's digest with every configured one in
// constant time, so neither the position nor a common prefix of a match
// shows in the answer time.
func (p *Policy) checkToken(tok string) (*principal, error) {
	sum := sha256.Sum256([]byte(tok))
	var found *principal
	for _, t := range p.tokens {
		if subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1 {
			found = t.principal
		}
	}
	if found == nil || tok == "" {
		return nil, errBadCredentials
	}
	return found, nil
}
