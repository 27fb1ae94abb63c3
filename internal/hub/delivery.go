package hub

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"slices"
	"strings"
	"time"
)

// Endpoint is a company's URL that receives normalized events (SPEC section 6).
type Endpoint struct {
	ID  string `json:"id"`
	URL string `json:"url"`
	// Secret signs deliveries: "whsec_" and base64 of the key bytes.
	Secret string `json:"-"`
	// PreviousSecret still signs deliveries, beside Secret, until
	// PreviousSecretExpiresAt: rotation keeps the old secret valid for 24 h.
	PreviousSecret          string    `json:"-"`
	PreviousSecretExpiresAt time.Time `json:"previous_secret_expires_at,omitzero"`
	// EventTypes filters events by exact type or by a prefix ending in ".*";
	// empty means every type.
	EventTypes []string `json:"event_types"`
	// Sources, when not empty, admits only events of these sources.
	Sources []string `json:"sources"`
	Enabled bool     `json:"enabled"`
	// DisabledReason says why verihook disabled the endpoint (410, failing
	// for 5 days); empty when an operator did or when it is enabled.
	DisabledReason string `json:"disabled_reason,omitempty"`
	// Ordered delivers the events of one verification one at a time, in order.
	Ordered bool `json:"ordered"`
	// RateLimit caps requests per second to the endpoint; 0 means no cap.
	RateLimit float64 `json:"rate_limit"`
	// FailingSince is when the current run of failures began; zero while
	// the endpoint succeeds.
	FailingSince time.Time `json:"failing_since,omitzero"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	// Version counts the endpoint's writes: 1 when created, one more at
	// each write of the store (an update, a rotation, verihook disabling
	// it or recording that it started or stopped failing). UpdateEndpoint
	// writes only over the version it was given, so that a write made
	// meanwhile is never silently undone (see EditEndpoint).
	Version int64 `json:"version"`
}

// SetEnabled enables or disables e. Enabling a disabled endpoint clears
// why verihook disabled it and its run of failures, so that it gets five
// more days before it is disabled again.
func (e *Endpoint) SetEnabled(on bool) {
	if on && !e.Enabled {
		e.DisabledReason, e.FailingSince = "", time.Time{}
	}
	e.Enabled = on
}

// editAttempts bounds EditEndpoint's rounds: each lost round means another
// write landed in between, which is rare.
const editAttempts = 5

// EditEndpoint reads endpoint id, lets edit change it, and writes it back
// only over the version it read. When another write landed in between
// (UpdateEndpoint's ECONFLICT), it reads, edits and writes again, so that
// edit always works on what is stored and a concurrent write, verihook
// disabling the endpoint say, is never undone by a stale copy. It returns
// the endpoint as written; an error of edit (checking a version the caller
// expects, say) is returned as is, with nothing written. ENOTFOUND for an
// unknown endpoint; ECONFLICT when it kept changing.
func EditEndpoint(ctx context.Context, s Store, id string, edit func(e *Endpoint) error) (Endpoint, error) {
	for attempt := 1; ; attempt++ {
		e, err := s.Endpoint(ctx, id)
		if err != nil {
			return Endpoint{}, err
		}
		if err := edit(&e); err != nil {
			return Endpoint{}, err
		}
		err = s.UpdateEndpoint(ctx, e)
		if err == nil {
			e.Version++
			return e, nil
		}
		if ErrorCode(err) != ECONFLICT || attempt == editAttempts {
			return Endpoint{}, err
		}
	}
}

// SecretPrefix starts every endpoint secret (Standard Webhooks).
const SecretPrefix = "whsec_"

// NewEndpointSecret returns a random endpoint secret of 32 bytes.
func NewEndpointSecret() string {
	var b [32]byte
	rand.Read(b[:])
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// ValidEndpointSecret reports whether s is "whsec_" and base64 of 24 to 64 bytes.
func ValidEndpointSecret(s string) bool {
	raw, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	return err == nil && len(b) >= 24 && len(b) <= 64
}

// Matches reports whether e wants ev: enabled, its event type filter admits
// ev's type, and its sources filter (if any) admits ev's source.
func (e *Endpoint) Matches(ev Event) bool {
	if !e.Enabled || (len(e.Sources) > 0 && !slices.Contains(e.Sources, ev.Source)) {
		return false
	}
	if len(e.EventTypes) == 0 {
		return true
	}
	for _, t := range e.EventTypes {
		if t == ev.Type || t == "*" {
			return true
		}
		if prefix, ok := strings.CutSuffix(t, "*"); ok && strings.HasSuffix(prefix, ".") && strings.HasPrefix(ev.Type, prefix) {
			return true
		}
	}
	return false
}

// ValidEventTypeFilter reports whether f is a known event type, "*", or a
// known type's prefix ending in ".*" (verification.*).
func ValidEventTypeFilter(f string) bool {
	if f == "*" || slices.Contains(EventTypes, f) {
		return true
	}
	prefix, ok := strings.CutSuffix(f, ".*")
	return ok && slices.ContainsFunc(EventTypes, func(t string) bool { return strings.HasPrefix(t, prefix+".") })
}

// DeliveryStatus is where a delivery stands.
type DeliveryStatus string

// The delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "pending"   // due now or at NextAttemptAt
	DeliverySucceeded DeliveryStatus = "succeeded" // the endpoint answered 2xx
	DeliveryFailed    DeliveryStatus = "failed"    // dead letter: the schedule is exhausted, or the endpoint is gone
)

// Delivery is one event on its way to one endpoint.
type Delivery struct {
	ID         string `json:"id"`
	EndpointID string `json:"endpoint_id"`
	EventID    string `json:"event_id"`
	EventType  string `json:"event_type"`
	Source     string `json:"source"`
	// VerificationID orders the deliveries of an ordered endpoint.
	VerificationID string         `json:"verification_id,omitempty"`
	Status         DeliveryStatus `json:"status"`
	Attempts       int            `json:"attempts"`
	NextAttemptAt  time.Time      `json:"next_attempt_at,omitzero"`
	LastStatusCode int            `json:"last_status_code,omitempty"`
	LastError      string         `json:"last_error,omitempty"`
	// LastLatencyMS is how long the last attempt took, 0 before the first;
	// filled by the stores' reads (Deliveries, Delivery, RetryDelivery).
	LastLatencyMS int64     `json:"last_latency_ms"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	// AttemptLog holds the attempts, newest first; filled only when one
	// delivery is read.
	AttemptLog []Attempt `json:"attempt_log,omitempty"`
}

// Attempt is one HTTP request of a delivery.
type Attempt struct {
	ID         string    `json:"id"`
	DeliveryID string    `json:"delivery_id"`
	At         time.Time `json:"at"`
	StatusCode int       `json:"status_code,omitempty"`
	LatencyMS  int64     `json:"latency_ms"`
	// Response is the start of the response body, at most 1 KiB.
	Response string `json:"response,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Claim is a delivery leased to one worker, with what it needs to send it.
type Claim struct {
	Delivery Delivery
	Event    Event
	Endpoint Endpoint
	// Lease is the token that RecordAttempt and Release must present.
	Lease string
}

// AttemptRecord is one attempt of a claimed delivery and its verdict.
type AttemptRecord struct {
	DeliveryID string
	Lease      string
	Attempt    Attempt
	// Status is the delivery's status after the attempt; NextAttemptAt is
	// set when it is pending.
	Status        DeliveryStatus
	NextAttemptAt time.Time
	// DisableEndpoint, when not empty, disables the endpoint with this reason.
	DisableEndpoint string
}

// UnreadableClaim is the verdict on a claimed delivery whose event data or
// endpoint secrets cannot be opened (a value damaged or moved, a key
// missing): a dead letter at once, its attempt's error saying why. Left
// pending, it would come back at every claim once its lease ended and
// fail there again, a poison pill; as a dead letter it holds up neither
// the deliveries claimed with it nor, on an ordered endpoint, the events
// after it, and a retry or replay sends it once the value can be read.
func UnreadableClaim(deliveryID, lease string, at time.Time, err error) AttemptRecord {
	return AttemptRecord{DeliveryID: deliveryID, Lease: lease, Status: DeliveryFailed,
		Attempt: Attempt{DeliveryID: deliveryID, At: at, Error: "not sent: " + err.Error()}}
}

// DeliveryFilter selects deliveries.
type DeliveryFilter struct {
	EndpointID string
	EventID    string
	Status     DeliveryStatus
	Page
}

// Replay asks for an endpoint's deliveries to be sent again (SPEC section 6).
type Replay struct {
	EndpointID string
	Since      time.Time
	Until      time.Time // zero: no end
	Status     DeliveryStatus
	Now        time.Time
}

// QueueCountLimit is where Store.QueueStats stops counting, so that a
// backlog of millions (an endpoint down for a day) costs the overview, the
// queue sampler and /metrics no more than this many index entries.
const QueueCountLimit = 10_000

// QueueStats describes the outbox.
type QueueStats struct {
	// Pending counts pending deliveries, due or not, and Due those due by
	// now, each up to QueueCountLimit: with Capped set there are at least
	// Pending, and Due may be short of the truth.
	Pending, Due int
	Capped       bool
	// OldestDue is the due time of the oldest due delivery; zero when none.
	OldestDue time.Time
}

// OldestDueAge is how long the oldest due delivery has been due at now; 0
// when none is.
func (q QueueStats) OldestDueAge(now time.Time) time.Duration {
	if q.OldestDue.IsZero() {
		return 0
	}
	return max(now.Sub(q.OldestDue), 0)
}
