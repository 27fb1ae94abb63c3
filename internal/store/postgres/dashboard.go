package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/verihook/verihook/internal/hub"
)

// countSQL adds to one per-minute counter, in this backend's shard (see the
// stats table): $1 minute, $2 name, $3 key, $4 latency, $5 how many.
const countSQL = `INSERT INTO stats (minute, name, key, shard, n, latency_ms)
	VALUES ($1, $2, $3, pg_backend_pid() % 16, $5, $4)
	ON CONFLICT (minute, name, key, shard) DO UPDATE SET n = stats.n + excluded.n,
		latency_ms = stats.latency_ms + excluded.latency_ms`

// minute is the counter row's minute for t.
func minute(t time.Time) time.Time { return t.UTC().Truncate(time.Minute) }

// RecordQueueSample inserts q as the samples of now's minute unless it has
// them: every instance samples, the first sample of a minute stays (shard 0,
// ON CONFLICT DO NOTHING).
func (s *Store) RecordQueueSample(ctx context.Context, now time.Time, q hub.QueueStats) error {
	if err := checkTime(now, "now"); err != nil {
		return fmt.Errorf("record queue sample: %w", err)
	}
	_, err := s.exec(ctx, `INSERT INTO stats (minute, name, key, shard, n) VALUES ($1, $2, '', 0, $3), ($1, $4, '', 0, $5)
		ON CONFLICT (minute, name, key, shard) DO NOTHING`,
		minute(now), hub.CountQueueDepth, q.Pending, hub.CountOldestDue, int64(q.OldestDueAge(ts(now))/time.Second))
	return fail("record queue sample", err)
}

// Activity sums the counters' shards since since, groups the rejections
// since since by source and reason (from the partial index of unaccepted
// messages), and finds each source's last message (from messages_source).
func (s *Store) Activity(ctx context.Context, since time.Time) (hub.Activity, error) {
	if err := checkTime(since, "since"); err != nil {
		return hub.Activity{}, fmt.Errorf("activity: %w", err)
	}
	a := hub.Activity{LastMessage: map[string]time.Time{}}
	rows, err := s.query(ctx, `SELECT minute, name, key, sum(n), sum(latency_ms) FROM stats
		WHERE minute >= $1 GROUP BY minute, name, key ORDER BY minute, name, key`, minute(since))
	if err != nil {
		return hub.Activity{}, fail("activity", err)
	}
	for rows.Next() {
		var c hub.StatCount
		if err := rows.Scan(&c.Minute, &c.Name, &c.Key, &c.N, &c.LatencyMS); err != nil {
			rows.Close()
			return hub.Activity{}, fail("activity", err)
		}
		c.Minute = c.Minute.UTC()
		a.Counts = append(a.Counts, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return hub.Activity{}, fail("activity", err)
	}

	// Ids sort by creation time, so the id range is the time range.
	rows, err = s.query(ctx, `SELECT source_id, reason, sum(coalesce(count, 1))::bigint AS n, max(received_at) FROM messages
		WHERE status = 'rejected' AND status <> 'accepted' AND id >= $1
		GROUP BY source_id, reason ORDER BY n DESC, source_id, reason LIMIT 100`, hub.NewID("msg", since)[:13])
	if err != nil {
		return hub.Activity{}, fail("activity", err)
	}
	for rows.Next() {
		var r hub.RejectionCount
		if err := rows.Scan(&r.Source, &r.Reason, &r.N, &r.Last); err != nil {
			rows.Close()
			return hub.Activity{}, fail("activity", err)
		}
		r.Last = r.Last.UTC()
		a.Rejections = append(a.Rejections, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return hub.Activity{}, fail("activity", err)
	}

	rows, err = s.query(ctx, `SELECT s.id,
		(SELECT m.received_at FROM messages m WHERE m.source_id = s.id ORDER BY m.id DESC LIMIT 1)
		FROM sources s`)
	if err != nil {
		return hub.Activity{}, fail("activity", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var last *time.Time
		if err := rows.Scan(&id, &last); err != nil {
			return hub.Activity{}, fail("activity", err)
		}
		if last != nil {
			a.LastMessage[id] = last.UTC()
		}
	}
	if err := rows.Err(); err != nil {
		return hub.Activity{}, fail("activity", err)
	}
	return a, nil
}

// StaleVerifications walks the 10,000 newest verifications created before
// before (the primary key, newest first) and keeps the non-final ones.
func (s *Store) StaleVerifications(ctx context.Context, before time.Time, limit int) ([]hub.Verification, error) {
	rows, err := s.query(ctx, `SELECT `+verificationCols+` FROM
		(SELECT * FROM verifications WHERE id < $1 ORDER BY id DESC LIMIT 10000) v
		WHERE NOT final ORDER BY id DESC LIMIT $2`, hub.NewID("ver", before)[:13], limit)
	if err != nil {
		return nil, fail("stale verifications", err)
	}
	defer rows.Close()
	out := []hub.Verification{}
	for rows.Next() {
		v, err := scanVerification(rows)
		if err != nil {
			return nil, fail("stale verifications", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fail("stale verifications", err)
	}
	return out, nil
}

// CreateSession stores a session and deletes the sessions that expired.
func (s *Store) CreateSession(ctx context.Context, ses hub.Session) error {
	if !hub.ValidID(ses.ID) || ses.Hash == "" || ses.TokenID == "" || !ses.ExpiresAt.After(ses.CreatedAt) {
		return hub.Errorf(hub.EINVALID, "invalid session")
	}
	if err := errors.Join(checkTime(ses.CreatedAt, "created_at"), checkTime(ses.ExpiresAt, "expires_at")); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return s.inTx(ctx, "create session", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE expires_at <= $1`, ts(s.now())); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO sessions (id, hash, token_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
			ses.ID, clean(ses.Hash), clean(ses.TokenID), ts(ses.CreatedAt), ts(ses.ExpiresAt))
		return err
	})
}

// SessionByHash returns a session with its token, in one read.
func (s *Store) SessionByHash(ctx context.Context, hash string) (hub.Session, hub.Token, error) {
	var ses hub.Session
	row := s.queryRow(ctx, `SELECT s.id, s.hash, s.token_id, s.created_at, s.expires_at,
		t.id, t.name, t.role, t.hash, t.created_at, t.expires_at, t.last_used_at, t.revoked_at
		FROM sessions s JOIN tokens t ON t.id = s.token_id WHERE s.hash = $1`, clean(hash))
	tok, err := scanToken(prefixRow{row, []any{&ses.ID, &ses.Hash, &ses.TokenID, &ses.CreatedAt, &ses.ExpiresAt}})
	if errors.Is(err, pgx.ErrNoRows) {
		return hub.Session{}, hub.Token{}, hub.Errorf(hub.ENOTFOUND, "session not found")
	} else if err != nil {
		return hub.Session{}, hub.Token{}, fail("get session", err)
	}
	ses.CreatedAt, ses.ExpiresAt = ses.CreatedAt.UTC(), ses.ExpiresAt.UTC()
	return ses, tok, nil
}

// DeleteSession deletes a session by hash.
func (s *Store) DeleteSession(ctx context.Context, hash string) error {
	_, err := s.exec(ctx, `DELETE FROM sessions WHERE hash = $1`, clean(hash))
	return fail("delete session", err)
}

// prefixRow scans the columns before a token's into prefix, then hands the
// rest to the token's scanner.
type prefixRow struct {
	r      pgx.Row
	prefix []any
}

func (p prefixRow) Scan(dest ...any) error { return p.r.Scan(append(p.prefix, dest...)...) }
