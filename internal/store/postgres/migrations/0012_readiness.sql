-- The one row Ping's probe writes: a write transaction that commits, so
-- that readiness fails when the database cannot take writes (read-only,
-- disk full, no privilege) and not only when it cannot be reached.
CREATE TABLE readiness (
	id         integer     NOT NULL PRIMARY KEY CHECK (id = 1),
	checked_at timestamptz NOT NULL
);
