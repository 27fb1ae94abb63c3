// Package sqlite implements hub.Store on one SQLite database file, with
// modernc.org/sqlite (pure Go, no cgo). It is verihook's embedded default and
// is held to the same conformance suite as the PostgreSQL store
// (internal/store/storetest).
//
// # Durability
//
// verihook acknowledges a provider's webhook only after Store.Ingest has
// returned nil, so a nil return must mean "on disk": the database runs in WAL
// mode with synchronous=FULL, which fsyncs the write-ahead log at every
// commit. A process crash or a power loss after Ingest returns loses nothing.
// The one commit that is not synced is a batch of delivery claims alone: a
// power loss can lose its leases, and the deliveries are then due again, as
// when a worker dies between sending and recording (see syncFor).
//
// # One writer, many readers
//
// SQLite serializes writers no matter how many connections try, so the store
// keeps exactly one writing connection and lets one goroutine, the writer,
// own it. Reads use a separate pool of query_only connections; in WAL mode
// they see the last committed state and neither wait for the writer nor hold
// it up. Transactions begin IMMEDIATE, taking the write lock up front, so
// another process using the same file (the token and migrate subcommands)
// makes the writer wait (busy_timeout) instead of failing a transaction half
// way. Deduplication depends on both: no UNIQUE index keeps one message per
// source and key, the insert looks the key up (see keyHash), so a write to
// messages must go through the writer.
//
// # Group commit
//
// An fsync costs about a millisecond on a good disk and far more on a cheap
// one; one per webhook would cap the hub at a few hundred per second. So every
// write (Ingest, RecordRejection, UpsertSource, CreateToken, Purge) is
// sent to the writer as a request and waits. The writer takes the first
// request and everything queued behind it (up to 256), runs them in ONE
// transaction, each under its own SAVEPOINT, commits once, and only then
// answers each caller. A request that fails (a constraint, a bad value) is
// rolled back to its savepoint and gets its own error; the rest of the batch
// commits. If the transaction itself fails, every request in it gets an
// error, and none is acknowledged. While a batch commits, the next one
// queues up, so batches grow with load, and an idle store answers at once.
// Under load, a batch of ingests that would start within a millisecond of
// the end of the last one's commit waits out that millisecond first,
// gathering what arrives, unless it holds 16 already (see commitGap and
// gapBatch): at a thousand webhooks a second that takes a quarter off the
// CPU and the bytes written per webhook, for two milliseconds on the median
// acknowledgement. RecordAttempt, whose caller has sent the delivery
// already, waits a few milliseconds for another write to share its commit
// when it is alone in the queue (see patientWait).
//
// A caller whose context ends while it waits gets the context's error. Its
// request is skipped if the writer has not started it; if the writer has, it
// may commit regardless (a provider that retries is then told "duplicate").
// The transaction itself never runs under a caller's context: a canceled
// statement would make SQLite roll back the whole batch.
//
// The outbox's writes (endpoint changes, ClaimDeliveries, RecordAttempt,
// Release, RetryDelivery, Replay) go through the writer too, so a claim is
// serialized with every other write and two claims can never lease the same
// delivery.
//
// Close stops accepting writes, lets the writer answer everything already
// queued, and closes the database; writes after Close are EUNAVAILABLE.
//
// The write-ahead log is copied back into the database file by a second
// goroutine on a connection of its own, the checkpointer, which the writer
// asks every 10 MiB of log, so that no batch's commit waits for the copy
// (see checkpointer). The writer's connection writes the log through a VFS
// of its own, walVFS: SQLite's, but a commit's frames go to the file a
// 4 KiB page at a time instead of two system calls per frame.
// Every connection caches pages in SQLite's own page cache with one change,
// which spares a commit a walk of the whole cache (see pcacheMethods).
//
// # The outbox
//
// Ingest creates the deliveries of a message's events in the message's own
// transaction, from a cache of the enabled endpoints' filters kept by the
// writer (see endpointCache), so that enqueueing costs one INSERT per
// delivery and no read of the endpoints table. A delivery stays pending
// until an attempt succeeds or its schedule gives up. ClaimDeliveries
// leases due deliveries to a worker under a random token for a while; the
// worker's RecordAttempt or Release must present the token, so a worker that
// overran its lease, whose delivery another worker has claimed since, cannot
// record over the other's attempt (at-least-once delivery, never a lost
// verdict). Ordered endpoints hold back the later deliveries of a
// verification until the earlier ones are done (see claimDueOrderedSQL).
//
// # Schema
//
// Migrations are embedded (migrations/*.sql), applied in name order at Open,
// each in a transaction with its row in schema_migrations, with a step in Go
// after the SQL where SQL alone would not do (migrationSteps). Times are stored
// as INTEGER nanoseconds since the epoch (UTC) and read back exactly; bodies,
// event data, and source and endpoint secrets are BLOBs sealed with
// hub.Cipher. Lists page on ids, which sort by creation time; a cursor is the
// last id of the previous page.
package sqlite
