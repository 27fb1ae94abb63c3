package sqlite

import (
	"database/sql"
	"encoding/json"
	"math"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// Times are stored as INTEGER nanoseconds since the epoch, which covers the
// years 1678 to 2262 exactly; the zero time.Time is stored as NULL where a
// time is optional.
var (
	minTime = time.Unix(0, math.MinInt64).UTC()
	maxTime = time.Unix(0, math.MaxInt64).UTC()
)

// checkTime returns an EINVALID error for a time that cannot be stored. The
// zero time, which means "none", can. what names the field.
func checkTime(t time.Time, what string) error {
	if !t.IsZero() && (t.Before(minTime) || t.After(maxTime)) {
		return hub.Errorf(hub.EINVALID, "%s %s is out of range", what, t.Format(time.RFC3339))
	}
	return nil
}

// utc normalizes a time as the store returns it: UTC, without a monotonic
// clock reading.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Round(0)
}

// toNanos converts a time checked with checkTime to its stored form.
func toNanos(t time.Time) int64 { return t.UnixNano() }

// toNullNanos is toNanos for an optional time: the zero time is NULL.
func toNullNanos(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

// fromNanos converts a stored time back, in UTC.
func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// fromNullNanos converts a stored optional time back; NULL is the zero time.
func fromNullNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromNanos(n.Int64)
}

// nullInt converts an optional count.
func nullInt(p *int) sql.NullInt64 {
	if p == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: int64(*p), Valid: true}
}

// fromNullInt converts an optional count back.
func fromNullInt(n sql.NullInt64) *int {
	if !n.Valid {
		return nil
	}
	v := int(n.Int64)
	return &v
}

// nullString stores "" as NULL.
func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// boolInt stores a bool as 0 or 1 (STRICT tables have no BOOLEAN).
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// reasonsJSON stores reasons as JSON: nil as null, empty as [], so that
// they read back exactly as they were.
func reasonsJSON(r []string) string {
	b, _ := json.Marshal(r)
	return string(b)
}

func fromReasonsJSON(s string) ([]string, error) {
	var r []string
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return nil, err
	}
	return r, nil
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
