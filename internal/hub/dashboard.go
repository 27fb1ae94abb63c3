package hub

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"time"
)

// Who manages a source (Source.Managed).
const (
	// ManagedConfig marks a source declared in the config file: start-up
	// provisions it, and the API may not change or delete it, so that it
	// cannot drift from the file.
	ManagedConfig = "config"
	// ManagedAPI marks a source created through the API (or the dashboard).
	ManagedAPI = "api"
)

// Rotate replaces s's secrets with secrets at now; the old ones keep
// authenticating callbacks, beside the new, until now+grace, so that the
// provider's side can be switched without losing a callback.
func (s *Source) Rotate(secrets map[string]string, now time.Time, grace time.Duration) {
	s.PreviousSecrets, s.PreviousSecretsExpireAt = s.Secrets, now.Add(grace)
	s.Secrets, s.UpdatedAt = maps.Clone(secrets), now
}

// GraceSecrets returns the secrets s had before its last rotation while
// they are still valid at now, else nil.
func (s Source) GraceSecrets(now time.Time) map[string]string {
	if len(s.PreviousSecrets) == 0 || !now.Before(s.PreviousSecretsExpireAt) {
		return nil
	}
	return s.PreviousSecrets
}

// The counters that the stores keep per minute, for the dashboard's charts
// (Store.Activity).
const (
	CountAccepted      = "accepted"       // messages accepted (duplicates not counted)
	CountQuarantined   = "quarantined"    // messages quarantined
	CountRejected      = "rejected"       // requests refused (bad signature, unknown source, too large)
	CountDelivered     = "delivered"      // delivery attempts that succeeded, by endpoint
	CountDeliveryError = "delivery_error" // delivery attempts that failed, by endpoint
)

// The samples of the outbox that SampleQueue takes once a minute, kept
// beside the counters: each is a value at one moment, not a sum, so that a
// longer period reads as the largest of its samples.
const (
	CountQueueDepth = "queue_depth" // pending deliveries, due or not
	// CountOldestDue is how long the oldest due delivery had been due, in
	// seconds; 0 when none was.
	CountOldestDue = "oldest_due"
)

// SampleQueue reads the outbox of s at now (Store.QueueStats) and records
// it as the samples of now's minute (Store.RecordQueueSample), unless the
// minute has them. The count reads only the pending deliveries.
func SampleQueue(ctx context.Context, s Store, now time.Time) error {
	q, err := s.QueueStats(ctx, now)
	if err != nil {
		return fmt.Errorf("sample queue: %w", err)
	}
	return s.RecordQueueSample(ctx, now, q)
}

// StatCount is one counter over one minute.
type StatCount struct {
	Minute time.Time // the start of the minute, UTC
	Name   string    // a Count* name
	// Key is the endpoint of a delivery counter; empty for the others.
	Key string
	N   int64
	// LatencyMS is the sum of the attempts' latencies (delivery counters).
	LatencyMS int64
}

// RejectionCount groups a source's refused requests by reason.
type RejectionCount struct {
	Source string    `json:"source"`
	Reason string    `json:"reason"`
	N      int       `json:"count"`
	Last   time.Time `json:"last"`
}

// Activity is what Store.Activity reports for a period: the counters by
// minute, the rejections by source and reason, and when each source last
// received a message (of any status).
type Activity struct {
	Counts      []StatCount
	Rejections  []RejectionCount
	LastMessage map[string]time.Time
}

// Session is a dashboard login: a random secret in a cookie, of which only
// the hash is stored, tied to the API token it was opened with, so that
// revoking or the expiry of the token ends it at once.
type Session struct {
	ID        string
	Hash      string
	TokenID   string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// NewSession returns a session for token tok at now that lasts lifetime
// (no longer than the token), and its secret, for the cookie.
func NewSession(tok Token, now time.Time, lifetime time.Duration) (Session, string) {
	secret := NewTokenSecret()
	s := Session{ID: NewID("ses", now), Hash: HashToken(secret), TokenID: tok.ID, CreatedAt: now, ExpiresAt: now.Add(lifetime)}
	if !tok.ExpiresAt.IsZero() && tok.ExpiresAt.Before(s.ExpiresAt) {
		s.ExpiresAt = tok.ExpiresAt
	}
	return s, secret
}

// CSRFToken returns the token that a session's forms carry: an HMAC of a
// fixed label keyed with the session's secret, so that it needs no storage
// and a page cannot be forged without the cookie.
func CSRFToken(sessionSecret string) string {
	m := hmac.New(sha256.New, []byte(sessionSecret))
	m.Write([]byte("verihook csrf"))
	return hex.EncodeToString(m.Sum(nil))
}

// SealSecrets returns s's secrets and previous secrets sealed with c as the
// stores keep them: each a JSON object bound to the source's id; previous
// is nil when s has none.
func (s *Source) SealSecrets(c *Cipher) (secrets, previous []byte, err error) {
	plain, err := json.Marshal(s.Secrets)
	if err != nil {
		return nil, nil, fmt.Errorf("encode secrets: %w", err)
	}
	secrets = c.Seal(plain, SealedSourceSecrets, s.ID)
	if len(s.PreviousSecrets) > 0 {
		if plain, err = json.Marshal(s.PreviousSecrets); err != nil {
			return nil, nil, fmt.Errorf("encode previous secrets: %w", err)
		}
		previous = c.Seal(plain, SealedSourcePrevSecrets, s.ID)
	}
	return secrets, previous, nil
}

// OpenSecrets fills s.Secrets and s.PreviousSecrets from what SealSecrets
// sealed (previous nil: none). Values that do not open with c are an error
// wrapping ErrDecrypt.
func (s *Source) OpenSecrets(c *Cipher, secrets, previous []byte) error {
	open := func(sealed []byte, column string, into *map[string]string) error {
		plain, err := c.Open(sealed, column, s.ID)
		if err != nil {
			return err
		}
		return json.Unmarshal(plain, into)
	}
	if err := open(secrets, SealedSourceSecrets, &s.Secrets); err != nil {
		return fmt.Errorf("source %s: secrets: %w", s.ID, err)
	}
	if previous != nil {
		if err := open(previous, SealedSourcePrevSecrets, &s.PreviousSecrets); err != nil {
			return fmt.Errorf("source %s: previous secrets: %w", s.ID, err)
		}
	}
	return nil
}
