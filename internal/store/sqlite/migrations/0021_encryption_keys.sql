-- The encryption keys the store has sealed values under (hub.StoredKey), in
-- the order they became current: a store opened with a new current key (a
-- key rotation) records it, and refuses from then on a configuration whose
-- current key is an older one. check holds a key check sealed with the key.
CREATE TABLE encryption_keys (
	id       TEXT    NOT NULL PRIMARY KEY,
	"check"  BLOB    NOT NULL,
	added_at INTEGER NOT NULL
) STRICT;
