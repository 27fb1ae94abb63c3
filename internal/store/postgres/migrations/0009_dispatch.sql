-- Dispatch: the OTPs and session links verihook sends itself (SPEC section 7).
-- Same conventions as 0001.
--
-- content is the sealed JSON of hub.DispatchContent (recipient, text, link):
-- it is set to NULL in the transaction that makes the dispatch final, so no
-- code, link or recipient outlives its use. next_attempt_at is set exactly
-- while the dispatch is pending; lease and lease_until while a worker holds
-- it, as for deliveries.
CREATE TABLE dispatches (
	id              text COLLATE "C" NOT NULL PRIMARY KEY,
	source          text COLLATE "C" NOT NULL,
	provider        text        NOT NULL DEFAULT '',
	event_id        text COLLATE "C" NOT NULL REFERENCES events (id),
	kind            text        NOT NULL CHECK (kind IN ('otp', 'session_link')),
	channel         text        NOT NULL CHECK (channel IN ('email', 'sms')),
	session_ref     text        NOT NULL DEFAULT '',
	status          text        NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'expired')),
	attempts        integer     NOT NULL DEFAULT 0,
	next_attempt_at timestamptz,
	deadline        timestamptz NOT NULL,
	lease           text,
	lease_until     timestamptz,
	last_error      text        NOT NULL DEFAULT '',
	content         bytea,
	created_at      timestamptz NOT NULL,
	updated_at      timestamptz NOT NULL,
	sent_at         timestamptz,
	CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL)),
	CHECK (status = 'pending' OR content IS NULL),
	CHECK ((lease IS NULL) = (lease_until IS NULL))
);

-- Claiming and expiring walk the pending dispatches only.
CREATE INDEX dispatches_due ON dispatches (next_attempt_at) WHERE status = 'pending';
CREATE INDEX dispatches_deadline ON dispatches (deadline) WHERE status = 'pending';
-- Lists, newest first.
CREATE INDEX dispatches_source ON dispatches (source, id);
CREATE INDEX dispatches_status ON dispatches (status, id);
