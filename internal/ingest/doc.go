// Package ingest turns a provider's POST into durable state: it finds the
// source, authenticates the raw bytes with the source's provider, parses them
// into hub terms and hands everything to hub.Store.Ingest, which stores the
// message, applies the ordering rules and records the resulting events in one
// transaction. A caller acknowledges the provider only when Receive returns
// nil: by then the message is on disk. The HTTP edge (httpapi's ingest
// route) calls Receive with the hub.Callback it read and answers with the
// hub.Receipt; this package knows no transport.
//
// Refused requests (unknown source, bad signature, oversized body) leave an
// audit row, never the body: in full up to a small budget per source, status
// and minute, past it as counting rows (see rejections), so that a flood
// costs bounded space and log. Admit lets the HTTP edge refuse an unknown
// source before it reads the body. An authenticated message is never
// dropped: one that the provider package cannot map, or fails on, is stored
// as quarantined for an operator (a retry would fail the same way). What cannot be
// authenticated or safely stored here is answered 503, so that the provider
// retries: a source whose provider this build does not know (another
// instance's build may), and an adapter that panicked (its in-body secret
// may not have been removed).
//
// POST /ingest/{source_id}/{event_type} names the event type in the URL, for
// providers that send it only in a header (iDenfy lets each event type have
// its own URL); it reaches the provider as provider.HeaderEventType.
package ingest
