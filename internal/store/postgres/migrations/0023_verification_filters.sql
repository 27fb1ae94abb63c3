-- The Verifications page filters on level and on provider, which migration
-- 0003 left without an index: such a filter walked the primary key newest
-- first and, when it matched nothing, read the whole table (seconds at a
-- million verifications; BENCHMARKS.md). The SQLite store's migration 0026
-- adds the same two. Their entries go to the end of their value's range
-- (ids sort by time), and only the verifications that have a level
-- (Fractal's) are in the first, as a filter never asks for the empty level.
-- An update of a verification changes its status, which is indexed, so it
-- is never HOT and adds an entry to each of these too. The list query
-- repeats the partial index's condition, so that a generic plan can use it.
-- The provider cannot be told from the source instead: a source's provider
-- may change and a deleted source's verifications stay.
CREATE INDEX verifications_level ON verifications (level, id) WHERE level <> '';
CREATE INDEX verifications_provider ON verifications (provider, id);
