package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// sealedDispatch is a dispatch of an Ingest with its content sealed, in the
// caller's goroutine, so that the writer does nothing but database work.
type sealedDispatch struct {
	d       hub.Dispatch
	content []byte
}

func (s *Store) sealDispatches(ds []hub.Dispatch) []sealedDispatch {
	out := make([]sealedDispatch, 0, len(ds))
	for _, d := range ds {
		out = append(out, sealedDispatch{d: d, content: d.SealContent(s.cipher)})
	}
	return out
}

// insertDispatches creates, inside Ingest's transaction, the message's
// dispatches.
func (s *Store) insertDispatches(tx *wtx, ds []sealedDispatch) error {
	for _, x := range ds {
		d := x.d
		_, err := tx.exec(`INSERT INTO dispatches
			(id, source, provider, event_id, kind, channel, session_ref, status, attempts, next_attempt_at, deadline,
			 content, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, ?)`,
			d.ID, d.Source, d.Provider, d.EventID, d.Kind, d.Channel, d.SessionRef, toNanos(d.NextAttemptAt),
			toNanos(d.Deadline), x.content, toNanos(d.CreatedAt), toNanos(d.UpdatedAt))
		if err != nil {
			return fmt.Errorf("insert dispatch: %w", err)
		}
	}
	return nil
}

const dispatchCols = `id, source, provider, event_id, kind, channel, session_ref, status, attempts, next_attempt_at,
	deadline, last_error, created_at, updated_at, sent_at`

// scanDispatch reads a row of dispatchCols, then the columns of extra.
func scanDispatch(r scanner, extra ...any) (hub.Dispatch, error) {
	var (
		d                              hub.Dispatch
		status                         string
		next, sent                     sql.NullInt64
		deadline, createdAt, updatedAt int64
	)
	dest := append([]any{&d.ID, &d.Source, &d.Provider, &d.EventID, &d.Kind, &d.Channel, &d.SessionRef, &status, &d.Attempts,
		&next, &deadline, &d.LastError, &createdAt, &updatedAt, &sent}, extra...)
	if err := r.Scan(dest...); err != nil {
		return hub.Dispatch{}, err
	}
	d.Status = hub.DispatchStatus(status)
	d.NextAttemptAt, d.SentAt = fromNullNanos(next), fromNullNanos(sent)
	d.Deadline, d.CreatedAt, d.UpdatedAt = fromNanos(deadline), fromNanos(createdAt), fromNanos(updatedAt)
	return d, nil
}

// ClaimDispatches leases up to limit due pending dispatches before their
// deadline, oldest due first, each under a new lease token valid until
// now+lease, and returns them with their content (see hub.Store). A zero now
// is the store's clock; a limit below 1 or a lease of 0 or less is EINVALID.
// The claim runs in the writer's transaction, so two claims never see the
// same dispatch as free. A dispatch whose content cannot be opened is
// recorded as failed (hub.UnreadableDispatch), not returned.
func (s *Store) ClaimDispatches(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]hub.DispatchClaim, error) {
	if err := hub.CheckClaim(limit, lease); err != nil {
		return nil, err
	}
	if now.IsZero() {
		now = s.now()
	}
	now = utc(now)
	until := now.Add(lease)
	if err := checkTime(until, "lease end"); err != nil {
		return nil, fmt.Errorf("claim dispatches: %w", err)
	}
	var got []hub.SealedDispatchClaim
	err := s.write(ctx, "claim dispatches", func(tx *wtx) error {
		got = got[:0]
		rows, err := tx.tx.QueryContext(tx.ctx, `SELECT `+dispatchCols+`, content FROM dispatches INDEXED BY dispatches_due
			WHERE status = 'pending' AND next_attempt_at <= ? AND deadline > ?
				AND (lease_until IS NULL OR lease_until <= ?)
			ORDER BY next_attempt_at LIMIT ?`, toNanos(now), toNanos(now), toNanos(now), limit)
		if err != nil {
			return fmt.Errorf("find due dispatches: %w", err)
		}
		for rows.Next() {
			var x hub.SealedDispatchClaim
			if x.Claim.Dispatch, err = scanDispatch(rows, &x.Content); err != nil {
				rows.Close()
				return fmt.Errorf("find due dispatches: %w", err)
			}
			got = append(got, x)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range got {
			// A fresh token per claim: a worker whose lease ran out holds
			// another, so its RecordDispatch gets ECONFLICT.
			got[i].Claim.Lease = hub.NewID("lease", now)
			if _, err := tx.exec(`UPDATE dispatches SET lease = ?, lease_until = ? WHERE id = ?`,
				got[i].Claim.Lease, toNanos(until), got[i].Claim.Dispatch.ID); err != nil {
				return fmt.Errorf("lease dispatch: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	claims, err := hub.OpenDispatchClaims(ctx, s.cipher, got, now, s.RecordDispatch)
	if err != nil {
		return nil, fmt.Errorf("claim dispatches: %w", err)
	}
	return claims, nil
}

// RecordDispatch applies the result of work on a claimed dispatch (see
// hub.Store and hub.DispatchRecord.Prepare). A final status purges the
// content and, failed or expired, raises the dispatch's ended event with its
// deliveries, in the same transaction.
func (s *Store) RecordDispatch(ctx context.Context, r hub.DispatchRecord) error {
	if err := r.Prepare(s.now()); err != nil {
		return err
	}
	if err := checkTime(r.At, "record time"); err != nil {
		return fmt.Errorf("record dispatch: %w", err)
	}
	if err := checkTime(r.NextAttemptAt, "next attempt time"); err != nil {
		return fmt.Errorf("record dispatch: %w", err)
	}
	var next, sent sql.NullInt64
	if r.Status == hub.DispatchPending {
		next = toNullNanos(r.NextAttemptAt)
	}
	if r.Status == hub.DispatchSent {
		sent = toNullNanos(r.At)
	}
	return s.write(ctx, "record dispatch", func(tx *wtx) error {
		d, err := scanDispatch(tx.tx.QueryRowContext(tx.ctx, `UPDATE dispatches SET
				status = ?, attempts = attempts + ?, next_attempt_at = ?, last_error = ?, sent_at = ?,
				lease = NULL, lease_until = NULL, updated_at = ?,
				content = CASE WHEN ? = 'pending' THEN content END
			WHERE id = ? AND lease = ?
			RETURNING `+dispatchCols,
			string(r.Status), boolInt(r.Attempted), next, r.Error, sent, toNanos(r.At), string(r.Status), r.ID, r.Lease))
		if errors.Is(err, sql.ErrNoRows) {
			var n int
			if err := tx.tx.QueryRowContext(tx.ctx, `SELECT count(*) FROM dispatches WHERE id = ?`, r.ID).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return hub.Errorf(hub.ENOTFOUND, "dispatch %q not found", r.ID)
			}
			return hub.Errorf(hub.ECONFLICT, "dispatch %q is no longer leased with this token", r.ID)
		}
		if err != nil {
			return fmt.Errorf("update dispatch: %w", err)
		}
		return s.dispatchesEnded(tx, []hub.Dispatch{d})
	})
}

// dispatchesEnded raises the events of dispatches that ended failed or
// expired, with their deliveries.
func (s *Store) dispatchesEnded(tx *wtx, ds []hub.Dispatch) error {
	if !slices.ContainsFunc(ds, hub.Dispatch.RaisesEvent) {
		return nil
	}
	eps, err := s.enabledEndpoints(tx)
	if err != nil {
		return err
	}
	p := hub.PlanDispatchesEnded(ds, eps)
	return s.insertEvents(tx, p.Events, p.Deliveries)
}

// ExpireDispatches marks expired the pending dispatches whose deadline is at
// or before now (zero: the store's clock) and that no lease holds, purging
// their content and raising dispatch.expired for each, and returns them
// (see hub.Store).
func (s *Store) ExpireDispatches(ctx context.Context, now time.Time) ([]hub.Dispatch, error) {
	if now.IsZero() {
		now = s.now()
	}
	if err := checkTime(now, "now"); err != nil {
		return nil, fmt.Errorf("expire dispatches: %w", err)
	}
	now = utc(now)
	var ended []hub.Dispatch
	err := s.write(ctx, "expire dispatches", func(tx *wtx) error {
		ended = ended[:0]
		rows, err := tx.tx.QueryContext(tx.ctx, `UPDATE dispatches SET status = 'expired', next_attempt_at = NULL, content = NULL, lease = NULL, lease_until = NULL,
				last_error = CASE WHEN last_error = '' THEN 'not sent before its deadline' ELSE last_error END,
				updated_at = ?
			WHERE id IN (SELECT id FROM dispatches INDEXED BY dispatches_deadline
				WHERE status = 'pending' AND deadline <= ? AND (lease_until IS NULL OR lease_until <= ?)
				LIMIT 1000)
			RETURNING `+dispatchCols, toNanos(now), toNanos(now), toNanos(now))
		if err != nil {
			return err
		}
		for rows.Next() {
			d, err := scanDispatch(rows)
			if err != nil {
				rows.Close()
				return err
			}
			ended = append(ended, d)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		return s.dispatchesEnded(tx, ended)
	})
	if err != nil {
		return nil, err
	}
	return ended, nil
}

// Dispatches lists dispatches newest first, without their content. An
// unknown status is EINVALID; see hub.Page.Check for limits and cursors.
func (s *Store) Dispatches(ctx context.Context, f hub.DispatchFilter) ([]hub.Dispatch, string, error) {
	limit, cursor, err := f.Page.Check()
	if err != nil {
		return nil, "", fmt.Errorf("list dispatches: %w", err)
	}
	if err := f.Validate(); err != nil {
		return nil, "", err
	}
	var q query
	if f.Source != "" {
		q.add("source = ?", f.Source)
	}
	if f.Status != "" {
		q.add("status = ?", string(f.Status))
	}
	stmt, args := q.sql(`SELECT `+dispatchCols+` FROM dispatches`, cursor, limit)
	return list(ctx, s, "list dispatches", stmt, args, limit, func(r scanner) (hub.Dispatch, string, error) {
		d, err := scanDispatch(r)
		return d, d.ID, err
	})
}

// Dispatch returns one dispatch without its content.
func (s *Store) Dispatch(ctx context.Context, id string) (hub.Dispatch, error) {
	d, err := scanDispatch(s.rdb.QueryRowContext(ctx, `SELECT `+dispatchCols+` FROM dispatches WHERE id = ?`, id))
	if err != nil {
		return hub.Dispatch{}, notFound("get dispatch", err, fmt.Sprintf("dispatch %q not found", id))
	}
	return d, nil
}
