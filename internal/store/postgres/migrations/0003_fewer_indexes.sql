-- The SQLite store's index diet (its migrations 0004 to 0006, which say why
-- for each), so that both stores keep the same indexes:
--   - observations are read by verification only, and a filter on level
--     alone is rare;
--   - the verification key leads with provider_ref and serves the
--     provider_ref filter, which had an index of its own;
--   - messages (status, id) and events (type, id) hold only the rare values,
--     as nearly every message is accepted and nearly every event is a
--     verification.updated; a filter on the common value walks the primary
--     key newest first.
DROP INDEX observations_message;
DROP INDEX verifications_level;
DROP INDEX verifications_provider_ref;
DROP INDEX verifications_key;
CREATE UNIQUE INDEX verifications_key ON verifications (provider_ref, source, level);
DROP INDEX messages_status;
CREATE INDEX messages_unaccepted ON messages (status, id) WHERE status <> 'accepted';
DROP INDEX events_type;
CREATE INDEX events_uncommon ON events (type, id) WHERE type <> 'verification.updated';
