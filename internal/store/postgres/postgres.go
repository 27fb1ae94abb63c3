package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/verihook/verihook/internal/hub"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Advisory lock keys. The two-key form pg_advisory_xact_lock(int, int) is
// used with the schema's hash as the second key, so that verihook
// deployments in different schemas of one database (and parallel tests)
// never wait for each other, and so that the keys stay clear of the
// one-bigint space other applications usually lock in.
const (
	lockMigrate int32 = 0x76686d31 // "vhm1": Open's migrations and key check
	lockPurge   int32 = 0x76687031 // "vhp1": Purge
	lockDedup   int32 = 0x76686431 // "vhd1": Ingest, copies of a message with a dedup window
)

// notifyChannel is the LISTEN/NOTIFY channel on which Ingest announces new
// deliveries. The payload is the schema's name, as one database may hold
// several verihook schemas.
const notifyChannel = "verihook_deliveries"

// maxTxAttempts bounds how often a transaction that PostgreSQL aborted as a
// deadlock victim or for a serialization failure is run again before the
// error goes to the caller (as EUNAVAILABLE: try again later).
const maxTxAttempts = 8

// errClosed is returned by every method after Close.
var errClosed = hub.Errorf(hub.EUNAVAILABLE, "store is closed")

// Store is a hub.Store on a PostgreSQL database, shared by every verihook
// instance that opens it. It is safe for concurrent use.
type Store struct {
	pool         *pgxpool.Pool
	listenConfig *pgx.ConnConfig // for ListenDeliveries' own connection
	own          *backends       // the pool's server processes (see ListenDeliveries)
	cipher       *hub.Cipher
	clock        func() time.Time
	log          *slog.Logger

	closed    atomic.Bool
	done      chan struct{} // closed by Close: ends ListenDeliveries
	closeOnce sync.Once

	// The group commits of Ingest and RecordAttempt (see commit.go).
	ingests  groups[*ingestJob]
	attempts groups[*attemptJob]
	// groups counts the transactions that committed ingests, grouped the
	// ingests they committed, and alone the groups run again each under
	// its savepoint; attemptGroups the transactions that recorded a group
	// of attempts.
	groups, grouped, alone, attemptGroups atomic.Int64

	// purgeChunk and replayChunk, when not 0, replace the package's
	// constants (tests).
	purgeChunk, replayChunk int
}

var _ hub.Store = (*Store)(nil)

// An Option changes how Open sets a Store up.
type Option func(*options)

type options struct {
	maxConns int32
	clock    func() time.Time
	logger   *slog.Logger
}

// WithMaxConns caps the store's connection pool at n connections (the
// default is pgxpool's: the greater of 4 and the number of CPUs, unless the
// URL sets pool_max_conns). ListenDeliveries uses one connection more, of
// its own. Every instance holds its own pool, so the instances together
// must stay below the server's max_connections.
func WithMaxConns(n int32) Option { return func(o *options) { o.maxConns = n } }

// WithClock makes the store read the time from now instead of time.Now. The
// store reads it only for what the caller left unset: generated ids, and
// times given as zero.
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// WithLogger gives the store a logger for what it cannot return to a
// caller: ListenDeliveries' lost connections. The default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Open connects to the PostgreSQL database at databaseURL (a postgres://
// URL or a key=value connection string, as pgx reads them; search_path and
// other run-time parameters may be given as URL parameters), applies every
// embedded migration not applied yet and checks the encryption key (see the
// package documentation). Bodies and secrets are sealed with c, which must
// be the same key for every instance sharing the database: otherwise Open
// fails with an error wrapping hub.ErrKeyMismatch. A database that cannot be
// reached is EUNAVAILABLE.
func Open(ctx context.Context, databaseURL string, c *hub.Cipher, opts ...Option) (*Store, error) {
	if c == nil {
		return nil, errors.New("open postgres: no cipher")
	}
	o := options{clock: time.Now, logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx's parse errors show the URL with its password masked.
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "verihook"
	}
	// pgx prepares every statement, and after five runs PostgreSQL may keep
	// a generic plan for it, costed on the table as it was then: on a new
	// database, a sequential scan of a table of a few rows. That plan stays
	// for the connection's life (until an ANALYZE, which may never come), so
	// every ingest's dedup and verification lookups walked the whole table,
	// slower with every row stored. Planning each run with its values costs
	// little for these statements. A URL that sets plan_cache_mode wins.
	if _, ok := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; !ok {
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	}
	// Ingest's nil means "on disk" (SPEC section 3): with synchronous_commit
	// off, a commit returns before its WAL is flushed, and a server crash
	// could lose acknowledged webhooks. Should the server or the role have
	// it off, the store's sessions turn it back on. Stronger settings
	// (remote_write, remote_apply for synchronous replicas) are left alone.
	own := &backends{}
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `SELECT set_config('synchronous_commit', 'on', false)
			WHERE current_setting('synchronous_commit') = 'off'`)
		if err == nil {
			own.add(conn.PgConn().PID())
		}
		return err
	}
	cfg.BeforeClose = func(conn *pgx.Conn) { own.remove(conn.PgConn().PID()) }
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	s := &Store{
		pool:         pool,
		listenConfig: cfg.ConnConfig.Copy(),
		own:          own,
		cipher:       c,
		clock:        o.clock,
		log:          o.logger,
		done:         make(chan struct{}),
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		if errors.Is(err, hub.ErrKeyMismatch) {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		return nil, fail("open postgres: migrate", err)
	}
	s.warnNoVacuum(ctx)
	s.startCommitters()
	return s, nil
}

// warnNoVacuum logs a warning when the server's autovacuum is off. Each
// delivery is updated twice (its claim, its attempt), and a claim walks the
// due deliveries' index from its oldest entry, the dead ones included,
// until a VACUUM removes them: measured with autovacuum off, a claim on an
// empty queue read 66 pages after 10,000 deliveries (2 after a VACUUM), and
// more with every delivery sent. Whoever turns autovacuum off means to
// vacuum the tables themselves; this tells them which one cannot wait.
func (s *Store) warnNoVacuum(ctx context.Context) {
	var on bool
	if err := s.pool.QueryRow(ctx, `SELECT current_setting('autovacuum')::bool`).Scan(&on); err == nil && !on {
		s.log.Warn("PostgreSQL's autovacuum is off: VACUUM the deliveries table often (every few thousand " +
			"deliveries), or claiming due deliveries slows down with every delivery sent since the last VACUUM")
	}
}

// Close closes the pool, waiting for the connections in use to be given
// back, and ends ListenDeliveries. Every method called after Close is
// EUNAVAILABLE. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.done)
		s.stopCommitters()
		s.pool.Close()
	})
	return nil
}

// Ping reports whether the store can commit a write now: it commits a
// transaction that writes one row, as Ingest's transactions do, so that it
// fails on a database that answers but cannot take writes (a read-only
// standby, a full disk, a role without the privilege), not only on one that
// cannot be reached.
func (s *Store) Ping(ctx context.Context) error {
	return s.inTx(ctx, "ping", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO readiness (id, checked_at) VALUES (1, now())
			ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at`)
		return err
	})
}

// now returns the store's clock reading, as the store keeps times.
func (s *Store) now() time.Time { return ts(s.clock()) }

// migrate applies, in name order, every embedded migration not yet recorded
// in schema_migrations, and checks the key, all in one transaction: a failed
// migration leaves nothing behind (PostgreSQL's DDL is transactional). The
// transaction first takes an advisory lock, so that instances starting at
// once against a fresh database wait for each other instead of racing to
// create the same tables: the first applies the migrations, the others find
// them recorded.
func (s *Store) migrate(ctx context.Context) error {
	names, err := migrationNames()
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var schema *string
		if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			return fmt.Errorf("current schema: %w", err)
		}
		if schema == nil {
			return errors.New("no schema to create tables in: no schema of the search_path exists")
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, lockMigrate); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    text COLLATE "C" NOT NULL PRIMARY KEY,
			applied_at timestamptz NOT NULL
		)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		done, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		for _, name := range names {
			version := strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
			if slices.Contains(done, version) {
				continue
			}
			script, err := migrations.ReadFile(name)
			if err != nil {
				return err
			}
			// Only an upgrade of a database that holds data is worth telling
			// about: a migration may rebuild an index, and start-up waits.
			start := time.Now()
			if len(done) > 0 {
				s.log.Info("upgrading the database: applying a migration (on a large database this can take minutes)", "version", version)
			}
			if _, err := tx.Exec(ctx, string(script)); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())`,
				version); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if len(done) > 0 {
				s.log.Info("applied the migration", "version", version, "took", time.Since(start).Round(time.Millisecond))
			}
		}
		return s.checkKey(ctx, tx)
	})
}

// migrationNames returns the embedded migrations' file names, in the order
// they are applied.
func migrationNames() ([]string, error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	sort.Strings(names)
	return names, err
}

// checkKey makes sure the store is opened with the keys its data was
// written with (hub.Cipher.CheckKeys), and records a new current key.
// Without this an instance started with another key would write data the
// others cannot read, and fail only when it reads a body. It runs under
// migrate's advisory lock, so two first Opens with different keys cannot
// both record theirs.
func (s *Store) checkKey(ctx context.Context, tx pgx.Tx) error {
	var legacy []byte
	err := tx.QueryRow(ctx, `SELECT sealed FROM key_check WHERE id = 1`).Scan(&legacy)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("key check: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT id, "check", added_at FROM encryption_keys ORDER BY added_at, id`)
	if err != nil {
		return fmt.Errorf("key check: %w", err)
	}
	known, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (hub.StoredKey, error) {
		var k hub.StoredKey
		err := row.Scan(&k.ID, &k.Check, &k.AddedAt)
		return k, err
	})
	if err != nil {
		return fmt.Errorf("key check: %w", err)
	}
	add, err := s.cipher.CheckKeys(legacy, known)
	if err != nil || add == nil {
		return err
	}
	if legacy == nil {
		if _, err := tx.Exec(ctx, `INSERT INTO key_check (id, sealed) VALUES (1, $1)`, s.cipher.KeyCheck()); err != nil {
			return fmt.Errorf("key check: %w", err)
		}
	}
	_, err = tx.Exec(ctx, `INSERT INTO encryption_keys (id, "check", added_at) VALUES ($1, $2, now())`, add.ID, add.Check)
	return err
}

// inTx runs fn in a transaction (READ COMMITTED, the server's default) and
// commits it, again if need be (see retry); fn must therefore set its
// results afresh on each run. Errors are wrapped with op and classified
// (see fail).
func (s *Store) inTx(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	if s.closed.Load() {
		return fmt.Errorf("%s: %w", op, errClosed)
	}
	return fail(op, retry(ctx, func() error { return pgx.BeginFunc(ctx, s.pool, fn) }))
}

// retry runs fn, which runs one transaction, and runs it again, up to
// maxTxAttempts times in all, while PostgreSQL aborts the transaction as a
// deadlock victim or for a serialization failure.
func retry(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || attempt == maxTxAttempts || !retryable(err) || ctx.Err() != nil {
			return err
		}
		// A short random pause, so that the transactions that collided do
		// not collide again in lockstep.
		time.Sleep(time.Duration(attempt) * time.Duration(1+rand.IntN(5)) * time.Millisecond)
	}
}

// retryable reports whether err aborted a transaction that may succeed if
// run again: a deadlock or a serialization failure.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// exec runs one statement outside an explicit transaction.
func (s *Store) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if s.closed.Load() {
		return pgconn.CommandTag{}, errClosed
	}
	return s.pool.Exec(ctx, sql, args...)
}

// query runs one query outside an explicit transaction.
func (s *Store) query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	return s.pool.Query(ctx, sql, args...)
}

// lazyCommit makes the transaction it is set in commit without waiting for
// its WAL to be flushed. It is for writes that may be lost in a server
// crash because nothing relies on them being on disk. The WAL is written in
// order, so a durable commit that follows (on any session) makes this one
// durable too.
const lazyCommit = `set_config('synchronous_commit', 'off', true)`

// indexPlan makes the statements of the transaction it is set in planned
// once per connection, a generic plan, with every join a nested loop over
// index lookups, so that the plan never reads a table whole however large
// it grows. It is for statements that touch a few rows found through
// indexes, at a rate where planning them at every run, as the store's
// sessions do (see Open), costs more than running them. A generic plan
// chosen freely would be costed on the tables as they were when the
// connection first ran the statement, on a new database empty, and may
// hash-join whole scans of them; with those methods disabled, no table's
// size changes the plan's shape. A disabled method still costs what it
// must use anyway (say, a scan of a table without a usable index) at 10^10,
// far above jit_above_cost, and the JIT took 1.6 s to compile such a claim:
// jit is off.
const indexPlan = `set_config('plan_cache_mode', 'force_generic_plan', true),
	set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true),
	set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true),
	set_config('jit', 'off', true)`

// queryWith runs one query in a transaction of its own, with settings (a
// list of set_config calls, local to the transaction, such as lazyCommit
// and indexPlan), and hands its rows to read. The session's settings are
// left as they were.
func (s *Store) queryWith(ctx context.Context, settings string, read func(pgx.Rows) error, sql string, args ...any) error {
	if s.closed.Load() {
		return errClosed
	}
	// One pipeline and one Sync: both statements run in one implicit
	// transaction, and set_config's local values end with it.
	b := &pgx.Batch{}
	b.Queue(`SELECT ` + settings)
	b.Queue(sql, args...)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return err
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	if err := read(rows); err != nil {
		return err
	}
	return br.Close()
}

// queryRow runs a query that returns at most one row outside an explicit
// transaction.
func (s *Store) queryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if s.closed.Load() {
		return errRow{errClosed}
	}
	return s.pool.QueryRow(ctx, sql, args...)
}

// errRow is a pgx.Row that fails.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// fail wraps a database error with op and, where the cause is known, with a
// hub.Error (see classify and hub.Wrap).
func fail(op string, err error) error { return hub.Wrap(op, err, classify) }

// classify returns the hub.Error that a database error amounts to, or nil:
// ECONFLICT for a unique violation, EINVALID for other constraint
// violations and bad data, and EUNAVAILABLE for a closed store or pool, a
// database that cannot be reached or is shutting down, out of connections,
// disk or memory, read-only (a standby after a failover), or that kept
// aborting the transaction. A context's own end is left as it is.
func classify(err error) *hub.Error {
	unavailable := hub.Errorf(hub.EUNAVAILABLE, "database unavailable")
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return hub.Errorf(hub.ECONFLICT, "already exists")
		case "23503": // foreign_key_violation
			return hub.Errorf(hub.EINVALID, "refers to something that does not exist")
		case "23502", "23514": // not_null_violation, check_violation
			return hub.Errorf(hub.EINVALID, "invalid value")
		}
		switch pe.Code[:2] {
		case "22": // data exception: out of range, bad encoding ...
			return hub.Errorf(hub.EINVALID, "invalid value")
		case "08", // connection exception
			"25", // invalid transaction state: read_only_sql_transaction on a standby
			"40", // deadlock or serialization failure, after maxTxAttempts
			"53", // insufficient resources: disk full, out of memory, too many connections
			"55", // object not in prerequisite state: lock_not_available
			"57", // operator intervention: shutdown, statement timeout
			"58": // system error: I/O
			return unavailable
		}
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		pgconn.SafeToRetry(err):
		return unavailable
	}
	// pgxpool (puddle) and pgconn do not export these.
	if msg := err.Error(); strings.Contains(msg, "closed pool") || strings.Contains(msg, "conn closed") {
		return unavailable
	}
	return nil
}

// notFound maps pgx.ErrNoRows to an ENOTFOUND hub.Error with message msg,
// and any other error as fail does.
func notFound(op string, err error, msg string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return hub.Errorf(hub.ENOTFOUND, "%s", msg)
	}
	return fail(op, err)
}
