-- Nothing reads an attempt by its id: attempts are read with their delivery
-- (attempts_delivery) and purged by time (attempts_unpurged). Its UNIQUE
-- made every attempt write an entry into a B-tree of its own, at 100
-- webhooks/s with an endpoint delivering 1.5 pages of the log per attempt
-- (BENCHMARKS.md), and 45 bytes stored per attempt. SQLite drops a UNIQUE
-- constraint only with its table: attempts is copied in seq order (each
-- B-tree filled in key order) into the same table without it, under the same
-- name. The ids stay as they were.
CREATE TABLE attempts_new (
	seq         INTEGER NOT NULL PRIMARY KEY,
	id          TEXT    NOT NULL,
	delivery_id TEXT    NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
	at          INTEGER NOT NULL,
	status_code INTEGER NOT NULL DEFAULT 0,
	latency_ms  INTEGER NOT NULL DEFAULT 0,
	response    TEXT    NOT NULL DEFAULT '',  -- the start of the response body, at most 1 KiB
	error       TEXT    NOT NULL DEFAULT ''
) STRICT;
INSERT INTO attempts_new (seq, id, delivery_id, at, status_code, latency_ms, response, error)
	SELECT seq, id, delivery_id, at, status_code, latency_ms, response, error FROM attempts ORDER BY seq;
DROP TABLE attempts;
ALTER TABLE attempts_new RENAME TO attempts;
CREATE INDEX attempts_delivery ON attempts (delivery_id, seq);
CREATE INDEX attempts_unpurged ON attempts (at) WHERE response <> '' OR error <> '';
