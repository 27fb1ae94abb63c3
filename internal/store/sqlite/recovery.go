package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/verihook/verihook/internal/hub"
)

// Reprocess applies what a quarantined message is now understood to say, in
// one transaction that first moves it from quarantined to accepted (see
// hub.Store): a second run finds it accepted and changes nothing.
func (s *Store) Reprocess(ctx context.Context, in hub.Ingest) (hub.IngestResult, error) {
	r, err := s.prepareIngest(in)
	if err != nil {
		return hub.IngestResult{}, fmt.Errorf("reprocess: %w", err)
	}
	var res hub.IngestResult
	err = s.write(ctx, "reprocess", func(tx *wtx) error {
		m := r.m
		up, err := tx.exec(`UPDATE messages SET status = 'accepted', reason = '', event_name = ?
			WHERE id = ? AND source_id = ? AND status = 'quarantined'`, m.EventName, m.ID, m.SourceID)
		if err != nil {
			return fmt.Errorf("accept message: %w", err)
		}
		if n, err := up.RowsAffected(); err != nil {
			return fmt.Errorf("accept message: %w", err)
		} else if n == 0 {
			return notQuarantined(tx.tx.QueryRowContext(tx.ctx, `SELECT count(*) FROM messages WHERE id = ?`, m.ID), m.ID)
		}
		res, err = s.applyTx(tx, r)
		return err
	})
	if err != nil {
		return hub.IngestResult{}, err
	}
	return res, nil
}

// notQuarantined returns the error of a Reprocess whose message was not
// quarantined: ENOTFOUND when row counts no such message, else ECONFLICT.
func notQuarantined(row *sql.Row, id string) error {
	var n int
	if err := row.Scan(&n); err != nil {
		return fmt.Errorf("find message: %w", err)
	}
	if n == 0 {
		return hub.Errorf(hub.ENOTFOUND, "message %q not found", id)
	}
	return hub.Errorf(hub.ECONFLICT, "message %q is not quarantined", id)
}

const pollCols = `polls, last_polled_at, next_poll_at, last_error, gave_up_at`

// pollState returns the poll state of verification id, nil when it was
// never polled.
func pollState(ctx context.Context, tx *sql.Tx, id string) (*hub.PollState, error) {
	var (
		p                  hub.PollState
		last, next, gaveUp sql.NullInt64
	)
	err := tx.QueryRowContext(ctx, `SELECT `+pollCols+` FROM verification_polls WHERE verification_id = ?`, id).
		Scan(&p.Polls, &last, &next, &p.LastError, &gaveUp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	p.LastPolledAt, p.NextPollAt, p.GaveUpAt = fromNullNanos(last), fromNullNanos(next), fromNullNanos(gaveUp)
	return &p, nil
}

// ClaimPolls leases the verifications of c.Source due for a poll (see
// hub.Store). SQLite has one writer, so the claim is one INSERT … SELECT that
// no other claim can interleave with.
func (s *Store) ClaimPolls(ctx context.Context, c hub.PollClaim) ([]hub.Verification, error) {
	if c.Limit <= 0 {
		return nil, nil
	}
	var out []hub.Verification
	err := s.write(ctx, "claim polls", func(tx *wtx) error {
		out = out[:0]
		rows, err := tx.tx.QueryContext(tx.ctx, `INSERT INTO verification_polls (verification_id, next_poll_at)
			SELECT v.id, ? FROM verifications v LEFT JOIN verification_polls p ON p.verification_id = v.id
			WHERE v.final = 0 AND v.source = ? AND v.updated_at < ?
				AND (p.verification_id IS NULL
					OR (p.gave_up_at IS NULL AND (? OR p.next_poll_at IS NULL OR p.next_poll_at <= ?)))
			ORDER BY v.updated_at LIMIT ?
			ON CONFLICT (verification_id) DO UPDATE SET next_poll_at = excluded.next_poll_at
			RETURNING verification_id`,
			toNanos(c.Until), c.Source, toNanos(c.StaleBefore), c.Force, toNanos(c.Now), c.Limit)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			v, err := scanVerification(tx.tx.QueryRowContext(tx.ctx,
				`SELECT `+verificationCols+` FROM verifications WHERE id = ?`, id))
			if err != nil {
				return err
			}
			if v.Poll, err = pollState(tx.ctx, tx.tx, id); err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b hub.Verification) int { return a.UpdatedAt.Compare(b.UpdatedAt) })
	return out, nil
}

// RecordPoll stores a verification's poll state (see hub.Store).
func (s *Store) RecordPoll(ctx context.Context, id string, p hub.PollState) error {
	return s.write(ctx, "record poll", func(tx *wtx) error {
		var n int
		if err := tx.tx.QueryRowContext(tx.ctx, `SELECT count(*) FROM verifications WHERE id = ?`, id).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return hub.Errorf(hub.ENOTFOUND, "verification %q not found", id)
		}
		_, err := tx.exec(`INSERT INTO verification_polls (verification_id, `+pollCols+`)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (verification_id) DO UPDATE SET polls = excluded.polls,
				last_polled_at = excluded.last_polled_at, next_poll_at = excluded.next_poll_at,
				last_error = excluded.last_error, gave_up_at = excluded.gave_up_at`,
			id, p.Polls, toNullNanos(p.LastPolledAt), toNullNanos(p.NextPollAt), p.LastError, toNullNanos(p.GaveUpAt))
		return err
	})
}

// stuck adds the condition of a hub.Stuck filter: not final, and last
// changed before the deadline of the verification's source. It is one
// expression, so that the query stays one scan of verifications_open.
func (q *query) stuck(st hub.Stuck) {
	cond, args := stuckSQL(st)
	q.where = append(q.where, cond)
	q.args = append(q.args, args...)
}

func stuckSQL(st hub.Stuck) (string, []any) {
	var b strings.Builder
	var args []any
	b.WriteString("final = 0 AND updated_at < ")
	if ids := st.Sources(); len(ids) > 0 {
		b.WriteString("CASE source")
		for _, id := range ids {
			b.WriteString(" WHEN ? THEN ?")
			args = append(args, id, toNanos(st.Before[id]))
		}
		b.WriteString(" ELSE ? END")
	} else {
		b.WriteString("?")
	}
	return b.String(), append(args, toNanos(st.Default))
}

// Backlog counts stuck verifications and quarantined messages by source
// (see hub.Store), each from its partial index.
func (s *Store) Backlog(ctx context.Context, st hub.Stuck) (hub.Backlog, error) {
	b := hub.Backlog{Stuck: map[string]int{}, Quarantined: map[string]int{}}
	cond, args := stuckSQL(st)
	if err := s.countBy(ctx, b.Stuck, `SELECT source, count(*) FROM verifications WHERE `+cond+` GROUP BY source`, args...); err != nil {
		return hub.Backlog{}, fail("count stuck verifications", err)
	}
	if err := s.countBy(ctx, b.Quarantined, `SELECT source_id, count(*) FROM messages
		WHERE status = 'quarantined' AND status <> 'accepted' GROUP BY source_id`); err != nil {
		return hub.Backlog{}, fail("count quarantined messages", err)
	}
	return b, nil
}

func (s *Store) countBy(ctx context.Context, into map[string]int, query string, args ...any) error {
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			return err
		}
		into[k] = n
	}
	return rows.Err()
}
