package hub

import "net/http"

// Callback is one provider call as the ingest route received it, on
// POST /ingest/{source_id} or POST /ingest/{source_id}/{event_type}: the
// raw bytes that its signature covers and what the route knows of it.
type Callback struct {
	SourceID string
	// EventType is the event type the URL names, or "". It reaches the
	// provider as its event-type header (provider.HeaderEventType).
	EventType  string
	RemoteAddr string
	Header     http.Header
	Body       []byte
}

// Receipt is what ingesting an authenticated callback did: the JSON answer
// to the provider (SPEC section 3) and the events it produced.
type Receipt struct {
	Status    MessageStatus `json:"status"`
	MessageID string        `json:"message_id"`
	Duplicate bool          `json:"duplicate"`
	// Events are the events the message produced (none for a duplicate).
	Events []Event `json:"-"`
}
