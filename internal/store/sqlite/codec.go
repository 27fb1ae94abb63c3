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

// storeTime is how this store keeps a time (see hub.StoreTime): from minTime
// to maxTime, as utc returns it.
var storeTime = hub.StoreTimeWithin(minTime, maxTime, utc)

// checkTime returns an EINVALID error for a time that cannot be stored. The
// zero time, which means "none", can. what names the field.
func checkTime(t time.Time, what string) error {
	_, err := storeTime(t, what)
	return err
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
