-- A rejection row that counts the requests of its source, reason and minute
-- refused past the budget of rows in full (SPEC section 10), so that a flood
-- of unauthenticated requests costs one row a minute. NULL on every other
-- row.
ALTER TABLE messages ADD COLUMN count INTEGER;
