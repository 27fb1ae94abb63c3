-- The admin actions the API records (hub.AuditEntry), listed newest first
-- by id. No body is kept: no secret, no personal data.
CREATE TABLE audit_log (
	id         TEXT    NOT NULL PRIMARY KEY,
	at         INTEGER NOT NULL,
	token_id   TEXT    NOT NULL,
	token_name TEXT    NOT NULL,
	method     TEXT    NOT NULL,
	route      TEXT    NOT NULL,
	target     TEXT    NOT NULL,
	status     INTEGER NOT NULL
) STRICT;
