package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// DispatchStatus is where a dispatch stands (SPEC section 7).
type DispatchStatus string

// The dispatch statuses. Every status but pending is final.
const (
	DispatchPending DispatchStatus = "pending" // due now or at NextAttemptAt, before Deadline
	DispatchSent    DispatchStatus = "sent"    // the SMTP server or SMS gateway accepted it
	DispatchFailed  DispatchStatus = "failed"  // refused for good, rate-limited, or the retries ran out
	DispatchExpired DispatchStatus = "expired" // not sent by its deadline: never sent late
)

// Valid reports whether st is one of the dispatch statuses.
func (st DispatchStatus) Valid() bool {
	return st == DispatchPending || st == DispatchSent || st == DispatchFailed || st == DispatchExpired
}

// Final reports whether st is a final status.
func (st DispatchStatus) Final() bool { return st.Valid() && st != DispatchPending }

// Dispatch kinds and channels.
const (
	DispatchOTP         = "otp"          // from otp.requested
	DispatchSessionLink = "session_link" // from session_link.requested
	ChannelEmail        = "email"
	ChannelSMS          = "sms"
)

// Event types that a dispatch's end raises, so that the company's own
// systems can react to a code or link that never reached its applicant.
const (
	EventDispatchFailed  = "dispatch.failed"
	EventDispatchExpired = "dispatch.expired"
)

// Dispatch is one OTP or session link that verihook sends to an applicant
// itself, by e-mail or SMS, on behalf of the provider that asked for it.
// It is created with the event that asks for it, in the same transaction.
type Dispatch struct {
	ID       string `json:"id"`
	Source   string `json:"source"`
	Provider string `json:"provider"`
	EventID  string `json:"event_id"`
	Kind     string `json:"kind"`    // otp or session_link
	Channel  string `json:"channel"` // email or sms
	// SessionRef is the provider's session id: not personal.
	SessionRef    string         `json:"session_ref,omitempty"`
	Status        DispatchStatus `json:"status"`
	Attempts      int            `json:"attempts"`
	NextAttemptAt time.Time      `json:"next_attempt_at,omitzero"`
	// Deadline is when the code or link is of no more use: a dispatch not
	// sent by then is expired, never sent late.
	Deadline  time.Time `json:"deadline"`
	LastError string    `json:"last_error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// SentAt is when the channel accepted it; zero unless sent.
	SentAt time.Time `json:"sent_at,omitzero"`
	// Content is what is sent: personal data, sealed at rest, never shown
	// by the API, and purged (zero) once the dispatch is final. Stores
	// return it only with a claim.
	Content DispatchContent `json:"-"`
}

// DispatchContent is the personal part of a dispatch.
type DispatchContent struct {
	Recipient string `json:"recipient"`
	Text      string `json:"text"`
	Link      string `json:"link,omitempty"`
}

// DispatchFor returns the dispatch that sends ev to its applicant, when ev
// is an otp.requested or session_link.requested event: pending, due at
// ev.CreatedAt and expiring ttl after it. ok is false for any other event
// and for data that names no channel or recipient.
func DispatchFor(ev Event, ttl time.Duration) (d Dispatch, ok bool) {
	var kind string
	switch ev.Type {
	case EventOTPRequested:
		kind = DispatchOTP
	case EventSessionLinkRequested:
		kind = DispatchSessionLink
	default:
		return Dispatch{}, false
	}
	var data SessionLinkRequested // an OTPRequested without the link
	if err := json.Unmarshal(ev.Data, &data); err != nil || data.Recipient == "" ||
		(data.Channel != ChannelEmail && data.Channel != ChannelSMS) {
		return Dispatch{}, false
	}
	return Dispatch{
		ID: NewID("dsp", ev.CreatedAt), Source: ev.Source, Provider: ev.Provider, EventID: ev.ID, Kind: kind, Channel: data.Channel,
		SessionRef: data.SessionRef, Status: DispatchPending, NextAttemptAt: ev.CreatedAt,
		Deadline: ev.CreatedAt.Add(ttl), CreatedAt: ev.CreatedAt, UpdatedAt: ev.CreatedAt,
		Content: DispatchContent{Recipient: data.Recipient, Text: data.Text, Link: data.Link},
	}, true
}

// DispatchEnded is the data of a dispatch.failed or dispatch.expired event:
// which dispatch, of which request, and why; never its recipient or content.
type DispatchEnded struct {
	DispatchID string `json:"dispatch_id"`
	EventID    string `json:"event_id"` // the otp.requested or session_link.requested event
	Kind       string `json:"kind"`
	Channel    string `json:"channel"`
	SessionRef string `json:"session_ref,omitempty"`
	Attempts   int    `json:"attempts"`
	Error      string `json:"error,omitempty"`
}

// RaisesEvent reports whether d ended failed or expired, which raises an
// event (see EndedEvent).
func (d Dispatch) RaisesEvent() bool {
	return d.Status == DispatchFailed || d.Status == DispatchExpired
}

// EndedEvent returns the event that d's final status raises, created at at
// with id, or ok false when d ended sent (or is not final).
func (d Dispatch) EndedEvent(id string, at time.Time) (ev Event, ok bool) {
	var typ string
	switch d.Status {
	case DispatchFailed:
		typ = EventDispatchFailed
	case DispatchExpired:
		typ = EventDispatchExpired
	default:
		return Event{}, false
	}
	data, _ := json.Marshal(DispatchEnded{DispatchID: d.ID, EventID: d.EventID, Kind: d.Kind, Channel: d.Channel,
		SessionRef: d.SessionRef, Attempts: d.Attempts, Error: d.LastError})
	return Event{ID: id, Type: typ, CreatedAt: at, Source: d.Source, Provider: d.Provider, Data: data}, true
}

// DispatchClaim is a dispatch leased to one worker, with its content.
type DispatchClaim struct {
	Dispatch Dispatch
	// Lease is the token that RecordDispatch must present.
	Lease string
}

// DispatchRecord is the result of working on a claimed dispatch.
type DispatchRecord struct {
	ID    string
	Lease string
	At    time.Time // zero: the store's clock
	// Attempted says that a send was attempted: Attempts goes up by one.
	// It is false for a dispatch ended without a send (rate-limited, past
	// its deadline, no channel).
	Attempted bool
	// Status is the dispatch's status after the work; NextAttemptAt is set
	// when it is pending (and before the deadline).
	Status        DispatchStatus
	NextAttemptAt time.Time
	// Error says why the attempt failed; empty after a success.
	Error string
}

// Prepare checks a record, as Store.RecordDispatch does before it stores
// it: a zero At becomes now. An invalid id, an unknown status, and a
// pending status without NextAttemptAt are EINVALID.
func (r *DispatchRecord) Prepare(now time.Time) error {
	if r.At.IsZero() {
		r.At = now
	}
	switch {
	case !ValidID(r.ID):
		return Errorf(EINVALID, "record dispatch: invalid id %q", r.ID)
	case !r.Status.Valid():
		return Errorf(EINVALID, "record dispatch: unknown status %q", r.Status)
	case r.Status == DispatchPending && r.NextAttemptAt.IsZero():
		return Errorf(EINVALID, "record dispatch: a pending dispatch needs its next attempt time")
	}
	return nil
}

// SealedDispatchClaim is a claimed dispatch as a store reads it, its
// content still sealed (Dispatch.SealContent).
type SealedDispatchClaim struct {
	Claim   DispatchClaim
	Content []byte
}

// UnreadableDispatch is the verdict on a claimed dispatch whose content
// cannot be opened (a value damaged or moved, a key missing): failed at
// once, without a send. Left pending, it would come back at every claim
// once its lease ended and fail the whole claim there again, a poison pill
// holding up the codes claimed with it, which are of no use late; failed,
// its content is purged and its dispatch.failed event tells the company.
// The error is fixed: what could not be read may be personal data.
func UnreadableDispatch(id, lease string, at time.Time) DispatchRecord {
	return DispatchRecord{ID: id, Lease: lease, At: at, Status: DispatchFailed,
		Error: "not sent: its content could not be decrypted"}
}

// OpenDispatchClaims opens the content of claimed dispatches with c, as
// Store.ClaimDispatches returns them. A dispatch whose content cannot be
// opened is left out and ended at once with record (the store's
// RecordDispatch) and UnreadableDispatch, at at; an error of record is
// returned.
func OpenDispatchClaims(ctx context.Context, c *Cipher, sealed []SealedDispatchClaim, at time.Time,
	record func(context.Context, DispatchRecord) error) ([]DispatchClaim, error) {
	claims := make([]DispatchClaim, 0, len(sealed))
	for _, x := range sealed {
		if err := x.Claim.Dispatch.OpenContent(c, x.Content); err != nil {
			if err := record(ctx, UnreadableDispatch(x.Claim.Dispatch.ID, x.Claim.Lease, at)); err != nil {
				return nil, fmt.Errorf("end unreadable dispatch: %w", err)
			}
			continue
		}
		claims = append(claims, x.Claim)
	}
	return claims, nil
}

// DispatchFilter selects dispatches.
type DispatchFilter struct {
	Source string
	Status DispatchStatus
	Page
}

// Validate checks the filter's status, which is empty or a valid
// DispatchStatus; the page is checked by Page.Check.
func (f DispatchFilter) Validate() error {
	if f.Status != "" && !f.Status.Valid() {
		return Errorf(EINVALID, "unknown dispatch status %q", f.Status)
	}
	return nil
}

// validate checks a dispatch created with an ingest: its id, its event
// (one of events), its kind, channel, recipient and times.
func (d *Dispatch) validate(i int, events []Event) error {
	found := false
	for _, e := range events {
		found = found || e.ID == d.EventID
	}
	switch {
	case !ValidID(d.ID):
		return Errorf(EINVALID, "dispatch %d: invalid id %q", i, d.ID)
	case !found:
		return Errorf(EINVALID, "dispatch %d: event %q is not one of the message's", i, d.EventID)
	case d.Kind != DispatchOTP && d.Kind != DispatchSessionLink:
		return Errorf(EINVALID, "dispatch %d: unknown kind %q", i, d.Kind)
	case d.Channel != ChannelEmail && d.Channel != ChannelSMS:
		return Errorf(EINVALID, "dispatch %d: unknown channel %q", i, d.Channel)
	case d.Content.Recipient == "":
		return Errorf(EINVALID, "dispatch %d has no recipient", i)
	case d.Deadline.IsZero():
		return Errorf(EINVALID, "dispatch %d has no deadline", i)
	}
	return nil
}

// SealContent returns d.Content as stores keep it: JSON sealed with c.
func (d *Dispatch) SealContent(c *Cipher) []byte {
	b, _ := json.Marshal(d.Content) // three strings always encode
	return c.Seal(b, SealedDispatchContent, d.ID)
}

// OpenContent sets d.Content from what SealContent returned.
func (d *Dispatch) OpenContent(c *Cipher, sealed []byte) error {
	plain, err := c.Open(sealed, SealedDispatchContent, d.ID)
	if err != nil {
		return fmt.Errorf("open dispatch content: %w", err)
	}
	if err := json.Unmarshal(plain, &d.Content); err != nil {
		return fmt.Errorf("decode dispatch content: %w", err)
	}
	return nil
}
