-- deliveries_status (0002) put the pending deliveries between the failed
-- and the succeeded ones, so that every delivered webhook changed it in two
-- places: its entry was inserted in the pending range at ingest, then
-- deleted there and inserted again at the far end of the succeeded range
-- when it succeeded, the costliest B-tree of a delivered webhook at 100/s
-- (3.8 pages of the log per webhook, BENCHMARKS.md). Keyed first by whether
-- the delivery is pending, the pending ones come last, after the newest
-- succeeded: a delivery enters at the end and, when it succeeds, moves a
-- few entries back, on the same last pages (2.7 pages per webhook).
--
-- It still holds the succeeded deliveries, so that a list of them stays a
-- range of the index: without them (WHERE status <> 'succeeded', 1.7 pages)
-- that list walks the ids newest first and skips the others, and behind a
-- backlog of pending deliveries (an endpoint down for hours) it read the
-- whole backlog before its first row: 2.4 s behind 1.3 M, against 0.6 ms
-- here. The list query repeats the key's first column (TestListPlans), as
-- SQLite uses an index on an expression only for that expression.
DROP INDEX deliveries_status;
CREATE INDEX deliveries_status ON deliveries (status = 'pending', status, id);
