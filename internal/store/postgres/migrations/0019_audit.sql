-- The admin actions the API records (hub.AuditEntry), listed newest first
-- by id. No body is kept: no secret, no personal data.
CREATE TABLE audit_log (
	id         text COLLATE "C" NOT NULL PRIMARY KEY,
	at         timestamptz NOT NULL,
	token_id   text        NOT NULL,
	token_name text        NOT NULL,
	method     text        NOT NULL,
	route      text        NOT NULL,
	target     text        NOT NULL,
	status     integer     NOT NULL
);
