-- Recovery (reconciliation and reprocessing). How a message and each
-- observation reached verihook: its callback, a poll of the provider's status
-- API, or the reprocessing of a quarantined callback.
ALTER TABLE messages ADD COLUMN origin text NOT NULL DEFAULT 'callback';
ALTER TABLE observations ADD COLUMN origin text NOT NULL DEFAULT 'callback';

-- What reconciliation knows of a verification it polled; no row until then.
CREATE TABLE verification_polls (
	verification_id text COLLATE "C" NOT NULL PRIMARY KEY REFERENCES verifications (id),
	polls           integer     NOT NULL DEFAULT 0,
	last_polled_at  timestamptz,
	next_poll_at    timestamptz,
	last_error      text        NOT NULL DEFAULT '',
	gave_up_at      timestamptz
);

-- The verifications still open, by when they last changed: what
-- reconciliation claims and what the stuck filter and metric count. Partial,
-- so that it holds only the few verifications not final.
CREATE INDEX verifications_open ON verifications (source, updated_at) WHERE NOT final;
