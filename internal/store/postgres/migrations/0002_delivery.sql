-- Delivery: endpoints and the outbox (SPEC section 6). Same conventions as
-- 0001.

CREATE TABLE endpoints (
	id                         text COLLATE "C" NOT NULL PRIMARY KEY,
	url                        text        NOT NULL,
	secret                     bytea       NOT NULL,  -- sealed
	previous_secret            bytea,                 -- sealed; NULL when none
	previous_secret_expires_at timestamptz,
	event_types                text[]      NOT NULL,  -- {} admits every type
	sources                    text[]      NOT NULL,  -- {} admits every source
	enabled                    boolean     NOT NULL,
	disabled_reason            text        NOT NULL DEFAULT '',
	ordered                    boolean     NOT NULL,
	rate_limit                 double precision NOT NULL DEFAULT 0 CHECK (rate_limit >= 0),
	failing_since              timestamptz,           -- NULL while the endpoint succeeds
	created_at                 timestamptz NOT NULL,
	updated_at                 timestamptz NOT NULL
);

-- deliveries is the outbox: one row per event per endpoint. seq is creation
-- order, which an ordered endpoint follows within one verification.
--
-- next_attempt_at is set exactly while the delivery is pending. lease and
-- lease_until are set while a worker holds the delivery (ClaimDeliveries):
-- lease is a random token that RecordAttempt and Release must present, so
-- that a worker whose lease ran out and was given to another cannot record
-- over it. An ended lease (lease_until <= now) is left in place until the
-- next claim overwrites it or an attempt clears it.
--
-- A claim changes only lease and lease_until, which no index covers, so
-- PostgreSQL can update the row in place (a HOT update) when its page has
-- room: fillfactor 80 keeps some.
CREATE TABLE deliveries (
	seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id               text COLLATE "C" NOT NULL UNIQUE,
	endpoint_id      text COLLATE "C" NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
	event_id         text COLLATE "C" NOT NULL REFERENCES events (id),
	event_type       text        NOT NULL,
	source           text COLLATE "C" NOT NULL,
	verification_id  text COLLATE "C",
	status           text        NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
	attempts         integer     NOT NULL DEFAULT 0,
	next_attempt_at  timestamptz,
	lease            text,
	lease_until      timestamptz,
	last_status_code integer     NOT NULL DEFAULT 0,
	last_error       text        NOT NULL DEFAULT '',
	created_at       timestamptz NOT NULL,
	updated_at       timestamptz NOT NULL,
	-- One delivery per event per endpoint: a replay resets it. Event first,
	-- so that the index also lists an event's deliveries.
	UNIQUE (event_id, endpoint_id),
	CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL)),
	CHECK ((lease IS NULL) = (lease_until IS NULL))
) WITH (fillfactor = 80);

-- Claiming walks each enabled endpoint's due deliveries, oldest due first
-- (see ClaimDeliveries): keyed by endpoint, so that the pending backlog of a
-- disabled endpoint, which sits at the front of the queue for as long as it
-- stays disabled, is never scanned. QueueStats uses it too.
CREATE INDEX deliveries_due ON deliveries (endpoint_id, next_attempt_at, seq) WHERE status = 'pending';
-- The ordered rule: is there an earlier pending delivery of this
-- verification to this endpoint?
CREATE INDEX deliveries_ordered ON deliveries (endpoint_id, verification_id, seq) WHERE status = 'pending';
-- Lists, newest first. deliveries_endpoint also serves the cascade when an
-- endpoint is deleted.
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, id);
CREATE INDEX deliveries_status ON deliveries (status, id);

-- attempts is every delivery's log, in the order the attempts were recorded
-- (seq).
CREATE TABLE attempts (
	seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id          text COLLATE "C" NOT NULL UNIQUE,
	delivery_id text COLLATE "C" NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
	at          timestamptz NOT NULL,
	status_code integer     NOT NULL DEFAULT 0,
	latency_ms  bigint      NOT NULL DEFAULT 0,
	response    text        NOT NULL DEFAULT '',  -- the start of the response body, at most 1 KiB
	error       text        NOT NULL DEFAULT ''
);

CREATE INDEX attempts_delivery ON attempts (delivery_id, seq);
