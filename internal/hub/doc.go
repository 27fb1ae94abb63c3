// Package hub is verihook's domain: what a source, a received message, a
// normalized event and a verification are, the ordering rules that decide a
// verification's current status, and the Store contract that the storage
// packages implement.
//
// The story of one webhook: a provider POSTs to /ingest/{source}. The source's
// provider package authenticates the raw bytes and parses them into a Parsed
// value: the provider's own event name, a deduplication key and how long it
// holds (Dedup), zero or more
// status Observations of a verification, and zero or more other events
// (an OTP to send, a video call update ...). The ingest package hands all of
// it to Store.Ingest, which in one durable transaction stores the message,
// reads the verifications it observes and the enabled endpoints, and writes
// what PlanIngest makes of them: every observation run through Apply (the
// ordering rules of SPEC section 5), the events that result and their
// deliveries. Only then does the provider get its 2xx. The logic is here,
// once; a store only reads, locks and writes, each with its own SQL and
// commit strategy.
//
// This package imports nothing but the standard library, so that every other
// package can speak in its terms without importing one another.
package hub
