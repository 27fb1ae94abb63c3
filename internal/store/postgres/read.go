package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/verihook/verihook/internal/hub"
)

// query builds a list query: conditions joined with AND, newest first, one
// row more than the page so that the caller knows whether another follows.
type listQuery struct {
	where []string
	args  []any
}

// add adds a condition; its one "?" becomes the argument's placeholder.
func (q *listQuery) add(cond string, arg any) {
	q.args = append(q.args, arg)
	q.where = append(q.where, strings.Replace(cond, "?", "$"+strconv.Itoa(len(q.args)), 1))
}

func (q *listQuery) sql(selectFrom, cursor string, limit int) (string, []any) {
	if cursor != "" {
		q.add("id < ?", cursor)
	}
	var b strings.Builder
	b.WriteString(selectFrom)
	if len(q.where) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(q.where, " AND "))
	}
	b.WriteString(" ORDER BY id DESC LIMIT $" + strconv.Itoa(len(q.args)+1))
	return b.String(), append(q.args, limit+1)
}

// list runs a list query and scans each row with scan, which returns the
// row's id. It returns the page and the next cursor.
func list[T any](ctx context.Context, s *Store, op, stmt string, args []any, limit int,
	scan func(pgx.Row) (T, string, error)) ([]T, string, error) {
	rows, err := s.query(ctx, stmt, args...)
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

// snapshot runs fn in a read-only REPEATABLE READ transaction, so that its
// queries (a verification and its timeline, say) see one state.
func (s *Store) snapshot(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	if s.closed.Load() {
		return fmt.Errorf("%s: %w", op, errClosed)
	}
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

const messageCols = `id, source_id, provider, received_at, remote_addr, status, http_status, reason, event_name,
	dedup_key, preview, body, origin, count`

// scanMessage reads a row of messageCols, and extra, and opens the body as
// withBody asks (see hub.Message.OpenBody). A body that does not decrypt with
// the store's key is an error wrapping hub.ErrDecrypt.
func (s *Store) scanMessage(r pgx.Row, withBody bool, extra ...any) (hub.Message, error) {
	var (
		m       hub.Message
		status  string
		dedup   *string
		preview []byte
		sealed  []byte
		count   *int64
	)
	dest := append([]any{&m.ID, &m.SourceID, &m.Provider, &m.ReceivedAt, &m.RemoteAddr, &status, &m.HTTPStatus,
		&m.Reason, &m.EventName, &dedup, &preview, &sealed, &m.Origin, &count}, extra...)
	if err := r.Scan(dest...); err != nil {
		return hub.Message{}, err
	}
	if count != nil {
		m.Count = *count
	}
	m.ReceivedAt = m.ReceivedAt.UTC()
	m.Status = hub.MessageStatus(status)
	m.DedupKey = fromNullString(dedup)
	if preview != nil {
		m.Preview = preview
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
	return list(ctx, s, "list messages", stmt, args, limit, func(r pgx.Row) (hub.Message, string, error) {
		m, err := s.scanMessage(r, false)
		return m, m.ID, err
	})
}

// messagesSQL is the query of Messages.
func messagesSQL(f hub.MessageFilter, cursor string, limit int) (string, []any) {
	var q listQuery
	if f.Source != "" {
		q.add("source_id = ?", clean(f.Source))
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
// recorded, read in one statement. A body that does not decrypt with the
// store's key is an error wrapping hub.ErrDecrypt.
func (s *Store) Message(ctx context.Context, id string) (hub.Message, error) {
	var events []string
	m, err := s.scanMessage(s.queryRow(ctx, `SELECT `+messageCols+`,
			ARRAY(SELECT e.id FROM events e WHERE e.message_id = m.id ORDER BY e.seq)
		FROM messages m WHERE id = $1`, clean(id)), true, &events)
	if err != nil {
		return hub.Message{}, notFound("get message", err, fmt.Sprintf("message %q not found", id))
	}
	if len(events) > 0 {
		m.Events = events
	}
	return m, nil
}

const verificationCols = `id, source, provider, provider_ref, level, applicant_ref, kind, status, final, version,
	reasons, attempts_left, provider_time, created_at, updated_at`

func scanVerification(r pgx.Row) (hub.Verification, error) {
	var (
		v            hub.Verification
		kind, status string
		providerTime *time.Time
	)
	if err := r.Scan(&v.ID, &v.Source, &v.Provider, &v.ProviderRef, &v.Level, &v.ApplicantRef, &kind, &status,
		&v.Final, &v.Version, &v.Reasons, &v.AttemptsLeft, &providerTime, &v.CreatedAt, &v.UpdatedAt); err != nil {
		return hub.Verification{}, err
	}
	v.Kind, v.Status = hub.Kind(kind), hub.Status(status)
	v.Reasons = nonNil(v.Reasons)
	v.ProviderTime = fromNullTime(providerTime)
	v.CreatedAt, v.UpdatedAt = v.CreatedAt.UTC(), v.UpdatedAt.UTC()
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
	return list(ctx, s, "list verifications", stmt, args, limit, func(r pgx.Row) (hub.Verification, string, error) {
		v, err := scanVerification(r)
		return v, v.ID, err
	})
}

// verificationsSQL is the query of Verifications.
func verificationsSQL(f hub.VerificationFilter, cursor string, limit int) (string, []any) {
	var q listQuery
	if f.Source != "" {
		q.add("source = ?", clean(f.Source))
	}
	if f.Provider != "" {
		q.add("provider = ?", clean(f.Provider))
	}
	if f.Status != "" {
		q.add("status = ?", string(f.Status))
	}
	if f.ApplicantRef != "" {
		q.add("applicant_ref = ?", clean(f.ApplicantRef))
	}
	if f.ProviderRef != "" {
		q.add("provider_ref = ?", clean(f.ProviderRef))
	}
	if f.Level != "" {
		q.add("level = ?", clean(f.Level))
		q.where = append(q.where, "level <> ''") // verifications_level's condition
	}
	if f.Stuck != nil {
		q.stuck(*f.Stuck)
	}
	return q.sql(`SELECT `+verificationCols+` FROM verifications`, cursor, limit)
}

// Verification returns one verification with its timeline, oldest first,
// both read from one snapshot.
func (s *Store) Verification(ctx context.Context, id string) (hub.Verification, error) {
	var v hub.Verification
	err := s.snapshot(ctx, "get verification", func(tx pgx.Tx) error {
		var err error
		v, err = scanVerification(tx.QueryRow(ctx, `SELECT `+verificationCols+` FROM verifications WHERE id = $1`, clean(id)))
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, source, provider, provider_ref, level, kind, applicant_ref, status,
			final, reasons, attempts_left, provider_time, provider_event, received_at, message_id, outcome, version,
			current_state, final_if_no_attempts, origin
			FROM observations WHERE verification_id = $1 ORDER BY seq`, v.ID)
		if err != nil {
			return fmt.Errorf("get timeline: %w", err)
		}
		defer rows.Close()
		v.Timeline = []hub.Observation{}
		for rows.Next() {
			var (
				o                     hub.Observation
				kind, status, outcome string
				providerTime          *time.Time
			)
			if err := rows.Scan(&o.ID, &o.Source, &o.Provider, &o.ProviderRef, &o.Level, &kind, &o.ApplicantRef,
				&status, &o.Final, &o.Reasons, &o.AttemptsLeft, &providerTime, &o.ProviderEvent, &o.ReceivedAt,
				&o.MessageID, &outcome, &o.Version, &o.Current, &o.FinalIfNoAttempts, &o.Origin); err != nil {
				return fmt.Errorf("get timeline: %w", err)
			}
			o.Kind, o.Status, o.Outcome = hub.Kind(kind), hub.Status(status), hub.Outcome(outcome)
			o.ProviderTime = fromNullTime(providerTime)
			o.ReceivedAt = o.ReceivedAt.UTC()
			v.Timeline = append(v.Timeline, o)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		v.Poll, err = pollState(ctx, tx, v.ID)
		return err
	})
	if err != nil {
		return hub.Verification{}, notFound("get verification", err, fmt.Sprintf("verification %q not found", id))
	}
	return v, nil
}

const eventCols = `id, type, created_at, source, provider, data, message_id, verification_id`

func (s *Store) scanEvent(r pgx.Row) (hub.Event, error) {
	e, data, err := scanSealedEvent(r)
	if err != nil {
		return hub.Event{}, err
	}
	if err := e.OpenData(s.cipher, data); err != nil {
		return hub.Event{}, err
	}
	return e, nil
}

// eventScan holds the destinations of a row of eventCols.
type eventScan struct {
	e              hub.Event
	data           []byte
	msgID, verifID *string
}

func (x *eventScan) dest() []any {
	return []any{&x.e.ID, &x.e.Type, &x.e.CreatedAt, &x.e.Source, &x.e.Provider, &x.data, &x.msgID, &x.verifID}
}

// value returns the event read, with its data still sealed.
func (x *eventScan) value() (hub.Event, []byte) {
	e := x.e
	e.CreatedAt = e.CreatedAt.UTC()
	e.MessageID, e.VerificationID = fromNullString(x.msgID), fromNullString(x.verifID)
	return e, x.data
}

// scanSealedEvent reads an event row, leaving its data sealed.
func scanSealedEvent(r pgx.Row) (hub.Event, []byte, error) {
	var x eventScan
	if err := r.Scan(x.dest()...); err != nil {
		return hub.Event{}, nil, err
	}
	e, data := x.value()
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
	return list(ctx, s, "list events", stmt, args, limit, func(r pgx.Row) (hub.Event, string, error) {
		e, err := s.scanEvent(r)
		return e, e.ID, err
	})
}

// eventsSQL is the query of Events.
func eventsSQL(f hub.EventFilter, cursor string, limit int) (string, []any) {
	var q listQuery
	if f.Source != "" {
		q.add("source = ?", clean(f.Source))
	}
	if f.Type != "" {
		q.add("type = ?", f.Type)
		if f.Type != hub.EventVerificationUpdated {
			q.where = append(q.where, "type <> 'verification.updated'") // events_uncommon's condition
		}
	}
	if f.VerificationID != "" {
		q.add("verification_id = ?", clean(f.VerificationID))
	}
	if len(f.IDs) > 0 {
		ids := make([]string, len(f.IDs))
		for i, id := range f.IDs {
			ids[i] = clean(id)
		}
		q.add("id = ANY(?::text[])", ids)
	}
	return q.sql(`SELECT `+eventCols+` FROM events`, cursor, limit)
}

// Event returns one event.
func (s *Store) Event(ctx context.Context, id string) (hub.Event, error) {
	e, err := s.scanEvent(s.queryRow(ctx, `SELECT `+eventCols+` FROM events WHERE id = $1`, clean(id)))
	if err != nil {
		return hub.Event{}, notFound("get event", err, fmt.Sprintf("event %q not found", id))
	}
	return e, nil
}
