-- verihook's initial schema on PostgreSQL.
--
-- Times are timestamptz (microseconds; the store truncates what it is given
-- to that precision, so what it returns equals what it reads back later),
-- NULL where a time is optional and absent. Ids are text in the "C"
-- collation, so that they sort and compare byte by byte as hub.NewID means
-- them to: lists page on them, newest first. Bodies, event data and secrets
-- are bytea sealed with hub.Cipher (AES-256-GCM); they are random bytes, so
-- STORAGE EXTERNAL spares PostgreSQL the attempt to compress them.

-- One value sealed with the store's key when the schema is first opened, so
-- that an instance opened with another key fails at once
-- (hub.ErrKeyMismatch) instead of at the first body it reads.
CREATE TABLE key_check (
	id     integer NOT NULL PRIMARY KEY CHECK (id = 1),
	sealed bytea   NOT NULL
);

CREATE TABLE sources (
	id         text COLLATE "C" NOT NULL PRIMARY KEY,
	provider   text        NOT NULL,
	secrets    bytea       NOT NULL,  -- sealed JSON object
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL
);
ALTER TABLE sources ALTER COLUMN secrets SET STORAGE EXTERNAL;

-- messages holds every request received on the ingest endpoint, rejected ones
-- included. source_id has no foreign key: rejections for unknown sources are
-- recorded too. Rows are never deleted; PurgeBodies only clears body.
CREATE TABLE messages (
	id          text COLLATE "C" NOT NULL PRIMARY KEY,
	source_id   text COLLATE "C" NOT NULL,
	provider    text        NOT NULL DEFAULT '',
	received_at timestamptz NOT NULL,
	remote_addr text        NOT NULL DEFAULT '',
	status      text        NOT NULL CHECK (status IN ('accepted', 'quarantined', 'rejected')),
	http_status integer     NOT NULL DEFAULT 0,
	reason      text        NOT NULL DEFAULT '',
	event_name  text        NOT NULL DEFAULT '',
	dedup_key   text COLLATE "C",    -- NULL for rejections: they never deduplicate
	body        bytea,               -- sealed; NULL for rejections and once purged
	preview     json                 -- redacted, as given; NULL when none
);
ALTER TABLE messages ALTER COLUMN body SET STORAGE EXTERNAL;

-- The dedup rule (SPEC section 5 rule 1), and the arbiter of Ingest's
-- INSERT ... ON CONFLICT (source_id, dedup_key) DO NOTHING. NULLs are
-- distinct, so rows without a dedup key never collide.
CREATE UNIQUE INDEX messages_dedup ON messages (source_id, dedup_key);
CREATE INDEX messages_source ON messages (source_id, id);
CREATE INDEX messages_status ON messages (status, id);
-- PurgeBodies looks only at rows that still have a body.
CREATE INDEX messages_purge ON messages (received_at) WHERE body IS NOT NULL;

CREATE TABLE verifications (
	id            text COLLATE "C" NOT NULL PRIMARY KEY,
	source        text COLLATE "C" NOT NULL,
	provider      text        NOT NULL,
	provider_ref  text COLLATE "C" NOT NULL,
	level         text COLLATE "C" NOT NULL DEFAULT '',
	applicant_ref text COLLATE "C" NOT NULL DEFAULT '',
	kind          text        NOT NULL,
	status        text        NOT NULL,
	final         boolean     NOT NULL,
	version       integer     NOT NULL,
	reasons       text[]      NOT NULL,
	attempts_left integer,
	provider_time timestamptz,
	created_at    timestamptz NOT NULL,
	updated_at    timestamptz NOT NULL
);

-- One verification per provider reference and level at a source: the arbiter
-- of Ingest's INSERT ... ON CONFLICT DO NOTHING when two instances create the
-- same verification at once.
CREATE UNIQUE INDEX verifications_key ON verifications (source, provider_ref, level);
CREATE INDEX verifications_source ON verifications (source, id);
CREATE INDEX verifications_status ON verifications (status, id);
CREATE INDEX verifications_applicant ON verifications (applicant_ref, id);
CREATE INDEX verifications_provider_ref ON verifications (provider_ref, id);
CREATE INDEX verifications_level ON verifications (level, id);

-- observations is every verification's timeline: one row per observation,
-- applied or superseded. seq is the order in which they were applied: Ingest
-- inserts them while it holds the verification's row lock, so the seq order
-- of one verification's observations is the order Apply saw them in.
CREATE TABLE observations (
	seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id              text COLLATE "C" NOT NULL UNIQUE,
	verification_id text COLLATE "C" NOT NULL REFERENCES verifications (id),
	message_id      text COLLATE "C" NOT NULL REFERENCES messages (id),
	source          text COLLATE "C" NOT NULL,
	provider        text        NOT NULL,
	provider_ref    text COLLATE "C" NOT NULL,
	level           text COLLATE "C" NOT NULL DEFAULT '',
	kind            text        NOT NULL DEFAULT '',
	applicant_ref   text COLLATE "C" NOT NULL DEFAULT '',
	status          text        NOT NULL,
	final           boolean     NOT NULL,
	reasons         text[],               -- NULL when the provider sent none
	attempts_left   integer,
	provider_time   timestamptz,
	provider_event  text        NOT NULL DEFAULT '',
	received_at     timestamptz NOT NULL,
	outcome         text        NOT NULL CHECK (outcome IN ('applied', 'superseded')),
	version         integer     NOT NULL
);

CREATE INDEX observations_verification ON observations (verification_id, seq);
CREATE INDEX observations_message ON observations (message_id);

-- seq is the order in which events were recorded (Message lists a message's
-- events in that order).
CREATE TABLE events (
	id              text COLLATE "C" NOT NULL PRIMARY KEY,
	seq             bigint GENERATED ALWAYS AS IDENTITY,
	type            text        NOT NULL,
	created_at      timestamptz NOT NULL,
	source          text COLLATE "C" NOT NULL,
	provider        text        NOT NULL DEFAULT '',
	data            bytea       NOT NULL,  -- sealed JSON: OTP texts, recipients and emails are personal data
	message_id      text COLLATE "C" REFERENCES messages (id),
	verification_id text COLLATE "C" REFERENCES verifications (id)
);
ALTER TABLE events ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE INDEX events_source ON events (source, id);
CREATE INDEX events_type ON events (type, id);
CREATE INDEX events_verification ON events (verification_id, id);
CREATE INDEX events_message ON events (message_id, seq);
-- Replay walks the events of a time range, in (created_at, id) keyset order.
CREATE INDEX events_created ON events (created_at, id);

CREATE TABLE tokens (
	id         text COLLATE "C" NOT NULL PRIMARY KEY,
	name       text        NOT NULL DEFAULT '',
	role       text        NOT NULL CHECK (role IN ('admin', 'viewer')),
	hash       text COLLATE "C" NOT NULL UNIQUE,
	created_at timestamptz NOT NULL
);
