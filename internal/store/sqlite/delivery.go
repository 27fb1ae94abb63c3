package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// insertDeliveries creates pending deliveries (see hub.NewDelivery).
func (s *Store) insertDeliveries(tx *wtx, ds []hub.NewDelivery) error {
	for _, d := range ds {
		ev, at := d.Event, toNanos(d.At)
		if _, err := tx.execStmt(s.q.insertDelivery,
			d.ID, d.EndpointID, ev.ID, ev.Type, ev.Source, nullString(ev.VerificationID), at, at, at); err != nil {
			return fmt.Errorf("insert delivery of %s to %s: %w", ev.ID, d.EndpointID, err)
		}
	}
	return nil
}

const deliveryCols = `id, endpoint_id, event_id, event_type, source, verification_id, status, attempts,
	next_attempt_at, last_status_code, last_error, created_at, updated_at`

// lastLatencyCol is the latency of a delivery's last attempt (NULL before
// the first), read through attempts_delivery: one index lookup a row of a
// list, in the list's query.
const lastLatencyCol = `(SELECT a.latency_ms FROM attempts a WHERE a.delivery_id = deliveries.id ORDER BY a.seq DESC LIMIT 1)`

// readDeliveryCols are the columns of a delivery as reads return it: with
// its last attempt's latency (see scanReadDelivery).
const readDeliveryCols = lastLatencyCol + `, ` + deliveryCols

// scanReadDelivery reads a row of readDeliveryCols.
func scanReadDelivery(r scanner) (hub.Delivery, error) {
	var latency sql.NullInt64
	d, err := scanDelivery(r, &latency)
	d.LastLatencyMS = latency.Int64
	return d, err
}

// scanDelivery reads a row of deliveryCols, after the columns of extra.
func scanDelivery(r scanner, extra ...any) (hub.Delivery, error) {
	var (
		d                    hub.Delivery
		verifID              sql.NullString
		status               string
		next                 sql.NullInt64
		createdAt, updatedAt int64
	)
	dest := append(extra, &d.ID, &d.EndpointID, &d.EventID, &d.EventType, &d.Source, &verifID, &status, &d.Attempts,
		&next, &d.LastStatusCode, &d.LastError, &createdAt, &updatedAt)
	if err := r.Scan(dest...); err != nil {
		return hub.Delivery{}, err
	}
	d.VerificationID, d.Status = verifID.String, hub.DeliveryStatus(status)
	d.NextAttemptAt = fromNullNanos(next)
	d.CreatedAt, d.UpdatedAt = fromNanos(createdAt), fromNanos(updatedAt)
	return d, nil
}

// claimDueSQL selects the due deliveries of one endpoint that nobody holds,
// oldest due first (the arguments: endpoint id, now, now, limit). An ended
// lease (lease_until <= now) holds nothing.
const claimDueSQL = `SELECT seq, ` + deliveryCols + ` FROM deliveries
	WHERE endpoint_id = ? AND status = 'pending' AND next_attempt_at <= ?
		AND (lease_until IS NULL OR lease_until <= ?)
	ORDER BY next_attempt_at, seq LIMIT ?`

// claimDueOrderedSQL is claimDueSQL for an ordered endpoint. A delivery of a
// verification is claimable only while no EARLIER-CREATED (lower seq)
// delivery of the same verification to the same endpoint is pending,
// whether that one is due, waiting for its next attempt, or held by a worker
// right now. So the deliveries of one verification go one at a time, in
// creation order, at most one of them in flight, and the next becomes
// claimable once the one before has succeeded or failed for good. The
// deliveries of events without a verification are not held back.
// deliveries_ordered answers the NOT EXISTS with one index probe.
const claimDueOrderedSQL = `SELECT seq, ` + deliveryCols + ` FROM deliveries AS d
	WHERE endpoint_id = ? AND status = 'pending' AND next_attempt_at <= ?
		AND (lease_until IS NULL OR lease_until <= ?)
		AND (verification_id IS NULL OR NOT EXISTS (
			SELECT 1 FROM deliveries AS earlier
			WHERE earlier.endpoint_id = d.endpoint_id AND earlier.verification_id = d.verification_id
				AND earlier.status = 'pending' AND earlier.seq < d.seq))
	ORDER BY next_attempt_at, seq LIMIT ?`

// sealedClaim is a claim as the writer returns it: the event's data and the
// endpoint's secrets are decrypted afterwards, in the caller's goroutine.
type sealedClaim struct {
	delivery  hub.Delivery
	seq       int64
	event     hub.Event
	eventData []byte
	endpoint  *sealedEndpoint
	lease     string
}

// ClaimDeliveries leases up to limit due deliveries of enabled endpoints,
// oldest due first, each under a new random lease token valid until
// now+lease (see hub.Store). A zero now is the store's clock; a limit below 1
// or a lease of 0 or less is EINVALID. A
// delivery whose event data or endpoint secrets cannot be opened is
// recorded as a dead letter (hub.UnreadableClaim), not returned.
//
// The claim is a write: it runs in the writer's transaction, so two claims
// never see the same delivery as free. Alone in its commit, it is not
// synced to disk before it returns (see syncFor). If ctx ends after the writer has run
// the claim, the caller gets ctx's error and the claimed deliveries stay
// leased until their lease ends.
func (s *Store) ClaimDeliveries(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]hub.Claim, error) {
	if err := hub.CheckClaim(limit, lease); err != nil {
		return nil, err
	}
	if now.IsZero() {
		now = s.now()
	}
	now = utc(now)
	until := now.Add(lease)
	if err := checkTime(now, "now"); err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	if err := checkTime(until, "lease end"); err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	var sealed []sealedClaim
	err := s.submit(ctx, "claim deliveries", unsynced, func(tx *wtx) error {
		var err error
		sealed, err = s.claimTx(tx, now, until, limit)
		return err
	})
	if err != nil {
		return nil, err
	}
	claims := make([]hub.Claim, 0, len(sealed))
	opened := map[*sealedEndpoint]hub.Endpoint{}
	for _, c := range sealed {
		cl, err := s.openClaim(c, opened)
		if err != nil {
			if err := s.RecordAttempt(ctx, hub.UnreadableClaim(c.delivery.ID, c.lease, now, err)); err != nil {
				return nil, fmt.Errorf("claim deliveries: %w", err)
			}
			continue
		}
		claims = append(claims, cl)
	}
	return claims, nil
}

// openClaim opens a claimed delivery's event data and endpoint secrets;
// opened caches the endpoints opened so far.
func (s *Store) openClaim(c sealedClaim, opened map[*sealedEndpoint]hub.Endpoint) (hub.Claim, error) {
	ev := c.event
	if err := ev.OpenData(s.cipher, c.eventData); err != nil {
		return hub.Claim{}, err
	}
	ep, ok := opened[c.endpoint]
	if !ok {
		var err error
		if ep, err = s.openEndpoint(*c.endpoint); err != nil {
			return hub.Claim{}, err
		}
		opened[c.endpoint] = ep
	}
	ep.EventTypes, ep.Sources = slices.Clone(ep.EventTypes), slices.Clone(ep.Sources)
	return hub.Claim{Delivery: c.delivery, Event: ev, Endpoint: ep, Lease: c.lease}, nil
}

// claimTx is ClaimDeliveries' work inside the writer's transaction.
//
// It asks each enabled endpoint for its own oldest due deliveries (up to
// limit each, through deliveries_due) and keeps the limit oldest of them
// all, by due time and then creation order: the same result as one query
// over every pending delivery joined with the enabled endpoints, without
// walking past the backlog of a disabled endpoint, which never drains.
func (s *Store) claimTx(tx *wtx, now, until time.Time, limit int) ([]sealedClaim, error) {
	eps, err := s.enabledEndpoints(tx)
	if err != nil {
		return nil, err
	}
	var cands []sealedClaim
	for i := range eps {
		st := s.q.claimDue
		if eps[i].Ordered {
			st = s.q.claimDueOrdered
		}
		rows, err := tx.queryStmt(st, eps[i].ID, toNanos(now), toNanos(now), limit)
		if err != nil {
			return nil, fmt.Errorf("find due deliveries: %w", err)
		}
		for rows.Next() {
			var c sealedClaim
			if c.delivery, err = scanDelivery(rows, &c.seq); err != nil {
				rows.Close()
				return nil, fmt.Errorf("find due deliveries: %w", err)
			}
			cands = append(cands, c)
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("find due deliveries: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("find due deliveries: %w", err)
		}
	}
	slices.SortFunc(cands, func(a, b sealedClaim) int {
		return cmp.Or(a.delivery.NextAttemptAt.Compare(b.delivery.NextAttemptAt), cmp.Compare(a.seq, b.seq))
	})
	cands = cands[:min(limit, len(cands))]

	endpoints := map[string]*sealedEndpoint{}
	for i := range cands {
		c := &cands[i]
		// A fresh random token per claim: whoever held the delivery before
		// (a worker whose lease ran out) holds a different token, so its
		// RecordAttempt or Release finds no row and gets ECONFLICT.
		c.lease = hub.NewID("lease", now)
		if _, err := tx.execStmt(s.q.setLease, c.lease, toNanos(until), c.seq); err != nil {
			return nil, fmt.Errorf("lease delivery %s: %w", c.delivery.ID, err)
		}
		if c.event, c.eventData, err = scanSealedEvent(tx.queryRowStmt(s.q.claimEvent, c.delivery.EventID)); err != nil {
			return nil, fmt.Errorf("load event %s: %w", c.delivery.EventID, err)
		}
		if c.endpoint = endpoints[c.delivery.EndpointID]; c.endpoint == nil {
			se, err := scanEndpoint(tx.queryRowStmt(s.q.claimEndpoint, c.delivery.EndpointID))
			if err != nil {
				return nil, fmt.Errorf("load endpoint %s: %w", c.delivery.EndpointID, err)
			}
			c.endpoint = &se
			endpoints[se.ID] = c.endpoint
		}
	}
	return cands, nil
}

// leaseConflict explains why a lease-checked update matched no row:
// ENOTFOUND when the delivery does not exist, ECONFLICT when its lease is not
// lease (it ended and went to another worker, or the delivery was retried,
// replayed or finished meanwhile).
func (s *Store) leaseConflict(tx *wtx, id string) error {
	var n int
	if err := tx.queryRowStmt(s.q.deliveryExists, id).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return hub.Errorf(hub.ENOTFOUND, "delivery %q not found", id)
	}
	return hub.Errorf(hub.ECONFLICT, "delivery %q is no longer leased with this token", id)
}

// RecordAttempt logs an attempt of a claimed delivery and applies its
// verdict (see hub.Store). A zero Attempt.At is the store's clock and an
// empty Attempt.ID a new "att" id; the delivery's updated_at becomes
// Attempt.At. The response excerpt is stored as given. An unknown status, a
// pending status without NextAttemptAt, an invalid attempt id, and an
// Attempt.DeliveryID other than r.DeliveryID are EINVALID; an unknown
// delivery is ENOTFOUND and a lease that is not the delivery's ECONFLICT.
// Alone in the writer's queue, it waits up to patientWait for another write
// to commit with.
func (s *Store) RecordAttempt(ctx context.Context, r hub.AttemptRecord) error {
	if err := r.Prepare(s.now()); err != nil {
		return err
	}
	a := r.Attempt
	if err := checkTime(a.At, "attempt time"); err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	var next sql.NullInt64
	if r.Status == hub.DeliveryPending {
		if err := checkTime(r.NextAttemptAt, "next attempt time"); err != nil {
			return fmt.Errorf("record attempt: %w", err)
		}
		next = toNullNanos(r.NextAttemptAt)
	}
	at := toNanos(a.At)
	return s.submit(ctx, "record attempt", patient, func(tx *wtx) error {
		var endpointID string
		err := tx.queryRowStmt(s.q.recordDelivery, a.StatusCode, a.Error, string(r.Status), next, at,
			r.DeliveryID, r.Lease).Scan(&endpointID)
		if errors.Is(err, sql.ErrNoRows) {
			return s.leaseConflict(tx, r.DeliveryID)
		}
		if err != nil {
			return fmt.Errorf("update delivery: %w", err)
		}
		if _, err := tx.execStmt(s.q.insertAttempt, a.ID, r.DeliveryID, at, a.StatusCode, a.LatencyMS, a.Response,
			a.Error); err != nil {
			return fmt.Errorf("insert attempt: %w", err)
		}
		counter := hub.CountDelivered
		if r.Status == hub.DeliverySucceeded {
			_, err = tx.execStmt(s.q.endpointSucceeded, endpointID)
		} else {
			counter = hub.CountDeliveryError
			_, err = tx.execStmt(s.q.endpointFailed, at, endpointID)
		}
		if err != nil {
			return fmt.Errorf("update endpoint: %w", err)
		}
		tx.count(a.At, counter, endpointID, 1, a.LatencyMS)
		if r.DisableEndpoint != "" {
			s.eps.invalidate()
			if _, err := tx.exec(`UPDATE endpoints SET enabled = 0, disabled_reason = ?, updated_at = ?,
				version = version + 1 WHERE id = ?`,
				r.DisableEndpoint, at, endpointID); err != nil {
				return fmt.Errorf("disable endpoint: %w", err)
			}
		}
		return nil
	})
}

// Release gives a claimed delivery back without an attempt, due at at (a
// zero at is the store's clock), and clears its lease. ENOTFOUND for an
// unknown delivery, ECONFLICT when lease is not its lease.
func (s *Store) Release(ctx context.Context, deliveryID, lease string, at time.Time) error {
	now := s.now()
	if at.IsZero() {
		at = now
	}
	if err := checkTime(at, "release time"); err != nil {
		return fmt.Errorf("release delivery: %w", err)
	}
	return s.write(ctx, "release delivery", func(tx *wtx) error {
		res, err := tx.execStmt(s.q.releaseDelivery, toNanos(at), toNanos(now), deliveryID, lease)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		return s.leaseConflict(tx, deliveryID)
	})
}

// Deliveries lists deliveries newest first, without attempts. An unknown
// status is EINVALID; see hub.Page.Check for limits and cursors.
func (s *Store) Deliveries(ctx context.Context, f hub.DeliveryFilter) ([]hub.Delivery, string, error) {
	limit, cursor, err := f.Page.Check()
	if err != nil {
		return nil, "", fmt.Errorf("list deliveries: %w", err)
	}
	if err := f.Validate(); err != nil {
		return nil, "", err
	}
	stmt, args := deliveriesSQL(f, cursor, limit)
	return list(ctx, s, "list deliveries", stmt, args, limit, func(r scanner) (hub.Delivery, string, error) {
		d, err := scanReadDelivery(r)
		return d, d.ID, err
	})
}

// deliveriesSQL is the query of Deliveries. A filter on a status searches
// its range of deliveries_status, keyed first by whether the delivery is
// pending (migration 0032): the query repeats that column, as SQLite uses an
// index on an expression only for that expression. With an event, the index
// on (event_id, endpoint_id) finds its few deliveries at once: the query
// then leaves the column out, so that SQLite cannot walk every delivery of
// the status for them instead.
func deliveriesSQL(f hub.DeliveryFilter, cursor string, limit int) (string, []any) {
	var q query
	if f.EndpointID != "" {
		q.add("endpoint_id = ?", f.EndpointID)
	}
	if f.EventID != "" {
		q.add("event_id = ?", f.EventID)
	}
	if f.Status != "" {
		if f.EventID == "" {
			q.add("(status = 'pending') = ?", f.Status == hub.DeliveryPending)
		}
		q.add("status = ?", string(f.Status))
	}
	return q.sql(`SELECT `+readDeliveryCols+` FROM deliveries`, cursor, limit)
}

// Delivery returns one delivery with its attempts, newest (last recorded)
// first; AttemptLog is empty, not nil, when there is none.
func (s *Store) Delivery(ctx context.Context, id string) (hub.Delivery, error) {
	tx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return hub.Delivery{}, fail("get delivery", err)
	}
	defer tx.Rollback()
	d, err := scanReadDelivery(tx.QueryRowContext(ctx, `SELECT `+readDeliveryCols+` FROM deliveries WHERE id = ?`, id))
	if err != nil {
		return hub.Delivery{}, notFound("get delivery", err, fmt.Sprintf("delivery %q not found", id))
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, delivery_id, at, status_code, latency_ms, response, error
		FROM attempts WHERE delivery_id = ? ORDER BY seq DESC`, id)
	if err != nil {
		return hub.Delivery{}, fail("get attempts", err)
	}
	defer rows.Close()
	d.AttemptLog = []hub.Attempt{}
	for rows.Next() {
		var (
			a  hub.Attempt
			at int64
		)
		if err := rows.Scan(&a.ID, &a.DeliveryID, &at, &a.StatusCode, &a.LatencyMS, &a.Response, &a.Error); err != nil {
			return hub.Delivery{}, fail("get attempts", err)
		}
		a.At = fromNanos(at)
		d.AttemptLog = append(d.AttemptLog, a)
	}
	if err := rows.Err(); err != nil {
		return hub.Delivery{}, fail("get attempts", err)
	}
	return d, nil
}

// RetryDelivery makes a delivery pending again, attempts 0, due at now (zero:
// the store's clock), whatever its status, and clears its lease: a worker
// holding it gets ECONFLICT when it records. The last status code and error
// stay until the next attempt. An unknown delivery is ENOTFOUND.
func (s *Store) RetryDelivery(ctx context.Context, id string, now time.Time) (hub.Delivery, error) {
	if now.IsZero() {
		now = s.now()
	}
	if err := checkTime(now, "now"); err != nil {
		return hub.Delivery{}, fmt.Errorf("retry delivery: %w", err)
	}
	var d hub.Delivery
	err := s.write(ctx, "retry delivery", func(tx *wtx) error {
		var err error
		d, err = scanReadDelivery(tx.tx.QueryRowContext(tx.ctx, `UPDATE deliveries SET status = 'pending', attempts = 0,
				next_attempt_at = ?, lease = NULL, lease_until = NULL, updated_at = ?
			WHERE id = ?
			RETURNING `+readDeliveryCols, toNanos(now), toNanos(now), id))
		if errors.Is(err, sql.ErrNoRows) {
			return hub.Errorf(hub.ENOTFOUND, "delivery %q not found", id)
		}
		return err
	})
	if err != nil {
		return hub.Delivery{}, err
	}
	return d, nil
}

// replayChunk is how many events Replay looks at per transaction (unless a
// test sets Store.replayChunk), so that a replay of months of events never
// holds the writer for long.
const replayChunk = 1000

// Replay makes the endpoint's deliveries of the events created in [Since,
// Until) pending again (see hub.Store). It walks those events in creation
// order, replayChunk of them per transaction, and for each resets the endpoint's
// delivery if its status passes the filter or, with no status filter,
// creates the delivery the endpoint never had if its filters (not Enabled)
// admit the event. Created deliveries get Now as their creation time and
// come after every existing delivery in the ordered rule's creation order.
//
// The chunks commit one by one: if Replay fails part way, what it did so
// far stays done, and it returns how many deliveries it made due with the
// error. An unknown endpoint is ENOTFOUND, an unknown status EINVALID; a
// zero Now is the store's clock and a zero Since the beginning of time.
func (s *Store) Replay(ctx context.Context, r hub.Replay) (int, error) {
	if err := r.Prepare(s.now()); err != nil {
		return 0, err
	}
	for _, c := range []struct {
		t    time.Time
		what string
	}{{r.Since, "since"}, {r.Until, "until"}, {r.Now, "now"}} {
		if err := checkTime(c.t, c.what); err != nil {
			return 0, fmt.Errorf("replay: %w", err)
		}
	}
	now := utc(r.Now)
	since, until := int64(math.MinInt64), int64(math.MaxInt64)
	if !r.Since.IsZero() {
		since = toNanos(r.Since)
	}
	if !r.Until.IsZero() {
		until = toNanos(r.Until)
	}
	// The keyset of the next chunk: events after (afterAt, afterRow) in
	// (created_at, rowid) order. rowid is never below 1.
	afterAt, afterRow := since, int64(0)
	chunk := cmp.Or(s.replayChunk, replayChunk)
	total := 0
	for {
		var (
			n, seen         int
			nextAt, nextRow int64 // the keyset after this chunk, set by fn: see Store.commit
		)
		err := s.write(ctx, "replay", func(tx *wtx) error {
			n, seen = 0, 0
			se, err := scanEndpoint(tx.queryRowStmt(s.q.claimEndpoint, r.EndpointID))
			if errors.Is(err, sql.ErrNoRows) {
				return hub.Errorf(hub.ENOTFOUND, "endpoint %q not found", r.EndpointID)
			}
			if err != nil {
				return fmt.Errorf("load endpoint: %w", err)
			}
			ep := se.Endpoint
			type event struct {
				hub.Event
				rowid int64
			}
			var events []event
			rows, err := tx.tx.QueryContext(tx.ctx, replayEventsSQL, afterAt, until, afterRow, chunk)
			if err != nil {
				return fmt.Errorf("find events: %w", err)
			}
			for rows.Next() {
				var (
					e         event
					verifID   sql.NullString
					createdAt int64
				)
				if err := rows.Scan(&e.rowid, &e.ID, &e.Type, &e.Source, &verifID, &createdAt); err != nil {
					rows.Close()
					return fmt.Errorf("find events: %w", err)
				}
				e.VerificationID, e.CreatedAt = verifID.String, fromNanos(createdAt)
				events = append(events, e)
			}
			if err := rows.Close(); err != nil {
				return fmt.Errorf("find events: %w", err)
			}
			if err := rows.Err(); err != nil {
				return fmt.Errorf("find events: %w", err)
			}
			had := make(map[string]bool, len(events))
			evs := make([]hub.Event, len(events))
			for i, e := range events {
				evs[i] = e.Event
				res, err := tx.exec(`UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?,
						lease = NULL, lease_until = NULL, updated_at = ?
					WHERE endpoint_id = ? AND event_id = ? AND (? = '' OR status = ?)`,
					toNanos(now), toNanos(now), ep.ID, e.ID, string(r.Status), string(r.Status))
				if err != nil {
					return fmt.Errorf("reset delivery of %s: %w", e.ID, err)
				}
				k, err := res.RowsAffected()
				if err != nil {
					return err
				}
				had[e.ID] = k > 0
				n += int(k)
			}
			// Without a status filter every existing delivery was reset, so
			// an event whose delivery was not has none.
			missing := r.Missing(ep, evs, func(id string) bool { return had[id] })
			if err := s.insertDeliveries(tx, missing); err != nil {
				return err
			}
			n += len(missing)
			seen = len(events)
			if seen > 0 {
				nextAt, nextRow = toNanos(events[seen-1].CreatedAt), events[seen-1].rowid
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		if seen > 0 {
			afterAt, afterRow = nextAt, nextRow
		}
		total += n
		if seen < chunk {
			return total, nil
		}
	}
}

// replayEventsSQL reads Replay's next chunk of events: those after the
// keyset (?1 created_at, ?3 rowid) and before ?2, at most ?4. Each event is
// in one of two partial indexes on created_at, by whether it is purged
// (migration 0027): the query reads a range of each, both in (created_at,
// rowid) order, and merges them. created_at >= ?1 (not since) starts each
// range at the chunk, so that each chunk costs its own rows only.
const replayEventsSQL = `SELECT rowid, id, type, source, verification_id, created_at FROM events
		WHERE purged_at IS NULL AND created_at >= ?1 AND created_at < ?2 AND (created_at, rowid) > (?1, ?3)
	UNION ALL
	SELECT rowid, id, type, source, verification_id, created_at FROM events
		WHERE purged_at IS NOT NULL AND created_at >= ?1 AND created_at < ?2 AND (created_at, rowid) > (?1, ?3)
	ORDER BY created_at, rowid LIMIT ?4`

// QueueStats counts the pending deliveries, those due by now (zero: the
// store's clock) among them, and finds the earliest due time. Deliveries of
// disabled endpoints count too: they are pending.
func (s *Store) QueueStats(ctx context.Context, now time.Time) (hub.QueueStats, error) {
	if now.IsZero() {
		now = s.now()
	}
	if err := checkTime(now, "now"); err != nil {
		return hub.QueueStats{}, fmt.Errorf("queue stats: %w", err)
	}
	var (
		st     hub.QueueStats
		oldest sql.NullInt64
	)
	// deliveries_due is ordered by due time within each endpoint: the due
	// ones and the earliest are read endpoint by endpoint, each a range of
	// the index, and every count stops at the limit.
	err := s.rdb.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM (SELECT 1 FROM deliveries INDEXED BY deliveries_due WHERE status = 'pending' LIMIT ?1)),
		coalesce((SELECT sum((SELECT count(*) FROM (SELECT 1 FROM deliveries INDEXED BY deliveries_due
			WHERE status = 'pending' AND endpoint_id = e.id AND next_attempt_at <= ?2 LIMIT ?1))) FROM endpoints e), 0),
		(SELECT min((SELECT min(next_attempt_at) FROM deliveries INDEXED BY deliveries_due
			WHERE status = 'pending' AND endpoint_id = e.id)) FROM endpoints e)`,
		hub.QueueCountLimit, toNanos(now)).Scan(&st.Pending, &st.Due, &oldest)
	st.Capped, st.Due = st.Pending >= hub.QueueCountLimit, min(st.Due, st.Pending)
	if err != nil {
		return hub.QueueStats{}, fail("queue stats", err)
	}
	if oldest.Valid && oldest.Int64 <= toNanos(now) {
		st.OldestDue = fromNanos(oldest.Int64)
	}
	return st, nil
}
