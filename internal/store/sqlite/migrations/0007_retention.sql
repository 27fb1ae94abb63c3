-- Retention (Store.Purge) purges every copy of personal data, not only
-- message bodies: event data is replaced by its redacted form, attempts lose
-- their response excerpts and errors, rejections their remote addresses.
-- Rows stay (statuses, timelines and counts are kept), so rowid is still
-- insertion order.
--
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
