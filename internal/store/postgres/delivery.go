package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/verihook/verihook/internal/hub"
)

// deliveryArgs returns insertDeliveriesSQL's arguments for ds, which are
// all created and due at one time (that of the first).
func deliveryArgs(ds []hub.NewDelivery) []any {
	ids, endpoints, events, types, sources := make([]string, len(ds)), make([]string, len(ds)),
		make([]string, len(ds)), make([]string, len(ds)), make([]string, len(ds))
	verifications := make([]*string, len(ds))
	for i, d := range ds {
		ids[i], endpoints[i], events[i], types[i], sources[i] = d.ID, d.EndpointID, d.Event.ID, d.Event.Type, d.Event.Source
		verifications[i] = nullString(d.Event.VerificationID)
	}
	return []any{ids, endpoints, events, types, sources, verifications, ts(ds[0].At)}
}

// insertDeliveriesSQL creates pending deliveries, created and due at $7, in
// the order given: seq, which the ordered rule follows, is their creation
// order.
const insertDeliveriesSQL = `INSERT INTO deliveries
	(id, endpoint_id, event_id, event_type, source, verification_id, status, attempts, next_attempt_at,
	 created_at, updated_at)
	SELECT d.id, d.endpoint_id, d.event_id, d.event_type, d.source, d.verification_id, 'pending', 0, $7, $7, $7
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY
		AS d (id, endpoint_id, event_id, event_type, source, verification_id, n)
	ORDER BY d.n`

const deliveryCols = `id, endpoint_id, event_id, event_type, source, verification_id, status, attempts,
	next_attempt_at, last_status_code, last_error, created_at, updated_at`

// deliveryScan holds the destinations of a row of deliveryCols.
type deliveryScan struct {
	d       hub.Delivery
	verifID *string
	status  string
	next    *time.Time
}

func (x *deliveryScan) dest() []any {
	d := &x.d
	return []any{&d.ID, &d.EndpointID, &d.EventID, &d.EventType, &d.Source, &x.verifID, &x.status, &d.Attempts,
		&x.next, &d.LastStatusCode, &d.LastError, &d.CreatedAt, &d.UpdatedAt}
}

func (x *deliveryScan) value() hub.Delivery {
	d := x.d
	d.VerificationID, d.Status = fromNullString(x.verifID), hub.DeliveryStatus(x.status)
	d.NextAttemptAt = fromNullTime(x.next)
	d.CreatedAt, d.UpdatedAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	return d
}

// lastLatencyCol is the latency of a delivery's last attempt (NULL before
// the first), read through attempts_delivery: one index lookup a row of a
// list, in the list's query.
const lastLatencyCol = `(SELECT a.latency_ms FROM attempts a WHERE a.delivery_id = deliveries.id ORDER BY a.seq DESC LIMIT 1)`

// readDeliveryCols are the columns of a delivery as reads return it: with
// its last attempt's latency (see scanReadDelivery).
const readDeliveryCols = lastLatencyCol + `, ` + deliveryCols

// scanReadDelivery reads a row of readDeliveryCols.
func scanReadDelivery(r pgx.Row) (hub.Delivery, error) {
	var (
		x       deliveryScan
		latency *int64
	)
	if err := r.Scan(append([]any{&latency}, x.dest()...)...); err != nil {
		return hub.Delivery{}, err
	}
	d := x.value()
	if latency != nil {
		d.LastLatencyMS = *latency
	}
	return d, nil
}

// scanDelivery reads a row of deliveryCols.
func scanDelivery(r pgx.Row) (hub.Delivery, error) {
	var x deliveryScan
	if err := r.Scan(x.dest()...); err != nil {
		return hub.Delivery{}, err
	}
	return x.value(), nil
}

// claimSQL leases up to $3 due deliveries at $1 until $2, oldest due first,
// and returns each with its event and endpoint, in one statement (and so
// one transaction, committed when it returns).
//
// picked finds, for each enabled endpoint, its own oldest due deliveries
// that nobody holds (up to $3 each, through deliveries_due, so that the
// backlog of a disabled endpoint is never walked), and keeps the $3 oldest
// of them all, by due time and then creation order.
//
// FOR UPDATE SKIP LOCKED is what lets any number of instances claim at
// once: a row that another claimer is leasing right now is locked by its
// statement, and rather than wait for it (and then find it leased), this
// claim skips it and takes the next. A row whose lease a claimer committed
// after this statement began is not locked any more; PostgreSQL locks it,
// re-checks the conditions on its committed version (lease_until is now in
// the future) and drops it. So two claims never lease the same delivery
// while its lease holds.
//
// The ordered rule: for an ordered endpoint, a delivery of a verification
// is claimable only while no EARLIER-CREATED (lower seq) delivery of the
// same verification to the same endpoint is pending, whether that one is
// due, waiting for its next attempt, or leased. It holds across concurrent
// claimers because a lease does not change status: the NOT EXISTS sees the
// earlier delivery as pending whether or not another claimer has locked or
// leased it (SKIP LOCKED skips rows to lock, not rows the subquery reads).
// The earlier delivery is visible to it, too: deliveries of one
// verification are created by Ingest transactions that hold the
// verification's row lock (and by Replay, which takes it FOR SHARE for an
// ordered endpoint), so a later-created one cannot commit before an
// earlier-created one. The deliveries of events without a verification are
// not held back.
//
// The NOT EXISTS asks for the pending delivery just before d in
// deliveries_ordered's order (endpoint, verification, seq): d has an earlier
// one of its verification exactly when that is one. Only deliveries_ordered
// answers this, with one probe, whatever the statistics. Asked as "is any
// pending delivery of d's endpoint and verification below d's seq", the
// generic plan made on 50,000 pending deliveries never analyzed answered it
// through deliveries_due, a walk of the endpoint's whole backlog per
// candidate: a claim with an ordered endpoint's backlog of 47,000 read 7.4
// million buffers in 39 s, against 189,000 in 0.7 s with this form.
//
// Rows that the per-endpoint subqueries lock but the final LIMIT drops are
// unlocked when the statement commits, a moment later.
var claimSQL = `WITH picked AS (
	SELECT c.seq FROM endpoints e CROSS JOIN LATERAL (
		SELECT d.seq, d.next_attempt_at FROM deliveries d
		WHERE d.endpoint_id = e.id AND d.status = 'pending' AND d.next_attempt_at <= $1
			AND (d.lease_until IS NULL OR d.lease_until <= $1)
			AND (NOT e.ordered OR d.verification_id IS NULL OR NOT EXISTS (
				SELECT 1 FROM (
					SELECT p.endpoint_id, p.verification_id FROM deliveries AS p
					WHERE p.status = 'pending'
						AND (p.endpoint_id, p.verification_id, p.seq) < (d.endpoint_id, d.verification_id, d.seq)
					ORDER BY p.endpoint_id DESC, p.verification_id DESC, p.seq DESC
					LIMIT 1
				) AS prev
				WHERE prev.endpoint_id = d.endpoint_id AND prev.verification_id = d.verification_id))
		ORDER BY d.next_attempt_at, d.seq
		LIMIT $3
		FOR UPDATE OF d SKIP LOCKED
	) c
	WHERE e.enabled
	ORDER BY c.next_attempt_at, c.seq
	LIMIT $3
), claimed AS (
	-- A fresh random token per claim: whoever held the delivery before (a
	-- worker whose lease ran out) holds a different token, so its
	-- RecordAttempt or Release matches no row and gets ECONFLICT.
	UPDATE deliveries d SET lease = 'lease_' || gen_random_uuid(), lease_until = $2
	FROM picked WHERE d.seq = picked.seq
	RETURNING d.seq, d.lease, ` + deliveryColsOf("d") + `
)
SELECT c.seq, c.lease, ` + deliveryColsOf("c") + `,
	ev.id, ev.type, ev.created_at, ev.source, ev.provider, ev.data, ev.message_id, ev.verification_id,
	` + endpointColsOf("ep") + `
FROM claimed c
JOIN events ev ON ev.id = c.event_id
JOIN endpoints ep ON ep.id = c.endpoint_id
ORDER BY c.next_attempt_at, c.seq`

// deliveryColsOf is deliveryCols qualified with a table alias.
func deliveryColsOf(alias string) string { return qualify(alias, deliveryCols) }

// endpointColsOf is endpointCols qualified with a table alias.
func endpointColsOf(alias string) string { return qualify(alias, endpointCols) }

// qualify prefixes each of a comma-separated list of columns with alias.
func qualify(alias, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = alias + "." + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

// sealedClaim is a claim as the database returns it: the event's data and
// the endpoint's secrets are still sealed.
type sealedClaim struct {
	delivery  hub.Delivery
	lease     string
	event     hub.Event
	eventData []byte
	endpoint  sealedEndpoint
}

// ClaimDeliveries leases up to limit due deliveries of enabled endpoints,
// oldest due first, each under a new random lease token valid until
// now+lease (see hub.Store and claimSQL). A zero now is the store's clock; a
// limit below 1 or a lease of 0 or less is EINVALID. A
// delivery whose event data or endpoint secrets cannot be opened is
// recorded as a dead letter (hub.UnreadableClaim), not returned.
func (s *Store) ClaimDeliveries(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]hub.Claim, error) {
	if err := hub.CheckClaim(limit, lease); err != nil {
		return nil, err
	}
	if now.IsZero() {
		now = s.now()
	}
	now = ts(now)
	until := ts(now.Add(lease))
	if err := checkTime(now, "now"); err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	if err := checkTime(until, "lease end"); err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	// One statement, committed on its own: it waits for no lock (SKIP
	// LOCKED), so it cannot deadlock. Nor does it wait for its WAL flush
	// (lazyCommit): a lease lost in a server crash leaves its delivery due
	// again, which is what a crash does to a lease anyway (the delivery is
	// sent again: at-least-once), and the attempt's RecordAttempt, which
	// commits durably, flushes the lease's WAL before its own. The worker
	// claims one batch at a time, so a flush per claim (milliseconds on a
	// busy disk) bounded how many deliveries a second it could send. It is
	// planned once per connection (indexPlan): planned at every run it took
	// longer to plan than to run, 1.1-1.8 ms per claim at 500/s end to end
	// on 2 busy cores, a fifth of the backends' time on the delivery path.
	var sealed []sealedClaim
	err := s.queryWith(ctx, lazyCommit+", "+indexPlan, func(rows pgx.Rows) error {
		var err error
		sealed, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (sealedClaim, error) {
			var (
				seq int64
				c   sealedClaim
				dx  deliveryScan
				ex  eventScan
				px  endpointScan
			)
			if err := row.Scan(slices.Concat([]any{&seq, &c.lease}, dx.dest(), ex.dest(), px.dest())...); err != nil {
				return sealedClaim{}, err
			}
			c.delivery = dx.value()
			c.event, c.eventData = ex.value()
			c.endpoint = px.value()
			return c, nil
		})
		return err
	}, claimSQL, now, until, limit)
	if err != nil {
		return nil, fail("claim deliveries", err)
	}
	claims := make([]hub.Claim, 0, len(sealed))
	opened := map[string]hub.Endpoint{}
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
func (s *Store) openClaim(c sealedClaim, opened map[string]hub.Endpoint) (hub.Claim, error) {
	ev := c.event
	if err := ev.OpenData(s.cipher, c.eventData); err != nil {
		return hub.Claim{}, err
	}
	ep, ok := opened[c.endpoint.ID]
	if !ok {
		var err error
		if ep, err = s.openEndpoint(c.endpoint); err != nil {
			return hub.Claim{}, err
		}
		opened[c.endpoint.ID] = ep
	}
	ep.EventTypes, ep.Sources = slices.Clone(ep.EventTypes), slices.Clone(ep.Sources)
	return hub.Claim{Delivery: c.delivery, Event: ev, Endpoint: ep, Lease: c.lease}, nil
}

// leaseConflict explains why a lease-checked update matched no row:
// ENOTFOUND when the delivery does not exist, ECONFLICT when its lease is not
// lease (it ended and went to another worker, or the delivery was retried,
// replayed or finished meanwhile).
func (s *Store) leaseConflict(ctx context.Context, op, id string) error {
	var exists bool
	if err := s.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM deliveries WHERE id = $1)`, id).Scan(&exists); err != nil {
		return fail(op, err)
	}
	if !exists {
		return hub.Errorf(hub.ENOTFOUND, "delivery %q not found", id)
	}
	return hub.Errorf(hub.ECONFLICT, "delivery %q is no longer leased with this token", id)
}

// recordAttemptSQL applies an attempt's verdict in one statement (one round
// trip, one transaction): the delivery, if $7 is still its lease; its
// attempt log; and its endpoint. The endpoint's row is written, and its
// version moved on, only when FailingSince changes or $11 disables it, not
// at every attempt; when two failures of one endpoint are recorded at once,
// the second's UPDATE waits for the first, re-reads the row and finds
// FailingSince set.
const recordAttemptSQL = `WITH d AS (
	UPDATE deliveries SET attempts = attempts + 1, last_status_code = $1, last_error = $2, status = $3,
		next_attempt_at = $4, lease = NULL, lease_until = NULL, updated_at = $5
	WHERE id = $6 AND lease = $7
	RETURNING endpoint_id
), a AS (
	INSERT INTO attempts (id, delivery_id, at, status_code, latency_ms, response, error)
	SELECT $8, $6, $5, $1, $9, $10, $2 FROM d
), e AS (
	UPDATE endpoints SET
		failing_since = CASE WHEN $3 = 'succeeded' THEN NULL ELSE coalesce(failing_since, $5) END,
		enabled = enabled AND $11 = '',
		disabled_reason = CASE WHEN $11 = '' THEN disabled_reason ELSE $11 END,
		updated_at = CASE WHEN $11 = '' THEN updated_at ELSE $5 END,
		version = version + 1
	WHERE id = (SELECT endpoint_id FROM d)
		AND ($11 <> '' OR ($3 = 'succeeded') = (failing_since IS NOT NULL))
), c AS (
	INSERT INTO stats (minute, name, key, shard, n, latency_ms)
	SELECT $12, CASE WHEN $3 = 'succeeded' THEN 'delivered' ELSE 'delivery_error' END, endpoint_id,
		pg_backend_pid() % 16, 1, $9 FROM d
	ON CONFLICT (minute, name, key, shard) DO UPDATE SET n = stats.n + 1,
		latency_ms = stats.latency_ms + excluded.latency_ms
)
SELECT endpoint_id FROM d`

// RecordAttempt logs an attempt of a claimed delivery and applies its
// verdict (see hub.Store and recordAttemptSQL). A zero Attempt.At is the
// store's clock and an empty Attempt.ID a new "att" id; the delivery's
// updated_at becomes Attempt.At. The response excerpt and error are stored
// as given (bytes PostgreSQL cannot store in text become U+FFFD). An unknown
// status, a pending status without NextAttemptAt, an invalid attempt id, and
// an Attempt.DeliveryID other than r.DeliveryID are EINVALID; an unknown
// delivery is ENOTFOUND and a lease that is not the delivery's ECONFLICT.
func (s *Store) RecordAttempt(ctx context.Context, r hub.AttemptRecord) error {
	if err := r.Prepare(s.now()); err != nil {
		return err
	}
	a := r.Attempt
	if err := checkTime(a.At, "attempt time"); err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	var next *time.Time
	if r.Status == hub.DeliveryPending {
		if err := checkTime(r.NextAttemptAt, "next attempt time"); err != nil {
			return fmt.Errorf("record attempt: %w", err)
		}
		next = nullTime(r.NextAttemptAt)
	}
	deliveryID := clean(r.DeliveryID)
	j := &attemptJob{ctx: ctx, deliveryID: deliveryID, done: make(chan struct{}), args: []any{
		a.StatusCode, clean(a.Error), string(r.Status), next, ts(a.At), deliveryID, clean(r.Lease),
		a.ID, a.LatencyMS, clean(a.Response), clean(r.DisableEndpoint), minute(a.At)}}
	if err := s.attempts.submit(ctx, j, j.done); err != nil {
		return fail("record attempt", err)
	}
	if j.err != nil {
		return fail("record attempt", j.err)
	}
	if !j.found {
		// Only the holder of the lease may record: a worker whose lease ran
		// out and went to another worker matches no row.
		return s.leaseConflict(ctx, "record attempt", deliveryID)
	}
	return nil
}

// attemptJob is one RecordAttempt waiting for a committer.
type attemptJob struct {
	ctx        context.Context
	deliveryID string
	args       []any // recordAttemptSQL's
	// found is set when the delivery was held under the lease and the
	// attempt is recorded; err when the attempt could not be recorded.
	found bool
	err   error
	done  chan struct{} // closed once found and err are final
}

// commitAttempts records a group of attempts (see groups), in the order of
// their deliveries' ids, in one transaction and one round trip (see
// recordAttempts). An attempt whose lease is not held changes nothing and
// fails no other. Should the transaction fail (say, deadlocked with a
// DeleteEndpoint, which takes the endpoint and then its deliveries), each
// attempt is recorded again in a transaction of its own, and a deadlock
// then run again (see retry): the lease makes that safe even if the group's
// commit did succeed, as the delivery is then no longer held with it.
func (s *Store) commitAttempts(group []*attemptJob) {
	defer func() {
		for _, j := range group {
			close(j.done)
		}
	}()
	// The statements run under a context that is never canceled (see
	// commitGroup).
	ctx := context.Background()
	var run []*attemptJob
	for _, j := range group {
		if j.err = j.ctx.Err(); j.err == nil {
			run = append(run, j)
		}
	}
	slices.SortFunc(run, func(a, b *attemptJob) int { return cmp.Compare(a.deliveryID, b.deliveryID) })
	if len(run) > 1 && s.recordAttempts(ctx, run) == nil {
		return
	}
	for _, j := range run {
		j.err = retry(ctx, func() error { return s.recordAttempts(ctx, []*attemptJob{j}) })
	}
}

// recordAttempts records the attempts of run in one transaction and commits
// it, or returns why not. It is one pipeline with one Sync, which PostgreSQL
// runs as one implicit transaction: a round trip, where BEGIN, the
// statements and COMMIT took three. recordAttemptSQL finds its rows by
// their keys, so it is planned once per connection: planned at every run,
// as the store's sessions do (see Open), its planning cost 130 us of the
// backends' CPU per webhook at 500/s, more than its execution.
func (s *Store) recordAttempts(ctx context.Context, run []*attemptJob) error {
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('plan_cache_mode', 'force_generic_plan', true)`)
	for _, j := range run {
		b.Queue(recordAttemptSQL, j.args...)
	}
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return err
	}
	found := make([]bool, len(run))
	for i := range run {
		var endpointID string
		err := br.QueryRow().Scan(&endpointID)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		found[i] = err == nil
	}
	// Close reads the result of the Sync: the commit's.
	if err := br.Close(); err != nil {
		return err
	}
	if len(run) > 1 {
		s.attemptGroups.Add(1)
	}
	for i, j := range run {
		j.found = found[i]
	}
	return nil
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
	deliveryID = clean(deliveryID)
	tag, err := s.exec(ctx, `UPDATE deliveries SET lease = NULL, lease_until = NULL, next_attempt_at = $1,
			updated_at = $2
		WHERE id = $3 AND lease = $4 AND status = 'pending'`, ts(at), now, deliveryID, clean(lease))
	if err != nil {
		return fail("release delivery", err)
	}
	if tag.RowsAffected() == 0 {
		return s.leaseConflict(ctx, "release delivery", deliveryID)
	}
	return nil
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
	var q listQuery
	if f.EndpointID != "" {
		q.add("endpoint_id = ?", clean(f.EndpointID))
	}
	if f.EventID != "" {
		q.add("event_id = ?", clean(f.EventID))
	}
	if f.Status != "" {
		q.add("status = ?", string(f.Status))
	}
	stmt, args := q.sql(`SELECT `+readDeliveryCols+` FROM deliveries`, cursor, limit)
	return list(ctx, s, "list deliveries", stmt, args, limit, func(r pgx.Row) (hub.Delivery, string, error) {
		d, err := scanReadDelivery(r)
		return d, d.ID, err
	})
}

// Delivery returns one delivery with its attempts, newest (last recorded)
// first, both read from one snapshot; AttemptLog is empty, not nil, when
// there is none.
func (s *Store) Delivery(ctx context.Context, id string) (hub.Delivery, error) {
	var d hub.Delivery
	err := s.snapshot(ctx, "get delivery", func(tx pgx.Tx) error {
		var err error
		if d, err = scanReadDelivery(tx.QueryRow(ctx, `SELECT `+readDeliveryCols+` FROM deliveries WHERE id = $1`, clean(id))); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, delivery_id, at, status_code, latency_ms, response, error
			FROM attempts WHERE delivery_id = $1 ORDER BY seq DESC`, d.ID)
		if err != nil {
			return fmt.Errorf("get attempts: %w", err)
		}
		defer rows.Close()
		d.AttemptLog = []hub.Attempt{}
		for rows.Next() {
			var a hub.Attempt
			if err := rows.Scan(&a.ID, &a.DeliveryID, &a.At, &a.StatusCode, &a.LatencyMS, &a.Response, &a.Error); err != nil {
				return fmt.Errorf("get attempts: %w", err)
			}
			a.At = a.At.UTC()
			d.AttemptLog = append(d.AttemptLog, a)
		}
		return rows.Err()
	})
	if err != nil {
		return hub.Delivery{}, notFound("get delivery", err, fmt.Sprintf("delivery %q not found", id))
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
	now = ts(now)
	d, err := scanReadDelivery(s.queryRow(ctx, `UPDATE deliveries SET status = 'pending', attempts = 0,
			next_attempt_at = $1, lease = NULL, lease_until = NULL, updated_at = $1
		WHERE id = $2
		RETURNING `+readDeliveryCols, now, clean(id)))
	if err != nil {
		return hub.Delivery{}, notFound("retry delivery", err, fmt.Sprintf("delivery %q not found", id))
	}
	return d, nil
}

// replayChunk is how many events Replay looks at per transaction (unless a
// test sets Store.replayChunk), so that a replay of months of events never
// holds one transaction open for long.
const replayChunk = 1000

// Replay makes the endpoint's deliveries of the events created in [Since,
// Until) pending again (see hub.Store). It walks those events in (created_at,
// id) order, replayChunk of them per transaction, and for each resets the
// endpoint's delivery if its status passes the filter or, with no status
// filter, creates the delivery the endpoint never had if its filters (not
// Enabled) admit the event. Created deliveries get Now as their creation
// time and come after every existing delivery in the ordered rule's
// creation order.
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
	now := ts(r.Now)
	since, until := minTime, maxTime
	if !r.Since.IsZero() {
		since = tsCeil(r.Since)
	}
	if !r.Until.IsZero() {
		until = tsCeil(r.Until)
	}
	// The keyset of the next chunk: events after (afterAt, afterID) in
	// (created_at, id) order; "" is below every id.
	afterAt, afterID := since, ""
	chunk := cmp.Or(s.replayChunk, replayChunk)
	endpointID := clean(r.EndpointID)
	total := 0
	for {
		var n, seen int
		var last hub.Event
		err := s.inTx(ctx, "replay", func(tx pgx.Tx) error {
			n, seen = 0, 0
			se, err := scanEndpoint(tx.QueryRow(ctx, `SELECT `+endpointCols+` FROM endpoints WHERE id = $1`, endpointID))
			if errors.Is(err, pgx.ErrNoRows) {
				return hub.Errorf(hub.ENOTFOUND, "endpoint %q not found", r.EndpointID)
			}
			if err != nil {
				return fmt.Errorf("load endpoint: %w", err)
			}
			ep := se.Endpoint
			// created_at >= afterAt (not since) starts the index range at
			// the chunk, so that each chunk costs its own rows only.
			rows, err := tx.Query(ctx, `SELECT id, type, source, verification_id, created_at FROM events
				WHERE created_at >= $1 AND created_at < $2 AND (created_at, id) > ($1, $3)
				ORDER BY created_at, id LIMIT $4`, afterAt, until, afterID, chunk)
			if err != nil {
				return fmt.Errorf("find events: %w", err)
			}
			events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (hub.Event, error) {
				var (
					e       hub.Event
					verifID *string
				)
				err := row.Scan(&e.ID, &e.Type, &e.Source, &verifID, &e.CreatedAt)
				e.VerificationID = fromNullString(verifID)
				return e, err
			})
			if err != nil {
				return fmt.Errorf("find events: %w", err)
			}
			seen = len(events)
			if seen == 0 {
				return nil
			}
			last = events[seen-1]
			ids := make([]string, seen)
			for i, e := range events {
				ids[i] = e.ID
			}
			rows, err = tx.Query(ctx, `UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1,
					lease = NULL, lease_until = NULL, updated_at = $1
				WHERE endpoint_id = $2 AND event_id = ANY($3) AND ($4 = '' OR status = $4)
				RETURNING event_id`, now, ep.ID, ids, string(r.Status))
			if err != nil {
				return fmt.Errorf("reset deliveries: %w", err)
			}
			reset, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return fmt.Errorf("reset deliveries: %w", err)
			}
			n = len(reset)
			// Without a status filter every existing delivery was reset, so
			// an event whose delivery was not has none.
			had := make(map[string]bool, len(reset))
			for _, id := range reset {
				had[id] = true
			}
			missing := r.Missing(ep, events, func(id string) bool { return had[id] })
			if len(missing) == 0 {
				return nil
			}
			var verifs []string
			for _, d := range missing {
				if d.Event.VerificationID != "" {
					verifs = append(verifs, d.Event.VerificationID)
				}
			}
			if ep.Ordered && len(verifs) > 0 {
				// For the ordered rule, a delivery must not commit after a
				// later-created one of the same verification (see claimSQL):
				// wait for any Ingest of these verifications in flight, and
				// hold new ones off until this commits.
				if _, err := tx.Exec(ctx, `SELECT 1 FROM verifications WHERE id = ANY($1) ORDER BY id FOR SHARE`,
					verifs); err != nil {
					return fmt.Errorf("lock verifications: %w", err)
				}
			}
			if _, err := tx.Exec(ctx, insertDeliveriesSQL, deliveryArgs(missing)...); err != nil {
				return fmt.Errorf("insert deliveries: %w", err)
			}
			n += len(missing)
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if seen < chunk {
			return total, nil
		}
		afterAt, afterID = ts(last.CreatedAt), last.ID
	}
}

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
	now = ts(now)
	var (
		st     hub.QueueStats
		oldest *time.Time
	)
	// deliveries_due is ordered by due time within each endpoint: the due
	// ones and the earliest are read endpoint by endpoint, each a range of
	// the index, and every count stops at the limit.
	err := s.queryRow(ctx, `SELECT
		(SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE status = 'pending' LIMIT $2) d),
		coalesce((SELECT sum((SELECT count(*) FROM (SELECT 1 FROM deliveries
			WHERE status = 'pending' AND endpoint_id = e.id AND next_attempt_at <= $1 LIMIT $2) d)) FROM endpoints e), 0)::bigint,
		(SELECT min((SELECT min(next_attempt_at) FROM deliveries
			WHERE status = 'pending' AND endpoint_id = e.id)) FROM endpoints e)`,
		now, hub.QueueCountLimit).Scan(&st.Pending, &st.Due, &oldest)
	st.Capped, st.Due = st.Pending >= hub.QueueCountLimit, min(st.Due, st.Pending)
	if err != nil {
		return hub.QueueStats{}, fail("queue stats", err)
	}
	if oldest != nil && !oldest.After(now) {
		st.OldestDue = oldest.UTC()
	}
	return st, nil
}
