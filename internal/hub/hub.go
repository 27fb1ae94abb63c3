package hub

import (
	"encoding/json"
	"time"
)

// Status is a verification's normalized status (SPEC section 4).
type Status string

// The normalized statuses.
const (
	StatusPending        Status = "pending"         // submitted, in progress
	StatusReview         Status = "review"          // manual review or a preliminary result
	StatusActionRequired Status = "action_required" // the applicant must provide more
	StatusApproved       Status = "approved"
	StatusRejected       Status = "rejected"
	StatusSuspected      Status = "suspected" // passed, with fraud or mismatch signals
	StatusExpired        Status = "expired"
	StatusCanceled       Status = "canceled"
)

// Statuses lists every valid Status, for validation of filters.
var Statuses = []Status{StatusPending, StatusReview, StatusActionRequired, StatusApproved,
	StatusRejected, StatusSuspected, StatusExpired, StatusCanceled}

// Kind tells a verification of a person from one of a business.
type Kind string

// The verification kinds.
const (
	KindKYC Kind = "kyc"
	KindKYB Kind = "kyb"
)

// Normalized event types (SPEC section 4).
const (
	EventVerificationUpdated   = "verification.updated"
	EventOTPRequested          = "otp.requested"
	EventSessionLinkRequested  = "session_link.requested"
	EventVideoCallUpdated      = "video_call.updated"
	EventCredentialShared      = "credential.shared"
	EventApplicantEmailChanged = "applicant.email_changed"
	// EventApplicantAccessRevoked: the applicant revoked the company's access
	// (Fractal application_access_revoked).
	EventApplicantAccessRevoked = "applicant.access_revoked"
	// EventApplicantDocumentExpiration: a verified applicant's document
	// expires soon or has expired (iDenfy DOCUMENT_EXPIRATION).
	EventApplicantDocumentExpiration = "applicant.document_expiration"
	// EventApplicantAgeEstimated: an age estimation ended (iDenfy
	// AGE_ESTIMATION).
	EventApplicantAgeEstimated = "applicant.age_estimated"
	// EventApplicantFaceAuthenticationEnded: a face authentication session
	// ended, in success, failure or expiry (iDenfy FACIAL_AUTHENTICATION).
	EventApplicantFaceAuthenticationEnded = "applicant.face_authentication_ended"
)

// EventTypes lists every normalized event type.
var EventTypes = []string{EventVerificationUpdated, EventOTPRequested, EventSessionLinkRequested,
	EventVideoCallUpdated, EventCredentialShared, EventApplicantEmailChanged,
	EventApplicantAccessRevoked, EventApplicantDocumentExpiration, EventApplicantAgeEstimated,
	EventApplicantFaceAuthenticationEnded, EventDispatchFailed, EventDispatchExpired}

// Source is one provider account whose callbacks arrive at /ingest/{ID}.
type Source struct {
	ID       string `json:"id"`
	Provider string `json:"provider"`
	// Secrets are the provider's keys by name (callback_api_key, signing_key,
	// api_token, webhook_secret, webhook_secrets.<event>). Stores keep them
	// encrypted; the API never shows them.
	Secrets map[string]string `json:"-"`
	// PreviousSecrets are the secrets before the last rotation, valid
	// beside Secrets until PreviousSecretsExpireAt (see Rotate).
	PreviousSecrets         map[string]string `json:"-"`
	PreviousSecretsExpireAt time.Time         `json:"previous_secrets_expire_at,omitzero"`
	// Managed says who owns the source: ManagedConfig or ManagedAPI.
	Managed   string    `json:"managed"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// MessageStatus is what happened to a received message.
type MessageStatus string

// The message statuses.
const (
	MessageAccepted    MessageStatus = "accepted"    // authenticated, stored and normalized
	MessageQuarantined MessageStatus = "quarantined" // authenticated, stored, not understood
	MessageRejected    MessageStatus = "rejected"    // refused: an audit row without the body
)

// Message is one request received on the ingest endpoint.
type Message struct {
	ID         string        `json:"id"`
	SourceID   string        `json:"source"`
	Provider   string        `json:"provider,omitempty"`
	ReceivedAt time.Time     `json:"received_at"`
	RemoteAddr string        `json:"remote_addr"`
	Status     MessageStatus `json:"status"`
	HTTPStatus int           `json:"http_status"`
	// Reason says why a message was quarantined or rejected.
	Reason    string `json:"reason,omitempty"`
	EventName string `json:"event_name,omitempty"`
	// DedupKey is the key given to Store.Ingest; a message read back holds
	// the key it is stored under, which Dedup may have suffixed.
	DedupKey string `json:"dedup_key,omitempty"`
	// Dedup says for how long DedupKey makes a later copy a duplicate.
	Dedup Dedup `json:"-"`
	// Origin is OriginCallback, or OriginPoll for a status API's answer.
	Origin string `json:"origin,omitempty"`
	// Body is the raw payload with any in-body secret removed. Stores encrypt
	// it at rest; it is nil for rejected messages and after retention purges.
	Body []byte `json:"-"`
	// Preview is a redacted rendering of Body, safe to show.
	Preview json.RawMessage `json:"preview,omitempty"`
	// Events lists the ids of the events the message produced (read side).
	Events []string `json:"events,omitempty"`
	// Count is set on a rejection row that counts rejections instead of
	// recording each (SPEC section 10): how many requests of its source,
	// reason and minute were refused past the budget of rows in full. It is
	// 0 on every other row.
	Count int64 `json:"count,omitempty"`
}

// VerificationKey identifies a verification: one provider reference at one
// source. Fractal reports each KYC level separately, so Level is part of it.
type VerificationKey struct {
	Source      string `json:"source"`
	ProviderRef string `json:"provider_ref"`
	Level       string `json:"level"`
}

// Outcome says whether an observation changed a verification's current status.
type Outcome string

// The outcomes of an observation (SPEC section 5 rule 5).
const (
	OutcomeApplied    Outcome = "applied"
	OutcomeSuperseded Outcome = "superseded"
)

// Observation is one provider message's claim about a verification's status.
type Observation struct {
	ID string `json:"id,omitempty"`
	VerificationKey
	Provider     string    `json:"-"`
	Kind         Kind      `json:"kind"`
	ApplicantRef string    `json:"applicant_ref,omitempty"`
	Status       Status    `json:"status"`
	Final        bool      `json:"final"`
	Reasons      []string  `json:"reasons,omitempty"`
	AttemptsLeft *int      `json:"attempts_left,omitempty"`
	ProviderTime time.Time `json:"provider_time,omitzero"`
	// Current marks an observation that states the verification's current
	// status and carries no timestamp (Identomat's session-change): it
	// replaces even a final status (see Apply, rule 3).
	Current bool `json:"current,omitempty"`
	// FinalIfNoAttempts makes the observation final only when no attempt is
	// left (a KYCAID rejection: the applicant may try again while attempts
	// remain); Final is then false. See Apply.
	FinalIfNoAttempts bool `json:"final_if_no_attempts,omitempty"`
	// FormerRef is the reference the verification may be stored under
	// before the provider named it (KYCAID's applicant, while its
	// verification_id is null). When no verification is stored under
	// ProviderRef but one is under FormerRef, Store.Ingest applies the
	// observation to that one, which takes ProviderRef (see Apply).
	FormerRef string `json:"former_ref,omitempty"`
	// ProviderEvent is the provider's own event name.
	ProviderEvent string    `json:"provider_event"`
	ReceivedAt    time.Time `json:"received_at,omitzero"`
	MessageID     string    `json:"message_id,omitempty"`
	// Origin says how the observation reached verihook (Origin*); empty
	// means OriginCallback.
	Origin string `json:"origin,omitempty"`
	// Outcome is set when the observation is recorded.
	Outcome Outcome `json:"outcome,omitempty"`
	// Version is the verification's version after this observation.
	Version int `json:"version,omitempty"`
}

// Verification is the current state of one verification (SPEC section 4).
type Verification struct {
	ID           string    `json:"id"`
	Source       string    `json:"source"`
	Provider     string    `json:"provider"`
	ProviderRef  string    `json:"provider_ref"`
	ApplicantRef string    `json:"applicant_ref"`
	Kind         Kind      `json:"kind"`
	Level        string    `json:"level"`
	Status       Status    `json:"status"`
	Final        bool      `json:"final"`
	Version      int       `json:"version"`
	Reasons      []string  `json:"reasons"`
	AttemptsLeft *int      `json:"attempts_left,omitempty"`
	ProviderTime time.Time `json:"provider_time,omitzero"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	// Timeline holds every observation, oldest first; filled only when one
	// verification is read.
	Timeline []Observation `json:"timeline,omitempty"`
	// Poll is reconciliation's state, when it ever polled the verification;
	// filled when one verification is read or claimed.
	Poll *PollState `json:"poll,omitempty"`
}

// Event is a normalized event, delivered to endpoints as JSON (SPEC section 4).
type Event struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt time.Time       `json:"created_at"`
	Source    string          `json:"source"`
	Provider  string          `json:"provider"`
	Data      json.RawMessage `json:"data"`
	// MessageID and VerificationID link the event to where it came from.
	MessageID      string `json:"-"`
	VerificationID string `json:"-"`
}

// EventDraft is a non-verification event as a provider package produces it.
type EventDraft struct {
	Type string
	Data any
}

// VerificationUpdated is the data of a verification.updated event.
type VerificationUpdated struct {
	Verification   Verification `json:"verification"`
	PreviousStatus Status       `json:"previous_status,omitempty"`
	ProviderEvent  string       `json:"provider_event"`
}

// OTPRequested is the data of an otp.requested event.
type OTPRequested struct {
	Channel    string `json:"channel"` // sms or email
	Recipient  string `json:"recipient"`
	Text       string `json:"text"`
	SessionRef string `json:"session_ref"`
}

// SessionLinkRequested is the data of a session_link.requested event.
type SessionLinkRequested struct {
	Channel    string `json:"channel"` // sms or email
	Recipient  string `json:"recipient"`
	Text       string `json:"text"`
	Link       string `json:"link"`
	SessionRef string `json:"session_ref"`
}

// VideoCallUpdated is the data of a video_call.updated event.
type VideoCallUpdated struct {
	SessionRef        string `json:"session_ref"`
	RoomID            string `json:"room_id"`
	RoomStatus        string `json:"room_status"`
	CompositionStatus string `json:"composition_status"`
	VideoFileStatus   string `json:"video_file_status"`
	VideoFileID       string `json:"video_file_id"`
}

// CredentialShared is the data of a credential.shared event.
type CredentialShared struct {
	IdosHumanID  string `json:"idos_human_id"`
	CredentialID string `json:"credential_id"`
	SharedAt     string `json:"shared_at"`
}

// ApplicantEmailChanged is the data of an applicant.email_changed event.
type ApplicantEmailChanged struct {
	ApplicantRef string `json:"applicant_ref"`
	Email        string `json:"email"`
}

// ApplicantAccessRevoked is the data of an applicant.access_revoked event.
type ApplicantAccessRevoked struct {
	ApplicantRef string `json:"applicant_ref"`
}

// ApplicantDocumentExpiration is the data of an applicant.document_expiration
// event.
type ApplicantDocumentExpiration struct {
	ProviderRef  string `json:"provider_ref"`
	ApplicantRef string `json:"applicant_ref"`
	// Threshold is the provider's own value: DOCUMENT_EXPIRES_WITHIN_30_DAYS,
	// …_7_DAYS, …_1_DAY or DOCUMENT_EXPIRED.
	Threshold string `json:"threshold"`
	// ExpiresOn is the document's expiry date as the provider sends it.
	ExpiresOn string `json:"expires_on"`
}

// ApplicantAgeEstimated is the data of an applicant.age_estimated event; the
// values are the provider's own.
type ApplicantAgeEstimated struct {
	ProviderRef  string   `json:"provider_ref"`
	ApplicantRef string   `json:"applicant_ref"`
	Status       string   `json:"status"`  // COMPLETED or FAILED
	Outcome      string   `json:"outcome"` // SUCCESS, UNDERAGE, UNCERTAIN …
	Verdict      string   `json:"verdict"` // the model's verdict, e.g. ADULT
	EstimatedAge *float64 `json:"estimated_age"`
	Confidence   *float64 `json:"confidence"`
	OccurredAt   string   `json:"occurred_at"`
}

// ApplicantFaceAuthenticationEnded is the data of an
// applicant.face_authentication_ended event; the values are the provider's
// own. The face photo and IP address the provider sends are not carried.
type ApplicantFaceAuthenticationEnded struct {
	SessionRef string   `json:"session_ref"`
	Kind       string   `json:"kind"`   // ENROLLMENT or AUTHENTICATION
	Method     string   `json:"method"` // ACTIVE_LIVENESS or FACE_MATCHING
	Succeeded  bool     `json:"succeeded"`
	FailReason string   `json:"fail_reason,omitempty"`
	RiskTags   []string `json:"risk_tags"`
}

// Parsed is what a provider package makes of one authenticated message.
type Parsed struct {
	// EventName is the provider's own event name (type field or header).
	EventName string
	// DedupKey identifies the message for deduplication within its source:
	// the provider's event id where one exists, else "sha256:" and the hex
	// hash of the canonical content (see CanonicalHash).
	DedupKey string
	// Dedup says for how long DedupKey makes a later copy a duplicate.
	Dedup Dedup
	// Body is what is stored: the raw body with any in-body secret removed.
	Body []byte
	// Observations are the verification statuses the message reports; the
	// ingest layer fills in Source, ReceivedAt and MessageID.
	Observations []Observation
	// Events are the message's other normalized events.
	Events []EventDraft
}

// Ingest is one authenticated message with what it normalized to, handed to
// Store.Ingest to be stored in one transaction.
type Ingest struct {
	Message      Message
	Observations []Observation
	Events       []Event
	// Dispatches are the OTPs and links of Events that verihook sends
	// itself (see DispatchFor); they commit with the message or not at all.
	Dispatches []Dispatch
}

// IngestResult is what Store.Ingest did.
type IngestResult struct {
	// MessageID is the stored message's id; for a duplicate, the original's.
	MessageID string
	Duplicate bool
	// Events are all events the message produced, verification.updated ones
	// included, in the order they were recorded. Empty for a duplicate.
	Events []Event
	// Deliveries is how many deliveries the events created.
	Deliveries int
	// Dispatches is how many dispatches were created.
	Dispatches int
}

// Role is what a bearer token may do.
type Role string

// The roles (SPEC section 8).
const (
	RoleAdmin  Role = "admin"  // configure, replay, manage tokens; read
	RoleViewer Role = "viewer" // read
)

// Can reports whether r may act with the powers of want.
func (r Role) Can(want Role) bool { return r == RoleAdmin || r == want }

// Page asks for one page of a list, newest first.
type Page struct {
	Limit  int    // 1..500; 0 means 50
	Cursor string // from the previous page's next cursor; "" for the first page
}

// Page limits (SPEC section 8).
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 500
)

// MessageFilter selects received messages.
type MessageFilter struct {
	Source string
	Status MessageStatus
	Page
}

// VerificationFilter selects verifications (SPEC section 8).
type VerificationFilter struct {
	Source       string
	Provider     string
	Status       Status
	ApplicantRef string
	ProviderRef  string
	Level        string
	// Stuck, when set, selects only verifications not final past their
	// source's deadline.
	Stuck *Stuck
	Page
}

// EventFilter selects events.
type EventFilter struct {
	Source         string
	Type           string
	VerificationID string
	// IDs, when not empty, selects only these events (at most
	// MaxPageLimit ids), the events of a page of deliveries, say.
	IDs []string
	Page
}
