package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/verihook/verihook/internal/hub"
)

// ingestReq is an Ingest checked and made ready for the writer: defaults
// filled, times normalized, the body sealed and JSON encoded, all in the
// caller's goroutine so that the writer does nothing but database work.
type ingestReq struct {
	m     hub.Message
	body  []byte // sealed
	dedup hub.DedupCheck
	// keyHash and nearHash are the dedup_hash of dedup's Key and Near.
	keyHash  sql.NullInt64
	nearHash [2]sql.NullInt64
	preview  sql.NullString
	obs      []hub.Observation
	reasons  []string // reasonsJSON of each observation
	events   []hub.Event
	// dispatches are the message's dispatches, content sealed.
	dispatches []sealedDispatch
}

// Ingest stores an authenticated message with its observations and events,
// and a pending delivery due at the message's ReceivedAt for every event and
// every enabled endpoint that Matches it, in one transaction, durable on
// disk when it returns nil (see hub.Store).
//
// Defaults and what is EINVALID: see hub.Ingest.Prepare, which is given the
// store's clock and its times' range and precision (storeTime). A message
// without a dedup key is never a duplicate. A message id or event id stored
// already is ECONFLICT.
func (s *Store) Ingest(ctx context.Context, in hub.Ingest) (hub.IngestResult, error) {
	r, err := s.prepareIngest(in)
	if err != nil {
		return hub.IngestResult{}, fmt.Errorf("ingest: %w", err)
	}
	var res hub.IngestResult
	err = s.write(ctx, "ingest", func(tx *wtx) error {
		var err error
		res, err = s.ingestTx(tx, r)
		return err
	})
	if err != nil && !errors.Is(err, errDuplicate) {
		return hub.IngestResult{}, err
	}
	return res, nil
}

// errDuplicate makes the writer roll back the savepoint of a message found
// to be a duplicate only after its observations were applied (see
// hub.Message.CurrentKey); Ingest then reports the duplicate.
var errDuplicate = errors.New("duplicate")

func (s *Store) prepareIngest(in hub.Ingest) (*ingestReq, error) {
	if err := in.Prepare(s.now(), storeTime); err != nil {
		return nil, err
	}
	m := in.Message
	r := &ingestReq{
		m:       m,
		body:    s.cipher.Seal(m.Body, hub.SealedMessageBody, m.ID),
		dedup:   m.DedupCheck(),
		preview: nullString(string(m.Preview)),
		obs:     in.Observations,
		events:  in.Events,
	}
	r.keyHash = s.dedupHash(m.SourceID, r.dedup.Key)
	if len(r.dedup.Near) > 0 {
		r.nearHash = [2]sql.NullInt64{s.dedupHash(m.SourceID, r.dedup.Near[0]), s.dedupHash(m.SourceID, r.dedup.Near[1])}
	}
	for _, o := range r.obs {
		r.reasons = append(r.reasons, reasonsJSON(o.Reasons))
	}
	r.dispatches = s.sealDispatches(in.Dispatches)
	return r, nil
}

// ingestTx is Ingest's work inside the writer's transaction.
func (s *Store) ingestTx(tx *wtx, r *ingestReq) (hub.IngestResult, error) {
	m, chk := r.m, r.dedup
	// The dedup rule (see hub.Dedup): a message of the source stored under
	// the key, or for a window under a neighbouring interval's key and
	// close enough, makes this one a duplicate. Both are looked up in the
	// transaction that inserts, where nothing can come between (see
	// keyHash): a window's neighbours first, the key by the insert itself,
	// which inserts nothing if it finds it. A message inserted without a key
	// is never a duplicate; a WhileCurrent one gets its key below.
	if len(chk.Near) > 0 {
		var id string
		err := tx.queryRowStmt(s.q.findNear, r.nearHash[0], r.nearHash[1],
			m.SourceID, chk.Near[0], chk.Near[1], toNanos(chk.Since), toNanos(chk.Until)).Scan(&id)
		if err == nil {
			return hub.IngestResult{MessageID: id, Duplicate: true}, nil
		} else if !errors.Is(err, sql.ErrNoRows) {
			return hub.IngestResult{}, fmt.Errorf("find duplicate: %w", err)
		}
	}
	res, err := tx.execStmt(s.q.insertMessage,
		m.ID, m.SourceID, m.Provider, toNanos(m.ReceivedAt), m.RemoteAddr, string(m.Status), m.HTTPStatus,
		m.Reason, m.EventName, nullString(chk.Key), r.keyHash, r.preview, m.Origin)
	if err != nil {
		return hub.IngestResult{}, fmt.Errorf("insert message: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return hub.IngestResult{}, fmt.Errorf("insert message: %w", err)
	} else if n == 0 {
		return s.duplicate(tx, m.SourceID, chk.Key)
	}
	if r.body != nil {
		if _, err := tx.execStmt(s.q.insertBody, toNanos(m.ReceivedAt), m.ID, r.body); err != nil {
			return hub.IngestResult{}, fmt.Errorf("insert body: %w", err)
		}
	}
	// The dashboard counts what arrived on the ingest endpoint: a poll's
	// answer is not traffic.
	if m.Origin == hub.OriginCallback {
		tx.count(m.ReceivedAt, string(m.Status), "", 1, 0)
	}
	return s.applyTx(tx, r)
}

// applyTx applies the observations and events of r to its message, stored
// already: Ingest's work after the insert, and Reprocess's. It reads what
// hub.PlanIngest needs and writes the plan; the writer is the only one, so
// nothing changes what it read before it commits.
func (s *Store) applyTx(tx *wtx, r *ingestReq) (hub.IngestResult, error) {
	m := r.m
	var st hub.IngestState
	for i, o := range r.obs {
		if i > 0 && slices.ContainsFunc(r.obs[:i], func(p hub.Observation) bool {
			return p.VerificationKey == o.VerificationKey && p.FormerRef == o.FormerRef
		}) {
			continue
		}
		v, err := scanVerification(tx.queryRowStmt(s.q.loadVerification, o.ProviderRef, o.Source, o.Level))
		if errors.Is(err, sql.ErrNoRows) && o.FormerRef != "" {
			v, err = scanVerification(tx.queryRowStmt(s.q.loadVerification, o.FormerRef, o.Source, o.Level))
		}
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return hub.IngestResult{}, fmt.Errorf("load verification: %w", err)
		}
		st.Stored = append(st.Stored, v)
	}
	if len(r.obs) > 0 || len(r.events) > 0 {
		eps, err := s.enabledEndpoints(tx)
		if err != nil {
			return hub.IngestResult{}, err
		}
		st.Endpoints = eps
	}
	p := hub.PlanIngest(s.now(), hub.Ingest{Message: m, Observations: r.obs, Events: r.events}, st)
	if p.CurrentKey != "" {
		res, err := tx.execStmt(s.q.setCurrentKey, p.CurrentKey, s.dedupHash(m.SourceID, p.CurrentKey), m.ID, m.SourceID)
		if err != nil {
			return hub.IngestResult{}, fmt.Errorf("set dedup key: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return hub.IngestResult{}, fmt.Errorf("set dedup key: %w", err)
		} else if n == 0 {
			// Applying it changes nothing since the stored copy: undo the
			// message's insert.
			res, err := s.duplicate(tx, m.SourceID, p.CurrentKey)
			if err != nil {
				return hub.IngestResult{}, err
			}
			return res, errDuplicate
		}
	}
	for _, v := range p.Insert {
		if err := s.insertVerification(tx, v); err != nil {
			return hub.IngestResult{}, err
		}
	}
	for _, v := range p.Update {
		if err := s.updateVerification(tx, v); err != nil {
			return hub.IngestResult{}, err
		}
	}
	for i, o := range p.Timeline {
		if _, err := tx.execStmt(s.q.insertObservation,
			o.ID, o.VerificationID, o.MessageID, o.Source, o.Provider, o.ProviderRef, o.Level, string(o.Kind), o.ApplicantRef,
			string(o.Status), boolInt(o.Final), r.reasons[i], nullInt(o.AttemptsLeft), toNullNanos(o.ProviderTime),
			o.ProviderEvent, toNanos(o.ReceivedAt), string(o.Outcome), o.Version,
			boolInt(o.Current), boolInt(o.FinalIfNoAttempts), o.Origin); err != nil {
			return hub.IngestResult{}, fmt.Errorf("insert observation: %w", err)
		}
	}
	// The deliveries and dispatches commit with the events, so that an
	// acknowledged message can never miss them.
	if err := s.insertEvents(tx, p.Events, p.Deliveries); err != nil {
		return hub.IngestResult{}, err
	}
	if err := s.insertDispatches(tx, r.dispatches); err != nil {
		return hub.IngestResult{}, err
	}
	return p.Result(m.ID, len(r.dispatches)), nil
}

// duplicate reports the message of source stored under key as the one a
// duplicate copies.
func (s *Store) duplicate(tx *wtx, source, key string) (hub.IngestResult, error) {
	var id string
	if err := tx.queryRowStmt(s.q.findDuplicate, s.dedupHash(source, key), source, key).Scan(&id); err != nil {
		return hub.IngestResult{}, fmt.Errorf("find duplicate: %w", err)
	}
	return hub.IngestResult{MessageID: id, Duplicate: true}, nil
}

func (s *Store) insertVerification(tx *wtx, v hub.Verification) error {
	_, err := tx.execStmt(s.q.insertVerification,
		v.ID, v.Source, v.Provider, v.ProviderRef, v.Level, v.ApplicantRef, string(v.Kind), string(v.Status),
		boolInt(v.Final), v.Version, reasonsJSON(v.Reasons), nullInt(v.AttemptsLeft), toNullNanos(v.ProviderTime),
		toNanos(v.CreatedAt), toNanos(v.UpdatedAt))
	if err != nil {
		return fmt.Errorf("insert verification: %w", err)
	}
	return nil
}

func (s *Store) updateVerification(tx *wtx, v hub.Verification) error {
	_, err := tx.execStmt(s.q.updateVerification,
		v.ProviderRef, v.ApplicantRef, string(v.Kind), string(v.Status), boolInt(v.Final), v.Version, reasonsJSON(v.Reasons),
		nullInt(v.AttemptsLeft), toNullNanos(v.ProviderTime), toNanos(v.UpdatedAt), v.ID)
	if err != nil {
		return fmt.Errorf("update verification: %w", err)
	}
	return nil
}

// insertEvents stores events, their data sealed, and then deliveries.
func (s *Store) insertEvents(tx *wtx, events []hub.Event, deliveries []hub.NewDelivery) error {
	for _, e := range events {
		_, err := tx.execStmt(s.q.insertEvent,
			e.ID, e.Type, toNanos(e.CreatedAt), e.Source, e.Provider, s.cipher.Seal(e.Data, hub.SealedEventData, e.ID),
			nullString(e.MessageID), nullString(e.VerificationID))
		if err != nil {
			return fmt.Errorf("insert event %s: %w", e.ID, err)
		}
	}
	return s.insertDeliveries(tx, deliveries)
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
	return s.write(ctx, "record rejection", func(tx *wtx) error {
		res, err := tx.exec(`INSERT INTO messages
			(id, source_id, provider, received_at, remote_addr, status, http_status, reason, event_name, count)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET count = messages.count + excluded.count
				WHERE messages.count IS NOT NULL AND excluded.count IS NOT NULL`,
			m.ID, m.SourceID, m.Provider, toNanos(m.ReceivedAt), m.RemoteAddr, string(hub.MessageRejected),
			m.HTTPStatus, m.Reason, m.EventName, sql.NullInt64{Int64: m.Count, Valid: m.Count > 0})
		if err != nil {
			return err
		}
		if err := mustAffect(res, hub.Errorf(hub.ECONFLICT, "message %q exists", m.ID)); err != nil {
			return err
		}
		// The counter adds the rejections the row stands for, not one.
		tx.count(m.ReceivedAt, hub.CountRejected, "", max(m.Count, 1), 0)
		return nil
	})
}
