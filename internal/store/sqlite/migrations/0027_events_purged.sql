-- events_created (0002) and events_unpurged (0007) indexed the same column:
-- every event was written into both, one B-tree more per event at ingest
-- for nothing. events_purged holds the purged events instead, so that each
-- event is in one of the two partial indexes: Purge walks the unpurged ones
-- as before, and Replay, which must replay purged events too (in their
-- redacted form, SPEC section 10), merges the two ranges, each in
-- (created_at, rowid) order (TestReplayPlan). An event enters events_purged
-- once, when it is purged.
CREATE INDEX events_purged ON events (created_at) WHERE purged_at IS NOT NULL;
DROP INDEX events_created;
