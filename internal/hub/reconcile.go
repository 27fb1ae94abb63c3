package hub

import (
	"slices"
	"time"
)

// Origins: how an observation (and the message that carries it) reached
// verihook. Stored with each message and each timeline entry.
const (
	// OriginCallback: the provider's callback on the ingest endpoint.
	OriginCallback = "callback"
	// OriginPoll: verihook asked the provider's status API (reconciliation).
	OriginPoll = "poll"
	// OriginReprocess: a quarantined callback that a later adapter
	// understood (Reprocess).
	OriginReprocess = "reprocess"
)

// Origins lists every origin.
var Origins = []string{OriginCallback, OriginPoll, OriginReprocess}

// Dated reports whether the observation's ReceivedAt is a date in the past
// rather than the moment it was applied: a poll's answer is dated when its
// request was sent, a reprocessed callback when it was first received. Such
// an observation never replaces a state that changed after its date (see
// Apply).
func (o Observation) Dated() bool {
	return o.Origin == OriginPoll || o.Origin == OriginReprocess
}

// PollState is what reconciliation knows of one verification: how often it
// asked the provider, when it will ask again, and whether it gave up.
type PollState struct {
	Polls        int       `json:"polls"`
	LastPolledAt time.Time `json:"last_polled_at,omitzero"`
	NextPollAt   time.Time `json:"next_poll_at,omitzero"`
	// LastError is why the last poll failed (a status code, a timeout;
	// never a provider's body), "" when it succeeded.
	LastError string `json:"last_error,omitempty"`
	// GaveUpAt is set once the source's limit of polls is reached while the
	// verification is still not final: it is not polled again by the
	// worker (a refresh by hand still asks).
	GaveUpAt time.Time `json:"gave_up_at,omitzero"`
}

// PollClaim asks Store.ClaimPolls for verifications to poll.
type PollClaim struct {
	Source string
	// StaleBefore: only verifications not final and last changed before it.
	StaleBefore time.Time
	// Now: only verifications whose next poll is due by now and that were
	// not given up; with Force, every stale one that was not given up.
	Now   time.Time
	Force bool
	// Until is the claim's lease: the claimed verifications' NextPollAt
	// becomes Until, so that no other worker claims them meanwhile.
	Until time.Time
	Limit int
}

// Stuck selects verifications that are not final and were last changed
// before their source's deadline: Before[source], else Default.
type Stuck struct {
	Default time.Time
	Before  map[string]time.Time
}

// Cutoff returns the deadline of source.
func (s Stuck) Cutoff(source string) time.Time {
	if t, ok := s.Before[source]; ok {
		return t
	}
	return s.Default
}

// Sources returns the sources with a deadline of their own, sorted.
func (s Stuck) Sources() []string {
	ids := make([]string, 0, len(s.Before))
	for id := range s.Before {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Backlog counts, by source, the work waiting for an operator or for
// reconciliation (Store.Backlog).
type Backlog struct {
	// Stuck counts verifications not final past their source's deadline.
	Stuck map[string]int
	// Quarantined counts messages in quarantine.
	Quarantined map[string]int
}

// PollResult is what one poll of a provider's status API did.
type PollResult struct {
	VerificationID string `json:"verification_id"`
	// Changed reports whether the answer changed the verification.
	Changed bool `json:"changed"`
	// Error is why the poll failed, "" when it succeeded.
	Error string `json:"error,omitempty"`
	// GaveUp reports whether this poll used the last one allowed.
	GaveUp bool `json:"gave_up,omitempty"`
}

// Reprocessed is what reprocessing did with one quarantined message.
type Reprocessed struct {
	MessageID string `json:"message_id"`
	// Status is accepted when the adapter now understands the message,
	// quarantined when it still does not (Reason says why).
	Status MessageStatus `json:"status"`
	Reason string        `json:"reason,omitempty"`
	// Events counts the events it produced.
	Events int `json:"events"`
}
