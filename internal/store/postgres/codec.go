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

// storeTime is how this store keeps a time (see hub.StoreTime): from minTime
// to maxTime, as ts returns it.
var storeTime = hub.StoreTimeWithin(minTime, maxTime, ts)

// checkTime returns an EINVALID error for a time that cannot be stored. The
// zero time, which means "none", can. what names the field.
func checkTime(t time.Time, what string) error {
	_, err := storeTime(t, what)
	return err
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
