// Package hub is verihook's domain: what a source, a received message, a
// normalized event and a verification are, the ordering rules that decide a
// verification's current status, and the Store contract that the storage
// packages implement.
//
// The story of one webhook: a provider POSTs to /ingest/{source}, which
// httpapi's ingest route hands to ingest.Service.Receive as a Callback. The
// source's provider package authenticates the raw bytes and parses them into
// a Parsed value: the provider's own event name, a deduplication key and how
// long it holds (Dedup), zero or more status Observations of a
// verification, and zero or more other events (an OTP to send, a video call
// update ...). The ingest package hands all of it to Store.Ingest, which in
// one durable transaction stores the message (a duplicate stops there),
// reads the verifications it observes and the enabled endpoints, and writes
// what PlanIngest makes of them: every observation run through Apply (the
// ordering rules of SPEC section 5), the timeline, the events that result
// and their deliveries. Only then does the provider get its 2xx.
//
// That logic is here, once (plan.go); a store only reads and locks what
// PlanIngest needs and writes its plan, with its own SQL and commit
// strategy: SQLite's single writer batches concurrent ingests in one
// transaction (sqlite.Store.applyTx); PostgreSQL pipelines them in waves of
// a group transaction, with row locks in key order (postgres.Store.runWave).
// Replay and dispatches that end plan their deliveries here too
// (Replay.Missing, PlanDispatchesEnded).
//
// This package imports nothing but the standard library, so that every other
// package can speak in its terms without importing one another.
package hub
