-- TLS certificates obtained over ACME and the ACME account key, kept in the
-- database so that every instance serves the certificate one obtained.
-- id is autocert's cache key; data is sealed with the store's cipher, bound
-- to it.
CREATE TABLE cert_cache (
	id         TEXT    PRIMARY KEY,
	data       BLOB    NOT NULL,
	updated_at INTEGER NOT NULL
);
