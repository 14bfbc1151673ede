package access

import (
	"context"

	"github.com/pushgate/pushgate/internal/grouping"
)

// Scope reports whether a request may change (push to, delete) the group
// with the given key. It is safe for concurrent use.
type Scope func(grouping.Key) bool

type scopeKey struct{}

// ScopeFrom returns the scope that the Guard attached to a request on a
// route that authorizes per group rather than per request. Only DELETE
// /api/v1/groups is such a route: the guard lets a principal through if it
// could delete any group at all (an admin, or push scopes), and the handler
// asks the scope about each group it would delete.
//
// ok is false when no access config is in use (no Guard policy): then the
// route itself decides, from --web.enable-admin-api.
func ScopeFrom(ctx context.Context) (s Scope, ok bool) {
	s, ok = ctx.Value(scopeKey{}).(Scope)
	return s, ok
}

func withScope(ctx context.Context, s Scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, s)
}
