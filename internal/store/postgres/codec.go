package postgres

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/verihook/verihook/internal/hub"
)

// Times are stored as timestamptz, which keeps microseconds and spans 4713
// BC to 294276 AD; the zero time.Time is stored as NULL where a time is
// optional.
var (
	minTime = time.Date(-4712, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(294276, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

// checkTime returns an EINVALID error for a time that cannot be stored. The
// zero time, which means "none", can. what names the field.
func checkTime(t time.Time, what string) error {
	if !t.IsZero() && (t.Before(minTime) || t.After(maxTime)) {
		return hub.Errorf(hub.EINVALID, "%s %s is out of range", what, t.Format(time.RFC3339))
	}
	return nil
}

// ts normalizes a time as the store keeps it: UTC, truncated to the
// microsecond (timestamptz's precision; truncating here rather than letting
// the server round means that what Ingest returns, event data included, is
// exactly what is read back later), without a monotonic clock reading. The
// zero time stays zero.
func ts(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// tsCeil is ts rounding up: for a bound b and a stored time r (a whole
// number of microseconds), r < b exactly when r < tsCeil(b), so that a bound
// given with nanoseconds still selects what it should.
func tsCeil(t time.Time) time.Time {
	c := ts(t)
	if c.Before(t) {
		c = c.Add(time.Microsecond)
	}
	return c
}

// nullTime is an optional time as a query argument: the zero time is NULL.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = ts(t)
	return &t
}

// fromNullTime reads an optional time back, in UTC; NULL is the zero time.
func fromNullTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// nullString stores "" as NULL.
func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// fromNullString reads an optional text back; NULL is "".
func fromNullString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// clean makes s storable in a text column. PostgreSQL refuses text that is
// not valid UTF-8 or that holds a NUL byte (SQLite stores anything), and much
// of what verihook stores comes from outside: a provider's event name or
// reference, a rejected request's path, an endpoint's response excerpt. A
// webhook must never fail to be acknowledged, nor a delivery's verdict to be
// recorded, because of one odd byte, so such bytes become U+FFFD.
func clean(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// cleanAll is clean for each string of a list; nil stays nil.
func cleanAll(list []string) []string {
	if list == nil {
		return nil
	}
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = clean(s)
	}
	return out
}

// nonNil returns list, or an empty list for nil.
func nonNil(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

// maxIDLen bounds ids and cursors.
const maxIDLen = 128

// validID reports whether s can be an id: 1 to 128 letters, digits, '_',
// '-' or '.'. Ids given by callers are held to it so that a cursor, which is
// an id, can be told from garbage.
func validID(s string) bool {
	if s == "" || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// page validates a page request and returns the limit to use and the
// cursor. A limit above hub.MaxPageLimit or below 0 is EINVALID rather than
// clamped, so that a caller's mistake shows; 0 means hub.DefaultPageLimit. A
// cursor is the id of the last item of the previous page.
func page(p hub.Page) (int, string, error) {
	switch {
	case p.Limit < 0 || p.Limit > hub.MaxPageLimit:
		return 0, "", hub.Errorf(hub.EINVALID, "limit must be between 1 and %d", hub.MaxPageLimit)
	case p.Cursor != "" && !validID(p.Cursor):
		return 0, "", hub.Errorf(hub.EINVALID, "invalid cursor")
	case p.Limit == 0:
		return hub.DefaultPageLimit, p.Cursor, nil
	}
	return p.Limit, p.Cursor, nil
}
