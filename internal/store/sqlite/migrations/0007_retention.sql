-- Retention (Store.Purge) purges every copy of personal data, not only
-- message bodies: event data is replaced by its redacted form, attempts lose
-- their response excerpts and errors, rejections their remote addresses.
-- Rows stay (statuses, timelines and counts are kept), so rowid is still
-- insertion order.
--
-- Message bodies live in a table of their own, in the order they were
-- stored, so that the purge deletes them whole, oldest first, and the pages
-- it frees are reused by the bodies that come next. Cleared in place in
-- messages, a body left its page mostly empty: SQLite does not merge pages
-- that an UPDATE shrinks, and new rows go after the old ones, never among
-- them, so that space was never used again and the file grew as if nothing
-- had been purged (TestPurgeBoundsTheFile). Bodies stored before this
-- migration stay in messages.body until they are purged.
--
-- One index serves both the purge, which looks for the bodies received
-- before a time, and a read, which finds a message's body by its
-- received_at and id. message_id has no foreign key: messages are never
-- deleted, and the check would cost every ingest a lookup.
CREATE TABLE message_bodies (
	seq         INTEGER NOT NULL PRIMARY KEY,
	received_at INTEGER NOT NULL,
	message_id  TEXT    NOT NULL,
	body        BLOB    NOT NULL,  -- sealed
	UNIQUE (received_at, message_id)
) STRICT;

-- purged_at is when an event's data was replaced by its redacted form
-- (hub.Event.Redact, still sealed like any event data); NULL until then.
ALTER TABLE events ADD COLUMN purged_at INTEGER;

-- Each purge looks only at the rows it has still to purge, through a partial
-- index that loses a row once it is purged, so that a purge costs what it
-- purges and not the size of the history. The purge's queries repeat each
-- condition, as SQLite uses a partial index only for a query whose WHERE
-- clause contains it. Each index is keyed by a time that grows with
-- insertion, so an insert lands on the index's last page, the one the
-- writer already holds.
CREATE INDEX events_unpurged ON events (created_at) WHERE purged_at IS NULL;
-- OTP codes and session links are purged sooner (hub.OTPEventTypes): a
-- small index, as such events are few.
CREATE INDEX events_otp_unpurged ON events (created_at)
	WHERE purged_at IS NULL AND type IN ('otp.requested', 'session_link.requested');
CREATE INDEX attempts_unpurged ON attempts (at) WHERE response <> '' OR error <> '';
CREATE INDEX messages_rejections_unpurged ON messages (received_at) WHERE status = 'rejected' AND remote_addr <> '';
