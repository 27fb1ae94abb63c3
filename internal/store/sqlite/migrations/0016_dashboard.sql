-- The dashboard (SPEC section 8): sources managed through the API with
-- secret rotation, per-minute counters for the overview's charts, and
-- login sessions.

-- Every source before this migration was provisioned from the config file.
ALTER TABLE sources ADD COLUMN managed TEXT NOT NULL DEFAULT 'config' CHECK (managed IN ('config', 'api'));
ALTER TABLE sources ADD COLUMN previous_secrets BLOB;              -- sealed; NULL when none
ALTER TABLE sources ADD COLUMN previous_secrets_expire_at INTEGER;

-- stats counts what the overview charts, per minute (nanoseconds since the
-- epoch of the minute's start): counting the messages of a day would read
-- millions of rows, this reads at most a few thousand. key is the endpoint
-- of a delivery counter, '' otherwise. WITHOUT ROWID: the key is the row.
CREATE TABLE stats (
	minute     INTEGER NOT NULL,
	name       TEXT    NOT NULL,
	key        TEXT    NOT NULL DEFAULT '',
	n          INTEGER NOT NULL,
	latency_ms INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (minute, name, key)
) STRICT, WITHOUT ROWID;

-- sessions are dashboard logins; only the hash of the cookie's secret is
-- kept. A session dies with its token (the foreign key keeps tokens'
-- rows, which are never deleted, the only ones sessions can name).
CREATE TABLE sessions (
	id         TEXT    NOT NULL PRIMARY KEY,
	hash       TEXT    NOT NULL UNIQUE,
	token_id   TEXT    NOT NULL REFERENCES tokens (id),
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_expires ON sessions (expires_at);
