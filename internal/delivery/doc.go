// Package delivery sends normalized events to companies' endpoints (SPEC
// section 6).
//
// # The outbox
//
// Deliveries are rows in the store, created in the same transaction that
// stores a provider's message and the events it produced: once verihook has
// acknowledged a message, its deliveries exist on disk, whatever happens
// next. This package never creates them; it only works the queue.
//
// # Claims and leases
//
// A Worker asks the store for due deliveries (Store.ClaimDeliveries). Each
// comes back as a claim holding a lease: a token and an end time (Lease,
// 60 s by default). While the lease runs no other worker, in this process or
// another, gets the delivery. The worker signs the event, POSTs it, judges
// the result with Decide (2xx succeeds; 410 disables the endpoint; anything
// else, a timeout or a network error is retried on the schedule, honouring
// Retry-After on 429 and 503), and records the attempt and its verdict with
// the lease token (Store.RecordAttempt), which ends the lease. A worker that
// crashes mid-send records nothing; its lease simply runs out and the
// delivery is claimed again, so nothing stalls and no crash loses a
// delivery. A worker that was too slow finds its token stale: the store
// answers ECONFLICT and changes nothing, and the worker drops its result.
//
// # At least once
//
// The price of never losing a delivery is that one can be sent twice: a
// crash between the receiver's 2xx and the record, or a lease that ended
// mid-send. Every request therefore carries the Standard Webhooks headers:
// webhook-id is the event's id, the same on every retry and replay, so that
// consumers deduplicate by it; webhook-timestamp is the attempt's time; and
// webhook-signature is "v1,<base64 HMAC-SHA256 of id.timestamp.body>" under
// the endpoint's secret (and, for 24 hours after a rotation, under its
// previous secret too, so consumers can switch at their pace). Sign and
// Verify implement the scheme; Verify is what a consumer would run.
//
// # Ordered endpoints
//
// An endpoint marked ordered receives the events of one verification one at
// a time, in the order they were created: the store hands out a
// verification's next delivery to that endpoint only once the previous one
// is no longer pending (succeeded, or failed for good). Ordering is the
// store's rule, not the worker's, so it holds across workers and restarts.
// Unordered endpoints get everything as fast as the worker can send.
//
// # Pacing
//
// Run claims only as many deliveries as it has free sending slots
// (Concurrency), so no claim waits in memory while its lease runs. An
// endpoint's RateLimit is kept by a small per-endpoint bucket in the worker:
// a send waits for its slot when that is at most a second away; otherwise
// the claim is released, due when it may go, without counting an attempt.
// After a commit that created deliveries the ingest path calls Wake, so a
// new event goes out within milliseconds; retries that come due are found
// by polling (PollInterval).
//
// # The SSRF guard
//
// An endpoint URL is chosen by whoever configures verihook, and the worker
// will POST to it from inside the operator's network. CheckURL refuses, when
// an endpoint is created or changed, a URL that is not http(s) or whose host
// resolves to a loopback, private, link-local (the cloud metadata service at
// 169.254.169.254), unspecified, multicast or CGNAT address. Because DNS can
// change after that check, NewClient's dialer checks again the address it is
// about to connect to, follows no redirect (a 3xx is a failed attempt, never
// a way around the guard), and ignores proxy settings from the environment.
// Operators who deliver inside their network start verihook with
// --allow-private-endpoints.
package delivery
