package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/verihook/verihook/internal/hub"
)

// ingestReq is an Ingest checked and made ready for the transaction:
// defaults filled, times normalized, text cleaned, the body sealed.
type ingestReq struct {
	m       hub.Message
	body    []byte // sealed
	preview []byte // nil when none
	obs     []hub.Observation
	events  []hub.Event
	// dispatches are the message's dispatches, content sealed.
	dispatches []sealedDispatch
	// reprocess: the message is stored already, quarantined; it is made
	// accepted instead of inserted (Reprocess).
	reprocess bool
}

// Ingest stores an authenticated message with its observations and events,
// and a pending delivery due at the message's ReceivedAt for every event and
// every enabled endpoint that Matches it, in one transaction, committed
// (with synchronous_commit on: flushed to the server's disk) when it returns
// nil (see hub.Store and the package documentation for how concurrent
// instances are kept apart).
//
// Defaults and what is EINVALID: see hub.Ingest.Prepare, which is given the
// store's clock and its times' range and precision (storeTime); an
// observation's AttemptsLeft outside the 32 bits of its column is EINVALID
// too. A message without a dedup key is never a duplicate. A message id or
// event id stored already is ECONFLICT.
func (s *Store) Ingest(ctx context.Context, in hub.Ingest) (hub.IngestResult, error) {
	r, err := s.prepareIngest(in)
	if err != nil {
		return hub.IngestResult{}, fmt.Errorf("ingest: %w", err)
	}
	if s.closed.Load() {
		return hub.IngestResult{}, fmt.Errorf("ingest: %w", errClosed)
	}
	res, err := s.submit(ctx, r)
	if err != nil {
		return hub.IngestResult{}, fail("ingest", err)
	}
	return res, nil
}

func (s *Store) prepareIngest(in hub.Ingest) (*ingestReq, error) {
	if err := in.Prepare(s.now(), storeTime); err != nil {
		return nil, err
	}
	m := in.Message
	m.Provider, m.RemoteAddr, m.Reason = clean(m.Provider), clean(m.RemoteAddr), clean(m.Reason)
	m.EventName, m.DedupKey = clean(m.EventName), clean(m.DedupKey)
	r := &ingestReq{m: m, body: s.cipher.Seal(m.Body, hub.SealedMessageBody, m.ID), obs: in.Observations, events: in.Events}
	if len(m.Preview) > 0 {
		// Valid JSON stays valid: invalid UTF-8 can only be inside strings.
		r.preview = []byte(clean(string(m.Preview)))
	}
	// in.Prepare gave r its own observations and events, which are cleaned
	// in place.
	for i := range r.obs {
		o := &r.obs[i]
		// attempts_left is an integer column (32 bits).
		if o.AttemptsLeft != nil && (*o.AttemptsLeft < math.MinInt32 || *o.AttemptsLeft > math.MaxInt32) {
			return nil, hub.Errorf(hub.EINVALID, "observation %d: attempts left %d is out of range", i, *o.AttemptsLeft)
		}
		o.Provider, o.ProviderRef, o.Level = clean(o.Provider), clean(o.ProviderRef), clean(o.Level)
		o.FormerRef = clean(o.FormerRef)
		o.ApplicantRef, o.ProviderEvent = clean(o.ApplicantRef), clean(o.ProviderEvent)
		o.Reasons = cleanAll(o.Reasons)
	}
	for i := range r.events {
		e := &r.events[i]
		e.Source, e.Provider = clean(e.Source), clean(e.Provider)
	}
	r.dispatches = s.sealDispatches(in.Dispatches)
	return r, nil
}

// errDuplicate makes the committer roll back to the savepoint of a
// duplicate, which must change nothing; Ingest then reports the duplicate.
var errDuplicate = errors.New("duplicate")

// ingestRun is one Ingest's work inside a group's transaction (see
// runWave), made afresh for each attempt of the transaction.
type ingestRun struct {
	r   *ingestReq
	now time.Time
	chk hub.DedupCheck
	// keys are the verifications the message observes, in lock order;
	// first is the index of each one's first observation, and created the
	// state that observation would create.
	keys    []hub.VerificationKey
	first   map[hub.VerificationKey]int
	created []hub.Verification
	// state is what hub.PlanIngest is given: the verifications locked, and
	// the enabled endpoints.
	state hub.IngestState
	// A duplicate has dupID, the copy found in a neighbouring interval of a
	// window, or dupKey, the key under which its copy is stored.
	dupID, dupKey string
	// notStored is set when the message was not inserted (a duplicate) or,
	// for a Reprocess, not found quarantined.
	notStored bool
	res       hub.IngestResult
}

func newIngestRun(r *ingestReq, now time.Time) *ingestRun {
	w := &ingestRun{r: r, now: now, chk: r.m.DedupCheck(), first: map[hub.VerificationKey]int{}}
	for i, o := range r.obs {
		if _, ok := w.first[o.VerificationKey]; !ok {
			w.first[o.VerificationKey] = i
			w.keys = append(w.keys, o.VerificationKey)
		}
	}
	slices.SortFunc(w.keys, func(a, b hub.VerificationKey) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.ProviderRef, b.ProviderRef), cmp.Compare(a.Level, b.Level))
	})
	return w
}

// duplicate reports whether w applies nothing: a duplicate, or a Reprocess
// of a message not quarantined.
func (w *ingestRun) duplicate() bool {
	return w.dupID != "" || w.dupKey != "" || w.notStored && w.r.reprocess
}

// locks returns the keys of every verification row w may lock: those it
// observes, and those stored under a FormerRef.
func (w *ingestRun) locks() []hub.VerificationKey {
	ks := slices.Clone(w.keys)
	for _, o := range w.r.obs {
		if o.FormerRef != "" {
			ks = append(ks, hub.VerificationKey{Source: o.Source, ProviderRef: o.FormerRef, Level: o.Level})
		}
	}
	return ks
}

// stmt is a statement queued in a batch: its label names it in errors, and
// dest, when set, receives the one column of its one row.
type stmt struct {
	label string
	dest  *string
}

// batch is a pgx.Batch whose statements runBatch reads back in order.
type batch struct {
	pgx.Batch
	stmts []stmt
}

func (b *batch) queue(label string, dest *string, sql string, args ...any) {
	b.Queue(sql, args...)
	b.stmts = append(b.stmts, stmt{label, dest})
}

// insertEventSQL stores one event, its data sealed.
const insertEventSQL = `INSERT INTO events
	(id, type, created_at, source, provider, data, message_id, verification_id)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`

// runBatch sends the queued statements in one round trip and reports the
// first that failed, with its label.
func runBatch(ctx context.Context, tx pgx.Tx, b *batch) error {
	if b.Len() == 0 {
		return nil
	}
	br := tx.SendBatch(ctx, &b.Batch)
	for _, st := range b.stmts {
		var err error
		if st.dest != nil {
			err = br.QueryRow().Scan(st.dest)
		} else {
			_, err = br.Exec()
		}
		if err != nil {
			br.Close()
			return fmt.Errorf("%s: %w", st.label, err)
		}
	}
	return br.Close()
}

// runWave is the work of a wave of ingests inside the group's transaction
// (see commitGroup; no two of a wave lock the same verification), in two
// pipelined batches, one round trip each, whatever the wave's size. With
// savepoint, the wave is one ingest, run under the savepoint "request",
// which runWave releases when it returns nil; it returns errDuplicate for
// a duplicate, whose savepoint the caller rolls back. Without, an ingest
// that turns out a duplicate has changed nothing (each insert below waits
// for the message's), and any failure fails the wave.
//
//  1. Dedup: INSERT the message ... ON CONFLICT (source_id, dedup_key) DO
//     NOTHING RETURNING id. If a concurrent transaction (on any instance)
//     inserted the same key and has not committed, PostgreSQL makes this
//     INSERT wait for it: if it commits, ours does nothing and the message
//     is a duplicate of the committed one; if it rolls back, ours goes in.
//     Two deliveries of one webhook are therefore stored once, whichever
//     instances they reach (and within one transaction, the second sees
//     the first). A message with a dedup window first takes an advisory
//     lock on its key and looks for a copy in the neighbouring intervals
//     (see hub.Message.DedupCheck), and is inserted only if there is none;
//     a message deduplicated while current is inserted without a key,
//     which it gets in step 2.
//
//     Then lock every verification the message observes, in key order (so
//     that two messages observing the same verifications cannot deadlock):
//     INSERT ... ON CONFLICT (source, provider_ref, level) DO NOTHING
//     creates it from its first observation if it does not exist and the
//     message was inserted (a concurrent creator makes it wait, as above),
//     and SELECT ... FOR UPDATE locks and reads the row, ours or the
//     winner's (or the one stored under the observation's FormerRef, beside
//     which none is inserted). In READ COMMITTED a row that another
//     transaction has locked is waited for and then read as that
//     transaction committed it. From here to commit no other transaction
//     can apply an observation to these verifications, so hub.Apply always
//     sees the latest committed state, and each verification's
//     observations are applied (and numbered, by observations.seq) one
//     transaction at a time.
//
//     Last, read the enabled endpoints (see enabledEndpoints). These
//     statements are planned once per connection when they find their rows
//     by unique keys alone (see queueLocks).
//
//  2. Plan the rest with hub.PlanIngest, given the verifications locked
//     (those step 1 created as IngestState.Created) and the endpoints. A
//     message deduplicated while current then takes the plan's CurrentKey,
//     in a round trip of its own, unless a copy holds it (one that
//     committed first is seen, as the verifications are locked): then it
//     is a duplicate (without savepoint, runWave fails with errRegroup, as
//     the message is stored already). Then write the plan (the changed
//     verifications, the timeline rows, the events and their deliveries)
//     and a NOTIFY, which PostgreSQL delivers at commit; and look up the
//     copy of each duplicate.
func (s *Store) runWave(ctx context.Context, tx pgx.Tx, runs []*ingestRun, savepoint bool) error {
	b := &batch{}
	if savepoint {
		b.queue("savepoint", nil, `SAVEPOINT request`)
	}
	b.Queue(planOnce)
	wantEndpoints := false
	for _, w := range runs {
		s.queueLocks(b, w)
		// Nearly every message has events (a verification.updated at least).
		wantEndpoints = wantEndpoints || len(w.r.obs) > 0 || len(w.r.events) > 0
	}
	var eps []hub.Endpoint
	err := func() error {
		if wantEndpoints {
			b.Queue(enabledEndpointsSQL)
		}
		b.Queue(planEachRun)
		br := tx.SendBatch(ctx, &b.Batch)
		defer br.Close()
		if savepoint {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("savepoint: %w", err)
			}
		}
		if err := readPlans(br); err != nil {
			return err
		}
		for _, w := range runs {
			if err := w.readLocks(br); err != nil {
				return err
			}
		}
		if wantEndpoints {
			rows, err := br.Query()
			if err != nil {
				return fmt.Errorf("load endpoints: %w", err)
			}
			if eps, err = scanEnabledEndpoints(rows); err != nil {
				return fmt.Errorf("load endpoints: %w", err)
			}
		}
		return br.Close()
	}()
	if err != nil {
		return err
	}

	b = writeBatch()
	var setKeys []*ingestRun
	type count struct {
		minute time.Time
		status hub.MessageStatus
	}
	counts := map[count]int{}
	for _, w := range runs {
		if w.duplicate() {
			if w.dupID == "" && w.dupKey != "" {
				// The conflicting row has committed (or ON CONFLICT would
				// have waited) or is this transaction's, so this statement
				// sees it.
				b.queue("find duplicate", &w.dupID,
					`SELECT id FROM messages WHERE source_id = $1 AND dedup_key = $2`, w.r.m.SourceID, w.dupKey)
			}
			continue
		}
		if key := s.queueWrites(b, w, eps); key != "" {
			setKeys = append(setKeys, w)
			w.dupKey = key // until the key is found taken
		}
		if !w.r.reprocess && w.r.m.Origin == hub.OriginCallback {
			// The dashboard counts what arrived on the ingest endpoint: a
			// poll's answer is not traffic, a reprocessed message was
			// counted.
			counts[count{minute(w.r.m.ReceivedAt), w.r.m.Status}]++
		}
	}
	// One counter row per minute and status for the wave, not one per
	// message: each is an upsert, a row version and its WAL. In one order,
	// so that two groups whose backends share a shard cannot deadlock on
	// them.
	for _, c := range slices.SortedFunc(maps.Keys(counts), func(a, b count) int {
		return cmp.Or(a.minute.Compare(b.minute), cmp.Compare(a.status, b.status))
	}) {
		b.queue("count", nil, countSQL, c.minute, string(c.status), "", 0, counts[c])
	}
	if len(setKeys) > 0 {
		// Every verification these messages observe is locked, so a copy
		// that committed first is seen here (see hub.Message.CurrentKey).
		sk := &pgx.Batch{}
		sk.Queue(planOnce)
		for _, w := range setKeys {
			sk.Queue(setDedupKeySQL, w.dupKey, w.r.m.ID, w.r.m.SourceID)
		}
		br := tx.SendBatch(ctx, sk)
		if err := readPlans(br); err != nil {
			br.Close()
			return err
		}
		for _, w := range setKeys {
			tag, err := br.Exec()
			if err != nil {
				br.Close()
				return fmt.Errorf("set dedup key: %w", err)
			}
			if tag.RowsAffected() > 0 {
				w.dupKey = ""
			} else if !savepoint {
				br.Close()
				return errRegroup
			}
		}
		if err := br.Close(); err != nil {
			return err
		}
		if w := setKeys[0]; savepoint && w.dupKey != "" {
			b = writeBatch()
			b.queue("find duplicate", &w.dupID,
				`SELECT id FROM messages WHERE source_id = $1 AND dedup_key = $2`, w.r.m.SourceID, w.dupKey)
		}
	}
	notify := false
	for _, w := range runs {
		notify = notify || (!w.duplicate() && (w.res.Deliveries > 0 || w.res.Dispatches > 0))
	}
	if notify {
		// Every instance's ListenDeliveries hears it once this commits.
		b.queue("notify", nil, `SELECT pg_notify($1, current_schema())`, notifyChannel)
	}
	dup := savepoint && runs[0].duplicate()
	if savepoint && !dup {
		b.queue("release savepoint", nil, `RELEASE SAVEPOINT request`)
	}
	b.queue("plan each run", nil, planEachRun)
	if err := runBatch(ctx, tx, b); err != nil {
		return err
	}
	for _, w := range runs {
		if w.duplicate() {
			w.res = hub.IngestResult{MessageID: w.dupID, Duplicate: true}
		}
	}
	if dup {
		return errDuplicate
	}
	return nil
}

// setDedupKeySQL gives message $2 of source $3 the dedup key $1 unless
// another message of the source holds it. It is planned once per
// connection: planned at every run it cost more than it ran (0.3 ms a
// call at 500/s end to end on 2 busy cores). Its NOT EXISTS asks for the
// first key at or after (source, key) in messages_dedup's order, which only
// messages_dedup answers, with one probe: asked as "a message of this
// source with this key", the generic plan made on a new database's empty
// table walked messages_source, every message of the source, at every
// call.
const setDedupKeySQL = `UPDATE messages SET dedup_key = $1 WHERE id = $2 AND NOT EXISTS (
	SELECT 1 FROM (
		SELECT source_id, dedup_key FROM messages WHERE (source_id, dedup_key) >= ($3, $1)
		ORDER BY source_id, dedup_key
		LIMIT 1
	) AS next
	WHERE next.source_id = $3 AND next.dedup_key = $1)`

// writeBatch starts the batch of step 2 of runWave. Its statements append
// rows, or find one by a unique key (which no other index or scan beats,
// whatever the table's size), so each is planned once per connection, a
// generic plan, instead of at every run as the store's sessions plan
// statements (see Open). runWave ends the batch with the session's own
// setting.
func writeBatch() *batch {
	b := &batch{}
	b.queue("plan once", nil, planOnce)
	return b
}

// planOnce and planEachRun switch the plans of the transaction's next
// statements between one generic plan per connection and the session's
// own setting, a plan at every run (see Open).
const (
	planOnce    = `SET LOCAL plan_cache_mode = force_generic_plan`
	planEachRun = `SET LOCAL plan_cache_mode TO DEFAULT`
)

// messagePlannedPerRun reports whether queueLocks plans w's message
// statements at every run: a dedup window's, or a Reprocess's.
func (w *ingestRun) messagePlannedPerRun() bool {
	return w.r.reprocess || len(w.chk.Near) > 0
}

// readPlans reads the result of a planOnce or planEachRun queued in a batch.
func readPlans(br pgx.BatchResults) error {
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("set plan_cache_mode: %w", err)
	}
	return nil
}

// ingestAlone is the work of one ingest in a transaction of its own
// (Reprocess): a duplicate is errDuplicate, a Reprocess of a message not
// quarantined ENOTFOUND or ECONFLICT, and the transaction is rolled back.
func (s *Store) ingestAlone(ctx context.Context, tx pgx.Tx, r *ingestReq) (hub.IngestResult, error) {
	w := newIngestRun(r, s.now())
	if err := s.runWave(ctx, tx, []*ingestRun{w}, false); err != nil {
		return hub.IngestResult{}, err
	}
	switch {
	case w.dupID != "":
		return w.res, errDuplicate
	case w.notStored && r.reprocess:
		return hub.IngestResult{}, notQuarantined(tx.QueryRow(ctx, `SELECT count(*) FROM messages WHERE id = $1`, r.m.ID), r.m.ID)
	case w.duplicate():
		return w.res, errDuplicate
	}
	return w.res, nil
}

// errRegroup fails a wave run without savepoints in which a message
// deduplicated while current turned out a duplicate after it was stored:
// the group is run again, each ingest under its savepoint.
var errRegroup = errors.New("a duplicate to roll back")

// queueLocks queues step 1 of runWave for w, in a batch whose statements
// are planned once per connection (planOnce). That suits the statements
// that find their rows by unique keys alone: the message inserted with
// VALUES, each verification created and locked under its own key. Their
// generic plans cannot go wrong whatever the tables held when they were
// made (the locks' with some help: see lockVerificationSQL), and planning
// them at every run took 0.4-0.5 ms of the backends' time per webhook at
// 500/s (pg_stat_statements, 2 busy cores), more than running them. A
// dedup window's lookups and a Reprocess's update find rows by conditions
// for which a generic plan made on a new database's empty tables picks the
// wrong index (measured: messages_source for a dedup key): queueLocks plans
// them at every run, between planEachRun and planOnce, which readLocks
// reads.
func (s *Store) queueLocks(b *batch, w *ingestRun) {
	m, chk := w.r.m, w.chk
	perRun := w.messagePlannedPerRun()
	if perRun {
		b.Queue(planEachRun)
	}
	if len(chk.Near) > 0 {
		// Copies of one message in neighbouring intervals have different
		// keys, which the unique index cannot tell apart: this lock makes
		// them wait for one another, so that the second sees the first.
		b.Queue(`SELECT pg_advisory_xact_lock($1, hashtext(current_schema() || ' ' || $2 || ' ' || $3))`,
			lockDedup, m.SourceID, m.DedupKey)
		b.Queue(`SELECT id FROM messages WHERE source_id = $1 AND dedup_key IN ($2, $3)
			AND received_at > $4 AND received_at < $5 LIMIT 1`,
			m.SourceID, chk.Near[0], chk.Near[1], chk.Since, chk.Until)
	}
	switch {
	case w.r.reprocess:
		// The row lock this takes holds off a concurrent Reprocess of the
		// same message until commit; that one then finds it accepted.
		b.Queue(`UPDATE messages SET status = 'accepted', reason = '', event_name = $1
			WHERE id = $2 AND source_id = $3 AND status = 'quarantined'
			RETURNING id`, m.EventName, m.ID, m.SourceID)
	case len(chk.Near) > 0:
		b.Queue(insertMessageSQL(`SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13
				WHERE NOT EXISTS (SELECT 1 FROM messages WHERE source_id = $2 AND dedup_key IN ($14, $15)
					AND received_at > $16 AND received_at < $17)`),
			append(w.messageArgs(), chk.Near[0], chk.Near[1], chk.Since, chk.Until)...)
	default:
		// Without a window, less to plan (see Open): no subquery.
		b.Queue(insertMessageSQL(`VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`), w.messageArgs()...)
	}
	if perRun {
		b.Queue(planOnce)
	}
	w.created = make([]hub.Verification, len(w.keys))
	for i, k := range w.keys {
		o := w.r.obs[w.first[k]]
		lock := func() {
			if o.FormerRef == "" {
				// The common case, with less to plan.
				b.Queue(lockVerificationSQL, k.ProviderRef, k.Source, k.Level)
				return
			}
			b.Queue(lockFormerVerificationSQL, k.Source, k.ProviderRef, k.Level, o.FormerRef)
		}
		if former, ok := w.first[hub.VerificationKey{Source: k.Source, ProviderRef: o.FormerRef, Level: k.Level}]; ok &&
			former < w.first[k] {
			// An earlier observation of the message observes the
			// verification under the FormerRef, which this one names:
			// hub.PlanIngest finds it there, whether stored or created
			// here (perhaps only further down this batch), so none is
			// created beside it.
			lock()
			continue
		}
		v := hub.NewVerification(hub.NewID("ver", w.now), o)
		w.created[i] = v
		// A verification stored under the observation's FormerRef is the
		// one observed (see hub.Observation): none is created beside it.
		// Nor is one created for a duplicate, whose message was not
		// inserted.
		args := []any{v.ID, v.Source, v.Provider, v.ProviderRef, v.Level, v.ApplicantRef, string(v.Kind), string(v.Status),
			v.Final, v.Version, nonNil(v.Reasons), v.AttemptsLeft, nullTime(v.ProviderTime), v.CreatedAt, v.UpdatedAt, m.ID}
		if o.FormerRef == "" {
			b.Queue(insertVerificationSQL(""), args...)
		} else {
			b.Queue(insertVerificationSQL(`AND NOT EXISTS (SELECT 1 FROM verifications
					WHERE provider_ref = $17 AND source = $2 AND level = $5
						AND (provider_ref, source, level) >= ($17, $2, $5))`), append(args, o.FormerRef)...)
		}
		lock()
	}
}

// lockVerificationSQL locks and reads the verification with the key
// (provider_ref $1, source $2, level $3). It is planned once per
// connection (see queueLocks), perhaps on a new database's empty table,
// where verifications_key and verifications_source (source, then a filter
// on the rest) cost the same: the planner took the index created last,
// verifications_key on a schema the migrations made, verifications_source
// on the same schema restored from pg_dump (which creates indexes by name),
// a walk of the source's verifications at every ingest for as long as the
// connection lives. The row comparison, which only verifications_key can
// search and which the equalities imply anyway, makes it the cheaper.
const lockVerificationSQL = `SELECT ` + verificationCols + ` FROM verifications
	WHERE provider_ref = $1 AND source = $2 AND level = $3 AND (provider_ref, source, level) >= ($1, $2, $3)
	FOR UPDATE`

// lockFormerVerificationSQL locks and reads the verification of source $1
// and level $3 stored under provider_ref $2 or, if there is none, the one
// stored under the former reference $4 (see hub.Observation): one row
// locked, as by lockVerificationSQL, and each a probe of verifications_key
// planned once per connection. Asked as "provider_ref IN ($2, $4), the
// current one first", the generic plan made on an empty table walked
// verifications_source whatever the form, so it was planned at every run
// (0.4-0.6 s of planning per 10,000 webhooks at 500/s, a quarter of them
// KYCAID's).
const lockFormerVerificationSQL = `WITH cur AS (
	SELECT ` + verificationCols + ` FROM verifications
	WHERE provider_ref = $2 AND source = $1 AND level = $3 AND (provider_ref, source, level) >= ($2, $1, $3)
	FOR UPDATE
), prev AS (
	SELECT ` + verificationCols + ` FROM verifications
	WHERE provider_ref = $4 AND source = $1 AND level = $3 AND (provider_ref, source, level) >= ($4, $1, $3)
		AND NOT EXISTS (SELECT 1 FROM cur)
	FOR UPDATE
)
SELECT * FROM cur UNION ALL SELECT * FROM prev`

// insertMessageSQL inserts a message, its values given by rows, unless its
// dedup key is taken, and returns its id if it did.
func insertMessageSQL(rows string) string {
	return `INSERT INTO messages
		(id, source_id, provider, received_at, remote_addr, status, http_status, reason, event_name, dedup_key, body, preview,
		 origin)
		` + rows + `
		ON CONFLICT (source_id, dedup_key) DO NOTHING
		RETURNING id`
}

// messageArgs returns the first 13 arguments of insertMessageSQL.
func (w *ingestRun) messageArgs() []any {
	m := w.r.m
	return []any{m.ID, m.SourceID, m.Provider, m.ReceivedAt, m.RemoteAddr, string(m.Status), m.HTTPStatus, m.Reason,
		m.EventName, nullString(w.chk.Key), w.r.body, w.r.preview, m.Origin}
}

// insertVerificationSQL creates a verification if its message ($16) was
// inserted, its key is free and the condition and (unless empty) holds, and
// returns its id if it did.
func insertVerificationSQL(and string) string {
	return `INSERT INTO verifications
		(id, source, provider, provider_ref, level, applicant_ref, kind, status, final, version,
		 reasons, attempts_left, provider_time, created_at, updated_at)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15
		WHERE EXISTS (SELECT 1 FROM messages WHERE id = $16) ` + and + `
		ON CONFLICT (source, provider_ref, level) DO NOTHING
		RETURNING id`
}

// readLocks reads what queueLocks queued for w.
func (w *ingestRun) readLocks(br pgx.BatchResults) error {
	perRun := w.messagePlannedPerRun()
	if perRun {
		if err := readPlans(br); err != nil {
			return err
		}
	}
	if len(w.chk.Near) > 0 {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("lock dedup key: %w", err)
		}
		if err := br.QueryRow().Scan(&w.dupID); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("find duplicate: %w", err)
		}
	}
	var id string
	err := br.QueryRow().Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		w.notStored = true
		if w.dupID == "" && !w.r.reprocess {
			w.dupKey = w.chk.Key
		}
	} else if err != nil {
		return fmt.Errorf("insert message: %w", err)
	}
	if perRun {
		if err := readPlans(br); err != nil {
			return err
		}
	}
	for i := range w.keys {
		// queueLocks queued no insert for a verification that a former
		// reference names (created[i] is zero): then, if none is stored, the
		// lock finds none.
		created := w.created[i].ID != ""
		isNew := false
		if created {
			err := br.QueryRow().Scan(&id)
			isNew = err == nil
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("insert verification: %w", err)
			}
		}
		v, err := scanVerification(br.QueryRow())
		if !created && errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if w.duplicate() {
			// Locked or not, and maybe not there: a duplicate applies nothing.
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("lock verification: %w", err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("lock verification: %w", err)
		}
		if isNew {
			w.state.Created = append(w.state.Created, w.created[i])
		} else {
			w.state.Stored = append(w.state.Stored, v)
		}
	}
	return nil
}

// queueWrites plans w's writes (see hub.PlanIngest) and queues step 2 of
// runWave for w, and sets w.res as if it commits. It returns the key w must
// take first if it is deduplicated while current, or "".
func (s *Store) queueWrites(b *batch, w *ingestRun, eps []hub.Endpoint) string {
	m := w.r.m
	w.state.Endpoints = eps
	p := hub.PlanIngest(w.now, hub.Ingest{Message: m, Observations: w.r.obs, Events: w.r.events}, w.state)
	for _, v := range p.Insert {
		// Only when an observation finds its verification renamed by an
		// earlier one of the message: every other one was created in step 1.
		b.queue("insert verification", nil, `INSERT INTO verifications
				(id, source, provider, provider_ref, level, applicant_ref, kind, status, final, version,
				 reasons, attempts_left, provider_time, created_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
			v.ID, v.Source, v.Provider, v.ProviderRef, v.Level, v.ApplicantRef, string(v.Kind), string(v.Status),
			v.Final, v.Version, nonNil(v.Reasons), v.AttemptsLeft, nullTime(v.ProviderTime), v.CreatedAt, v.UpdatedAt)
	}
	for _, v := range p.Update {
		b.queue("update verification", nil, `UPDATE verifications SET
				provider_ref = $1, applicant_ref = $2, kind = $3, status = $4, final = $5, version = $6,
				reasons = $7, attempts_left = $8, provider_time = $9, updated_at = $10
			WHERE id = $11`,
			v.ProviderRef, v.ApplicantRef, string(v.Kind), string(v.Status), v.Final, v.Version,
			nonNil(v.Reasons), v.AttemptsLeft, nullTime(v.ProviderTime), v.UpdatedAt, v.ID)
	}
	for _, o := range p.Timeline {
		b.queue("insert observation", nil, `INSERT INTO observations
				(id, verification_id, message_id, source, provider, provider_ref, level, kind, applicant_ref,
				 status, final, reasons, attempts_left, provider_time, provider_event, received_at, outcome, version,
				 current_state, final_if_no_attempts, origin)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`,
			o.ID, o.VerificationID, o.MessageID, o.Source, o.Provider, o.ProviderRef, o.Level, string(o.Kind), o.ApplicantRef,
			string(o.Status), o.Final, o.Reasons, o.AttemptsLeft, nullTime(o.ProviderTime), o.ProviderEvent,
			o.ReceivedAt, string(o.Outcome), o.Version, o.Current, o.FinalIfNoAttempts, o.Origin)
	}
	// The deliveries commit with the events, so that an acknowledged message
	// can never miss its deliveries.
	s.queueEvents(b, p.Events, p.Deliveries)
	for _, x := range w.r.dispatches {
		b.queue("insert dispatch", nil, insertDispatchSQL, x.args()...)
	}
	w.res = p.Result(m.ID, len(w.r.dispatches))
	return p.CurrentKey
}

// queueEvents queues the inserts of events, their data sealed, and of
// deliveries, all created at one time, in one statement.
func (s *Store) queueEvents(b *batch, events []hub.Event, deliveries []hub.NewDelivery) {
	for _, e := range events {
		b.queue("insert event "+e.ID, nil, insertEventSQL,
			e.ID, e.Type, e.CreatedAt, e.Source, e.Provider, s.cipher.Seal(e.Data, hub.SealedEventData, e.ID),
			nullString(e.MessageID), nullString(e.VerificationID))
	}
	if len(deliveries) > 0 {
		b.queue("insert deliveries", nil, insertDeliveriesSQL, deliveryArgs(deliveries)...)
	}
}

// RecordRejection stores an audit row for a refused request: status
// rejected, no body, no preview and no dedup key (rejections never
// deduplicate). An empty m.ID gets a new "msg" id and a zero ReceivedAt the
// store's clock. A row with a Count adds it to the stored row of the same
// ID, if any (see hub.Store).
func (s *Store) RecordRejection(ctx context.Context, m hub.Message) error {
	if err := m.PrepareRejection(s.now()); err != nil {
		return err
	}
	if err := checkTime(m.ReceivedAt, "received_at"); err != nil {
		return fmt.Errorf("record rejection: %w", err)
	}
	var count *int64
	if m.Count > 0 {
		count = &m.Count
	}
	// One statement, so that the row and the counter commit together; the
	// counter adds nothing when a Count meets a row without one.
	tag, err := s.exec(ctx, `WITH m AS (
			INSERT INTO messages
			(id, source_id, provider, received_at, remote_addr, status, http_status, reason, event_name, count)
			VALUES ($1, $2, $3, $4, $5, 'rejected', $6, $7, $8, $9)
			ON CONFLICT (id) DO UPDATE SET count = messages.count + excluded.count
				WHERE messages.count IS NOT NULL AND excluded.count IS NOT NULL
			RETURNING 1
		)
		INSERT INTO stats (minute, name, key, shard, n, latency_ms)
		SELECT $10, 'rejected', '', pg_backend_pid() % 16, $11, 0 FROM m
		ON CONFLICT (minute, name, key, shard) DO UPDATE SET n = stats.n + excluded.n`,
		m.ID, clean(m.SourceID), clean(m.Provider), ts(m.ReceivedAt), clean(m.RemoteAddr), m.HTTPStatus,
		clean(m.Reason), clean(m.EventName), count, minute(m.ReceivedAt), max(m.Count, 1))
	if err != nil {
		return fail("record rejection", err)
	}
	if tag.RowsAffected() == 0 {
		return hub.Errorf(hub.ECONFLICT, "record rejection: message %q exists", m.ID)
	}
	return nil
}
