package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/verihook/verihook/internal/hub"
)

// sealedDispatch is a dispatch of an Ingest with its content sealed.
type sealedDispatch struct {
	d       hub.Dispatch
	content []byte
}

func (s *Store) sealDispatches(ds []hub.Dispatch) []sealedDispatch {
	out := make([]sealedDispatch, 0, len(ds))
	for _, d := range ds {
		d.SessionRef, d.Provider = clean(d.SessionRef), clean(d.Provider)
		out = append(out, sealedDispatch{d: d, content: d.SealContent(s.cipher)})
	}
	return out
}

// insertDispatchSQL creates one pending dispatch (see sealedDispatch.args).
const insertDispatchSQL = `INSERT INTO dispatches
	(id, source, provider, event_id, kind, channel, session_ref, status, attempts, next_attempt_at, deadline,
	 content, created_at, updated_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $9, $10, $11, $12)`

func (x sealedDispatch) args() []any {
	d := x.d
	return []any{d.ID, d.Source, d.Provider, d.EventID, d.Kind, d.Channel, d.SessionRef, d.NextAttemptAt, d.Deadline,
		x.content, d.CreatedAt, d.UpdatedAt}
}

const dispatchCols = `id, source, provider, event_id, kind, channel, session_ref, status, attempts, next_attempt_at,
	deadline, last_error, created_at, updated_at, sent_at`

// scanDispatch reads a row of dispatchCols, then the columns of extra.
func scanDispatch(r pgx.Row, extra ...any) (hub.Dispatch, error) {
	var (
		d          hub.Dispatch
		status     string
		next, sent *time.Time
	)
	dest := append([]any{&d.ID, &d.Source, &d.Provider, &d.EventID, &d.Kind, &d.Channel, &d.SessionRef, &status, &d.Attempts,
		&next, &d.Deadline, &d.LastError, &d.CreatedAt, &d.UpdatedAt, &sent}, extra...)
	if err := r.Scan(dest...); err != nil {
		return hub.Dispatch{}, err
	}
	d.Status = hub.DispatchStatus(status)
	d.NextAttemptAt, d.SentAt = fromNullTime(next), fromNullTime(sent)
	d.Deadline, d.CreatedAt, d.UpdatedAt = d.Deadline.UTC(), d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	return d, nil
}

// claimDispatchesSQL leases up to $3 due pending dispatches before their
// deadline at $1 until $2, oldest due first, in one statement. SKIP LOCKED
// lets instances claim at once without waiting for one another, as for
// deliveries (see claimSQL).
var claimDispatchesSQL = `WITH picked AS (
	SELECT id FROM dispatches
	WHERE status = 'pending' AND next_attempt_at <= $1 AND deadline > $1
		AND (lease_until IS NULL OR lease_until <= $1)
	ORDER BY next_attempt_at
	LIMIT $3
	FOR UPDATE SKIP LOCKED
)
UPDATE dispatches d SET lease = 'lease_' || gen_random_uuid(), lease_until = $2
FROM picked WHERE d.id = picked.id
RETURNING d.lease, d.content, ` + qualify("d", dispatchCols)

// ClaimDispatches leases up to limit due pending dispatches before their
// deadline, oldest due first, each under a new lease token valid until
// now+lease, with their content (see hub.Store). A zero now is the store's
// clock; a limit below 1 or a lease of 0 or less is EINVALID. A dispatch
// whose content cannot be opened is recorded as failed
// (hub.UnreadableDispatch), not returned.
func (s *Store) ClaimDispatches(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]hub.DispatchClaim, error) {
	if err := hub.CheckClaim(limit, lease); err != nil {
		return nil, err
	}
	if now.IsZero() {
		now = s.now()
	}
	now = ts(now)
	until := ts(now.Add(lease))
	if err := checkTime(until, "lease end"); err != nil {
		return nil, fmt.Errorf("claim dispatches: %w", err)
	}
	// All rows are read, and the claim committed, before an unreadable
	// dispatch is recorded: its row stays locked until then. Every wake-up
	// of the delivery worker claims dispatches too, most often none: the
	// claim is planned once per connection (indexPlan).
	var sealed []hub.SealedDispatchClaim
	err := s.queryWith(ctx, indexPlan, func(rows pgx.Rows) error {
		var err error
		sealed, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (hub.SealedDispatchClaim, error) {
			var x hub.SealedDispatchClaim
			var err error
			x.Claim.Dispatch, err = scanDispatchAfter(row, &x.Claim.Lease, &x.Content)
			return x, err
		})
		return err
	}, claimDispatchesSQL, now, until, limit)
	if err != nil {
		return nil, fail("claim dispatches", err)
	}
	claims, err := hub.OpenDispatchClaims(ctx, s.cipher, sealed, now, s.RecordDispatch)
	if err != nil {
		return nil, fmt.Errorf("claim dispatches: %w", err)
	}
	return claims, nil
}

// scanDispatchAfter reads the columns of before, then a row of dispatchCols.
func scanDispatchAfter(r pgx.Row, before ...any) (hub.Dispatch, error) {
	return scanDispatch(rowAfter{r, before})
}

// rowAfter is a row whose first columns go to before, the rest to Scan's
// destinations.
type rowAfter struct {
	r      pgx.Row
	before []any
}

func (x rowAfter) Scan(dest ...any) error { return x.r.Scan(append(x.before, dest...)...) }

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
	var next, sent *time.Time
	if r.Status == hub.DispatchPending {
		next = nullTime(ts(r.NextAttemptAt))
	}
	if r.Status == hub.DispatchSent {
		sent = nullTime(ts(r.At))
	}
	attempted := 0
	if r.Attempted {
		attempted = 1
	}
	id := clean(r.ID)
	return s.inTx(ctx, "record dispatch", func(tx pgx.Tx) error {
		d, err := scanDispatch(tx.QueryRow(ctx, `UPDATE dispatches SET
				status = $1, attempts = attempts + $2, next_attempt_at = $3, last_error = $4, sent_at = $5,
				lease = NULL, lease_until = NULL, updated_at = $6,
				content = CASE WHEN $1 = 'pending' THEN content END
			WHERE id = $7 AND lease = $8
			RETURNING `+dispatchCols,
			string(r.Status), attempted, next, clean(r.Error), sent, ts(r.At), id, clean(r.Lease)))
		if errors.Is(err, pgx.ErrNoRows) {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM dispatches WHERE id = $1`, id).Scan(&n); err != nil {
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
		return s.dispatchEnded(ctx, tx, []hub.Dispatch{d})
	})
}

// dispatchEnded raises the events of dispatches that ended failed or
// expired, with their deliveries and a NOTIFY.
func (s *Store) dispatchEnded(ctx context.Context, tx pgx.Tx, ds []hub.Dispatch) error {
	if !slices.ContainsFunc(ds, hub.Dispatch.RaisesEvent) {
		return nil
	}
	rows, err := tx.Query(ctx, enabledEndpointsSQL)
	if err != nil {
		return fmt.Errorf("load endpoints: %w", err)
	}
	eps, err := scanEnabledEndpoints(rows)
	if err != nil {
		return fmt.Errorf("load endpoints: %w", err)
	}
	p := hub.PlanDispatchesEnded(ds, eps)
	b := &batch{}
	s.queueEvents(b, p.Events, p.Deliveries)
	if len(p.Deliveries) > 0 {
		b.queue("notify", nil, `SELECT pg_notify($1, current_schema())`, notifyChannel)
	}
	return runBatch(ctx, tx, b)
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
	now = ts(now)
	var ended []hub.Dispatch
	err := s.inTx(ctx, "expire dispatches", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE dispatches SET status = 'expired', next_attempt_at = NULL, content = NULL, lease = NULL, lease_until = NULL,
				last_error = CASE WHEN last_error = '' THEN 'not sent before its deadline' ELSE last_error END,
				updated_at = $1
			WHERE id IN (SELECT id FROM dispatches
				WHERE status = 'pending' AND deadline <= $1 AND (lease_until IS NULL OR lease_until <= $1)
				LIMIT 1000 FOR UPDATE SKIP LOCKED)
			RETURNING `+dispatchCols, now)
		if err != nil {
			return err
		}
		ended, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (hub.Dispatch, error) { return scanDispatch(row) })
		if err != nil {
			return err
		}
		return s.dispatchEnded(ctx, tx, ended)
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
	var q listQuery
	if f.Source != "" {
		q.add("source = ?", clean(f.Source))
	}
	if f.Status != "" {
		q.add("status = ?", string(f.Status))
	}
	stmt, args := q.sql(`SELECT `+dispatchCols+` FROM dispatches`, cursor, limit)
	return list(ctx, s, "list dispatches", stmt, args, limit, func(r pgx.Row) (hub.Dispatch, string, error) {
		d, err := scanDispatch(r)
		return d, d.ID, err
	})
}

// Dispatch returns one dispatch without its content.
func (s *Store) Dispatch(ctx context.Context, id string) (hub.Dispatch, error) {
	d, err := scanDispatch(s.queryRow(ctx, `SELECT `+dispatchCols+` FROM dispatches WHERE id = $1`, clean(id)))
	if err != nil {
		return hub.Dispatch{}, notFound("get dispatch", err, fmt.Sprintf("dispatch %q not found", id))
	}
	return d, nil
}
