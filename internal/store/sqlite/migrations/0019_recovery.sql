-- Recovery (reconciliation and reprocessing). How a message and each
-- observation reached verihook: its callback, a poll of the provider's status
-- API, or the reprocessing of a quarantined callback.
ALTER TABLE messages ADD COLUMN origin TEXT NOT NULL DEFAULT 'callback';
ALTER TABLE observations ADD COLUMN origin TEXT NOT NULL DEFAULT 'callback';

-- What reconciliation knows of a verification it polled; no row until then.
CREATE TABLE verification_polls (
	verification_id TEXT    NOT NULL PRIMARY KEY REFERENCES verifications (id),
	polls           INTEGER NOT NULL DEFAULT 0,
	last_polled_at  INTEGER,
	next_poll_at    INTEGER,
	last_error      TEXT    NOT NULL DEFAULT '',
	gave_up_at      INTEGER
) STRICT;

-- The verifications still open, by when they last changed: what
-- reconciliation claims and what the stuck filter and metric count. Partial,
-- so that it holds only the few verifications not final.
CREATE INDEX verifications_open ON verifications (source, updated_at) WHERE final = 0;
