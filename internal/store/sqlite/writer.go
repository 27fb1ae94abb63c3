package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"modernc.org/sqlite"

	"github.com/verihook/verihook/internal/hub"
)

// maxBatch is the most writes committed in one transaction. Larger batches
// amortize the fsync further but make every caller in them wait for the whole
// batch: an Ingest costs the writer about 150µs (BenchmarkIngestParallel), so
// a full batch answers its first caller some 40ms late.
const maxBatch = 256

// writeKind says what the caller of a write waits for.
type writeKind uint8

const (
	// durable: the write's commit, synced to disk. Every write but the two
	// below.
	durable writeKind = iota
	// patient: a durable commit, which may wait for company (see
	// patientWait). RecordAttempt.
	patient
	// unsynced: a commit that other connections and processes see, not
	// necessarily on disk yet. ClaimDeliveries: see syncFor.
	unsynced
)

// patientWait is how long a patient write (RecordAttempt) that would commit
// alone waits for another write to commit with. At a moderate rate every
// commit costs at least its own pages and a rewritten 4 KiB tail of the
// log, whatever it holds: at 100 webhooks/s, an attempt committed alone
// was 11 pages of the log and a fifth of the bytes written per delivered
// webhook, and half of its pages (the deliveries' newest leaves, the
// counters) are pages the next ingest changes anyway. Nobody waits for an
// attempt's commit but the worker that sent it, which has sent already:
// the wait delays no acknowledgement and no delivery, only the next
// delivery of an ordered endpoint's verification and the freeing of the
// worker's slot. Any write ends the wait, so a burst of attempts (a
// backlog draining) commits at once. It waits only while company is
// likely, a durable write (an ingest, most often) having committed within
// the last patientWait: a replay or a backlog to an ordered endpoint,
// with nothing else coming in, would otherwise wait patientWait before
// each next delivery of a verification.
const patientWait = 20 * time.Millisecond

// commitGap is the least time between two commits of durable writes
// (ingests), from the end of one to the start of the next: a batch of them
// that would start sooner gathers what arrives until then, or until it
// holds gapBatch requests. A commit costs an fsync and a page of every
// B-tree it touches, however few webhooks it holds, and once the log's
// frames went to the file a page at a time (see walVFS), the writer's
// commits at a few thousand webhooks a second held two or three each. At
// 1,000 webhooks/s the gap takes a quarter off verihook's CPU per webhook
// and off the bytes it writes, for about 2 ms on the median
// acknowledgement (BENCHMARKS.md, "Issue 12, fifth pass"). A webhook that
// arrives more than commitGap after the last durable commit ended waits for
// nothing.
const commitGap = time.Millisecond

// gapBatch is the size at which a batch of ingests stops waiting out
// commitGap and commits: its commit's cost is shared enough already, and
// a writer that finds that many queued after a commit is the busiest part
// of the hub, which waiting would only leave idle. Flat out (64
// connections) batches hold about 30 and waiting took 7–9 % of the
// writer's time (BENCHMARKS.md, "Issue 12, sixth pass").
const gapBatch = 16

// errClosed is returned for writes submitted after Close.
var errClosed = hub.Errorf(hub.EUNAVAILABLE, "store is closed")

// writeReq is one write waiting for the writer goroutine. fn runs inside the
// batch's transaction, under its own savepoint; it must do nothing but
// database work on tx, and must leave its results where the submitter reads
// them only once done has answered nil.
type writeReq struct {
	ctx  context.Context
	fn   func(tx *wtx) error
	done chan error // buffered: the writer never blocks on an answer
	kind writeKind
}

// wtx is the writer's transaction. Statements run under the writer's own
// context (see commit), and the hot ones are prepared once when the store
// opens (see prepared), so that a batch does not parse the same SQL hundreds
// of times: parsing was a quarter of the writer's time.
type wtx struct {
	ctx   context.Context
	tx    *sql.Tx
	stmts map[*sql.Stmt]*sql.Stmt // the transaction's handles on prepared statements

	// versionChecked is set once the endpoint cache has been checked
	// against PRAGMA data_version in this transaction (see endpointCache).
	versionChecked bool

	// counts are the counters the transaction's requests added to and that
	// are not written yet (see count and flushCounts).
	counts map[statKey]statSum
}

func newWtx(ctx context.Context, tx *sql.Tx) *wtx {
	return &wtx{ctx: ctx, tx: tx, stmts: map[*sql.Stmt]*sql.Stmt{}, counts: map[statKey]statSum{}}
}

// exec runs a statement that is not prepared.
func (w *wtx) exec(query string, args ...any) (sql.Result, error) {
	return w.tx.ExecContext(w.ctx, query, args...)
}

// execStmt runs a prepared statement.
func (w *wtx) execStmt(p *sql.Stmt, args ...any) (sql.Result, error) {
	return w.stmt(p).ExecContext(w.ctx, args...)
}

// queryStmt runs a prepared query.
func (w *wtx) queryStmt(p *sql.Stmt, args ...any) (*sql.Rows, error) {
	return w.stmt(p).QueryContext(w.ctx, args...)
}

// queryRowStmt runs a prepared query that returns at most one row.
func (w *wtx) queryRowStmt(p *sql.Stmt, args ...any) *sql.Row {
	return w.stmt(p).QueryRowContext(w.ctx, args...)
}

// stmt returns the transaction's handle on p. database/sql reuses p's
// compiled statement, as p was prepared on the one writer connection.
func (w *wtx) stmt(p *sql.Stmt) *sql.Stmt {
	st, ok := w.stmts[p]
	if !ok {
		st = w.tx.StmtContext(w.ctx, p)
		w.stmts[p] = st
	}
	return st
}

// write hands fn to the writer goroutine and waits until the transaction that
// ran it has committed (nil) or fn or the transaction failed. If ctx ends
// first, write returns ctx's error; fn may still run and commit (then it is
// as durable as any other write), or be skipped if the writer sees the
// cancellation before starting it.
func (s *Store) write(ctx context.Context, op string, fn func(tx *wtx) error) error {
	return s.submit(ctx, op, durable, fn)
}

// submit is write for a write of any kind.
func (s *Store) submit(ctx context.Context, op string, kind writeKind, fn func(tx *wtx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	r := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1), kind: kind}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return fmt.Errorf("%s: %w", op, errClosed)
	}
	select {
	case s.queue <- r:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	select {
	case err := <-r.done:
		if err != nil {
			return fail(op, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
}

// writer is the one goroutine that writes. It takes a request, then every
// other request already queued (up to maxBatch), runs them all in one
// transaction and commits once, so that concurrent writers share one fsync.
// While it commits, new requests queue up and form the next batch: the
// busier the store, the larger the batches, with no added latency when it
// is idle, except for a patient write alone (see patientWait); under load,
// durable commits are at least commitGap apart. It exits once Close has
// closed the queue and every queued request has been answered.
func (s *Store) writer() {
	defer close(s.done)
	batch := make([]*writeReq, 0, maxBatch)
	wait := time.NewTimer(patientWait)
	wait.Stop()
	var busy time.Time  // when a batch with a durable write last began to commit
	var ended time.Time // and when it had committed
	for r := range s.queue {
		batch = s.gather(append(batch[:0], r))
		if len(batch) == 1 && r.kind == patient && time.Since(busy) < patientWait {
			wait.Reset(patientWait)
			select {
			case r, ok := <-s.queue:
				if ok {
					batch = s.gather(append(batch, r))
				}
			case <-wait.C:
			}
			wait.Stop()
		}
		if r.kind == durable {
			batch = s.gatherFor(batch, commitGap-time.Since(ended), gapBatch, wait)
		}
		synced := slices.ContainsFunc(batch, func(r *writeReq) bool { return r.kind == durable })
		if synced {
			busy = time.Now()
		}
		errs := s.commit(batch)
		if synced {
			ended = time.Now()
		}
		for i, r := range batch {
			r.done <- errs[i]
			batch[i] = nil
		}
	}
}

// gatherFor adds to batch the requests that arrive within d until it holds
// n, with wait, a stopped timer; the requests queued already join it up to
// maxBatch in all (see gather).
func (s *Store) gatherFor(batch []*writeReq, d time.Duration, n int, wait *time.Timer) []*writeReq {
	if d <= 0 || len(batch) >= n {
		return batch
	}
	wait.Reset(d)
	defer wait.Stop()
	for len(batch) < n {
		select {
		case r, ok := <-s.queue:
			if !ok {
				return batch
			}
			batch = s.gather(append(batch, r))
		case <-wait.C:
			return batch
		}
	}
	return batch
}

// gather adds to batch the requests already queued, up to maxBatch in all.
func (s *Store) gather(batch []*writeReq) []*writeReq {
	for len(batch) < maxBatch {
		select {
		case r, ok := <-s.queue:
			if !ok {
				return batch
			}
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// commit runs a batch in one transaction and returns each request's error.
// It first runs the requests one after the other, with nothing between
// them: if all succeed, the batch commits. If one fails, the transaction is
// rolled back and the batch is run again, each request under a SAVEPOINT
// (see commitIsolated), so that the failed one is rolled back alone. A
// savepoint costs a copy of every page a request first changes in it (the
// statement journal), and two statements, a tenth of the writer's time; a
// request fails rarely (a conflict, a stale lease), so the batch that has
// one pays for it twice instead of every batch paying it always. Every fn
// can be run twice: it leaves its results where its caller reads them only
// once done has answered, and a second run overwrites them.
func (s *Store) commit(batch []*writeReq) []error {
	if err := s.syncFor(batch); err != nil {
		return s.failAll(make([]error, len(batch)), err)
	}
	if errs, ok := s.commitTogether(batch); ok {
		return errs
	}
	s.retried.Add(1)
	return s.commitIsolated(batch)
}

// syncFor sets the writer connection's synchronous level for a batch:
// NORMAL if every request in it is unsynced, FULL otherwise. A batch of
// claims alone need not wait for an fsync: a lease is seen by every
// connection and process once committed, synced or not, and the next
// synced commit syncs the log with the claim's frames in it. Only a power
// loss or a crash of the OS can lose a lease that was not synced yet, and
// then the delivery is due again once restarted, as when a worker dies
// between sending and recording (at-least-once delivery); verihook's
// processes die with the OS, so no other one holds the lost lease. Without
// the sync, the next commit appends to a 4 KiB page of the log that is
// still to be written rather than rewriting one synced already: at 100
// webhooks/s, 4 KiB and an fsync per delivered webhook less.
func (s *Store) syncFor(batch []*writeReq) error {
	normal := !slices.ContainsFunc(batch, func(r *writeReq) bool { return r.kind != unsynced })
	if normal == s.syncNormal {
		return nil
	}
	// Not a prepared statement: PRAGMA synchronous takes effect when it is
	// compiled, not when it runs.
	level := "FULL"
	if normal {
		level = "NORMAL"
	}
	if _, err := s.wdb.Exec("PRAGMA synchronous = " + level); err != nil {
		if normal {
			return nil // a synced commit is still a commit
		}
		return fmt.Errorf("synchronous: %w", err)
	}
	s.syncNormal = normal
	return nil
}

// commitTogether runs a batch in one transaction without savepoints and
// commits it if every request succeeds (ok). If a request fails, it rolls
// the transaction back and returns ok false, unless the transaction itself
// failed, when every request gets that error (ok).
func (s *Store) commitTogether(batch []*writeReq) (errs []error, ok bool) {
	errs = make([]error, len(batch))
	// The transaction runs under a context that is never canceled: see
	// commitIsolated.
	ctx := context.Background()
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return s.failAll(errs, fmt.Errorf("begin: %w", err)), true
	}
	w := newWtx(ctx, tx)
	n := 0
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if err := run(w, r.fn); err != nil {
			// Undo the whole batch: the failed request's writes cannot be
			// told from the others'.
			s.eps.invalidate()
			tx.Rollback()
			return nil, false
		}
		n++
	}
	if err := s.flushCounts(w); err != nil {
		s.eps.invalidate()
		tx.Rollback()
		return nil, false
	}
	return s.finish(tx, errs, n), true
}

// commitIsolated runs a batch in one transaction, each request under a
// SAVEPOINT: a request that fails is rolled back alone and gets its own
// error, and the others commit. If the transaction itself fails (BEGIN, a
// savepoint statement, COMMIT), every request that did not fail on its own
// gets that error: nothing of the batch is acknowledged.
func (s *Store) commitIsolated(batch []*writeReq) []error {
	errs := make([]error, len(batch))
	// The transaction runs under a context that is never canceled, not under
	// the requests' contexts: database/sql rolls a transaction back when its
	// context ends, and SQLite, interrupted in the middle of a write inside
	// an explicit transaction, rolls back the whole transaction, which would
	// throw away the other requests of the batch. A request whose context
	// has ended before its turn is skipped instead.
	ctx := context.Background()
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return s.failAll(errs, fmt.Errorf("begin: %w", err))
	}
	w := newWtx(ctx, tx)
	ok := 0
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if _, err := w.execStmt(s.q.savepoint); err != nil {
			tx.Rollback()
			return s.failAll(errs, fmt.Errorf("savepoint: %w", err))
		}
		// The request's counters are written under its savepoint, so that
		// they go with it if it fails.
		err := run(w, r.fn)
		if err == nil {
			err = s.flushCounts(w)
		}
		if err != nil {
			errs[i] = err
			clear(w.counts)
			s.eps.invalidate() // it may hold rows the rollback undoes
			// ROLLBACK TO undoes the request and keeps the savepoint open;
			// RELEASE below closes it. If the rollback fails, SQLite has
			// rolled back the whole transaction (it does so on some I/O and
			// memory errors).
			if _, err := w.execStmt(s.q.rollbackTo); err != nil {
				tx.Rollback()
				return s.failAll(errs, fmt.Errorf("rollback to savepoint: %w", err))
			}
		} else {
			ok++
		}
		if _, err := w.execStmt(s.q.release); err != nil {
			tx.Rollback()
			return s.failAll(errs, fmt.Errorf("release savepoint: %w", err))
		}
	}
	return s.finish(tx, errs, ok)
}

// finish commits tx, in which ok requests succeeded, or rolls it back if
// none did, and returns errs, or errs with the commit's error given to every
// request without one.
func (s *Store) finish(tx *sql.Tx, errs []error, ok int) []error {
	if ok == 0 {
		s.eps.invalidate()
		if err := tx.Rollback(); err != nil {
			return s.failAll(errs, fmt.Errorf("rollback: %w", err))
		}
		return errs
	}
	if err := tx.Commit(); err != nil {
		return s.failAll(errs, fmt.Errorf("commit: %w", err))
	}
	s.batches.Add(1)
	s.writes.Add(int64(ok))
	s.countWALPages()
	return errs
}

// countWALPages adds the pages the writer's last commit appended to the
// write-ahead log to walPages, and asks the checkpointer for a checkpoint
// and sizes the page cache (see cacheKiB) once they reach checkpointBytes.
func (s *Store) countWALPages() {
	ctx := context.Background()
	conn, err := s.wdb.Conn(ctx)
	if err != nil {
		return // the writer's own autocheckpoint bounds the log
	}
	defer conn.Close()
	var n int
	if err := conn.Raw(func(dc any) (err error) {
		n, _, err = dc.(sqlite.DBStatus).Status(sqlite.DBStatusCacheWrite, true)
		return err
	}); err != nil {
		return
	}
	s.walPages += n
	if s.walPages < cmp.Or(s.checkpointEvery, checkpointPages(s.pageSize)) {
		return
	}
	s.walPages = 0
	select {
	case s.checkpoint <- struct{}{}:
	default: // one is under way
	}
	// A checkpoint's worth of pages may have taken the database past 1 GiB.
	sizeCache(ctx, conn) // a failure leaves the cache as it was
}

// checkpointer is the goroutine that copies the write-ahead log into the
// database file when the writer asks, on a connection of its own, so that
// the writer goes on committing meanwhile: a checkpoint of checkpointBytes
// reads and writes 10 MiB and syncs the database file, tens of
// milliseconds that every webhook of the batch whose commit ran it had to
// wait for (SQLite's wal_autocheckpoint runs it inside the commit). It
// runs a PASSIVE checkpoint, which takes no lock the writer or a reader
// waits for and copies the pages no reader still needs. The writer starts
// the log over from its beginning once everything in it has been copied
// and no reader holds a snapshot in it, which a checkpoint beside a busy
// writer seldom leaves (see writerCheckpointPages); copying again until
// nothing is left did not make it restart and wrote more (BENCHMARKS.md).
// A checkpoint that fails is left to the next one, and to the writer's own
// autocheckpoint at writerCheckpointPages. It exits once Close has closed
// checkpoint.
func (s *Store) checkpointer() {
	defer close(s.checkpointDone)
	for range s.checkpoint {
		var busy, log, copied int64
		if err := s.cdb.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &copied); err == nil && copied > 0 {
			s.checkpoints.Add(1)
		}
	}
}

// failAll gives err to every request of a failed transaction that has no
// error of its own.
func (s *Store) failAll(errs []error, err error) []error {
	// A request may have loaded the endpoint cache from rows that are now
	// rolled back.
	s.eps.invalidate()
	for i := range errs {
		if errs[i] == nil {
			errs[i] = err
		}
	}
	return errs
}

// run calls fn, turning a panic into an error so that one bad request cannot
// take the writer, and every other caller, down with it.
func run(w *wtx, fn func(*wtx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in write: %v", p)
		}
	}()
	return fn(w)
}

// prepared holds the statements prepared on the writer connection when the
// store opens: the savepoint statements, everything Ingest runs, and the
// outbox's hot path (claim, record, release).
type prepared struct {
	savepoint, rollbackTo, release *sql.Stmt

	findDuplicate, findNear, setCurrentKey, insertMessage, insertBody, loadVerification, insertVerification, updateVerification,
	insertObservation, insertEvent *sql.Stmt

	dataVersion, enabledEndpoints, insertDelivery *sql.Stmt

	claimDue, claimDueOrdered, setLease, claimEvent, claimEndpoint, recordDelivery, insertAttempt,
	endpointSucceeded, endpointFailed, releaseDelivery, deliveryExists *sql.Stmt

	count *sql.Stmt

	list []*sql.Stmt // all of the above, for Close
}

func (q *prepared) all() []*sql.Stmt { return q.list }

func prepare(ctx context.Context, db *sql.DB) (*prepared, error) {
	q := &prepared{}
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&q.savepoint, `SAVEPOINT request`},
		{&q.rollbackTo, `ROLLBACK TO request`},
		{&q.release, `RELEASE request`},
		{&q.findDuplicate, findDuplicateSQL},
		{&q.findNear, findNearSQL},
		{&q.setCurrentKey, setCurrentKeySQL},
		{&q.insertMessage, insertMessageSQL},
		{&q.insertBody, `INSERT INTO message_bodies (received_at, message_id, body) VALUES (?, ?, ?)`},
		{&q.loadVerification, `SELECT ` + verificationCols + `
			FROM verifications WHERE provider_ref = ? AND source = ? AND level = ?`},
		{&q.insertVerification, `INSERT INTO verifications
			(id, source, provider, provider_ref, level, applicant_ref, kind, status, final, version,
			 reasons, attempts_left, provider_time, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&q.updateVerification, `UPDATE verifications SET
			provider_ref = ?, applicant_ref = ?, kind = ?, status = ?, final = ?, version = ?, reasons = ?,
			attempts_left = ?, provider_time = ?, updated_at = ?
			WHERE id = ?`},
		{&q.insertObservation, `INSERT INTO observations
			(id, verification_id, message_id, source, provider, provider_ref, level, kind, applicant_ref,
			 status, final, reasons, attempts_left, provider_time, provider_event, received_at, outcome, version,
			 current_state, final_if_no_attempts, origin)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&q.insertEvent, `INSERT INTO events
			(id, type, created_at, source, provider, data, message_id, verification_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`},

		{&q.dataVersion, `PRAGMA data_version`},
		{&q.enabledEndpoints, `SELECT id, event_types, sources, ordered FROM endpoints WHERE enabled = 1 ORDER BY id`},
		{&q.insertDelivery, `INSERT INTO deliveries
			(id, endpoint_id, event_id, event_type, source, verification_id, status, attempts, next_attempt_at,
			 created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)`},

		{&q.claimDue, claimDueSQL},
		{&q.claimDueOrdered, claimDueOrderedSQL},
		{&q.setLease, `UPDATE deliveries SET lease = ?, lease_until = ? WHERE seq = ?`},
		{&q.claimEvent, `SELECT ` + eventCols + ` FROM events WHERE id = ?`},
		{&q.claimEndpoint, `SELECT ` + endpointCols + ` FROM endpoints WHERE id = ?`},
		// Only the holder of the lease may record: a worker whose lease ran
		// out and went to another worker matches no row.
		{&q.recordDelivery, `UPDATE deliveries SET attempts = attempts + 1, last_status_code = ?, last_error = ?,
				status = ?, next_attempt_at = ?, lease = NULL, lease_until = NULL, updated_at = ?
			WHERE id = ? AND lease = ?
			RETURNING endpoint_id`},
		{&q.insertAttempt, `INSERT INTO attempts (id, delivery_id, at, status_code, latency_ms, response, error)
			VALUES (?, ?, ?, ?, ?, ?, ?)`},
		{&q.endpointSucceeded, `UPDATE endpoints SET failing_since = NULL, version = version + 1
			WHERE id = ? AND failing_since IS NOT NULL`},
		{&q.endpointFailed, `UPDATE endpoints SET failing_since = ?, version = version + 1
			WHERE id = ? AND failing_since IS NULL`},
		{&q.releaseDelivery, `UPDATE deliveries SET lease = NULL, lease_until = NULL, next_attempt_at = ?, updated_at = ?
			WHERE id = ? AND lease = ? AND status = 'pending'`},
		{&q.deliveryExists, `SELECT count(*) FROM deliveries WHERE id = ?`},
		{&q.count, countSQL},
	} {
		st, err := db.PrepareContext(ctx, p.query)
		if err != nil {
			for _, st := range q.list {
				st.Close()
			}
			return nil, fmt.Errorf("prepare %q: %w", p.query, err)
		}
		*p.stmt = st
		q.list = append(q.list, st)
	}
	return q, nil
}
