package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// ingestReq is an Ingest checked and made ready for the writer: defaults
// filled, times normalized, the body sealed and JSON encoded, all in the
// caller's goroutine so that the writer does nothing but database work.
type ingestReq struct {
	m       hub.Message
	body    []byte // sealed
	dedup   sql.NullString
	preview sql.NullString
	obs     []hub.Observation
	reasons []string // reasonsJSON of each observation
	events  []hub.Event
}

// Ingest stores an authenticated message with its observations and events,
// and a pending delivery due at the message's ReceivedAt for every event and
// every enabled endpoint that Matches it, in one transaction, durable on
// disk when it returns nil (see hub.Store).
//
// Defaults: an empty message status is accepted; a zero ReceivedAt is the
// store's clock; an observation's empty Source, Provider and MessageID and
// zero ReceivedAt are the message's, as are an event's empty Source,
// Provider, MessageID and zero CreatedAt. An observation or event that names
// another source or message, an id that is not 1 to 128 of [A-Za-z0-9_.-], an
// unknown status, kind or event type, and JSON that does not parse are
// EINVALID. A message without a dedup key is never a duplicate. A message id
// or event id stored already is ECONFLICT.
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
	if err != nil {
		return hub.IngestResult{}, err
	}
	return res, nil
}

func (s *Store) prepareIngest(in hub.Ingest) (*ingestReq, error) {
	m := in.Message
	switch {
	case !validID(m.ID):
		return nil, hub.Errorf(hub.EINVALID, "invalid message id %q", m.ID)
	case !validID(m.SourceID):
		return nil, hub.Errorf(hub.EINVALID, "invalid source id %q", m.SourceID)
	case m.Status == "":
		m.Status = hub.MessageAccepted
	case m.Status != hub.MessageAccepted && m.Status != hub.MessageQuarantined:
		return nil, hub.Errorf(hub.EINVALID, "an ingested message must be accepted or quarantined, not %q", m.Status)
	}
	if m.ReceivedAt.IsZero() {
		m.ReceivedAt = s.now()
	}
	if err := checkTime(m.ReceivedAt, "received_at"); err != nil {
		return nil, err
	}
	m.ReceivedAt = utc(m.ReceivedAt)
	if len(m.Preview) > 0 && !json.Valid(m.Preview) {
		return nil, hub.Errorf(hub.EINVALID, "message preview is not JSON")
	}
	r := &ingestReq{
		m:       m,
		body:    s.cipher.Seal(m.Body),
		dedup:   nullString(m.DedupKey),
		preview: nullString(string(m.Preview)),
	}

	for i, o := range in.Observations {
		if o.Source == "" {
			o.Source = m.SourceID
		}
		if o.Provider == "" {
			o.Provider = m.Provider
		}
		if o.MessageID == "" {
			o.MessageID = m.ID
		}
		if o.ReceivedAt.IsZero() {
			o.ReceivedAt = m.ReceivedAt
		}
		switch {
		case o.Source != m.SourceID:
			return nil, hub.Errorf(hub.EINVALID, "observation %d is of source %q, not the message's", i, o.Source)
		case o.MessageID != m.ID:
			return nil, hub.Errorf(hub.EINVALID, "observation %d names message %q, not this one", i, o.MessageID)
		case o.ID != "" && !validID(o.ID):
			return nil, hub.Errorf(hub.EINVALID, "observation %d: invalid id %q", i, o.ID)
		case o.ProviderRef == "":
			return nil, hub.Errorf(hub.EINVALID, "observation %d has no provider reference", i)
		case !slices.Contains(hub.Statuses, o.Status):
			return nil, hub.Errorf(hub.EINVALID, "observation %d: unknown status %q", i, o.Status)
		case o.Kind != "" && o.Kind != hub.KindKYC && o.Kind != hub.KindKYB:
			return nil, hub.Errorf(hub.EINVALID, "observation %d: unknown kind %q", i, o.Kind)
		}
		if err := checkTime(o.ReceivedAt, "observation received_at"); err != nil {
			return nil, err
		}
		if err := checkTime(o.ProviderTime, "observation provider_time"); err != nil {
			return nil, err
		}
		o.ReceivedAt, o.ProviderTime = utc(o.ReceivedAt), utc(o.ProviderTime)
		o.Reasons = slices.Clone(o.Reasons)
		if o.AttemptsLeft != nil {
			n := *o.AttemptsLeft
			o.AttemptsLeft = &n
		}
		o.Outcome, o.Version = "", 0
		r.obs = append(r.obs, o)
		r.reasons = append(r.reasons, reasonsJSON(o.Reasons))
	}

	for i, e := range in.Events {
		if e.Source == "" {
			e.Source = m.SourceID
		}
		if e.Provider == "" {
			e.Provider = m.Provider
		}
		if e.MessageID == "" {
			e.MessageID = m.ID
		}
		if e.CreatedAt.IsZero() {
			e.CreatedAt = m.ReceivedAt
		}
		switch {
		case !validID(e.ID):
			return nil, hub.Errorf(hub.EINVALID, "event %d: invalid id %q", i, e.ID)
		case !slices.Contains(hub.EventTypes, e.Type):
			return nil, hub.Errorf(hub.EINVALID, "event %d: unknown type %q", i, e.Type)
		case !json.Valid(e.Data):
			return nil, hub.Errorf(hub.EINVALID, "event %d: data is not JSON", i)
		case e.MessageID != m.ID:
			return nil, hub.Errorf(hub.EINVALID, "event %d names message %q, not this one", i, e.MessageID)
		case e.VerificationID != "" && !validID(e.VerificationID):
			return nil, hub.Errorf(hub.EINVALID, "event %d: invalid verification id %q", i, e.VerificationID)
		}
		if err := checkTime(e.CreatedAt, "event created_at"); err != nil {
			return nil, err
		}
		e.CreatedAt = utc(e.CreatedAt)
		e.Data = slices.Clone(e.Data)
		r.events = append(r.events, e)
	}
	return r, nil
}

// ingestTx is Ingest's work inside the writer's transaction. Being the only
// writer, it can look for a duplicate and then insert without a race; the
// UNIQUE index on (source_id, dedup_key) backs the rule up regardless.
func (s *Store) ingestTx(tx *wtx, r *ingestReq) (hub.IngestResult, error) {
	m := r.m
	if r.dedup.Valid {
		var id string
		err := tx.queryRowStmt(s.q.findDuplicate, m.SourceID, r.dedup).Scan(&id)
		switch {
		case err == nil:
			return hub.IngestResult{MessageID: id, Duplicate: true}, nil
		case !errors.Is(err, sql.ErrNoRows):
			return hub.IngestResult{}, fmt.Errorf("find duplicate: %w", err)
		}
	}
	if _, err := tx.execStmt(s.q.insertMessage,
		m.ID, m.SourceID, m.Provider, toNanos(m.ReceivedAt), m.RemoteAddr, string(m.Status), m.HTTPStatus,
		m.Reason, m.EventName, r.dedup, r.body, r.preview); err != nil {
		return hub.IngestResult{}, fmt.Errorf("insert message: %w", err)
	}

	now := s.now()
	var events []hub.Event
	for i, o := range r.obs {
		cur, err := scanVerification(tx.queryRowStmt(s.q.loadVerification, o.Source, o.ProviderRef, o.Level))
		exists := err == nil
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return hub.IngestResult{}, fmt.Errorf("load verification: %w", err)
		}
		next, outcome, changed := hub.Apply(cur, exists, o)
		switch {
		case !exists:
			next.ID = hub.NewID("ver", now)
			if err := s.insertVerification(tx, next); err != nil {
				return hub.IngestResult{}, err
			}
		case outcome == hub.OutcomeApplied:
			// Even without a change of state an applied observation may
			// bring a newer provider timestamp.
			if err := s.updateVerification(tx, next); err != nil {
				return hub.IngestResult{}, err
			}
		}
		obsID := o.ID
		if obsID == "" {
			obsID = hub.NewID("obs", now)
		}
		if _, err := tx.execStmt(s.q.insertObservation,
			obsID, next.ID, o.MessageID, o.Source, o.Provider, o.ProviderRef, o.Level, string(o.Kind), o.ApplicantRef,
			string(o.Status), boolInt(o.Final), r.reasons[i], nullInt(o.AttemptsLeft), toNullNanos(o.ProviderTime),
			o.ProviderEvent, toNanos(o.ReceivedAt), string(outcome), next.Version); err != nil {
			return hub.IngestResult{}, fmt.Errorf("insert observation: %w", err)
		}
		if changed {
			var prev hub.Status
			if exists {
				prev = cur.Status
			}
			e := hub.UpdatedEvent(hub.NewID("evt", now), next, prev, o)
			if err := s.insertEvent(tx, e); err != nil {
				return hub.IngestResult{}, err
			}
			events = append(events, e)
		}
	}
	for _, e := range r.events {
		if err := s.insertEvent(tx, e); err != nil {
			return hub.IngestResult{}, err
		}
		events = append(events, e)
	}
	// The deliveries commit with the events, so that an acknowledged message
	// can never miss its deliveries.
	n, err := s.enqueue(tx, events, m.ReceivedAt)
	if err != nil {
		return hub.IngestResult{}, err
	}
	return hub.IngestResult{MessageID: m.ID, Events: events, Deliveries: n}, nil
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
		v.ApplicantRef, string(v.Kind), string(v.Status), boolInt(v.Final), v.Version, reasonsJSON(v.Reasons),
		nullInt(v.AttemptsLeft), toNullNanos(v.ProviderTime), toNanos(v.UpdatedAt), v.ID)
	if err != nil {
		return fmt.Errorf("update verification: %w", err)
	}
	return nil
}

func (s *Store) insertEvent(tx *wtx, e hub.Event) error {
	_, err := tx.execStmt(s.q.insertEvent,
		e.ID, e.Type, toNanos(e.CreatedAt), e.Source, e.Provider, s.cipher.Seal(e.Data),
		nullString(e.MessageID), nullString(e.VerificationID))
	if err != nil {
		return fmt.Errorf("insert event %s: %w", e.ID, err)
	}
	return nil
}

// RecordRejection stores an audit row for a refused request: status
// rejected, no body, no preview and no dedup key (rejections never
// deduplicate). An empty m.ID gets a new "msg" id and a zero ReceivedAt the
// store's clock.
func (s *Store) RecordRejection(ctx context.Context, m hub.Message) error {
	if m.ID == "" {
		m.ID = hub.NewID("msg", s.now())
	}
	if !validID(m.ID) {
		return hub.Errorf(hub.EINVALID, "record rejection: invalid message id %q", m.ID)
	}
	if m.ReceivedAt.IsZero() {
		m.ReceivedAt = s.now()
	}
	if err := checkTime(m.ReceivedAt, "received_at"); err != nil {
		return fmt.Errorf("record rejection: %w", err)
	}
	return s.write(ctx, "record rejection", func(tx *wtx) error {
		_, err := tx.exec(`INSERT INTO messages
			(id, source_id, provider, received_at, remote_addr, status, http_status, reason, event_name)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.ID, m.SourceID, m.Provider, toNanos(m.ReceivedAt), m.RemoteAddr, string(hub.MessageRejected),
			m.HTTPStatus, m.Reason, m.EventName)
		return err
	})
}

// purgeChunk is how many bodies PurgeBodies clears per transaction, so that a
// purge of millions of rows never holds the writer for long.
const purgeChunk = 1000

// PurgeBodies deletes the bodies of messages received before t, in chunks of
// purgeChunk (each its own transaction), and returns how many it deleted,
// also when it fails part way.
func (s *Store) PurgeBodies(ctx context.Context, before time.Time) (int, error) {
	if err := checkTime(before, "before"); err != nil {
		return 0, fmt.Errorf("purge bodies: %w", err)
	}
	if before.IsZero() {
		return 0, nil // nothing was received before the zero time
	}
	total := 0
	for {
		var n int64
		err := s.write(ctx, "purge bodies", func(tx *wtx) error {
			res, err := tx.exec(`UPDATE messages SET body = NULL WHERE rowid IN (
				SELECT rowid FROM messages WHERE body IS NOT NULL AND received_at < ? LIMIT ?)`,
				toNanos(before), purgeChunk)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, err
		}
		total += int(n)
		if n < purgeChunk {
			return total, nil
		}
	}
}
