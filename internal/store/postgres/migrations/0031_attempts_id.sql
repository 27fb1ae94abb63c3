-- An attempt is read with its delivery (attempts_delivery) and purged by
-- time (attempts_unpurged), never by its id: the id's unique index was one
-- more entry written at every attempt, and 56 bytes stored per attempt, a
-- sixth of the attempts' table and indexes (issue 12). The id stays the
-- attempt's name, unique by its random part as every id the store makes.
ALTER TABLE attempts DROP CONSTRAINT attempts_id_key;
