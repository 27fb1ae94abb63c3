package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/verihook/verihook/internal/hub"
)

//go:embed migrations/*.sql
var migrations embed.FS

// busyTimeout is how long a connection waits for a lock held by another
// connection (another process, such as `verihook token create`, or a
// checkpoint) before giving up with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Store is a hub.Store on one SQLite database file. It is safe for concurrent
// use. Writes go through one writer goroutine that commits them in groups
// (see the package documentation); reads use a pool of read-only
// connections.
type Store struct {
	// Now returns the current time. The store calls it only for what the
	// caller left unset: generated ids, and times the caller gave as zero.
	// Open sets it to time.Now; tests may replace it before the store is
	// first used.
	Now func() time.Time

	cipher *hub.Cipher
	path   string  // the database file, for Backup
	wdb    *sql.DB // the one writer connection, used only by the writer goroutine
	q      *prepared
	rdb    *sql.DB // the read pool
	cdb    *sql.DB // the checkpointer's connection, used only by the checkpointer goroutine
	// pageSize is the database file's, read at Open (see PageSizes).
	pageSize int

	// checkpoint asks the checkpointer goroutine for a checkpoint (see
	// checkpointer); closed once the writer has exited. walPages counts the
	// pages the writer appended to the write-ahead log since it last asked.
	checkpoint     chan struct{}
	checkpointDone chan struct{} // closed when the checkpointer has exited
	walPages       int
	// syncNormal: the writer connection's synchronous level is NORMAL, not
	// FULL (see syncFor). The writer goroutine's.
	syncNormal bool
	// checkpointEvery, when not 0, replaces checkpointPages (tests).
	checkpointEvery int

	// mu guards closed and the sending side of queue: senders hold it for
	// reading while they send, Close holds it for writing to close queue.
	mu     sync.RWMutex
	closed bool
	queue  chan *writeReq
	done   chan struct{} // closed when the writer goroutine has exited

	closeOnce sync.Once
	closeErr  error

	// eps caches the enabled endpoints for the writer goroutine.
	eps endpointCache
	// replayChunk, when not 0, replaces the package's replayChunk (tests).
	replayChunk int
	// hashKey, when not nil, replaces keyHash (tests: collisions). It must
	// be set before the store is first written to.
	hashKey func(source, key string) int64

	// batches and writes count committed transactions and the writes they
	// held, retried the batches run again under savepoints (see commit),
	// and checkpoints the checkpointer's checkpoints that copied pages into
	// the database file, for tests and benchmarks.
	batches, writes, retried, checkpoints atomic.Int64
}

var _ hub.Store = (*Store)(nil)

// Option configures Open.
type Option func(*options)

type options struct{ logger *slog.Logger }

// WithLogger gives the store a logger, for the migrations it applies: one
// that rebuilds an index takes a while on a large database (about 20 s for
// 1 M messages), and the operator should know why start-up waits.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Open opens the SQLite database at path, creating the file (mode 0600) if it
// does not exist, applies any migration it has not applied yet, and starts
// the writer. Bodies and secrets are sealed with c. The directory must exist.
func Open(ctx context.Context, path string, c *hub.Cipher, opts ...Option) (*Store, error) {
	o := options{logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	if c == nil {
		return nil, errors.New("open sqlite: no cipher")
	}
	if pcacheErr != nil {
		o.logger.Warn("SQLite's page cache could not be adjusted: commits on a database under 1 GiB will use more CPU", "err", pcacheErr)
	}
	if path == "" || strings.ContainsRune(path, '?') || strings.HasPrefix(path, "file:") {
		// The driver reads everything after '?' as connection parameters.
		return nil, fmt.Errorf("open sqlite: bad database path %q", path)
	}
	// Create the file ourselves so that it is private: SQLite would create it
	// with the umask's mode, and gives the -wal and -shm files the mode of
	// the database file.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	if err := create(ctx, path, pageSize); err != nil {
		return nil, fail("open sqlite", err)
	}
	// The file's page size, which a database created before keeps: the
	// checkpoints' interval is in bytes of log (see checkpointBytes).
	size, err := PageSize(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}

	// The writer. SQLite allows one writer at a time per database; a second
	// writing connection in this process would only wait on the first's lock
	// (or fail with SQLITE_BUSY) and could not commit in parallel, so every
	// write goes through one connection, owned by the writer goroutine, which
	// lets it batch many writes into one transaction and one fsync.
	//
	//   - journal_mode=WAL: readers do not block the writer nor the writer
	//     readers, and a commit is one sequential append to the -wal file.
	//   - synchronous=FULL: the WAL is fsynced at every commit, so a commit
	//     that returned survives a crash or power loss. (NORMAL, the usual
	//     WAL companion, may lose the last commits on power loss: verihook
	//     acknowledges a webhook only once it is stored, so that is not
	//     acceptable. Group commit pays for the fsync instead.) A batch of
	//     delivery claims alone commits at NORMAL: see syncFor.
	//   - _txlock=immediate: BEGIN takes the write lock at once, so a
	//     transaction never fails half way through when it first writes
	//     because another process took the lock meanwhile.
	//   - foreign_keys: SQLite leaves them off by default.
	//   - temp_store=MEMORY: keeps the statement journal that the
	//     per-request savepoints need in memory; by default SQLite spills
	//     it to a temporary file past 64 KiB, which cost a quarter of the
	//     writer's time in a batch. A batch's journal is a few MiB at most.
	//   - cache_size: see cacheKiB.
	//   - wal_autocheckpoint: a bound, see writerCheckpointPages.
	//   - vfs: see walVFS.
	if err := registerWALVFS(); err != nil {
		return nil, fail("open sqlite", err)
	}
	wdb, err := sql.Open("sqlite", path+"?"+dsn(
		"vfs="+walVFS,
		"_pragma=busy_timeout("+fmt.Sprint(busyTimeout.Milliseconds())+")",
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(FULL)",
		"_pragma=foreign_keys(1)",
		"_pragma=temp_store(MEMORY)",
		"_pragma=cache_size(-"+fmt.Sprint(smallCacheKiB)+")",
		"_pragma=wal_autocheckpoint("+fmt.Sprint(writerCheckpointPages(size))+")",
		"_txlock=immediate",
	))
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)

	if err := migrate(ctx, wdb, path, o.logger); err != nil {
		wdb.Close()
		return nil, fail("migrate "+path, err)
	}
	if err := checkKey(ctx, wdb, c, time.Now()); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := sizeCache(ctx, wdb); err != nil {
		wdb.Close()
		return nil, fail("open sqlite", err)
	}
	q, err := prepare(ctx, wdb)
	if err != nil {
		wdb.Close()
		return nil, fail("open sqlite", err)
	}

	// The read pool: several connections, so that API reads run in parallel
	// with each other and (thanks to WAL) with the writer. query_only makes
	// any attempt to write through them an error, so a write cannot bypass
	// the writer and its ordering.
	readers := max(4, 2*runtime.GOMAXPROCS(0))
	rdb, err := sql.Open("sqlite", path+"?"+dsn(
		"_pragma=busy_timeout("+fmt.Sprint(busyTimeout.Milliseconds())+")",
		"_pragma=foreign_keys(1)",
		"_pragma=query_only(1)",
	))
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	rdb.SetMaxOpenConns(readers)
	rdb.SetMaxIdleConns(readers)
	if err := rdb.PingContext(ctx); err != nil {
		rdb.Close()
		wdb.Close()
		return nil, fail("open sqlite", err)
	}

	// The checkpointer: a connection of its own (see checkpointer), which
	// syncs what it copies as the writer syncs its commits.
	cdb, err := sql.Open("sqlite", path+"?"+dsn(
		"_pragma=busy_timeout("+fmt.Sprint(busyTimeout.Milliseconds())+")",
		"_pragma=synchronous(FULL)",
	))
	if err != nil {
		rdb.Close()
		wdb.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	cdb.SetMaxOpenConns(1)
	cdb.SetMaxIdleConns(1)
	cdb.SetConnMaxLifetime(0)
	cdb.SetConnMaxIdleTime(0)

	s := &Store{
		Now:            time.Now,
		cipher:         c,
		path:           path,
		pageSize:       size,
		wdb:            wdb,
		q:              q,
		rdb:            rdb,
		cdb:            cdb,
		queue:          make(chan *writeReq, maxBatch),
		done:           make(chan struct{}),
		checkpoint:     make(chan struct{}, 1),
		checkpointDone: make(chan struct{}),
	}
	go s.writer()
	go s.checkpointer()
	return s, nil
}

// PageSizes returns the page size of the database file, as Open found it,
// and the one verihook creates files with. When they differ, Rebuild would
// rewrite the file; the store does not say so itself, as only its caller
// knows whether that is news (serve) or what it is about to do (migrate).
func (s *Store) PageSizes() (file, created int) { return s.pageSize, pageSize }

// pageSize is the page size of the database files verihook creates: 512
// bytes, SQLite's smallest, not its 4 KiB. A commit appends every page it
// changed, whole, to the write-ahead log, and a checkpoint later copies it
// into the database file; an Ingest changes a row or two in some thirty
// tables and indexes, most of them on a page of their own (a dedup key or
// a reference lands anywhere in its index, and each index on a
// time-ordered id has its last leaf), so what a commit writes is about
// the pages it changed times the page size. When commits hold a webhook
// or two (100 webhooks/s), 512-byte pages write 0.7 of what 1 KiB pages
// did (and 1 KiB pages half of what 4 KiB ones did): pages half the size,
// a third more of them, as rows and keys fill fewer per page. Flat out,
// where a batch shares its pages among many webhooks, they write 15 % less
// on a new database but 9 % more at 5 M messages, where a checkpoint hands
// the kernel a 4 KiB page for each page of an index with random keys
// whatever SQLite's page size. The price: the writer handles a third more
// pages, some 13 % more CPU a webhook flat out, and the file stores 11-15 %
// more per message, as an event's row (about 300 bytes) fills a page alone
// (BENCHMARKS.md, "Issue 12, fourth pass"). A body longer than a page
// fills whole overflow pages. A database created with another page size
// keeps it until `verihook migrate` rebuilds it (see Rebuild).
const pageSize = 512

// checkpointBytes is how much the writer appends to the write-ahead log
// before the checkpointer copies the log into the database file: 10 MiB
// (20,000 pages of 512 bytes), rather than SQLite's 1,000 pages. A page
// that many commits change (the last leaf of an index on a time-ordered
// id, say) is in the log once per commit but copied once per checkpoint,
// so fewer checkpoints write fewer bytes; the log's size is bounded all the
// same, and a reader finds a page in it through the shared-memory index
// whatever its size. It is in bytes, not pages, so that what a checkpoint
// copies, and how long it takes, does not depend on the file's page size.
const checkpointBytes = 10 << 20

// checkpointPages is checkpointBytes in pages of size bytes.
func checkpointPages(size int) int { return checkpointBytes / size }

// writerCheckpointPages is the writer's own wal_autocheckpoint, in pages
// of size bytes: the bound at which the writer checkpoints inside its
// commit after all, should the checkpointer fall behind (or fail: a
// checkpoint needs the disk space the log's pages take in the database
// file). Under a steady load it is also what starts the log over: the
// checkpointer's checkpoints leave behind the pages appended while they
// copied, so the log grows to this bound and one checkpoint in five runs
// here (at 1,000 webhooks/s, BENCHMARKS.md, "SQLite's writer CPU").
func writerCheckpointPages(size int) int { return 4 * checkpointPages(size) }

// The writer's page cache holds smallCacheKiB while the database is under
// 1 GiB and largeCacheKiB from then on (see cacheKiB).
const (
	smallCacheKiB = 8 << 10
	largeCacheKiB = 64 << 10
)

// cacheKiB returns the size of the writer's page cache for a database of
// pages pages of size bytes. A large cache keeps the pages the writer
// changes at random (dedup keys and references land anywhere in their
// indexes), and the interior pages above them, in memory rather than read
// back one by one: at 500,000 messages 64 MiB read 0.9 pages per webhook
// fewer than 8 MiB. On a database under 1 GiB, 8 MiB reads no more pages
// than 64 MiB and keeps the process at 45 MiB of memory flat out, against
// 137 MiB.
func cacheKiB(pages, size int64) int64 {
	if pages*size < 1<<30 {
		return smallCacheKiB
	}
	return largeCacheKiB
}

// sizeCache sets the writer's cache_size for the database's size (see
// cacheKiB). Open calls it, and the writer each time the database has
// grown by a checkpoint's worth of pages.
func sizeCache(ctx context.Context, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) error {
	var pages, size int64
	if err := db.QueryRowContext(ctx, `SELECT page_count, page_size FROM pragma_page_count(), pragma_page_size()`).
		Scan(&pages, &size); err != nil {
		return err
	}
	_, err := db.ExecContext(ctx, fmt.Sprintf(`PRAGMA cache_size = -%d`, cacheKiB(pages, size)))
	return err
}

// create gives a database file that has no page yet (one Open has just
// created, or one a crash left empty) a page size, Open's pageSize, and WAL
// mode. Both are
// fixed by the first page written, and the writer's connection parameters
// cannot set them first: the driver applies them sorted by name, so
// journal_mode would come before page_size.
func create(ctx context.Context, path string, size int) error {
	if fi, err := os.Stat(path); err != nil || fi.Size() > 0 {
		return err
	}
	db, err := sql.Open("sqlite", path+"?"+dsn("_pragma=busy_timeout("+fmt.Sprint(busyTimeout.Milliseconds())+")"))
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, fmt.Sprintf("PRAGMA page_size = %d; PRAGMA journal_mode = WAL", size))
	return err
}

// dsn joins connection parameters.
func dsn(params ...string) string { return strings.Join(params, "&") }

// Close stops accepting writes, lets the writer finish every write already
// queued, and closes the database. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.queue)
		s.mu.Unlock()
		<-s.done
		close(s.checkpoint)
		<-s.checkpointDone
		errs := []error{s.rdb.Close(), s.cdb.Close()}
		for _, st := range s.q.all() {
			errs = append(errs, st.Close())
		}
		// The last connection to close checkpoints the WAL into the
		// database file and removes it.
		s.closeErr = errors.Join(append(errs, s.wdb.Close())...)
	})
	return s.closeErr
}

// readinessProbeBytes is the size of the row Ping writes: room for a
// typical webhook and the rows it makes, so that Ping fails once an Ingest
// would no longer fit, and cheap enough to write once a second.
const readinessProbeBytes = 64 << 10

// Ping reports whether the store can commit a write now. It hands the writer
// a write that inserts a row of readinessProbeBytes and deletes it again,
// and waits for the batch holding it to commit, so that it fails as an
// Ingest would: when the database cannot grow by that much (disk full,
// SQLITE_FULL), its files cannot be written, the write lock cannot be had,
// or the store is closed (EUNAVAILABLE). A read would succeed in all these
// cases. The pages it frees are reused by the next writes.
func (s *Store) Ping(ctx context.Context) error {
	return s.write(ctx, "ping", func(tx *wtx) error {
		if _, err := tx.exec(`INSERT INTO readiness (pad) VALUES (zeroblob(?))`, readinessProbeBytes); err != nil {
			return err
		}
		_, err := tx.exec(`DELETE FROM readiness`)
		return err
	})
}

// now returns the store's clock reading in UTC, without a monotonic reading.
func (s *Store) now() time.Time { return s.Now().UTC().Round(0) }

// migrate applies, in name order, every embedded migration not yet recorded
// in schema_migrations, each in its own transaction with its record, so that
// a failed migration leaves nothing behind and two processes starting at
// once (BEGIN IMMEDIATE serializes them) apply each migration once. On a
// database that had migrations already, it logs each one it applies, before
// (it may take a while), as it goes (see migrationReportEvery) and after.
func migrate(ctx context.Context, db *sql.DB, path string, log *slog.Logger) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    TEXT    NOT NULL PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	// A new database is created in milliseconds; only an upgrade of one that
	// holds data (a migration may rebuild an index) is worth telling about.
	var applied int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&applied); err != nil {
		return err
	}
	if applied == 0 {
		log = slog.New(slog.DiscardHandler)
	}
	for _, name := range names {
		if err := migrateOne(ctx, db, path, name, log); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// migrationSteps are the parts of migrations that SQL does not do well, by
// version: each runs after its migration's script, in its transaction.
var migrationSteps = map[string]func(context.Context, *sql.Tx) error{
	"0031_dedup_hash": func(ctx context.Context, tx *sql.Tx) error { return fillDedupHash(ctx, tx, dedupFillChunk) },
}

// migrationReportEvery is how often a migration still running says how far
// it is: a table copied or an index built on a large database takes
// minutes (0029 copies the attempts, 5 s per million).
const migrationReportEvery = 5 * time.Second

func migrateOne(ctx context.Context, db *sql.DB, path, name string, log *slog.Logger) error {
	version := strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
	script, err := migrations.ReadFile(name)
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	start := time.Now()
	log.Info("upgrading the database: applying a migration (on a large database this can take minutes)", "version", version)
	stop := reportMigration(path, version, start, log)
	_, err = tx.ExecContext(ctx, string(script))
	if step := migrationSteps[version]; step != nil && err == nil {
		err = step(ctx, tx)
	}
	stop()
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
		version, time.Now().UnixNano()); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	log.Info("applied the migration", "version", version, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// reportMigration logs, every migrationReportEvery until stopped, how much a
// running migration has written: a migration's pages go to the write-ahead
// log until it commits, so the log's size is how far its copies have come.
func reportMigration(path, version string, start time.Time, log *slog.Logger) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(migrationReportEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if fi, err := os.Stat(path + "-wal"); err == nil {
					log.Info("upgrading the database: still applying the migration", "version", version,
						"written_mib", fi.Size()>>20, "elapsed", time.Since(start).Round(time.Second))
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// fail wraps a database error with op and, where the cause is known, with a
// hub.Error (see classify and hub.Wrap).
func fail(op string, err error) error { return hub.Wrap(op, err, classify) }

// classify returns the hub.Error that a database error amounts to, or nil:
// EUNAVAILABLE for a closed store or a database that cannot be read or
// written for now (disk full, I/O error, lock timeout, permissions),
// ECONFLICT and EINVALID for constraint violations caused by the input.
func classify(err error) *hub.Error {
	// database/sql does not export the error of a closed *sql.DB.
	if errors.Is(err, sql.ErrConnDone) || strings.Contains(err.Error(), "sql: database is closed") {
		return hub.Errorf(hub.EUNAVAILABLE, "database unavailable")
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return nil
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return hub.Errorf(hub.ECONFLICT, "already exists")
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return hub.Errorf(hub.EINVALID, "refers to something that does not exist")
	case sqlite3.SQLITE_CONSTRAINT_CHECK, sqlite3.SQLITE_CONSTRAINT_NOTNULL:
		return hub.Errorf(hub.EINVALID, "invalid value")
	}
	switch se.Code() & 0xff { // the primary result code
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_IOERR,
		sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_READONLY,
		sqlite3.SQLITE_PERM:
		return hub.Errorf(hub.EUNAVAILABLE, "database unavailable")
	}
	return nil
}

// notFound maps sql.ErrNoRows to an ENOTFOUND hub.Error with message msg,
// and any other error as fail does.
func notFound(op string, err error, msg string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return hub.Errorf(hub.ENOTFOUND, "%s", msg)
	}
	return fail(op, err)
}

// checkKey makes sure the store is opened with the keys its data was
// written with (hub.Cipher.CheckKeys), and records a new current key.
// Without this a wrong key would only show when a body is first read.
func checkKey(ctx context.Context, db *sql.DB, c *hub.Cipher, now time.Time) error {
	tx, err := db.BeginTx(ctx, nil) // immediate: two first Opens do not both record their key
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var legacy []byte
	if err := tx.QueryRowContext(ctx, `SELECT sealed FROM key_check WHERE id = 1`).Scan(&legacy); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, "check", added_at FROM encryption_keys ORDER BY added_at, id`)
	if err != nil {
		return err
	}
	var known []hub.StoredKey
	for rows.Next() {
		var k hub.StoredKey
		var added int64
		if err := rows.Scan(&k.ID, &k.Check, &added); err != nil {
			rows.Close()
			return err
		}
		k.AddedAt = fromNanos(added)
		known = append(known, k)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	add, err := c.CheckKeys(legacy, known)
	if err != nil || add == nil {
		return err
	}
	if legacy == nil {
		if _, err := tx.ExecContext(ctx, `INSERT INTO key_check (id, sealed) VALUES (1, ?)`, c.KeyCheck()); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO encryption_keys (id, "check", added_at) VALUES (?, ?, ?)`,
		add.ID, add.Check, toNanos(now)); err != nil {
		return err
	}
	return tx.Commit()
}
