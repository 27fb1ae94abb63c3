// Package dispatch sends the one-time passwords and session links that a
// provider asks the company to send (SPEC section 7): Identomat's
// "client's own SMS/email provider" callbacks, which become otp.requested
// and session_link.requested events, are also sent to the applicant through
// the source's SMTP server or HTTP SMS gateway.
//
// # Durable
//
// A dispatch is a row created by the ingest transaction that stores the
// message asking for it (hub.Ingest.Dispatches), so an acknowledged
// callback always has its dispatch, and a provider's retry of the same
// callback (a duplicate) creates none. This package only works the queue:
// a Worker claims due dispatches under a lease (Store.ClaimDispatches),
// sends each and records the result with the lease token
// (Store.RecordDispatch). A worker that dies between claim and send leaves
// a lease that runs out; the dispatch is then claimed again and sent once.
//
// # Once, or at least once
//
// What the channels cannot promise is a send whose answer was lost: the
// server accepted the message but verihook died (or its record failed)
// before it was recorded. The lease then ends and the dispatch is sent
// again. Every attempt of one dispatch carries its id as an idempotency
// key: the Message-ID of the e-mail, and the IdempotencyHeader of a generic
// gateway that supports one. SMTP has no way to ask a server to drop a
// resend, and Twilio's Messages API takes no idempotency key, so e-mail and
// the twilio preset are at least once in that window; a generic gateway
// that honours its idempotency header is once.
//
// # Timely
//
// A code is useless late. Every dispatch has a deadline (Config.OTPTTL after
// its receipt, 5 minutes by default) and a short schedule of its own
// (seconds, DefaultSchedule). An attempt never runs past the deadline (its
// context ends there), a retry that would come at or after it expires the
// dispatch instead, and Store.ExpireDispatches ends the ones nobody sent in
// time. Nothing is sent after its deadline.
//
// # Verdicts
//
// SMTP: the server's reply to the final dot of DATA is success; any 5xx
// reply is permanent (failed); 4xx replies, timeouts, dropped connections
// and TLS failures are retried. STARTTLS is required when configured: a
// server that does not offer it is retried, never written to in clear.
// Gateways: 2xx (or SuccessCodes) is success; 429 and 5xx, timeouts and
// network errors are retried; any other answer is permanent.
//
// # Safe and private
//
// Limits cap dispatches per recipient and per source over sliding windows
// (in memory, per instance). Templates see values escaped for where they go:
// a generic gateway's body template gets JSON strings or URL-encoded values,
// and an e-mail subject is folded to one line and Q-encoded. Recipients must
// be an e-mail address or a phone number. The channels reach their servers
// through the SSRF guard that endpoints use (Network). The recipient, code,
// link and text are never logged; they are stripped from servers' error
// texts before those are stored; the store purges them, and Purge the
// event's copy (and the body of the message that asked), as soon as the
// dispatch is final. A dispatch that ends
// failed or expired raises dispatch.failed or dispatch.expired for the
// company's endpoints.
package dispatch
