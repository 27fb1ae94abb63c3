package hub

import (
	"errors"
	"fmt"
)

// Error codes: what callers branch on. The HTTP layer maps each to one status.
const (
	EINVALID      = "invalid"      // the input is malformed or fails validation
	EUNAUTHORIZED = "unauthorized" // missing or wrong credentials or signature
	EFORBIDDEN    = "forbidden"    // authenticated, but the role may not do this
	ENOTFOUND     = "not_found"    // the named thing does not exist
	ECONFLICT     = "conflict"     // the thing exists already or changed meanwhile
	EPRECONDITION = "precondition" // a condition the caller set (If-Match) does not hold
	ETOOLARGE     = "too_large"    // the body is over the limit
	EUNAVAILABLE  = "unavailable"  // storage or a dependency is down; try again
	EINTERNAL     = "internal"     // a bug or an unexpected failure
	EUNRECOGNIZED = "unrecognized" // authenticated, but not understood: quarantine it
)

// Error is a domain error whose Message is safe to show to a user.
type Error struct {
	Code    string
	Message string
}

// Error implements the error interface.
func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}

// ErrorMessage returns the user-facing message of the first *Error in err's
// chain, or a generic text for internal errors so that internals never leak.
func ErrorMessage(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Message
	default:
		return "internal error"
	}
}

// Wrap wraps a store's error with op and, when err carries no *Error yet
// and classify knows what it amounts to, with that *Error, so that callers
// can branch on the code. The original error stays in the chain for logs;
// ErrorMessage shows only the *Error's message. Wrap(op, nil, …) is nil.
func Wrap(op string, err error, classify func(error) *Error) error {
	if err == nil {
		return nil
	}
	var he *Error
	if errors.As(err, &he) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if code := classify(err); code != nil {
		return fmt.Errorf("%s: %w: %w", op, code, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
