package store

import (
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by every error that rejects a push because of its
// content. Its text is the reference's, so clients see the same message.
var ErrInvalid = errors.New("pushed metrics are invalid or inconsistent with existing metrics")

// ErrTimestamp rejects pushes with timestamps (it wraps ErrInvalid).
var ErrTimestamp = fmt.Errorf("%w: pushed metrics must not have timestamps", ErrInvalid)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
