-- verihook's initial schema.
--
-- Times are INTEGER nanoseconds since the Unix epoch, UTC (NULL where a time
-- is optional and absent), so they compare and sort as numbers and round-trip
-- exactly. Ids are TEXT and sort by creation time (hub.NewID): lists page on
-- them, newest first. Bodies and secrets are BLOBs sealed with hub.Cipher.
-- Tables are STRICT so that a value of the wrong type is an error, not a
-- silent conversion. Rows of messages, verifications, observations and events
-- are never deleted, so rowid is insertion order.

CREATE TABLE sources (
	id         TEXT    NOT NULL PRIMARY KEY,
	provider   TEXT    NOT NULL,
	secrets    BLOB    NOT NULL,  -- sealed JSON object
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;

-- messages holds every request received on the ingest endpoint, rejected ones
-- included. source_id has no foreign key: rejections for unknown sources are
-- recorded too.
CREATE TABLE messages (
	id          TEXT    NOT NULL PRIMARY KEY,
	source_id   TEXT    NOT NULL,
	provider    TEXT    NOT NULL DEFAULT '',
	received_at INTEGER NOT NULL,
	remote_addr TEXT    NOT NULL DEFAULT '',
	status      TEXT    NOT NULL CHECK (status IN ('accepted', 'quarantined', 'rejected')),
	http_status INTEGER NOT NULL DEFAULT 0,
	reason      TEXT    NOT NULL DEFAULT '',
	event_name  TEXT    NOT NULL DEFAULT '',
	dedup_key   TEXT,            -- NULL for rejections: they never deduplicate
	body        BLOB,            -- sealed; NULL for rejections and once purged
	preview     TEXT             -- redacted JSON, NULL when none
) STRICT;

-- The dedup rule (SPEC section 5 rule 1). NULLs are distinct in a UNIQUE
-- index, so rows without a dedup key never collide.
CREATE UNIQUE INDEX messages_dedup ON messages (source_id, dedup_key);
CREATE INDEX messages_source ON messages (source_id, id);
CREATE INDEX messages_status ON messages (status, id);
-- PurgeBodies looks only at rows that still have a body.
CREATE INDEX messages_purge ON messages (received_at) WHERE body IS NOT NULL;

CREATE TABLE verifications (
	id            TEXT    NOT NULL PRIMARY KEY,
	source        TEXT    NOT NULL,
	provider      TEXT    NOT NULL,
	provider_ref  TEXT    NOT NULL,
	level         TEXT    NOT NULL DEFAULT '',
	applicant_ref TEXT    NOT NULL DEFAULT '',
	kind          TEXT    NOT NULL,
	status        TEXT    NOT NULL,
	final         INTEGER NOT NULL CHECK (final IN (0, 1)),
	version       INTEGER NOT NULL,
	reasons       TEXT    NOT NULL,  -- JSON array
	attempts_left INTEGER,
	provider_time INTEGER,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL
) STRICT;

-- One verification per provider reference and level at a source.
CREATE UNIQUE INDEX verifications_key ON verifications (source, provider_ref, level);
CREATE INDEX verifications_source ON verifications (source, id);
CREATE INDEX verifications_status ON verifications (status, id);
CREATE INDEX verifications_applicant ON verifications (applicant_ref, id);
CREATE INDEX verifications_provider_ref ON verifications (provider_ref, id);
CREATE INDEX verifications_level ON verifications (level, id);

-- observations is every verification's timeline: one row per observation,
-- applied or superseded, in the order it was applied (seq).
CREATE TABLE observations (
	seq             INTEGER NOT NULL PRIMARY KEY,
	id              TEXT    NOT NULL UNIQUE,
	verification_id TEXT    NOT NULL REFERENCES verifications (id),
	message_id      TEXT    NOT NULL REFERENCES messages (id),
	source          TEXT    NOT NULL,
	provider        TEXT    NOT NULL,
	provider_ref    TEXT    NOT NULL,
	level           TEXT    NOT NULL DEFAULT '',
	kind            TEXT    NOT NULL DEFAULT '',
	applicant_ref   TEXT    NOT NULL DEFAULT '',
	status          TEXT    NOT NULL,
	final           INTEGER NOT NULL CHECK (final IN (0, 1)),
	reasons         TEXT    NOT NULL,  -- JSON: null or an array
	attempts_left   INTEGER,
	provider_time   INTEGER,
	provider_event  TEXT    NOT NULL DEFAULT '',
	received_at     INTEGER NOT NULL,
	outcome         TEXT    NOT NULL CHECK (outcome IN ('applied', 'superseded')),
	version         INTEGER NOT NULL
) STRICT;

CREATE INDEX observations_verification ON observations (verification_id, seq);
CREATE INDEX observations_message ON observations (message_id);

CREATE TABLE events (
	id              TEXT    NOT NULL PRIMARY KEY,
	type            TEXT    NOT NULL,
	created_at      INTEGER NOT NULL,
	source          TEXT    NOT NULL,
	provider        TEXT    NOT NULL DEFAULT '',
	data            BLOB    NOT NULL,  -- sealed JSON: OTP texts, recipients and emails are personal data
	message_id      TEXT    REFERENCES messages (id),
	verification_id TEXT    REFERENCES verifications (id)
) STRICT;

CREATE INDEX events_source ON events (source, id);
CREATE INDEX events_type ON events (type, id);
CREATE INDEX events_verification ON events (verification_id, id);
CREATE INDEX events_message ON events (message_id);

CREATE TABLE tokens (
	id         TEXT    NOT NULL PRIMARY KEY,
	name       TEXT    NOT NULL DEFAULT '',
	role       TEXT    NOT NULL CHECK (role IN ('admin', 'viewer')),
	hash       TEXT    NOT NULL UNIQUE,
	created_at INTEGER NOT NULL
) STRICT;
