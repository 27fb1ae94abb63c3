-- One value sealed with the store's key when it is first opened, so that an
-- Open with another key fails at once (hub.ErrKeyMismatch) instead of at the
-- first read of a body.
CREATE TABLE key_check (
	id     INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
	sealed BLOB    NOT NULL
) STRICT;
