-- The Verifications page filters on level and on provider, which 0004 left
-- without an index: such a filter walked the primary key newest first and,
-- when it matched nothing, read the whole table (seconds at a million
-- verifications; BENCHMARKS.md). Both indexes are cheap to keep: a new
-- verification's entry goes to the end of its value's range (ids sort by
-- time), an update never touches them (level and provider never change),
-- and only the verifications that have a level (Fractal's) are in the
-- first, as a filter never asks for the empty level. The list query repeats
-- the partial index's condition, as SQLite uses a partial index only then.
-- The provider cannot be told from the source instead: a source's provider
-- may change and a deleted source's verifications stay.
CREATE INDEX verifications_level ON verifications (level, id) WHERE level <> '';
CREATE INDEX verifications_provider ON verifications (provider, id);
