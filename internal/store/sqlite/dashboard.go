package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// countSQL adds to one per-minute counter (see the stats table).
const countSQL = `INSERT INTO stats (minute, name, key, n, latency_ms) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (minute, name, key) DO UPDATE SET n = n + excluded.n, latency_ms = latency_ms + excluded.latency_ms`

// statKey is a row of the stats table: a counter name (and key) in a minute.
type statKey struct {
	minute    int64
	name, key string
}

// statSum is what a transaction adds to a counter.
type statSum struct{ n, latencyMS int64 }

// count adds n to counter name (and key) for the minute of at, and
// latencyMS to its latency sum, in the writer's transaction. The sums are
// kept in tx and written once per counter when the batch commits (see
// flushCounts): most writes of a minute share a counter, and an upsert per
// write was the writer's most repeated statement.
func (tx *wtx) count(at time.Time, name, key string, n, latencyMS int64) {
	c := statKey{at.Truncate(time.Minute).UnixNano(), name, key}
	sum := tx.counts[c]
	tx.counts[c] = statSum{sum.n + n, sum.latencyMS + latencyMS}
}

// flushCounts writes the sums count kept in tx.
func (s *Store) flushCounts(tx *wtx) error {
	for c, sum := range tx.counts {
		if _, err := tx.execStmt(s.q.count, c.minute, c.name, c.key, sum.n, sum.latencyMS); err != nil {
			return fmt.Errorf("count %s: %w", c.name, err)
		}
	}
	clear(tx.counts)
	return nil
}

// RecordQueueSample inserts q as the samples of now's minute unless it has
// them (the first stays).
func (s *Store) RecordQueueSample(ctx context.Context, now time.Time, q hub.QueueStats) error {
	if err := checkTime(now, "now"); err != nil {
		return fmt.Errorf("record queue sample: %w", err)
	}
	m := now.Truncate(time.Minute).UnixNano()
	return s.write(ctx, "record queue sample", func(tx *wtx) error {
		_, err := tx.exec(`INSERT INTO stats (minute, name, key, n, latency_ms) VALUES (?, ?, '', ?, 0), (?, ?, '', ?, 0)
			ON CONFLICT (minute, name, key) DO NOTHING`,
			m, hub.CountQueueDepth, q.Pending, m, hub.CountOldestDue, int64(q.OldestDueAge(now)/time.Second))
		return err
	})
}

// Activity reads the counters since since, the rejections since since by
// source and reason (from the partial index of unaccepted messages), and
// each source's last message (from messages_source).
func (s *Store) Activity(ctx context.Context, since time.Time) (hub.Activity, error) {
	if err := checkTime(since, "since"); err != nil {
		return hub.Activity{}, fmt.Errorf("activity: %w", err)
	}
	a := hub.Activity{LastMessage: map[string]time.Time{}}
	rows, err := s.rdb.QueryContext(ctx, `SELECT minute, name, key, n, latency_ms FROM stats
		WHERE minute >= ? ORDER BY minute`, since.Truncate(time.Minute).UnixNano())
	if err != nil {
		return hub.Activity{}, fail("activity", err)
	}
	for rows.Next() {
		var c hub.StatCount
		var minute int64
		if err := rows.Scan(&minute, &c.Name, &c.Key, &c.N, &c.LatencyMS); err != nil {
			rows.Close()
			return hub.Activity{}, fail("activity", err)
		}
		c.Minute = fromNanos(minute)
		a.Counts = append(a.Counts, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return hub.Activity{}, fail("activity", err)
	}

	// Ids sort by creation time, so the id range is the time range.
	rows, err = s.rdb.QueryContext(ctx, `SELECT source_id, reason, sum(coalesce(count, 1)) AS n, max(received_at) FROM messages
		WHERE status = 'rejected' AND status <> 'accepted' AND id >= ?
		GROUP BY source_id, reason ORDER BY n DESC, source_id, reason LIMIT 100`, hub.NewID("msg", since)[:13])
	if err != nil {
		return hub.Activity{}, fail("activity", err)
	}
	for rows.Next() {
		var r hub.RejectionCount
		var last int64
		if err := rows.Scan(&r.Source, &r.Reason, &r.N, &last); err != nil {
			rows.Close()
			return hub.Activity{}, fail("activity", err)
		}
		r.Last = fromNanos(last)
		a.Rejections = append(a.Rejections, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return hub.Activity{}, fail("activity", err)
	}

	rows, err = s.rdb.QueryContext(ctx, `SELECT s.id,
		(SELECT m.received_at FROM messages m WHERE m.source_id = s.id ORDER BY m.id DESC LIMIT 1)
		FROM sources s`)
	if err != nil {
		return hub.Activity{}, fail("activity", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var last sql.NullInt64
		if err := rows.Scan(&id, &last); err != nil {
			return hub.Activity{}, fail("activity", err)
		}
		if last.Valid {
			a.LastMessage[id] = fromNanos(last.Int64)
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
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+verificationCols+` FROM
		(SELECT * FROM verifications WHERE id < ? ORDER BY id DESC LIMIT 10000)
		WHERE final = 0 ORDER BY id DESC LIMIT ?`, hub.NewID("ver", before)[:13], limit)
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
	if err := checkTime(ses.CreatedAt, "created_at"); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	if err := checkTime(ses.ExpiresAt, "expires_at"); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return s.write(ctx, "create session", func(tx *wtx) error {
		if _, err := tx.exec(`DELETE FROM sessions WHERE expires_at <= ?`, toNanos(s.now())); err != nil {
			return err
		}
		_, err := tx.exec(`INSERT INTO sessions (id, hash, token_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
			ses.ID, ses.Hash, ses.TokenID, toNanos(ses.CreatedAt), toNanos(ses.ExpiresAt))
		return err
	})
}

// SessionByHash returns a session with its token, in one read.
func (s *Store) SessionByHash(ctx context.Context, hash string) (hub.Session, hub.Token, error) {
	var (
		ses              hub.Session
		created, expires int64
	)
	row := s.rdb.QueryRowContext(ctx, `SELECT s.id, s.hash, s.token_id, s.created_at, s.expires_at,
		t.id, t.name, t.role, t.hash, t.created_at, t.expires_at, t.last_used_at, t.revoked_at
		FROM sessions s JOIN tokens t ON t.id = s.token_id WHERE s.hash = ?`, hash)
	tok, err := scanToken(prefixScanner{row, []any{&ses.ID, &ses.Hash, &ses.TokenID, &created, &expires}})
	if errors.Is(err, sql.ErrNoRows) {
		return hub.Session{}, hub.Token{}, hub.Errorf(hub.ENOTFOUND, "session not found")
	} else if err != nil {
		return hub.Session{}, hub.Token{}, fail("get session", err)
	}
	ses.CreatedAt, ses.ExpiresAt = fromNanos(created), fromNanos(expires)
	return ses, tok, nil
}

// DeleteSession deletes a session by hash.
func (s *Store) DeleteSession(ctx context.Context, hash string) error {
	return s.write(ctx, "delete session", func(tx *wtx) error {
		_, err := tx.exec(`DELETE FROM sessions WHERE hash = ?`, hash)
		return err
	})
}

// prefixScanner scans the columns before a token's into prefix, then hands
// the rest to the token's scanner.
type prefixScanner struct {
	r      scanner
	prefix []any
}

func (p prefixScanner) Scan(dest ...any) error { return p.r.Scan(append(p.prefix, dest...)...) }
