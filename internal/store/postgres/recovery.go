package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/verihook/verihook/internal/hub"
)

// Reprocess applies what a quarantined message is now understood to say, in
// the transaction Ingest runs, whose first statement moves the message from
// quarantined to accepted instead of inserting it (see hub.Store): a second
// run finds it accepted and changes nothing.
func (s *Store) Reprocess(ctx context.Context, in hub.Ingest) (hub.IngestResult, error) {
	r, err := s.prepareIngest(in)
	if err != nil {
		return hub.IngestResult{}, fmt.Errorf("reprocess: %w", err)
	}
	r.reprocess = true
	var res hub.IngestResult
	err = s.inTx(ctx, "reprocess", func(tx pgx.Tx) error {
		var err error
		res, err = s.ingestAlone(ctx, tx, r)
		return err
	})
	if err != nil {
		return hub.IngestResult{}, err
	}
	return res, nil
}

// notQuarantined returns the error of a Reprocess whose message was not
// quarantined: ENOTFOUND when row counts no such message, else ECONFLICT.
func notQuarantined(row pgx.Row, id string) error {
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
func pollState(ctx context.Context, tx pgx.Tx, id string) (*hub.PollState, error) {
	var (
		p                  hub.PollState
		last, next, gaveUp *time.Time
	)
	err := tx.QueryRow(ctx, `SELECT `+pollCols+` FROM verification_polls WHERE verification_id = $1`, id).
		Scan(&p.Polls, &last, &next, &p.LastError, &gaveUp)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("get poll state: %w", err)
	}
	p.LastPolledAt, p.NextPollAt, p.GaveUpAt = fromNullTime(last), fromNullTime(next), fromNullTime(gaveUp)
	return &p, nil
}

// ClaimPolls leases the verifications of c.Source due for a poll (see
// hub.Store). Two instances may claim at once: ON CONFLICT DO UPDATE waits
// for the other's row, then checks its WHERE against the row as the other
// left it, whose next poll is no longer due, and skips it.
func (s *Store) ClaimPolls(ctx context.Context, c hub.PollClaim) ([]hub.Verification, error) {
	if c.Limit <= 0 {
		return nil, nil
	}
	var out []hub.Verification
	err := s.inTx(ctx, "claim polls", func(tx pgx.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, `INSERT INTO verification_polls AS p (verification_id, next_poll_at)
			SELECT v.id, $1 FROM verifications v LEFT JOIN verification_polls o ON o.verification_id = v.id
			WHERE NOT v.final AND v.source = $2 AND v.updated_at < $3
				AND (o.verification_id IS NULL
					OR (o.gave_up_at IS NULL AND ($4 OR o.next_poll_at IS NULL OR o.next_poll_at <= $5)))
			ORDER BY v.updated_at LIMIT $6
			ON CONFLICT (verification_id) DO UPDATE SET next_poll_at = EXCLUDED.next_poll_at
				WHERE p.gave_up_at IS NULL AND ($4 OR p.next_poll_at IS NULL OR p.next_poll_at <= $5)
			RETURNING verification_id`,
			ts(c.Until), clean(c.Source), ts(c.StaleBefore), c.Force, ts(c.Now), c.Limit)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, id := range ids {
			v, err := scanVerification(tx.QueryRow(ctx, `SELECT `+verificationCols+` FROM verifications WHERE id = $1`, id))
			if err != nil {
				return err
			}
			if v.Poll, err = pollState(ctx, tx, id); err != nil {
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
	tag, err := s.exec(ctx, `INSERT INTO verification_polls (verification_id, `+pollCols+`)
		SELECT id, $2, $3, $4, $5, $6 FROM verifications WHERE id = $1
		ON CONFLICT (verification_id) DO UPDATE SET polls = EXCLUDED.polls,
			last_polled_at = EXCLUDED.last_polled_at, next_poll_at = EXCLUDED.next_poll_at,
			last_error = EXCLUDED.last_error, gave_up_at = EXCLUDED.gave_up_at`,
		clean(id), p.Polls, nullTime(p.LastPolledAt), nullTime(p.NextPollAt), clean(p.LastError), nullTime(p.GaveUpAt))
	if err != nil {
		return fail("record poll", err)
	}
	if tag.RowsAffected() == 0 {
		return hub.Errorf(hub.ENOTFOUND, "verification %q not found", id)
	}
	return nil
}

// stuck adds the condition of a hub.Stuck filter: not final, and last
// changed before the deadline of the verification's source, in one
// expression, so that the query stays one scan of verifications_open.
func (q *listQuery) stuck(st hub.Stuck) {
	cond, args := stuckSQL(st, len(q.args))
	q.where = append(q.where, cond)
	q.args = append(q.args, args...)
}

// stuckSQL returns the condition of a hub.Stuck filter, its placeholders
// numbered after the first n.
func stuckSQL(st hub.Stuck, n int) (string, []any) {
	var b strings.Builder
	var args []any
	ph := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(n+len(args))
	}
	b.WriteString("NOT final AND updated_at < ")
	if ids := st.Sources(); len(ids) > 0 {
		b.WriteString("CASE source")
		for _, id := range ids {
			b.WriteString(" WHEN " + ph(id) + "::text THEN " + ph(ts(st.Before[id])) + "::timestamptz")
		}
		b.WriteString(" ELSE " + ph(ts(st.Default)) + "::timestamptz END")
	} else {
		b.WriteString(ph(ts(st.Default)))
	}
	return b.String(), args
}

// Backlog counts stuck verifications and quarantined messages by source
// (see hub.Store), each from its partial index.
func (s *Store) Backlog(ctx context.Context, st hub.Stuck) (hub.Backlog, error) {
	b := hub.Backlog{Stuck: map[string]int{}, Quarantined: map[string]int{}}
	cond, args := stuckSQL(st, 0)
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
	rows, err := s.query(ctx, query, args...)
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
