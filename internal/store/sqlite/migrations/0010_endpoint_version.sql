-- An endpoint's version counts its writes, so that an update can be made
-- conditional on the version its writer read (optimistic concurrency): a
-- PATCH that read the endpoint before verihook disabled it must not write
-- it back enabled. Existing endpoints start at 1, as new ones do.
ALTER TABLE endpoints ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
