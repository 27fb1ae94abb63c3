package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"fmt"

	"modernc.org/sqlite"
)

// Messages are found by their dedup key through an index on a 64-bit hash
// of the source and key, messages_dedup_hash (migration 0031), not through
// an index on the pair itself. The keys are long (a provider's event id, or
// "sha256:" and 64 hex digits of the body) and random: the UNIQUE index on
// (source_id, dedup_key) stored 83 bytes an entry and was the costliest
// B-tree of an ingest, a random leaf dirtied and split often (with 512-byte
// pages, 2.67 pages of the log per webhook flat out and 3.35 at 100
// webhooks/s). An entry of the hash's index is 13 bytes (1.39 and 1.96
// pages).
//
// The hash only narrows the search: every lookup compares source_id and
// dedup_key on the row as well, so two keys under one hash, by chance or made
// on purpose, can never make a message a duplicate of another; a collision
// costs a row read, nothing else. Nor is the index UNIQUE, so the rule "one
// message per source and key" is kept by the writer, whose insert or update
// of a key looks it up first, in the same statement (insertMessageSQL,
// setCurrentKeySQL). Nothing can come between the lookup and the write: in
// this process the writer goroutine is the only one that writes, and runs the
// requests of a batch one after the other (a retried batch runs again from
// its start); its transactions begin IMMEDIATE, holding the write lock from
// BEGIN, so another process's write (token, migrate) waits for the whole
// transaction, and in WAL mode a transaction that holds the write lock reads
// the last commit. A connection elsewhere that read before our commit cannot
// write on what it read: SQLite refuses it the lock (SQLITE_BUSY_SNAPSHOT).

// keyHash returns the hash messages of source stored under key are indexed
// by: the first 8 bytes of the SHA-256 of source, a 0 byte, and key, as a
// big-endian int64. The hash is stored, so it must never change: SHA-256 is
// a fixed standard, in the standard library and hardware-accelerated (0.2 µs
// for a key, against some 150 µs for an Ingest), and any 8 bytes of it are
// uniformly distributed whatever the keys look like, such as keys that
// differ only in their end (a window's slot, "@w…"; the versions of a
// WhileCurrent key, "@v…"). FNV-1a would be as stable and a little faster,
// but a key that collides with a given one is cheap to make for it, and
// takes some 2^64 hashes with SHA-256. A collision costs only a row read
// either way.
func keyHash(source, key string) int64 {
	b := make([]byte, 0, len(source)+1+len(key))
	b = append(append(append(b, source...), 0), key...)
	sum := sha256.Sum256(b)
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// dedupHash returns the dedup_hash stored with a message of source stored
// under key: keyHash, or the store's replacement (tests), or NULL without a
// key.
func (s *Store) dedupHash(source, key string) sql.NullInt64 {
	if key == "" {
		return sql.NullInt64{}
	}
	h := keyHash
	if s.hashKey != nil {
		h = s.hashKey
	}
	return sql.NullInt64{Int64: h(source, key), Valid: true}
}

// dedupHashSQL is keyHash as an SQL function of (source_id, dedup_key), which
// migration 0031 fills dedup_hash with (see fillDedupHash): NULL for a NULL
// key. The arguments must be BLOBs (CAST … AS BLOB): the driver would hand
// TEXT to Go cut at its first 0 byte, a BLOB whole. It is registered with the
// driver once, for every connection the process opens; nothing in the schema
// calls it, so the sqlite3 shell and VACUUM INTO do not need it.
const dedupHashSQL = "verihook_dedup_hash"

func init() {
	sqlite.MustRegisterDeterministicScalarFunction(dedupHashSQL, 2,
		func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
			if args[1] == nil {
				return nil, nil
			}
			source, ok1 := args[0].([]byte)
			key, ok2 := args[1].([]byte)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("%s: want two BLOBs, got %T and %T", dedupHashSQL, args[0], args[1])
			}
			return keyHash(string(source), string(key)), nil
		})
}

// The writer's dedup lookups search the index on the key's hash and compare
// the key on the row (see keyHash). They name the index: without statistics
// the planner chose messages_source for findNearSQL, every message of the
// source.
const (
	// findDuplicateSQL finds the message of source ?2 stored under key ?3,
	// of hash ?1.
	findDuplicateSQL = `SELECT id FROM messages INDEXED BY messages_dedup_hash
		WHERE dedup_hash = ?1 AND source_id = ?2 AND dedup_key = ?3`
	// findNearSQL finds a message of source ?3 stored under key ?4 or ?5,
	// of hashes ?1 and ?2, received between ?6 and ?7.
	findNearSQL = `SELECT id FROM messages INDEXED BY messages_dedup_hash
		WHERE dedup_hash IN (?1, ?2) AND source_id = ?3 AND dedup_key IN (?4, ?5)
		AND received_at > ?6 AND received_at < ?7 LIMIT 1`
	// insertMessageSQL inserts a message unless one of its source ?2 is
	// stored under its key ?10 (of hash ?11) already: one statement, as the
	// UNIQUE index's conflict was, rather than a lookup and an insert.
	insertMessageSQL = `INSERT INTO messages
		(id, source_id, provider, received_at, remote_addr, status, http_status, reason, event_name, dedup_key,
		 dedup_hash, preview, origin)
		SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13
		WHERE ?11 IS NULL OR NOT EXISTS (SELECT 1 FROM messages INDEXED BY messages_dedup_hash
			WHERE dedup_hash = ?11 AND source_id = ?2 AND dedup_key = ?10)`
	// setCurrentKeySQL stores message ?3 of source ?4 under key ?1, of hash
	// ?2, unless another message of the source is stored under it already,
	// which leaves the row as it is.
	setCurrentKeySQL = `UPDATE messages SET dedup_key = ?1, dedup_hash = ?2 WHERE id = ?3
		AND NOT EXISTS (SELECT 1 FROM messages INDEXED BY messages_dedup_hash
			WHERE dedup_hash = ?2 AND source_id = ?4 AND dedup_key = ?1)`
)

// dedupFillChunk is how many messages each UPDATE of fillDedupHash covers.
const dedupFillChunk = 10000

// fillDedupHash is migration 0031's step after its script, which added
// dedup_hash: it gives every message with a key its hash, the messages of
// chunk rowids at a time, and then indexes them (an index built in one go
// is sorted, and packed). One UPDATE of every row would do the same, but
// SQLite keeps a copy of every page an UPDATE changes until the statement
// ends, so as to undo the statement alone should it fail part way (as a
// function call may); the writer keeps that statement journal in memory
// (temp_store), and for the whole table it took 0.55 KB a message, 2.7 GB
// at 5 M. An UPDATE of a chunk keeps only the chunk's pages.
func fillDedupHash(ctx context.Context, tx *sql.Tx, chunk int64) error {
	var first, last sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT min(rowid), max(rowid) FROM messages`).Scan(&first, &last); err != nil {
		return fmt.Errorf("fill dedup_hash: %w", err)
	}
	for from := first.Int64; first.Valid && from <= last.Int64; from += chunk {
		if _, err := tx.ExecContext(ctx, `UPDATE messages SET dedup_hash = `+dedupHashSQL+`(CAST(source_id AS BLOB),
				CAST(dedup_key AS BLOB))
			WHERE rowid >= ? AND rowid < ? AND dedup_key IS NOT NULL`, from, from+chunk); err != nil {
			return fmt.Errorf("fill dedup_hash: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE INDEX messages_dedup_hash ON messages (dedup_hash)
		WHERE dedup_hash IS NOT NULL`); err != nil {
		return fmt.Errorf("index dedup_hash: %w", err)
	}
	return nil
}
