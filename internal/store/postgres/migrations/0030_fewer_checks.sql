-- Foreign keys that checked nothing, and an index nothing reads (issue 12).
--
-- Messages, verifications and events are never deleted (the purges clear a
-- body or an event's data and keep the row), and the store writes an
-- observation, an event, a delivery or a dispatch only in the transaction
-- that writes, or holds locked, the message, verification and event it
-- refers to. Their foreign keys could therefore never fail, but each was
-- checked at every insert: a lookup planned and run by a trigger, and a row
-- lock (FOR KEY SHARE) on the referenced row, which dirties its page and is
-- written to the WAL: four per webhook, five with one endpoint. The
-- foreign keys that cascade (a deleted endpoint's deliveries, their
-- attempts) stay.
ALTER TABLE observations
	DROP CONSTRAINT observations_verification_id_fkey,
	DROP CONSTRAINT observations_message_id_fkey;
ALTER TABLE events
	DROP CONSTRAINT events_message_id_fkey,
	DROP CONSTRAINT events_verification_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_event_id_fkey;
ALTER TABLE dispatches DROP CONSTRAINT dispatches_event_id_fkey;

-- observations are read by verification, in seq order
-- (observations_verification), never by seq alone: seq keeps no index of its
-- own, and the row's key is its id (observations_id_key, unique, not null).
ALTER TABLE observations DROP CONSTRAINT observations_pkey;
