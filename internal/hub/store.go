package hub

import (
	"context"
	"time"
)

// Store is verihook's durable state. Implementations: internal/store/sqlite
// and internal/store/postgres, both held to internal/store/storetest.
//
// Every method returns an *Error with code ENOTFOUND when a named thing does
// not exist, EINVALID for bad input (a bad cursor, say), and EUNAVAILABLE when
// the database cannot be reached; anything else is an internal error. Bodies
// and secrets are encrypted at rest by the store with the cipher it was
// opened with; callers see plaintext.
type Store interface {
	// UpsertSource creates the source or replaces its provider and secrets.
	UpsertSource(ctx context.Context, s Source) error
	// Source returns one source with its secrets.
	Source(ctx context.Context, id string) (Source, error)
	// Sources returns every source with its secrets, ordered by id.
	Sources(ctx context.Context) ([]Source, error)
	// CreateSource stores a new source (see Source.Prepare); ECONFLICT if
	// its id exists.
	CreateSource(ctx context.Context, s Source) error
	// UpdateSource replaces every field of a source but CreatedAt: its
	// provider, secrets, previous secrets and their expiry, Managed and
	// UpdatedAt. ENOTFOUND for an unknown id.
	UpdateSource(ctx context.Context, s Source) error
	// DeleteSource deletes a source; its messages, verifications and events
	// stay. ENOTFOUND for an unknown id.
	DeleteSource(ctx context.Context, id string) error

	// Ingest stores in.Message (status accepted or quarantined), applies each
	// observation with Apply, records the timeline and the events that
	// result, and creates a pending delivery, due at once, for every event
	// and every endpoint that Matches it: all in one transaction that is
	// durable on disk when Ingest returns nil, so that an acknowledged
	// message can never miss its deliveries. A message whose (source, dedup
	// key) is stored already changes nothing and is reported with Duplicate
	// set. in.Message.ID and the ids of in.Events must be set by the caller.
	Ingest(ctx context.Context, in Ingest) (IngestResult, error)
	// Reprocess applies what a quarantined message is now understood to
	// say: in.Message is the stored message (same ID, source and dedup key)
	// with its new EventName; the store makes it accepted, with no reason,
	// and applies in.Observations and in.Events to it as Ingest would, in one
	// transaction. ECONFLICT, changing nothing, when the message is not
	// quarantined (it was reprocessed already); ENOTFOUND when there is no
	// such message.
	Reprocess(ctx context.Context, in Ingest) (IngestResult, error)
	// RecordRejection stores an audit row for a refused request; m.Body is
	// ignored and never stored. A row with a Count counts rejections:
	// recording one whose ID is stored already adds its Count to the stored
	// row's, so that a flood costs one row. ECONFLICT when the ID is stored
	// already and either row has no Count.
	RecordRejection(ctx context.Context, m Message) error
	// Messages lists received messages newest first; the second result is the
	// cursor of the next page, "" on the last page. Bodies are not loaded.
	// A message stored without a Preview (the ingest service leaves it out,
	// as rendering it is a fifth of the ingest path's time) has one rendered
	// from its body (Preview) when it is read, and stored when its body is
	// purged.
	Messages(ctx context.Context, f MessageFilter) ([]Message, string, error)
	// Message returns one message with its body (nil once purged) and the
	// ids of the events it produced; its preview as Messages.
	Message(ctx context.Context, id string) (Message, error)
	// Purge removes the personal data that p names (see Purge), keeping
	// every row, status, timeline and count (but the old per-minute
	// counters that p names, which it deletes): a message keeps its preview
	// (rendered from its body if it had none stored), an event keeps its
	// data in the redacted form (Event.Redact), which is then what its
	// deliveries send and the reads return. It works in short transactions
	// and returns what it changed, also when it fails part way. EINVALID
	// for a time the store cannot keep.
	Purge(ctx context.Context, p Purge) (PurgeResult, error)

	// Verifications lists verifications newest first, without timelines.
	Verifications(ctx context.Context, f VerificationFilter) ([]Verification, string, error)
	// Verification returns one verification with its timeline, oldest first.
	Verification(ctx context.Context, id string) (Verification, error)
	// ClaimPolls returns up to c.Limit verifications of c.Source to poll
	// (see PollClaim), oldest change first, each with its Poll state, and
	// sets their NextPollAt to c.Until, so that concurrent claims never
	// return one twice.
	ClaimPolls(ctx context.Context, c PollClaim) ([]Verification, error)
	// RecordPoll stores the poll state of a verification. ENOTFOUND for an
	// unknown verification.
	RecordPoll(ctx context.Context, verificationID string, p PollState) error
	// Backlog counts, by source, the verifications that are stuck (see
	// Stuck) and the messages in quarantine.
	Backlog(ctx context.Context, stuck Stuck) (Backlog, error)
	// Events lists events newest first.
	Events(ctx context.Context, f EventFilter) ([]Event, string, error)
	// Event returns one event.
	Event(ctx context.Context, id string) (Event, error)

	// CreateEndpoint stores a new endpoint at version 1, whatever e.Version;
	// ECONFLICT if its id exists.
	CreateEndpoint(ctx context.Context, e Endpoint) error
	// UpdateEndpoint replaces every field of an endpoint but CreatedAt, if
	// its stored version is still e.Version, and makes it e.Version+1.
	// ECONFLICT, changing nothing, when it is not: the endpoint was written
	// since e was read (see EditEndpoint).
	UpdateEndpoint(ctx context.Context, e Endpoint) error
	// DeleteEndpoint deletes an endpoint with its deliveries and attempts.
	DeleteEndpoint(ctx context.Context, id string) error
	// Endpoint returns one endpoint with its secrets.
	Endpoint(ctx context.Context, id string) (Endpoint, error)
	// Endpoints returns every endpoint with its secrets, ordered by id.
	Endpoints(ctx context.Context) ([]Endpoint, error)

	// ClaimDeliveries leases up to limit deliveries that are pending, due
	// (NextAttemptAt <= now), not leased (or whose lease ended by now), of
	// enabled endpoints, oldest due first. For an ordered endpoint it claims
	// a delivery only when no earlier-created pending delivery of the same
	// verification to the same endpoint exists, so the events of one
	// verification go one at a time, in order. Each claim holds its lease
	// until now+lease under a new token in Claim.Lease. A delivery whose
	// event data or endpoint secrets cannot be opened is not returned: it
	// is recorded as a dead letter at once (UnreadableClaim).
	ClaimDeliveries(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Claim, error)
	// RecordAttempt logs one attempt of a claimed delivery and applies its
	// verdict: the delivery's attempts count, last status code and error,
	// status and next attempt time; the lease is released. On success the
	// endpoint's FailingSince is cleared; on failure it is set to the
	// attempt's time unless already set. A non-empty DisableEndpoint
	// disables the endpoint with that reason. Each change of the endpoint
	// adds one to its Version. ECONFLICT, changing nothing,
	// when the lease is no longer r.Lease (it ended and another worker
	// claimed the delivery).
	RecordAttempt(ctx context.Context, r AttemptRecord) error
	// Release gives a claimed delivery back without an attempt, due at at
	// (a rate limit, a shutdown). ECONFLICT when the lease is not ours.
	Release(ctx context.Context, deliveryID, lease string, at time.Time) error
	// Deliveries lists deliveries newest first, without attempts.
	Deliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, string, error)
	// Delivery returns one delivery with its attempts, newest first.
	Delivery(ctx context.Context, id string) (Delivery, error)
	// RetryDelivery makes a delivery pending again with a fresh schedule
	// (attempts 0), due at now, whatever its status.
	RetryDelivery(ctx context.Context, id string, now time.Time) (Delivery, error)
	// Replay makes pending again, due at r.Now with a fresh schedule, the
	// deliveries to r.EndpointID of events created in [r.Since, r.Until)
	// (Until zero: no end) whose status is r.Status (empty: any); when
	// r.Status is empty it also creates deliveries for the events of that
	// range that the endpoint Matches (its filters, ignoring Enabled) and
	// never had. It returns how many deliveries are due. ENOTFOUND for an
	// unknown endpoint.
	Replay(ctx context.Context, r Replay) (int, error)
	// QueueStats counts pending deliveries and finds the oldest due one.
	QueueStats(ctx context.Context, now time.Time) (QueueStats, error)
	// RecordQueueSample records q, the outbox at now, as the samples
	// CountQueueDepth and CountOldestDue of now's minute (see Activity),
	// unless that minute has them already: several instances on one
	// database sample a minute once, and the first sample stays (see
	// SampleQueue).
	RecordQueueSample(ctx context.Context, now time.Time, q QueueStats) error

	// ClaimDispatches leases up to limit dispatches that are pending, due
	// (NextAttemptAt <= now), before their deadline (Deadline > now) and
	// not leased (or whose lease ended by now), oldest due first, each
	// until now+lease under a new token, with its Content. A dispatch whose
	// content cannot be opened is not returned: it is recorded as failed at
	// once (UnreadableDispatch).
	ClaimDispatches(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]DispatchClaim, error)
	// RecordDispatch applies the result of work on a claimed dispatch: its
	// status, attempts (+1 when r.Attempted), last error and next attempt
	// time (or sent time); the lease is released. When the status is final
	// the Content is purged, and a failed or expired one raises its
	// EndedEvent with a delivery to every enabled endpoint that Matches it,
	// in the same transaction. ENOTFOUND for an unknown dispatch;
	// ECONFLICT, changing nothing, when the lease is no longer r.Lease.
	RecordDispatch(ctx context.Context, r DispatchRecord) error
	// ExpireDispatches marks expired every pending dispatch whose deadline
	// is at or before now and that no lease holds, as RecordDispatch does
	// (content purged, dispatch.expired raised), and returns them.
	ExpireDispatches(ctx context.Context, now time.Time) ([]Dispatch, error)
	// Dispatches lists dispatches newest first, without their content.
	Dispatches(ctx context.Context, f DispatchFilter) ([]Dispatch, string, error)
	// Dispatch returns one dispatch without its content.
	Dispatch(ctx context.Context, id string) (Dispatch, error)

	// CreateToken stores a token (its hash only); see Token.Prepare for
	// what is EINVALID. An id or hash stored already is ECONFLICT.
	CreateToken(ctx context.Context, t Token) error
	// TokenByHash returns the token whose hash is hash, revoked and expired
	// ones included: callers decide with Token.Check, against their clock,
	// on every request, so a revoke counts on every instance at once.
	TokenByHash(ctx context.Context, hash string) (Token, error)
	// Tokens returns every token, revoked and expired ones included, newest
	// first (by id).
	Tokens(ctx context.Context) ([]Token, error)
	// RevokeToken sets the RevokedAt of token id to at (zero: the store's
	// clock) and returns the token; one revoked already keeps its first
	// RevokedAt. ENOTFOUND for an unknown id.
	RevokeToken(ctx context.Context, id string, at time.Time) (Token, error)
	// TouchToken sets the LastUsedAt of token id to at, unless it is at or
	// after at already (it never goes back); an unknown id changes nothing.
	TouchToken(ctx context.Context, id string, at time.Time) error

	// RecordAudit stores an admin action; see AuditEntry.Prepare for what
	// is EINVALID. An id stored already is ECONFLICT.
	RecordAudit(ctx context.Context, e AuditEntry) error
	// AuditLog lists the admin actions newest first (by id).
	AuditLog(ctx context.Context, p Page) ([]AuditEntry, string, error)

	// Reseal seals again, under the current key of the store's cipher, the
	// values of column (one of SealedColumns, EINVALID otherwise) that
	// another key or an older format sealed, in up to limit rows after the
	// cursor after ("" to start; then the Next of the previous batch), in
	// the order of the cursor (see ResealAll). A row is written only
	// if it still holds the value read, so a value written meanwhile stays
	// as written and several instances may reseal at once.
	Reseal(ctx context.Context, column, after string, limit int) (ResealResult, error)

	// Activity returns, for the dashboard, the counters (Count*) of every
	// minute from since's minute on, oldest first, summed over whatever
	// rows the store keeps per minute; the requests refused since then,
	// grouped by source and reason; and, for every source, when its last
	// message (of any status) was received. Every part is read from an index
	// or the counters, never by counting the messages.
	Activity(ctx context.Context, since time.Time) (Activity, error)
	// StaleVerifications returns up to limit verifications that are not
	// final and were created before before, newest first. So that it stays
	// fast on any database, it looks only at the 10,000 newest verifications
	// created before before.
	StaleVerifications(ctx context.Context, before time.Time, limit int) ([]Verification, error)

	// CreateSession stores a dashboard session (its hash only); ECONFLICT
	// if its id or hash exists. Sessions that expired are deleted with it.
	CreateSession(ctx context.Context, s Session) error
	// SessionByHash returns the session whose hash is hash and the token it
	// belongs to (revoked and expired ones included: callers check both).
	// ENOTFOUND when there is no such session.
	SessionByHash(ctx context.Context, hash string) (Session, Token, error)
	// DeleteSession deletes the session whose hash is hash; an unknown hash
	// changes nothing.
	DeleteSession(ctx context.Context, hash string) error

	// CertCache returns the value stored under key by PutCertCache:
	// certificates obtained over ACME and the account key, shared by every
	// instance so that one instance's certificate serves them all.
	// ENOTFOUND when there is none.
	CertCache(ctx context.Context, key string) ([]byte, error)
	// PutCertCache stores data under key, replacing what was there.
	PutCertCache(ctx context.Context, key string, data []byte) error
	// DeleteCertCache removes key; an unknown key changes nothing.
	DeleteCertCache(ctx context.Context, key string) error

	// Ping reports whether the store can commit a write now: it commits a
	// small write through the path Ingest's writes take, so that it fails
	// whenever an Ingest would for want of the database (disk full,
	// read-only, unreachable, closed: EUNAVAILABLE), and succeeds again as
	// soon as one would.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}
