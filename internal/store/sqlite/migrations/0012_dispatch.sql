-- Dispatch: the OTPs and session links verihook sends itself (SPEC section 7).
--
-- Same conventions as 0001: STRICT, times as INTEGER nanoseconds (NULL where
-- absent), personal data sealed with hub.Cipher.
--
-- content is the sealed JSON of hub.DispatchContent (recipient, text, link):
-- it is set to NULL in the transaction that makes the dispatch final, so no
-- code, link or recipient outlives its use. next_attempt_at is set exactly
-- while the dispatch is pending.
CREATE TABLE dispatches (
	id              TEXT    NOT NULL PRIMARY KEY,
	source          TEXT    NOT NULL,
	provider        TEXT    NOT NULL DEFAULT '',
	event_id        TEXT    NOT NULL REFERENCES events (id),
	kind            TEXT    NOT NULL CHECK (kind IN ('otp', 'session_link')),
	channel         TEXT    NOT NULL CHECK (channel IN ('email', 'sms')),
	session_ref     TEXT    NOT NULL DEFAULT '',
	status          TEXT    NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'expired')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER,
	deadline        INTEGER NOT NULL,
	lease           TEXT,
	lease_until     INTEGER,
	last_error      TEXT    NOT NULL DEFAULT '',
	content         BLOB,
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	sent_at         INTEGER,
	CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL)),
	CHECK (status = 'pending' OR content IS NULL),
	CHECK ((lease IS NULL) = (lease_until IS NULL))
) STRICT;

-- Claiming and expiring walk the pending dispatches only, by due time and by
-- deadline.
CREATE INDEX dispatches_due ON dispatches (next_attempt_at) WHERE status = 'pending';
CREATE INDEX dispatches_deadline ON dispatches (deadline) WHERE status = 'pending';
-- Lists, newest first.
CREATE INDEX dispatches_source ON dispatches (source, id);
CREATE INDEX dispatches_status ON dispatches (status, id);
