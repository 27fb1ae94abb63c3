-- Delivery: endpoints and the outbox (SPEC section 6).
--
-- Same conventions as 0001: STRICT tables, times as INTEGER nanoseconds
-- (NULL where absent), secrets as BLOBs sealed with hub.Cipher, ids that sort
-- by creation time.

CREATE TABLE endpoints (
	id                         TEXT    NOT NULL PRIMARY KEY,
	url                        TEXT    NOT NULL,
	secret                     BLOB    NOT NULL,  -- sealed
	previous_secret            BLOB,              -- sealed; NULL when none
	previous_secret_expires_at INTEGER,
	event_types                TEXT    NOT NULL,  -- JSON array; [] admits every type
	sources                    TEXT    NOT NULL,  -- JSON array; [] admits every source
	enabled                    INTEGER NOT NULL CHECK (enabled IN (0, 1)),
	disabled_reason            TEXT    NOT NULL DEFAULT '',
	ordered                    INTEGER NOT NULL CHECK (ordered IN (0, 1)),
	rate_limit                 REAL    NOT NULL DEFAULT 0 CHECK (rate_limit >= 0),
	failing_since              INTEGER,           -- NULL while the endpoint succeeds
	created_at                 INTEGER NOT NULL,
	updated_at                 INTEGER NOT NULL
) STRICT;

-- deliveries is the outbox: one row per event per endpoint. seq is creation
-- order, which an ordered endpoint follows within one verification. It has
-- no AUTOINCREMENT: SQLite gives a new row max(seq)+1, so a seq freed by a
-- deleted endpoint can only be reused above every remaining row, which keeps
-- creation order among the rows that exist.
--
-- next_attempt_at is set exactly while the delivery is pending. lease and
-- lease_until are set while a worker holds the delivery (ClaimDeliveries):
-- lease is a random token that RecordAttempt and Release must present, so
-- that a worker whose lease ran out and was given to another cannot record
-- over it. An ended lease (lease_until <= now) is left in place until the
-- next claim overwrites it or an attempt clears it.
CREATE TABLE deliveries (
	seq              INTEGER NOT NULL PRIMARY KEY,
	id               TEXT    NOT NULL UNIQUE,
	endpoint_id      TEXT    NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
	event_id         TEXT    NOT NULL REFERENCES events (id),
	event_type       TEXT    NOT NULL,
	source           TEXT    NOT NULL,
	verification_id  TEXT,
	status           TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
	attempts         INTEGER NOT NULL DEFAULT 0,
	next_attempt_at  INTEGER,
	lease            TEXT,
	lease_until      INTEGER,
	last_status_code INTEGER NOT NULL DEFAULT 0,
	last_error       TEXT    NOT NULL DEFAULT '',
	created_at       INTEGER NOT NULL,
	updated_at       INTEGER NOT NULL,
	-- One delivery per event per endpoint: a replay resets it. Event first,
	-- so that the index also lists an event's deliveries.
	UNIQUE (event_id, endpoint_id),
	CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL)),
	CHECK ((lease IS NULL) = (lease_until IS NULL))
) STRICT;

-- Every delivery that Ingest creates goes into each index below (and the
-- table, id and (event_id, endpoint_id)): with two endpoints, deliveries are
-- most of what an Ingest writes, so each index must earn its keep.
--
-- Claiming walks one enabled endpoint's due deliveries, oldest due first
-- (see ClaimDeliveries). Keyed by endpoint, not just by due time, so that
-- the pending backlog of a disabled endpoint, which sits at the front of the
-- queue for as long as it stays disabled, is never scanned. QueueStats
-- counts and dates the pending deliveries on it too.
CREATE INDEX deliveries_due ON deliveries (endpoint_id, next_attempt_at, seq) WHERE status = 'pending';
-- The ordered rule: is there an earlier pending delivery of this
-- verification to this endpoint?
CREATE INDEX deliveries_ordered ON deliveries (endpoint_id, verification_id, seq) WHERE status = 'pending';
-- Lists, newest first (by event: the UNIQUE index above, and a sort of the
-- few deliveries of one event). deliveries_endpoint also serves the cascade
-- when an endpoint is deleted.
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, id);
CREATE INDEX deliveries_status ON deliveries (status, id);

-- attempts is every delivery's log, in the order the attempts were recorded
-- (seq).
CREATE TABLE attempts (
	seq         INTEGER NOT NULL PRIMARY KEY,
	id          TEXT    NOT NULL UNIQUE,
	delivery_id TEXT    NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
	at          INTEGER NOT NULL,
	status_code INTEGER NOT NULL DEFAULT 0,
	latency_ms  INTEGER NOT NULL DEFAULT 0,
	response    TEXT    NOT NULL DEFAULT '',  -- the start of the response body, at most 1 KiB
	error       TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX attempts_delivery ON attempts (delivery_id, seq);

-- Replay walks the events of a time range.
CREATE INDEX events_created ON events (created_at);
