// Package postgres implements hub.Store on PostgreSQL (13 or later), with
// pgx. It is verihook's scale-out path: any number of `verihook serve`
// instances, behind a load balancer, share one database, and the database is
// all they share. Nothing is cached across transactions and nothing relies
// on one process being the only writer; every rule that the SQLite store
// gets from its single writer, this store gets from PostgreSQL's locks. It is
// held to the same conformance suite as the SQLite store
// (internal/store/storetest).
//
// # Schema and migrations
//
// Migrations are embedded (migrations/*.sql) and applied in name order by
// Open, all in ONE transaction (PostgreSQL's DDL is transactional) that
// first takes an advisory lock, pg_advisory_xact_lock, keyed on the schema.
// Instances that start together against a fresh database queue on the lock:
// the first creates the tables and records each migration in
// schema_migrations, the others find them recorded and apply nothing. The
// `verihook migrate` command is just an Open. The tables live in the
// connection's current schema (the first of search_path that exists), which
// may be set in the URL (…&search_path=verihook).
//
// Times are timestamptz, which keeps microseconds: the store truncates the
// times it is given to the microsecond, so what it returns always equals
// what it reads back. Ids are text in the "C" collation and sort by creation
// time (hub.NewID): lists page on them, newest first, and a cursor is the
// last id of the previous page. Bodies, event data, and source and endpoint
// secrets are bytea sealed with hub.Cipher; previews (already redacted) are
// json. Text from outside that PostgreSQL cannot store (invalid UTF-8, NUL)
// is stored with U+FFFD in its place rather than failing the write.
//
// # The key check
//
// Every instance must seal with the same key, or each would write bodies the
// others cannot read. The first Open stores a value sealed with its key
// (table key_check); every later Open, under the migration lock, must be
// able to open it, and otherwise fails with hub.ErrKeyMismatch ("the
// encryption key does not match the one this database was written with")
// before it writes anything.
//
// # Durability
//
// Ingest returns nil only once its transaction has committed. The store
// keeps synchronous_commit on (its sessions turn it on should the server or
// role have it off), so a commit has reached the server's write-ahead log on
// disk, and a crash of either process afterwards loses nothing that was
// acknowledged. A claim's lease alone is committed without waiting for the
// flush (see ClaimDeliveries): a lease lost in a crash leaves its delivery
// due again, as a crash does to any lease.
//
// # Ingest across instances
//
// Ingests share transactions, as with SQLite's writer (group commit, see
// commitGroup): each of a store's committers takes every Ingest waiting (up
// to maxGroup) into one READ COMMITTED transaction, so that they share one
// commit and one WAL flush. The group runs in waves of ingests that lock no
// verification in common, each wave two round trips however large: a
// pipelined batch that deduplicates and locks, and one that writes (see
// runWave); messages deduplicated while current take a third, which sets
// their keys. Should any statement fail, the group is rolled back and run
// again with a savepoint per Ingest, so that one that fails is rolled back
// alone. Each Ingest takes its locks as it would alone:
//
//   - Dedup: INSERT … ON CONFLICT (source_id, dedup_key) DO NOTHING RETURNING
//     id. A concurrent insert of the same key, uncommitted on another
//     instance, makes this one wait for its outcome; if it commits, this is
//     a duplicate of it, and changes nothing. The same webhook
//     retried to two instances is stored once. Keys that do not last for
//     ever (hub.Dedup) keep this: a message deduplicated while the state it
//     describes is current gets its key (hub.Message.CurrentKey) only after
//     its verifications are locked and its observations applied, so a copy
//     waits for the first and sees it; copies of a message with a window,
//     whose keys differ on either side of an interval's end, first take an
//     advisory lock on the message's key, so that the second sees the first.
//   - A verification still stored under an observation's FormerRef (KYCAID's
//     applicant, before the provider named the verification) is the one
//     locked and observed when none is stored under its ProviderRef; no
//     other is created beside it.
//   - Ordering: each verification the message observes is created if need
//     be (INSERT … ON CONFLICT DO NOTHING, from its first observation) and
//     locked with SELECT … FOR UPDATE, in key order, before hub.PlanIngest
//     applies the observations (hub.Apply) to what was locked;
//     the loser of a creation race waits for the winner and locks its row.
//     So observations of one verification arriving at several instances at
//     once are applied one transaction at a time, each on the state the
//     previous one committed: the end state is that of some serial order,
//     as with SQLite.
//   - Outbox: the message's events and a delivery for each event and each
//     enabled endpoint that Matches it are written in the same transaction;
//     the endpoints are read in it (FOR KEY SHARE), never from a cache.
//   - Wake-up: when it created deliveries, the transaction runs pg_notify on
//     the verihook_deliveries channel, which PostgreSQL delivers at commit
//     to every session LISTENing: see ListenDeliveries, which each instance
//     runs to wake its delivery worker for the deliveries that the others
//     created (its own callers wake it themselves).
//
// A transaction that PostgreSQL aborts as a deadlock victim (rare: locks are
// taken in one order where they can be, but a Replay, or a DeleteEndpoint
// against a RecordAttempt, may cross, and so may two groups of ingests that
// lock the same verifications in opposite orders) is run again whole.
//
// # Claiming deliveries
//
// ClaimDeliveries is one statement that picks each enabled endpoint's
// oldest due, unleased deliveries with FOR UPDATE SKIP LOCKED and leases the
// oldest of them under fresh random tokens. SKIP LOCKED lets every
// instance's worker claim at once without waiting on, or double-claiming,
// what another is claiming. An ordered endpoint's delivery is claimed only
// while no earlier-created delivery of its verification is pending; a lease
// leaves a delivery pending, so the rule holds across claimers on any
// instance (see claimSQL). RecordAttempt (one statement too) and Release
// must present the lease token, so a worker whose lease ran out cannot
// record over the next holder's attempt. Attempts recorded at once share a
// transaction, as ingests do (see commitAttempts), in the order of their
// deliveries' ids. The claim runs at every wake-up, so it is planned once
// per connection, with joins that can only be index lookups (indexPlan).
//
// # Periodic jobs
//
// Purge, which every instance runs periodically, is done by one instance at
// a time: each of its transactions first takes an advisory lock with
// pg_try_advisory_xact_lock, which never waits; an instance that does not
// get it returns at once, having purged nothing, as another is at work.
// (The purge of named events, Purge.Events, takes no lock: it is no
// periodic job, and its caller wants it done now.)
// Advisory locks are keyed on the schema too, so deployments in different
// schemas of one database do not hold each other up.
//
// # Errors
//
// A unique violation is ECONFLICT, other constraint violations and bad data
// EINVALID, "no rows" ENOTFOUND; a database that cannot be reached, is
// shutting down, is read-only or is out of resources is EUNAVAILABLE, as is
// every method after Close.
package postgres
