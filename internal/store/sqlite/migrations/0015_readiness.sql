-- Where Ping's probe writes: a row of readinessProbeBytes, inserted and
-- deleted in one write of the group commit, so that the database must find
-- room for it and the commit must reach the disk (see Store.Ping).
CREATE TABLE readiness (
	id  INTEGER NOT NULL PRIMARY KEY,
	pad BLOB    NOT NULL
) STRICT;
