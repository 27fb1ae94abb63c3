-- Tokens expire, record when they were last used, and are revoked by
-- setting revoked_at (the row stays, for the audit trail). Times are
-- nanoseconds since the epoch, NULL for none.
ALTER TABLE tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE tokens ADD COLUMN last_used_at INTEGER;
ALTER TABLE tokens ADD COLUMN revoked_at INTEGER;
