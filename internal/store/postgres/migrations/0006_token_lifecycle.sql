-- Tokens expire, record when they were last used, and are revoked by
-- setting revoked_at (the row stays, for the audit trail); NULL for none.
ALTER TABLE tokens
	ADD COLUMN expires_at   timestamptz,
	ADD COLUMN last_used_at timestamptz,
	ADD COLUMN revoked_at   timestamptz;
