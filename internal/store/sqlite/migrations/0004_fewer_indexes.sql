-- Every index is paid on every ingest by the one writer, which is what limits
-- throughput (BENCHMARKS.md). These two serve no query worth that price:
-- observations are read by verification only (observations_message served
-- nothing but the foreign key, and messages are never deleted), and a filter
-- on level alone is rare: it scans the verifications newest first, which the
-- primary key gives in order.
DROP INDEX observations_message;
DROP INDEX verifications_level;
