// Package reconcile recovers the callbacks a provider sent and verihook never
// received (a provider that gave up retrying, a firewall, a secret rotated on
// one side only) by asking the provider's status API.
//
// A verification that stays not final past its source's deadline (24 h by
// default) is polled; so is one an operator asks about (Refresh), and every
// stuck one of a source on demand (Source). The answer is stored through the
// path a callback takes (the ingest service's RecordPoll, then
// Store.Ingest): it becomes a message of origin poll and an observation in
// the timeline, runs through the same ordering rules, and a change produces
// the same verification.updated event a callback would. It is dated when its
// request was sent, so that a callback received while it was under way is
// never replaced by the older answer.
//
// Polling is sparing by construction: at most one request per source per gap
// (the provider's PollLimits, or the source's configuration), one
// verification polled again only after a wait that doubles from Interval up
// to a day, and given up (PollState.GaveUpAt) after MaxPolls answers that
// were not final. An API error or a rate limit (429, honouring Retry-After)
// pauses the whole source, for a time that doubles while errors go on: never
// a hot loop. Claims go through the store (Store.ClaimPolls), so that
// instances sharing a database never poll one verification at once; the rate
// limit is per instance.
//
// Nothing personal is logged: logs name sources, verification ids and
// status codes, never an answer's body.
package reconcile
