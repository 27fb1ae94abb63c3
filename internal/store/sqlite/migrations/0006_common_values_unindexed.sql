-- Nearly every message is accepted and nearly every event is a
-- verification.updated, so the indexes on messages (status, id) and events
-- (type, id) were mostly a second copy of the primary key that every ingest
-- paid for. They now hold only the rare values, which are what a filter needs
-- an index for: a list of accepted messages or of verification.updated
-- events walks the primary key newest first and skips the few others. The
-- list queries repeat the index's condition (see Messages and Events), as
-- SQLite uses a partial index only for a query whose WHERE clause contains
-- it.
DROP INDEX messages_status;
CREATE INDEX messages_unaccepted ON messages (status, id) WHERE status <> 'accepted';
DROP INDEX events_type;
CREATE INDEX events_uncommon ON events (type, id) WHERE type <> 'verification.updated';
