-- The dashboard (SPEC section 8): sources managed through the API with
-- secret rotation, per-minute counters for the overview's charts, and
-- login sessions.

-- Every source before this migration was provisioned from the config file.
ALTER TABLE sources
	ADD COLUMN managed text NOT NULL DEFAULT 'config' CHECK (managed IN ('config', 'api')),
	ADD COLUMN previous_secrets bytea,              -- sealed; NULL when none
	ADD COLUMN previous_secrets_expire_at timestamptz;

-- stats counts what the overview charts, per minute: counting the messages
-- of a day would read millions of rows, this reads a few thousand. key is
-- the endpoint of a delivery counter, '' otherwise. Concurrent transactions
-- that added to one row would wait for each other's commit, so each backend
-- adds to its own shard (pg_backend_pid() % 16) and readers sum the shards.
CREATE TABLE stats (
	minute     timestamptz      NOT NULL,
	name       text COLLATE "C" NOT NULL,
	key        text COLLATE "C" NOT NULL DEFAULT '',
	shard      integer          NOT NULL,
	n          bigint           NOT NULL,
	latency_ms bigint           NOT NULL DEFAULT 0,
	PRIMARY KEY (minute, name, key, shard)
);

-- sessions are dashboard logins; only the hash of the cookie's secret is
-- kept. A session dies with its token.
CREATE TABLE sessions (
	id         text COLLATE "C" NOT NULL PRIMARY KEY,
	hash       text COLLATE "C" NOT NULL UNIQUE,
	token_id   text COLLATE "C" NOT NULL REFERENCES tokens (id),
	created_at timestamptz      NOT NULL,
	expires_at timestamptz      NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);
