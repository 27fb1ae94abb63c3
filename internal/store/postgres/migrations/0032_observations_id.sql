-- An observation is read with its verification's timeline
-- (observations_verification), never by its id: the id's unique index was
-- one more entry written at every webhook (issue 12), as SQLite's 0030
-- found for its own. The id stays the observation's name, unique by its
-- random part as every id the store makes. observations has no key left:
-- no statement updates or deletes an observation.
ALTER TABLE observations DROP CONSTRAINT observations_id_key;
