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
// runs every observation through Apply (the ordering rules of SPEC section 5)
// and records the events that result. Only then does the provider get its 2xx.
//
// This package imports nothing but the standard library, so that every other
// package can speak in its terms without importing one another.
package hub
