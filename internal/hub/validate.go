package hub

import (
	"encoding/json"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// This file holds the input rules that every Store implementation applies
// before it touches its database: which ids, statuses, page requests and
// endpoints are valid, and what the defaults are. Each rule lives here once;
// what depends on the database (the range and precision of its times, the
// bytes its text columns accept) stays in the store.

// MaxIDLen bounds ids and cursors.
const MaxIDLen = 128

// ValidID reports whether s can be an id: 1 to 128 letters, digits, '_',
// '-' or '.'. Stores hold the ids given by callers to it, so that a cursor,
// which is an id, can be told from garbage.
func ValidID(s string) bool {
	if s == "" || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// StoreTime is how a store keeps times: it returns t, the value of the field
// named field, as the store keeps it (in UTC, at the store's precision,
// without a monotonic clock reading), or an EINVALID error when the store
// cannot keep it. The zero time, which means "none", can always be kept and
// stays zero. Stores hand theirs to the Prepare methods that normalize times.
type StoreTime func(t time.Time, field string) (time.Time, error)

// StoreTimeWithin returns the StoreTime of a store that can keep the times
// from first to last, each as keep returns it. Any other time but the zero
// time is EINVALID.
func StoreTimeWithin(first, last time.Time, keep func(time.Time) time.Time) StoreTime {
	return func(t time.Time, field string) (time.Time, error) {
		switch {
		case t.IsZero():
			return time.Time{}, nil
		case t.Before(first) || t.After(last):
			return time.Time{}, Errorf(EINVALID, "%s %s is out of range", field, t.Format(time.RFC3339))
		}
		return keep(t), nil
	}
}

// Check validates a page request and returns the limit to use and the
// cursor. A limit above MaxPageLimit or below 0 is EINVALID rather than
// clamped, so that a caller's mistake shows; 0 means DefaultPageLimit. A
// cursor is the id of the last item of the previous page: one that is not a
// valid id is EINVALID.
func (p Page) Check() (limit int, cursor string, err error) {
	switch {
	case p.Limit < 0 || p.Limit > MaxPageLimit:
		return 0, "", Errorf(EINVALID, "limit must be between 1 and %d", MaxPageLimit)
	case p.Cursor != "" && !ValidID(p.Cursor):
		return 0, "", Errorf(EINVALID, "invalid cursor")
	case p.Limit == 0:
		return DefaultPageLimit, p.Cursor, nil
	}
	return p.Limit, p.Cursor, nil
}

// Validate checks the filter's status, which is empty or a MessageStatus;
// the page is checked by Page.Check.
func (f MessageFilter) Validate() error {
	switch f.Status {
	case "", MessageAccepted, MessageQuarantined, MessageRejected:
		return nil
	}
	return Errorf(EINVALID, "unknown message status %q", f.Status)
}

// Validate checks the filter's status, which is empty or one of Statuses;
// the page is checked by Page.Check.
func (f VerificationFilter) Validate() error {
	if f.Status != "" && !slices.Contains(Statuses, f.Status) {
		return Errorf(EINVALID, "unknown status %q", f.Status)
	}
	return nil
}

// Validate checks the filter's type, which is empty or one of EventTypes,
// and its number of ids; the page is checked by Page.Check.
func (f EventFilter) Validate() error {
	if f.Type != "" && !slices.Contains(EventTypes, f.Type) {
		return Errorf(EINVALID, "unknown event type %q", f.Type)
	}
	if len(f.IDs) > MaxPageLimit {
		return Errorf(EINVALID, "at most %d event ids at once", MaxPageLimit)
	}
	return nil
}

// Valid reports whether st is one of the delivery statuses.
func (st DeliveryStatus) Valid() bool {
	return st == DeliveryPending || st == DeliverySucceeded || st == DeliveryFailed
}

// Validate checks the filter's status, which is empty or a valid
// DeliveryStatus; the page is checked by Page.Check.
func (f DeliveryFilter) Validate() error {
	if f.Status != "" && !f.Status.Valid() {
		return Errorf(EINVALID, "unknown delivery status %q", f.Status)
	}
	return nil
}

// Prepare checks a source and fills its defaults, as
// Store.UpsertSource does before it stores it: an id that is not 1 to 128
// of [A-Za-z0-9_.-], no provider, or a Managed other than ManagedConfig or
// ManagedAPI is EINVALID; a zero CreatedAt or UpdatedAt becomes now, an
// empty Managed ManagedAPI.
func (s *Source) Prepare(now time.Time) error {
	switch {
	case !ValidID(s.ID):
		return Errorf(EINVALID, "invalid source id %q", s.ID)
	case s.Provider == "":
		return Errorf(EINVALID, "source %s has no provider", s.ID)
	case s.Managed == "":
		s.Managed = ManagedAPI
	case s.Managed != ManagedAPI && s.Managed != ManagedConfig:
		return Errorf(EINVALID, "source %s: managed must be %s or %s", s.ID, ManagedConfig, ManagedAPI)
	}
	if s.CreatedAt.IsZero() {
		s.CreatedAt = now
	}
	if s.UpdatedAt.IsZero() {
		s.UpdatedAt = now
	}
	return nil
}

// Prepare checks a token and fills its default, as Store.CreateToken does
// before it stores it: an invalid id, an empty hash, an unknown role, a name
// longer than 100 bytes or holding control characters (lists print it), an
// ExpiresAt not after CreatedAt, or a LastUsedAt or RevokedAt already set is
// EINVALID; a zero CreatedAt becomes now.
func (t *Token) Prepare(now time.Time) error {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = now
	}
	switch {
	case !ValidID(t.ID):
		return Errorf(EINVALID, "invalid token id %q", t.ID)
	case t.Hash == "":
		return Errorf(EINVALID, "token %s has no hash", t.ID)
	case t.Role != RoleAdmin && t.Role != RoleViewer:
		return Errorf(EINVALID, "unknown role %q: want admin or viewer", t.Role)
	case len(t.Name) > 100 || !utf8.ValidString(t.Name) || strings.ContainsFunc(t.Name, unicode.IsControl):
		return Errorf(EINVALID, "token name: at most 100 bytes of printable text")
	case !t.ExpiresAt.IsZero() && !t.ExpiresAt.After(t.CreatedAt):
		return Errorf(EINVALID, "token %s expires before it is created", t.ID)
	case !t.LastUsedAt.IsZero() || !t.RevokedAt.IsZero():
		return Errorf(EINVALID, "a new token cannot be used or revoked already")
	}
	return nil
}

// Validate checks an endpoint: an id that is not 1 to 128 of
// [A-Za-z0-9_.-], a URL that is not absolute http(s), a secret (or a
// non-empty previous secret) that is not "whsec_" and base64 of 24 to 64
// bytes, a negative, infinite or NaN rate limit, an event type filter that
// ValidEventTypeFilter refuses and a source that is not a valid id are
// EINVALID.
func (e *Endpoint) Validate() error {
	switch {
	case !ValidID(e.ID):
		return Errorf(EINVALID, "invalid endpoint id %q", e.ID)
	case !validEndpointURL(e.URL):
		return Errorf(EINVALID, "endpoint %s: the url must be an absolute http or https URL", e.ID)
	case !ValidEndpointSecret(e.Secret):
		return Errorf(EINVALID, "endpoint %s: the secret must be %q and base64 of 24 to 64 bytes", e.ID, SecretPrefix)
	case e.PreviousSecret != "" && !ValidEndpointSecret(e.PreviousSecret):
		return Errorf(EINVALID, "endpoint %s: the previous secret must be %q and base64 of 24 to 64 bytes", e.ID, SecretPrefix)
	case math.IsNaN(e.RateLimit) || math.IsInf(e.RateLimit, 0) || e.RateLimit < 0:
		return Errorf(EINVALID, "endpoint %s: the rate limit must be 0 or more", e.ID)
	}
	for _, t := range e.EventTypes {
		if !ValidEventTypeFilter(t) {
			return Errorf(EINVALID, "endpoint %s: unknown event type filter %q", e.ID, t)
		}
	}
	for _, src := range e.Sources {
		if !ValidID(src) {
			return Errorf(EINVALID, "endpoint %s: invalid source id %q", e.ID, src)
		}
	}
	return nil
}

func validEndpointURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// Prepare validates e (see Validate) and readies it for storing: each of its
// times goes through storeTime, and EventTypes and Sources become copies of
// their own, empty rather than nil, so that the caller's slices are never
// shared.
func (e *Endpoint) Prepare(storeTime StoreTime) error {
	if err := e.Validate(); err != nil {
		return err
	}
	for _, f := range []struct {
		t     *time.Time
		field string
	}{
		{&e.PreviousSecretExpiresAt, "previous_secret_expires_at"},
		{&e.FailingSince, "failing_since"},
		{&e.CreatedAt, "created_at"},
		{&e.UpdatedAt, "updated_at"},
	} {
		t, err := storeTime(*f.t, f.field)
		if err != nil {
			return err
		}
		*f.t = t
	}
	e.EventTypes, e.Sources = copyList(e.EventTypes), copyList(e.Sources)
	return nil
}

// copyList returns a copy of list, empty rather than nil.
func copyList(list []string) []string {
	if list == nil {
		return []string{}
	}
	return slices.Clone(list)
}

// Prepare checks an Ingest and readies it for Store.Ingest, filling in the
// defaults: an empty message status is accepted; a zero ReceivedAt is now; an
// observation's empty Source, Provider and MessageID and zero ReceivedAt are
// the message's, as are an event's empty Source, Provider, MessageID and zero
// CreatedAt. An id that is not 1 to 128 of [A-Za-z0-9_.-], a message status
// other than accepted or quarantined, a preview or event data that is not
// JSON, a Dedup that Dedup's documentation rules out, an observation or
// event that names another source or message, an
// observation without a provider reference, and an unknown status, kind or
// event type are EINVALID, and so is a time that storeTime refuses; every
// time is replaced with what storeTime returns.
//
// The Observations and Events of in become new slices whose elements own
// their Reasons, AttemptsLeft and Data, with Outcome and Version cleared:
// nothing the caller holds is written or shared.
func (in *Ingest) Prepare(now time.Time, storeTime StoreTime) error {
	m := &in.Message
	switch {
	case !ValidID(m.ID):
		return Errorf(EINVALID, "invalid message id %q", m.ID)
	case !ValidID(m.SourceID):
		return Errorf(EINVALID, "invalid source id %q", m.SourceID)
	case m.Status == "":
		m.Status = MessageAccepted
	case m.Status != MessageAccepted && m.Status != MessageQuarantined:
		return Errorf(EINVALID, "an ingested message must be accepted or quarantined, not %q", m.Status)
	}
	if m.ReceivedAt.IsZero() {
		m.ReceivedAt = now
	}
	var err error
	if m.ReceivedAt, err = storeTime(m.ReceivedAt, "received_at"); err != nil {
		return err
	}
	if len(m.Preview) > 0 && !json.Valid(m.Preview) {
		return Errorf(EINVALID, "message preview is not JSON")
	}
	if err := m.Dedup.validate(len(in.Observations)); err != nil {
		return err
	}
	if m.Origin == "" {
		m.Origin = OriginCallback
	}
	if !slices.Contains(Origins, m.Origin) {
		return Errorf(EINVALID, "unknown message origin %q", m.Origin)
	}

	var obs []Observation
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
		if o.Origin == "" {
			o.Origin = m.Origin
		}
		switch {
		case o.Source != m.SourceID:
			return Errorf(EINVALID, "observation %d is of source %q, not the message's", i, o.Source)
		case o.MessageID != m.ID:
			return Errorf(EINVALID, "observation %d names message %q, not this one", i, o.MessageID)
		case o.ID != "" && !ValidID(o.ID):
			return Errorf(EINVALID, "observation %d: invalid id %q", i, o.ID)
		case o.ProviderRef == "":
			return Errorf(EINVALID, "observation %d has no provider reference", i)
		case !slices.Contains(Origins, o.Origin):
			return Errorf(EINVALID, "observation %d: unknown origin %q", i, o.Origin)
		case !slices.Contains(Statuses, o.Status):
			return Errorf(EINVALID, "observation %d: unknown status %q", i, o.Status)
		case o.Kind != "" && o.Kind != KindKYC && o.Kind != KindKYB:
			return Errorf(EINVALID, "observation %d: unknown kind %q", i, o.Kind)
		}
		if o.ReceivedAt, err = storeTime(o.ReceivedAt, "observation received_at"); err != nil {
			return err
		}
		if o.ProviderTime, err = storeTime(o.ProviderTime, "observation provider_time"); err != nil {
			return err
		}
		o.Reasons = slices.Clone(o.Reasons)
		if o.AttemptsLeft != nil {
			n := *o.AttemptsLeft
			o.AttemptsLeft = &n
		}
		o.Outcome, o.Version = "", 0
		obs = append(obs, o)
	}

	var events []Event
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
		case !ValidID(e.ID):
			return Errorf(EINVALID, "event %d: invalid id %q", i, e.ID)
		case !slices.Contains(EventTypes, e.Type):
			return Errorf(EINVALID, "event %d: unknown type %q", i, e.Type)
		case !json.Valid(e.Data):
			return Errorf(EINVALID, "event %d: data is not JSON", i)
		case e.MessageID != m.ID:
			return Errorf(EINVALID, "event %d names message %q, not this one", i, e.MessageID)
		case e.VerificationID != "" && !ValidID(e.VerificationID):
			return Errorf(EINVALID, "event %d: invalid verification id %q", i, e.VerificationID)
		}
		if e.CreatedAt, err = storeTime(e.CreatedAt, "event created_at"); err != nil {
			return err
		}
		e.Data = slices.Clone(e.Data)
		events = append(events, e)
	}
	var dispatches []Dispatch
	for i, d := range in.Dispatches {
		if d.Source == "" {
			d.Source = m.SourceID
		}
		if d.Status == "" {
			d.Status = DispatchPending
		}
		if d.CreatedAt.IsZero() {
			d.CreatedAt = m.ReceivedAt
		}
		if d.UpdatedAt.IsZero() {
			d.UpdatedAt = d.CreatedAt
		}
		if d.NextAttemptAt.IsZero() {
			d.NextAttemptAt = d.CreatedAt
		}
		if err := d.validate(i, events); err != nil {
			return err
		}
		if d.Source != m.SourceID || d.Status != DispatchPending || d.Attempts != 0 {
			return Errorf(EINVALID, "dispatch %d: a new dispatch is pending, of the message's source, with no attempt", i)
		}
		for _, t := range []*time.Time{&d.NextAttemptAt, &d.Deadline, &d.CreatedAt, &d.UpdatedAt} {
			if *t, err = storeTime(*t, "dispatch time"); err != nil {
				return err
			}
		}
		dispatches = append(dispatches, d)
	}
	in.Observations, in.Events, in.Dispatches = obs, events, dispatches
	return nil
}

// PrepareRejection checks the message of a refused request and fills its
// defaults, as Store.RecordRejection does before it stores it: an empty ID
// becomes a new "msg" id and a zero ReceivedAt now; an invalid id or a
// negative Count is EINVALID.
func (m *Message) PrepareRejection(now time.Time) error {
	if m.ID == "" {
		m.ID = NewID("msg", now)
	}
	if !ValidID(m.ID) {
		return Errorf(EINVALID, "record rejection: invalid message id %q", m.ID)
	}
	if m.Count < 0 {
		return Errorf(EINVALID, "record rejection: negative count %d", m.Count)
	}
	if m.ReceivedAt.IsZero() {
		m.ReceivedAt = now
	}
	return nil
}

// CheckClaim checks the arguments of Store.ClaimDeliveries: a limit below 1
// or a lease of 0 or less is EINVALID.
func CheckClaim(limit int, lease time.Duration) error {
	switch {
	case limit < 1:
		return Errorf(EINVALID, "claim deliveries: the limit must be 1 or more")
	case lease <= 0:
		return Errorf(EINVALID, "claim deliveries: the lease must be positive")
	}
	return nil
}

// Prepare checks an attempt record and fills its defaults, as
// Store.RecordAttempt does before it stores it: a zero Attempt.At becomes
// now and an empty Attempt.ID a new "att" id. An unknown status, a pending
// status without NextAttemptAt, an invalid attempt id, and an
// Attempt.DeliveryID other than DeliveryID are EINVALID.
func (r *AttemptRecord) Prepare(now time.Time) error {
	a := &r.Attempt
	if a.At.IsZero() {
		a.At = now
	}
	if a.ID == "" {
		a.ID = NewID("att", a.At)
	}
	switch {
	case !r.Status.Valid():
		return Errorf(EINVALID, "record attempt: unknown delivery status %q", r.Status)
	case r.Status == DeliveryPending && r.NextAttemptAt.IsZero():
		return Errorf(EINVALID, "record attempt: a pending delivery needs its next attempt time")
	case !ValidID(a.ID):
		return Errorf(EINVALID, "record attempt: invalid attempt id %q", a.ID)
	case a.DeliveryID != "" && a.DeliveryID != r.DeliveryID:
		return Errorf(EINVALID, "record attempt: the attempt is of delivery %q, not %q", a.DeliveryID, r.DeliveryID)
	}
	return nil
}

// Prepare checks a replay request and fills its default, as Store.Replay
// does before it runs it: a status that is neither empty nor a valid
// DeliveryStatus is EINVALID; a zero Now becomes now.
func (r *Replay) Prepare(now time.Time) error {
	if r.Status != "" && !r.Status.Valid() {
		return Errorf(EINVALID, "replay: unknown delivery status %q", r.Status)
	}
	if r.Now.IsZero() {
		r.Now = now
	}
	return nil
}
