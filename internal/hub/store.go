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

	// Ingest stores in.Message (status accepted or quarantined), applies each
	// observation with Apply, records the timeline and the events that
	// result, all in one transaction that is durable on disk when Ingest
	// returns nil. A message whose (source, dedup key) is stored already
	// changes nothing and is reported with Duplicate set. in.Message.ID and
	// the ids of in.Events must be set by the caller.
	Ingest(ctx context.Context, in Ingest) (IngestResult, error)
	// RecordRejection stores an audit row for a refused request; m.Body is
	// ignored and never stored.
	RecordRejection(ctx context.Context, m Message) error
	// Messages lists received messages newest first; the second result is the
	// cursor of the next page, "" on the last page. Bodies are not loaded.
	Messages(ctx context.Context, f MessageFilter) ([]Message, string, error)
	// Message returns one message with its body (nil once purged) and the
	// ids of the events it produced.
	Message(ctx context.Context, id string) (Message, error)
	// PurgeBodies deletes the bodies of messages received before t, keeping
	// their rows, previews, statuses and timelines; it returns how many.
	PurgeBodies(ctx context.Context, before time.Time) (int, error)

	// Verifications lists verifications newest first, without timelines.
	Verifications(ctx context.Context, f VerificationFilter) ([]Verification, string, error)
	// Verification returns one verification with its timeline, oldest first.
	Verification(ctx context.Context, id string) (Verification, error)
	// Events lists events newest first.
	Events(ctx context.Context, f EventFilter) ([]Event, string, error)
	// Event returns one event.
	Event(ctx context.Context, id string) (Event, error)

	// CreateToken stores a token (its hash only).
	CreateToken(ctx context.Context, t Token) error
	// TokenByHash returns the token whose hash is hash.
	TokenByHash(ctx context.Context, hash string) (Token, error)

	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}
