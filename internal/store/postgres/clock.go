package postgres

import (
	"context"
	"time"
)

// ServerTime returns the database server's clock, so that verihook doctor
// can compare it with this machine's: every instance stamps what it writes
// with its own clock, and instances that disagree order events wrongly.
func (s *Store) ServerTime(ctx context.Context) (time.Time, error) {
	var t time.Time
	if err := s.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&t); err != nil {
		return time.Time{}, fail("server time", err)
	}
	return t.UTC(), nil
}
