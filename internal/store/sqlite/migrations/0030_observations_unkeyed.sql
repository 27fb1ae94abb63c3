-- Nothing reads an observation by its id: a verification's timeline is read
-- by verification (observations_verification), and its references to its
-- verification and its message are written in the same transaction as the
-- rows they name, which are never deleted, so the foreign keys could never
-- fail. Yet every observation wrote an entry into the id's B-tree of its own
-- (45 bytes stored per message, a page of the log per commit at 100
-- webhooks/s) and looked up both parents. SQLite drops a UNIQUE constraint or
-- a foreign key only with its table: observations is copied in seq order
-- into the same table without them, under the same name (as 0029 did for
-- attempts). The ids stay as they were.
CREATE TABLE observations_new (
	seq                  INTEGER NOT NULL PRIMARY KEY,
	id                   TEXT    NOT NULL,
	verification_id      TEXT    NOT NULL,
	message_id           TEXT    NOT NULL,
	source               TEXT    NOT NULL,
	provider             TEXT    NOT NULL,
	provider_ref         TEXT    NOT NULL,
	level                TEXT    NOT NULL DEFAULT '',
	kind                 TEXT    NOT NULL DEFAULT '',
	applicant_ref        TEXT    NOT NULL DEFAULT '',
	status               TEXT    NOT NULL,
	final                INTEGER NOT NULL CHECK (final IN (0, 1)),
	reasons              TEXT    NOT NULL,  -- JSON: null or an array
	attempts_left        INTEGER,
	provider_time        INTEGER,
	provider_event       TEXT    NOT NULL DEFAULT '',
	received_at          INTEGER NOT NULL,
	outcome              TEXT    NOT NULL CHECK (outcome IN ('applied', 'superseded')),
	version              INTEGER NOT NULL,
	current_state        INTEGER NOT NULL DEFAULT 0 CHECK (current_state IN (0, 1)),
	final_if_no_attempts INTEGER NOT NULL DEFAULT 0 CHECK (final_if_no_attempts IN (0, 1)),
	origin               TEXT    NOT NULL DEFAULT 'callback'
) STRICT;
INSERT INTO observations_new (seq, id, verification_id, message_id, source, provider, provider_ref, level, kind,
		applicant_ref, status, final, reasons, attempts_left, provider_time, provider_event, received_at, outcome,
		version, current_state, final_if_no_attempts, origin)
	SELECT seq, id, verification_id, message_id, source, provider, provider_ref, level, kind,
		applicant_ref, status, final, reasons, attempts_left, provider_time, provider_event, received_at, outcome,
		version, current_state, final_if_no_attempts, origin FROM observations ORDER BY seq;
DROP TABLE observations;
ALTER TABLE observations_new RENAME TO observations;
CREATE INDEX observations_verification ON observations (verification_id, seq);
