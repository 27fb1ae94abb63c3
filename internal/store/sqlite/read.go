package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/verihook/verihook/internal/hub"
)

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// query builds a list query: conditions joined with AND, newest first, one
// row more than the page so that the caller knows whether another follows.
type query struct {
	where []string
	args  []any
}

func (q *query) add(cond string, arg any) {
	q.where = append(q.where, cond)
	q.args = append(q.args, arg)
}

func (q *query) sql(selectFrom, cursor string, limit int) (string, []any) {
	if cursor != "" {
		q.add("id < ?", cursor)
	}
	var b strings.Builder
	b.WriteString(selectFrom)
	if len(q.where) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(q.where, " AND "))
	}
	b.WriteString(" ORDER BY id DESC LIMIT ?")
	return b.String(), append(q.args, limit+1)
}

// list runs a list query and scans each row with scan, which returns the
// row's id. It returns the page and the next cursor.
func list[T any](ctx context.Context, s *Store, op, stmt string, args []any, limit int,
	scan func(scanner) (T, string, error)) ([]T, string, error) {
	rows, err := s.rdb.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, "", fail(op, err)
	}
	defer rows.Close()
	out := []T{}
	var ids []string
	for rows.Next() {
		v, id, err := scan(rows)
		if err != nil {
			return nil, "", fail(op, err)
		}
		out = append(out, v)
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fail(op, err)
	}
	if len(out) > limit {
		return out[:limit], ids[limit-1], nil
	}
	return out, "", nil
}

// messageCols are the columns of a message; its body is in message_bodies,
// or in messages.body if it was stored before migration 0007.
const messageCols = `id, source_id, provider, received_at, remote_addr, status, http_status, reason, event_name,
	dedup_key, preview, origin, coalesce(body,
		(SELECT b.body FROM message_bodies b WHERE b.received_at = messages.received_at AND b.message_id = messages.id)),
	count`

// scanMessage reads a row of messageCols and opens the body as withBody asks
// (see hub.Message.OpenBody). A body that does not decrypt with the store's
// key is an error wrapping hub.ErrDecrypt.
func (s *Store) scanMessage(r scanner, withBody bool) (hub.Message, error) {
	var (
		m          hub.Message
		receivedAt int64
		status     string
		dedup      sql.NullString
		preview    sql.NullString
		sealed     []byte
		count      sql.NullInt64
	)
	if err := r.Scan(&m.ID, &m.SourceID, &m.Provider, &receivedAt, &m.RemoteAddr, &status, &m.HTTPStatus,
		&m.Reason, &m.EventName, &dedup, &preview, &m.Origin, &sealed, &count); err != nil {
		return hub.Message{}, err
	}
	m.Count = count.Int64
	m.ReceivedAt = fromNanos(receivedAt)
	m.Status = hub.MessageStatus(status)
	m.DedupKey = dedup.String
	if preview.Valid {
		m.Preview = []byte(preview.String)
	}
	if err := m.OpenBody(s.cipher, sealed, withBody); err != nil {
		return hub.Message{}, err
	}
	return m, nil
}

// Messages lists received messages newest first, without bodies. An unknown
// status is EINVALID; see hub.Page.Check for limits and cursors.
func (s *Store) Messages(ctx context.Context, f hub.MessageFilter) ([]hub.Message, string, error) {
	limit, cursor, err := f.Page.Check()
	if err != nil {
		return nil, "", fmt.Errorf("list messages: %w", err)
	}
	if err := f.Validate(); err != nil {
		return nil, "", err
	}
	stmt, args := messagesSQL(f, cursor, limit)
	return list(ctx, s, "list messages", stmt, args, limit, func(r scanner) (hub.Message, string, error) {
		m, err := s.scanMessage(r, false)
		return m, m.ID, err
	})
}

// messagesSQL is the query of Messages.
func messagesSQL(f hub.MessageFilter, cursor string, limit int) (string, []any) {
	var q query
	if f.Source != "" {
		q.add("source_id = ?", f.Source)
	}
	if f.Status != "" {
		q.add("status = ?", string(f.Status))
		if f.Status != hub.MessageAccepted {
			q.where = append(q.where, "status <> 'accepted'") // messages_unaccepted's condition
		}
	}
	return q.sql(`SELECT `+messageCols+` FROM messages`, cursor, limit)
}

// Message returns one message with its decrypted body (nil for rejections
// and once purged) and the ids of its events in the order they were
// recorded. A body that does not decrypt with the store's key is an error
// wrapping hub.ErrDecrypt.
func (s *Store) Message(ctx context.Context, id string) (hub.Message, error) {
	// One read transaction, so that the message and its events are one
	// snapshot.
	tx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return hub.Message{}, fail("get message", err)
	}
	defer tx.Rollback()
	m, err := s.scanMessage(tx.QueryRowContext(ctx, `SELECT `+messageCols+` FROM messages WHERE id = ?`, id), true)
	if err != nil {
		return hub.Message{}, notFound("get message", err, fmt.Sprintf("message %q not found", id))
	}
	rows, err := tx.QueryContext(ctx, `SELECT id FROM events WHERE message_id = ? ORDER BY rowid`, id)
	if err != nil {
		return hub.Message{}, fail("get message events", err)
	}
	defer rows.Close()
	for rows.Next() {
		var eid string
		if err := rows.Scan(&eid); err != nil {
			return hub.Message{}, fail("get message events", err)
		}
		m.Events = append(m.Events, eid)
	}
	if err := rows.Err(); err != nil {
		return hub.Message{}, fail("get message events", err)
	}
	return m, nil
}

const verificationCols = `id, source, provider, provider_ref, level, applicant_ref, kind, status, final, version,
	reasons, attempts_left, provider_time, created_at, updated_at`

func scanVerification(r scanner) (hub.Verification, error) {
	var (
		v                    hub.Verification
		kind, status         string
		final                int
		reasons              string
		attemptsLeft         sql.NullInt64
		providerTime         sql.NullInt64
		createdAt, updatedAt int64
	)
	if err := r.Scan(&v.ID, &v.Source, &v.Provider, &v.ProviderRef, &v.Level, &v.ApplicantRef, &kind, &status,
		&final, &v.Version, &reasons, &attemptsLeft, &providerTime, &createdAt, &updatedAt); err != nil {
		return hub.Verification{}, err
	}
	v.Kind, v.Status, v.Final = hub.Kind(kind), hub.Status(status), final != 0
	var err error
	if v.Reasons, err = fromReasonsJSON(reasons); err != nil {
		return hub.Verification{}, fmt.Errorf("verification %s: reasons: %w", v.ID, err)
	}
	v.AttemptsLeft = fromNullInt(attemptsLeft)
	v.ProviderTime = fromNullNanos(providerTime)
	v.CreatedAt, v.UpdatedAt = fromNanos(createdAt), fromNanos(updatedAt)
	return v, nil
}

// Verifications lists verifications newest first, without timelines. An
// unknown status is EINVALID; see hub.Page.Check for limits and cursors.
func (s *Store) Verifications(ctx context.Context, f hub.VerificationFilter) ([]hub.Verification, string, error) {
	limit, cursor, err := f.Page.Check()
	if err != nil {
		return nil, "", fmt.Errorf("list verifications: %w", err)
	}
	if err := f.Validate(); err != nil {
		return nil, "", err
	}
	stmt, args := verificationsSQL(f, cursor, limit)
	return list(ctx, s, "list verifications", stmt, args, limit, func(r scanner) (hub.Verification, string, error) {
		v, err := scanVerification(r)
		return v, v.ID, err
	})
}

// verificationsSQL is the query of Verifications.
func verificationsSQL(f hub.VerificationFilter, cursor string, limit int) (string, []any) {
	var q query
	if f.Source != "" {
		q.add("source = ?", f.Source)
	}
	if f.Provider != "" {
		q.add("provider = ?", f.Provider)
	}
	if f.Status != "" {
		q.add("status = ?", string(f.Status))
	}
	if f.ApplicantRef != "" {
		q.add("applicant_ref = ?", f.ApplicantRef)
		q.where = append(q.where, "applicant_ref <> ''") // verifications_applicant's condition
	}
	if f.ProviderRef != "" {
		q.add("provider_ref = ?", f.ProviderRef)
	}
	if f.Level != "" {
		q.add("level = ?", f.Level)
		q.where = append(q.where, "level <> ''") // verifications_level's condition
	}
	if f.Stuck != nil {
		q.stuck(*f.Stuck)
	}
	return q.sql(`SELECT `+verificationCols+` FROM verifications`, cursor, limit)
}

// Verification returns one verification with its timeline, oldest first.
func (s *Store) Verification(ctx context.Context, id string) (hub.Verification, error) {
	tx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return hub.Verification{}, fail("get verification", err)
	}
	defer tx.Rollback()
	v, err := scanVerification(tx.QueryRowContext(ctx, `SELECT `+verificationCols+` FROM verifications WHERE id = ?`, id))
	if err != nil {
		return hub.Verification{}, notFound("get verification", err, fmt.Sprintf("verification %q not found", id))
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, source, provider, provider_ref, level, kind, applicant_ref, status,
		final, reasons, attempts_left, provider_time, provider_event, received_at, message_id, outcome, version,
		current_state, final_if_no_attempts, origin
		FROM observations WHERE verification_id = ? ORDER BY seq`, id)
	if err != nil {
		return hub.Verification{}, fail("get timeline", err)
	}
	defer rows.Close()
	v.Timeline = []hub.Observation{}
	for rows.Next() {
		var (
			o                    hub.Observation
			kind, status, outcom string
			final, current, ifNo int
			reasons              string
			attemptsLeft         sql.NullInt64
			providerTime         sql.NullInt64
			receivedAt           int64
		)
		if err := rows.Scan(&o.ID, &o.Source, &o.Provider, &o.ProviderRef, &o.Level, &kind, &o.ApplicantRef, &status,
			&final, &reasons, &attemptsLeft, &providerTime, &o.ProviderEvent, &receivedAt, &o.MessageID, &outcom,
			&o.Version, &current, &ifNo, &o.Origin); err != nil {
			return hub.Verification{}, fail("get timeline", err)
		}
		o.Kind, o.Status, o.Final, o.Outcome = hub.Kind(kind), hub.Status(status), final != 0, hub.Outcome(outcom)
		o.Current, o.FinalIfNoAttempts = current != 0, ifNo != 0
		if o.Reasons, err = fromReasonsJSON(reasons); err != nil {
			return hub.Verification{}, fmt.Errorf("get timeline: observation %s: reasons: %w", o.ID, err)
		}
		o.AttemptsLeft = fromNullInt(attemptsLeft)
		o.ProviderTime = fromNullNanos(providerTime)
		o.ReceivedAt = fromNanos(receivedAt)
		v.Timeline = append(v.Timeline, o)
	}
	if err := rows.Err(); err != nil {
		return hub.Verification{}, fail("get timeline", err)
	}
	if v.Poll, err = pollState(ctx, tx, id); err != nil {
		return hub.Verification{}, fail("get poll state", err)
	}
	return v, nil
}

const eventCols = `id, type, created_at, source, provider, data, message_id, verification_id`

func (s *Store) scanEvent(r scanner) (hub.Event, error) {
	e, data, err := scanSealedEvent(r)
	if err != nil {
		return hub.Event{}, err
	}
	if err := e.OpenData(s.cipher, data); err != nil {
		return hub.Event{}, err
	}
	return e, nil
}

// scanSealedEvent reads an event row, leaving its data sealed.
func scanSealedEvent(r scanner) (hub.Event, []byte, error) {
	var (
		e              hub.Event
		createdAt      int64
		data           []byte
		msgID, verifID sql.NullString
	)
	if err := r.Scan(&e.ID, &e.Type, &createdAt, &e.Source, &e.Provider, &data, &msgID, &verifID); err != nil {
		return hub.Event{}, nil, err
	}
	e.CreatedAt = fromNanos(createdAt)
	e.MessageID, e.VerificationID = msgID.String, verifID.String
	return e, data, nil
}

// Events lists events newest first, with their data. An unknown type is
// EINVALID; see hub.Page.Check for limits and cursors.
func (s *Store) Events(ctx context.Context, f hub.EventFilter) ([]hub.Event, string, error) {
	limit, cursor, err := f.Page.Check()
	if err != nil {
		return nil, "", fmt.Errorf("list events: %w", err)
	}
	if err := f.Validate(); err != nil {
		return nil, "", err
	}
	stmt, args := eventsSQL(f, cursor, limit)
	return list(ctx, s, "list events", stmt, args, limit, func(r scanner) (hub.Event, string, error) {
		e, err := s.scanEvent(r)
		return e, e.ID, err
	})
}

// eventsSQL is the query of Events.
func eventsSQL(f hub.EventFilter, cursor string, limit int) (string, []any) {
	var q query
	if f.Source != "" {
		q.add("source = ?", f.Source)
	}
	if f.Type != "" {
		q.add("type = ?", f.Type)
		if f.Type != hub.EventVerificationUpdated {
			q.where = append(q.where, "type <> 'verification.updated'") // events_uncommon's condition
		}
	}
	if f.VerificationID != "" {
		q.add("verification_id = ?", f.VerificationID)
	}
	if len(f.IDs) > 0 {
		ids, _ := json.Marshal(f.IDs)
		q.add("id IN (SELECT value FROM json_each(?))", string(ids))
	}
	return q.sql(`SELECT `+eventCols+` FROM events`, cursor, limit)
}

// Event returns one event.
func (s *Store) Event(ctx context.Context, id string) (hub.Event, error) {
	e, err := s.scanEvent(s.rdb.QueryRowContext(ctx, `SELECT `+eventCols+` FROM events WHERE id = ?`, id))
	if err != nil {
		return hub.Event{}, notFound("get event", err, fmt.Sprintf("event %q not found", id))
	}
	return e, nil
}
