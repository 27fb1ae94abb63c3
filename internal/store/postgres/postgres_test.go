package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/store/storetest"
)

// The tests need a PostgreSQL server: VERIHOOK_TEST_DATABASE_URL names a
// database in which they may create and drop schemas. Each store a test
// opens gets a fresh schema of its own (several stores of one test may share
// one, as instances share a database), dropped when the test ends.
const enable = "VERIHOOK_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// baseURL returns the test database's URL. Without one the test is skipped,
// except under CI, where that is a failure: CI must never skip these tests
// silently.
func baseURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("VERIHOOK_TEST_DATABASE_URL")
	if u == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("VERIHOOK_TEST_DATABASE_URL is not set, and CI is: the PostgreSQL tests must run in CI (e.g. " + enable + ")")
		}
		t.Skip("PostgreSQL tests skipped: set " + enable + " to run them")
	}
	return u
}

// conns limits the connections the package's tests hold at once, well
// below the server's max_connections (other packages' tests may use the
// same server at the same time). A test reserves what it will use for its
// whole run, so that tests never hold part of what they need.
var conns = budget{free: 40}

type budget struct {
	mu   sync.Mutex
	cond *sync.Cond
	free int
}

// reserve waits until n connections are free and takes them until the test
// ends.
func (b *budget) reserve(t testing.TB, n int) {
	b.mu.Lock()
	if b.cond == nil {
		b.cond = sync.NewCond(&b.mu)
	}
	for b.free < n {
		b.cond.Wait()
	}
	b.free -= n
	b.mu.Unlock()
	t.Cleanup(func() {
		b.mu.Lock()
		b.free += n
		b.cond.Broadcast()
		b.mu.Unlock()
	})
}

// poolSize is the connection pool of each store the tests open.
const poolSize = 4

// admin runs fn on a connection of its own to the test database.
func admin(t testing.TB, fn func(ctx context.Context, c *pgx.Conn) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, baseURL(t))
	if err != nil {
		t.Fatalf("connect to the test database: %v", err)
	}
	defer c.Close(ctx)
	if err := fn(ctx, c); err != nil {
		t.Fatal(err)
	}
}

// newSchema creates a fresh schema, drops it when the test ends, and
// returns its name and a URL whose connections work in it (their
// application_name is the schema's name, for tests that look for them in
// pg_stat_activity).
func newSchema(t testing.TB) (schema, dbURL string) {
	t.Helper()
	base := baseURL(t)
	var b [8]byte
	rand.Read(b[:])
	schema = "vh_test_" + hex.EncodeToString(b[:])
	admin(t, func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "CREATE SCHEMA "+schema)
		return err
	})
	t.Cleanup(func() {
		admin(t, func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			return err
		})
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("VERIHOOK_TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("application_name", schema)
	u.RawQuery = q.Encode()
	return schema, u.String()
}

func newKey(t testing.TB) []byte {
	t.Helper()
	key := make([]byte, hub.KeySize)
	rand.Read(key)
	return key
}

func newCipher(t testing.TB, key []byte) *hub.Cipher {
	t.Helper()
	c, err := hub.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// quiet is a logger for stores whose tests provoke what the store logs.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// openStore opens a store on dbURL with key (a pool of poolSize unless opts
// say otherwise) and closes it when the test ends. The caller reserves its
// connections.
func openStore(t testing.TB, dbURL string, key []byte, opts ...Option) *Store {
	t.Helper()
	opts = append([]Option{WithMaxConns(poolSize), WithLogger(quiet)}, opts...)
	s, err := Open(context.Background(), dbURL, newCipher(t, key), opts...)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openShared opens n stores, each with its own pool as separate instances
// have, on one fresh schema with one key.
func openShared(t testing.TB, n int) []*Store {
	t.Helper()
	conns.reserve(t, n*poolSize)
	_, dbURL := newSchema(t)
	key := newKey(t)
	stores := make([]*Store, n)
	for i := range stores {
		stores[i] = openStore(t, dbURL, key)
	}
	return stores
}

// TestStore runs the conformance suite on a fresh schema per subtest.
func TestStore(t *testing.T) {
	baseURL(t)
	storetest.Run(t, func(t *testing.T) hub.Store {
		conns.reserve(t, poolSize)
		_, dbURL := newSchema(t)
		return openStore(t, dbURL, newKey(t))
	})
}

// TestStoreShared runs the suite's race tests with three stores, as three
// instances, on one schema.
func TestStoreShared(t *testing.T) {
	baseURL(t)
	storetest.RunShared(t, func(t *testing.T) []hub.Store {
		var stores []hub.Store
		for _, s := range openShared(t, 3) {
			stores = append(stores, s)
		}
		return stores
	})
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 123456000, time.UTC)

// testIngest returns an ingest of one message with one observation of ref
// and one otp.requested event.
func testIngest(source, dedup, ref string, body []byte) hub.Ingest {
	m := hub.Message{
		ID: hub.NewID("msg", t0), SourceID: source, Provider: "idenfy", ReceivedAt: t0,
		RemoteAddr: "203.0.113.7:1", Status: hub.MessageAccepted, HTTPStatus: 200, EventName: "AUTO_FINISHED",
		DedupKey: dedup, Body: body, Preview: json.RawMessage(`{"scanRef":"` + ref + `"}`),
	}
	data, _ := json.Marshal(hub.OTPRequested{Channel: "sms", Recipient: "+1555", Text: "code 1", SessionRef: ref})
	return hub.Ingest{
		Message: m,
		Observations: []hub.Observation{{
			VerificationKey: hub.VerificationKey{Source: source, ProviderRef: ref},
			Provider:        "idenfy", Kind: hub.KindKYC, Status: hub.StatusApproved, Final: true,
			ProviderEvent: "AUTO_FINISHED", ReceivedAt: t0, MessageID: m.ID,
		}},
		Events: []hub.Event{{ID: hub.NewID("evt", t0), Type: hub.EventOTPRequested, Source: source,
			Provider: "idenfy", Data: data, MessageID: m.ID}},
	}
}

// testEndpoint returns an enabled endpoint that wants every event.
func testEndpoint(id string) hub.Endpoint {
	return hub.Endpoint{ID: id, URL: "https://crm.example.com/" + id, Secret: hub.NewEndpointSecret(), Enabled: true}
}

// countRows returns the number of rows of table in schema.
func countRows(t *testing.T, schema, table string) int {
	t.Helper()
	var n int
	admin(t, func(ctx context.Context, c *pgx.Conn) error {
		return c.QueryRow(ctx, "SELECT count(*) FROM "+schema+"."+table).Scan(&n)
	})
	return n
}

// TestMigrations: instances starting together on a fresh database all open
// it, the migrations are applied once, and opening again applies nothing.
func TestMigrations(t *testing.T) {
	t.Parallel()
	const n = 4
	conns.reserve(t, (n+1)*poolSize)
	schema, dbURL := newSchema(t)
	key := newKey(t)
	names, err := migrationNames()
	if err != nil || len(names) == 0 {
		t.Fatalf("embedded migrations: %v, %v", names, err)
	}

	var wg sync.WaitGroup
	start := make(chan struct{})
	stores := make([]*Store, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(ctxFor(t), dbURL, newCipher(t, key), WithMaxConns(poolSize))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open #%d of %d racing on a fresh schema = %v", i, n, err)
			continue
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	if t.Failed() {
		t.FailNow()
	}
	if got := countRows(t, schema, "schema_migrations"); got != len(names) {
		t.Errorf("schema_migrations has %d rows, want %d (one per migration)", got, len(names))
	}
	if got := countRows(t, schema, "key_check"); got != 1 {
		t.Errorf("key_check has %d rows, want 1", got)
	}

	// Again, on an up-to-date schema with data in it: nothing changes.
	if _, err := stores[0].Ingest(ctxFor(t), testIngest("src", "k1", "ref-twice", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	appliedAt := func() []time.Time {
		var at []time.Time
		admin(t, func(ctx context.Context, c *pgx.Conn) error {
			rows, err := c.Query(ctx, "SELECT applied_at FROM "+schema+".schema_migrations ORDER BY version")
			if err != nil {
				return err
			}
			at, err = pgx.CollectRows(rows, pgx.RowTo[time.Time])
			return err
		})
		return at
	}
	applied := appliedAt()
	if err := stores[1].migrate(ctxFor(t)); err != nil {
		t.Fatalf("migrate again = %v", err)
	}
	again := openStore(t, dbURL, key)
	if after := appliedAt(); !slices.EqualFunc(applied, after, time.Time.Equal) {
		t.Errorf("schema_migrations changed on a second migration: %v, then %v", applied, after)
	}
	if ms, _, err := again.Messages(ctxFor(t), hub.MessageFilter{}); err != nil || len(ms) != 1 {
		t.Errorf("after reopening: Messages = %d messages, %v; want the 1 stored", len(ms), err)
	}
}

// TestOpenNoSchema: a search_path without an existing schema is a clear
// error, not a half-made database.
func TestOpenNoSchema(t *testing.T) {
	t.Parallel()
	conns.reserve(t, 1)
	u, err := url.Parse(baseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", "vh_test_does_not_exist")
	u.RawQuery = q.Encode()
	_, err = Open(ctxFor(t), u.String(), newCipher(t, newKey(t)), WithMaxConns(1))
	if err == nil || !strings.Contains(err.Error(), "no schema") {
		t.Errorf("Open(search_path naming no schema) = %v, want an error about the schema", err)
	}
}

// TestOpenUnreachable: a server that does not answer is EUNAVAILABLE. It
// needs no database, and runs without one.
func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	_, err := Open(ctxFor(t), "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=5",
		newCipher(t, newKey(t)))
	if hub.ErrorCode(err) != hub.EUNAVAILABLE {
		t.Errorf("Open(nothing listening) = %v (code %q), want %q", err, hub.ErrorCode(err), hub.EUNAVAILABLE)
	}
}

// TestKeyCheck: a database written with one key refuses to open with
// another, and instances racing to open a fresh database with different
// keys cannot both succeed.
func TestKeyCheck(t *testing.T) {
	t.Parallel()
	conns.reserve(t, 2*poolSize)
	_, dbURL := newSchema(t)
	key := newKey(t)
	s := openStore(t, dbURL, key)
	in := testIngest("src", "k1", "ref-twice", []byte(`{"secret":"JANE"}`))
	if _, err := s.Ingest(ctxFor(t), in); err != nil {
		t.Fatal(err)
	}
	s.Close()

	_, err := Open(ctxFor(t), dbURL, newCipher(t, newKey(t)), WithMaxConns(poolSize))
	if !errors.Is(err, hub.ErrKeyMismatch) ||
		!strings.Contains(err.Error(), "the encryption key does not match the one this database was written with") {
		t.Fatalf("Open with another key = %v, want hub.ErrKeyMismatch", err)
	}
	// The right key still opens it, and reads what was written.
	s = openStore(t, dbURL, key)
	if m, err := s.Message(ctxFor(t), in.Message.ID); err != nil || string(m.Body) != string(in.Message.Body) {
		t.Errorf("Message after reopening = %q, %v; want the body", m.Body, err)
	}
	s.Close()

	// Two first Opens with two keys: the first stores its key, the other
	// fails.
	_, fresh := newSchema(t)
	var (
		wg   sync.WaitGroup
		errs [2]error
	)
	start := make(chan struct{})
	for i := range 2 {
		wg.Go(func() {
			<-start
			s, err := Open(ctxFor(t), fresh, newCipher(t, newKey(t)), WithMaxConns(poolSize))
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, hub.ErrKeyMismatch):
			t.Errorf("racing Open = %v, want nil or hub.ErrKeyMismatch", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of 2 Opens of a fresh database with different keys succeeded, want exactly 1 (errors %v)", ok, errs)
	}
}

// TestEncryptionAtRest: no table holds a body, event data (an OTP text), or
// a source or endpoint secret in plaintext, read raw from the database.
func TestEncryptionAtRest(t *testing.T) {
	t.Parallel()
	conns.reserve(t, poolSize)
	schema, dbURL := newSchema(t)
	s := openStore(t, dbURL, newKey(t))
	ctx := ctxFor(t)

	const (
		bodyMark   = "DOCNUMBER-X9Y8Z7"
		otpMark    = "OTP-CODE-424242"
		sourceMark = "SOURCE-SIGNING-KEY-0451"
	)
	ep := testEndpoint("ep")
	ep.PreviousSecret = hub.NewEndpointSecret()
	if err := s.CreateEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertSource(ctx, hub.Source{ID: "src", Provider: "idenfy",
		Secrets: map[string]string{"signing_key": sourceMark}}); err != nil {
		t.Fatal(err)
	}
	in := testIngest("src", "k1", "ref-twice", []byte(`{"docNumber":"`+bodyMark+`"}`))
	in.Events[0].Data, _ = json.Marshal(hub.OTPRequested{Channel: "sms", Recipient: "+1555", Text: otpMark})
	res, err := s.Ingest(ctx, in)
	if err != nil || res.Deliveries != 2 {
		t.Fatalf("Ingest = %d deliveries, %v", res.Deliveries, err)
	}
	// The store itself reads everything back.
	if m, err := s.Message(ctx, in.Message.ID); err != nil || !strings.Contains(string(m.Body), bodyMark) {
		t.Fatalf("Message = %q, %v", m.Body, err)
	}
	if e, err := s.Event(ctx, in.Events[0].ID); err != nil || !strings.Contains(string(e.Data), otpMark) {
		t.Fatalf("Event = %s, %v", e.Data, err)
	}

	marks := map[string]string{"body": bodyMark, "otp text": otpMark, "source secret": sourceMark}
	for _, secret := range []string{ep.Secret, ep.PreviousSecret} {
		key := strings.TrimPrefix(secret, hub.SecretPrefix)
		marks["endpoint secret "+key[:8]] = key
	}
	// Each table's rows as PostgreSQL renders them (bytea as hex), and the
	// raw bytes of every bytea column.
	var text string
	var raw [][]byte
	admin(t, func(ctx context.Context, c *pgx.Conn) error {
		for _, table := range []string{"messages", "events", "sources", "endpoints", "verifications",
			"observations", "deliveries"} {
			var rows *string
			if err := c.QueryRow(ctx, "SELECT string_agg(t::text, E'\\n') FROM "+schema+"."+table+" t").Scan(&rows); err != nil {
				return err
			}
			if rows == nil {
				return fmt.Errorf("table %s is empty", table)
			}
			text += *rows + "\n"
		}
		rows, err := c.Query(ctx, `SELECT body FROM `+schema+`.messages
			UNION ALL SELECT data FROM `+schema+`.events
			UNION ALL SELECT secrets FROM `+schema+`.sources
			UNION ALL SELECT secret FROM `+schema+`.endpoints
			UNION ALL SELECT previous_secret FROM `+schema+`.endpoints`)
		if err != nil {
			return err
		}
		raw, err = pgx.CollectRows(rows, pgx.RowTo[[]byte])
		return err
	})
	if len(raw) != 6 { // a body, two events' data, a source's secrets, two endpoint secrets
		t.Fatalf("%d sealed values, want 6", len(raw))
	}
	for what, mark := range marks {
		if strings.Contains(text, mark) || strings.Contains(text, hex.EncodeToString([]byte(mark))) {
			t.Errorf("the %s is stored in plaintext", what)
		}
		for _, b := range raw {
			if bytes.Contains(b, []byte(mark)) {
				t.Errorf("the %s is stored in plaintext in a bytea column", what)
			}
		}
	}
}

// TestMultiStoreClaimAndRecord: three instances' workers claim and record
// concurrently until the outbox is empty. Every delivery is claimed and
// recorded exactly once, and an ordered endpoint never has two deliveries
// of one verification in flight, even for a moment: each claim is checked
// against the claims not yet recorded, and the attempts of each
// verification are logged in creation order.
func TestMultiStoreClaimAndRecord(t *testing.T) {
	t.Parallel()
	stores := openShared(t, 3)
	ctx := ctxFor(t)
	s := stores[0]
	ord := testEndpoint("ep-ordered")
	ord.Ordered = true
	for _, ep := range []hub.Endpoint{ord, testEndpoint("ep-a"), testEndpoint("ep-b")} {
		if err := s.CreateEndpoint(ctx, ep); err != nil {
			t.Fatal(err)
		}
	}
	const refs, perRef = 8, 6
	statuses := []hub.Status{hub.StatusPending, hub.StatusReview}
	for i := range refs * perRef {
		in := testIngest("src", fmt.Sprint("k", i), fmt.Sprint("ref-", i%refs), nil)
		in.Observations[0].Status, in.Observations[0].Final = statuses[(i/refs)%2], false
		in.Events = nil
		if _, err := stores[i%len(stores)].Ingest(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	want := 3 * refs * perRef

	var (
		mu       sync.Mutex
		inFlight = map[string]string{} // verification -> the ordered delivery held
		claimed  = map[string]int{}
		wg       sync.WaitGroup
		start    = make(chan struct{})
		clock    atomic.Int64
	)
	for w := range 9 {
		s := stores[w%len(stores)]
		wg.Go(func() {
			<-start
			for {
				now := t0.Add(time.Hour + time.Duration(clock.Add(1))*time.Millisecond)
				cs, err := s.ClaimDeliveries(ctx, now, 4, time.Hour)
				if err != nil {
					t.Errorf("ClaimDeliveries = %v", err)
					return
				}
				if len(cs) == 0 {
					return
				}
				mu.Lock()
				for _, c := range cs {
					claimed[c.Delivery.ID]++
					if c.Delivery.EndpointID != ord.ID {
						continue
					}
					if held, ok := inFlight[c.Delivery.VerificationID]; ok {
						t.Errorf("ordered endpoint: %s claimed while %s of the same verification is in flight", c.Delivery.ID, held)
					}
					inFlight[c.Delivery.VerificationID] = c.Delivery.ID
				}
				mu.Unlock()
				for _, c := range cs {
					// Marked done before it is: never a false alarm.
					mu.Lock()
					if c.Delivery.EndpointID == ord.ID {
						delete(inFlight, c.Delivery.VerificationID)
					}
					mu.Unlock()
					err := s.RecordAttempt(ctx, hub.AttemptRecord{DeliveryID: c.Delivery.ID, Lease: c.Lease,
						Status: hub.DeliverySucceeded, Attempt: hub.Attempt{At: now, StatusCode: 204}})
					if err != nil {
						t.Errorf("RecordAttempt = %v", err)
					}
				}
			}
		})
	}
	close(start)
	wg.Wait()

	if len(claimed) != want {
		t.Errorf("%d deliveries claimed, want %d", len(claimed), want)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("delivery %s claimed %d times", id, n)
		}
	}
	if st, err := s.QueueStats(ctx, t0.Add(24*time.Hour)); err != nil || st.Pending != 0 {
		t.Errorf("QueueStats = %+v, %v; want nothing pending", st, err)
	}
	// The ordered endpoint's attempts, in the order they were logged, follow
	// each verification's deliveries in the order they were created.
	rows, err := s.pool.Query(ctx, `SELECT d.verification_id, d.seq FROM attempts a
		JOIN deliveries d ON d.id = a.delivery_id
		WHERE d.endpoint_id = $1 ORDER BY a.seq`, ord.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	last := map[string]int64{}
	n := 0
	for rows.Next() {
		var (
			verif string
			seq   int64
		)
		if err := rows.Scan(&verif, &seq); err != nil {
			t.Fatal(err)
		}
		if seq <= last[verif] {
			t.Errorf("ordered endpoint: delivery #%d of %s attempted after #%d", seq, verif, last[verif])
		}
		last[verif] = seq
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != refs*perRef {
		t.Errorf("%d attempts to the ordered endpoint, want %d", n, refs*perRef)
	}
}

// TestListenDeliveries: an instance listening hears, within moments, that
// another instance created deliveries; after its connection is killed it
// connects again, wakes once more, and keeps hearing; its own deliveries do
// not wake it.
func TestListenDeliveries(t *testing.T) {
	t.Parallel()
	conns.reserve(t, 2*poolSize+1)
	schema, dbURL := newSchema(t)
	key := newKey(t)
	listener, ingester := openStore(t, dbURL, key), openStore(t, dbURL, key)
	ctx := ctxFor(t)
	if err := ingester.CreateEndpoint(ctx, testEndpoint("ep")); err != nil {
		t.Fatal(err)
	}

	wakes := make(chan struct{}, 100)
	lctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- listener.ListenDeliveries(lctx, func() { wakes <- struct{}{} })
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("ListenDeliveries = %v, want nil once its context ends", err)
		}
	})
	await := func(what string) {
		t.Helper()
		select {
		case <-wakes:
		case <-time.After(30 * time.Second):
			t.Fatalf("no wake-up %s within 30s", what)
		}
	}
	drain := func() {
		for {
			select {
			case <-wakes:
			default:
				return
			}
		}
	}
	await("when it starts listening")

	// Another instance ingests a message that creates no delivery, then one
	// that does.
	quarantined := testIngest("src", "q", "ref-q", nil)
	quarantined.Message.Status, quarantined.Observations, quarantined.Events = hub.MessageQuarantined, nil, nil
	if res, err := ingester.Ingest(ctx, quarantined); err != nil || res.Deliveries != 0 {
		t.Fatalf("Ingest(quarantined) = %+v, %v", res, err)
	}
	drain()
	if res, err := ingester.Ingest(ctx, testIngest("src", "k1", "ref-twice", nil)); err != nil || res.Deliveries != 2 {
		t.Fatalf("Ingest = %+v, %v", res, err)
	}
	await("after another instance created deliveries")

	// Kill the listening connection: it comes back.
	admin(t, func(ctx context.Context, c *pgx.Conn) error {
		var n int
		err := c.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1 AND query LIKE 'LISTEN %'`, schema).Scan(&n)
		if err == nil && n != 1 {
			err = fmt.Errorf("terminated %d listening connections, want 1", n)
		}
		return err
	})
	await("after reconnecting")
	drain()
	if res, err := ingester.Ingest(ctx, testIngest("src", "k2", "ref-2", nil)); err != nil || res.Deliveries != 2 {
		t.Fatalf("Ingest = %+v, %v", res, err)
	}
	await("after reconnecting and another ingest")

	// Reprocessing the quarantined message creates deliveries too.
	drain()
	again := testIngest("src", "q", "ref-q", nil)
	again.Message.ID = quarantined.Message.ID
	for i := range again.Observations {
		again.Observations[i].MessageID = again.Message.ID
	}
	for i := range again.Events {
		again.Events[i].MessageID = again.Message.ID
	}
	if res, err := ingester.Reprocess(ctx, again); err != nil || res.Deliveries != 2 {
		t.Fatalf("Reprocess = %+v, %v", res, err)
	}
	await("after another instance reprocessed a message")

	// Its own deliveries wake nothing: its callers wake their workers
	// themselves. Notifications arrive in commit order, so its own two have
	// come (and would have woken it) before the other instance's one.
	drain()
	for _, k := range []string{"own1", "own2"} {
		if res, err := listener.Ingest(ctx, testIngest("src", k, "ref-"+k, nil)); err != nil || res.Deliveries != 2 {
			t.Fatalf("Ingest(%s) = %+v, %v", k, res, err)
		}
	}
	if res, err := ingester.Ingest(ctx, testIngest("src", "k3", "ref-3", nil)); err != nil || res.Deliveries != 2 {
		t.Fatalf("Ingest = %+v, %v", res, err)
	}
	await("after another instance created deliveries")
	select {
	case <-wakes:
		t.Error("woken by its own deliveries")
	default:
	}

	// Closing the store ends it.
	listener.Close()
	select {
	case err := <-done:
		done <- err
	case <-time.After(30 * time.Second):
		t.Fatal("ListenDeliveries still runs after Close")
	}
}

// TestPurgeExclusive: while one instance purges (holds the purge lock), the
// others' Purge returns at once having done nothing, except for the events it
// names, which are purged whoever holds the lock; afterwards one purges
// everything, chunk by chunk.
func TestPurgeExclusive(t *testing.T) {
	t.Parallel()
	conns.reserve(t, poolSize+1)
	schema, dbURL := newSchema(t)
	s := openStore(t, dbURL, newKey(t))
	s.purgeChunk = 2
	ctx := ctxFor(t)
	var events []string
	for i := range 5 {
		res, err := s.Ingest(ctx, testIngest("src", fmt.Sprint("k", i), fmt.Sprint("ref-", i), []byte(`{"x":1}`)))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range res.Events {
			events = append(events, e.ID)
		}
	}
	before := t0.Add(time.Hour)

	// Another instance holds the lock, as it would while it purges.
	holder, err := pgx.Connect(ctx, baseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockPurge, schema); err != nil {
		t.Fatal(err)
	}
	res, err := s.Purge(ctx, hub.Purge{Before: before, OTPBefore: before, Events: events[:1]})
	if err != nil || res != (hub.PurgeResult{Events: 1}) {
		t.Errorf("Purge while another instance purges = %+v, %v; want the one named event, nil", res, err)
	}
	if got := countBodies(t, schema); got != 5 {
		t.Errorf("%d bodies left, want 5: nothing purged", got)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	want := hub.PurgeResult{Bodies: 5, Events: len(events) - 1}
	if res, err := s.Purge(ctx, hub.Purge{Before: before}); err != nil || res != want {
		t.Errorf("Purge once the lock is free = %+v, %v; want %+v, nil", res, err, want)
	}
	if got := countBodies(t, schema); got != 0 {
		t.Errorf("%d bodies left, want 0", got)
	}
}

func countBodies(t *testing.T, schema string) int {
	t.Helper()
	var n int
	admin(t, func(ctx context.Context, c *pgx.Conn) error {
		return c.QueryRow(ctx, "SELECT count(body) FROM "+schema+".messages").Scan(&n)
	})
	return n
}

// TestReplayChunks: Replay walks its range chunk by chunk (here 3 events a
// chunk), events created at the same instant included, and misses none.
func TestReplayChunks(t *testing.T) {
	t.Parallel()
	conns.reserve(t, poolSize)
	_, dbURL := newSchema(t)
	s := openStore(t, dbURL, newKey(t))
	s.replayChunk = 3
	ctx := ctxFor(t)
	if err := s.CreateEndpoint(ctx, testEndpoint("ep")); err != nil {
		t.Fatal(err)
	}
	const messages = 7 // two events each, all created at t0
	for i := range messages {
		if _, err := s.Ingest(ctx, testIngest("src", fmt.Sprint("k", i), fmt.Sprint("ref-", i), nil)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Replay(ctx, hub.Replay{EndpointID: "ep", Now: t0.Add(time.Hour)}); err != nil || n != 2*messages {
		t.Errorf("Replay(everything) = %d, %v; want %d", n, err, 2*messages)
	}
	late := testEndpoint("ep-late")
	if err := s.CreateEndpoint(ctx, late); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Replay(ctx, hub.Replay{EndpointID: late.ID, Since: t0, Now: t0.Add(time.Hour)}); err != nil || n != 2*messages {
		t.Errorf("Replay(a new endpoint) = %d, %v; want %d created", n, err, 2*messages)
	}
	ds, _, err := s.Deliveries(ctx, hub.DeliveryFilter{EndpointID: late.ID, Page: hub.Page{Limit: 100}})
	if err != nil || len(ds) != 2*messages {
		t.Errorf("Deliveries(new endpoint) = %d, %v; want %d", len(ds), err, 2*messages)
	}
	// Until is exclusive, to the nanosecond.
	if n, err := s.Replay(ctx, hub.Replay{EndpointID: "ep", Until: t0, Now: t0.Add(time.Hour)}); err != nil || n != 0 {
		t.Errorf("Replay(until the events' instant) = %d, %v; want 0", n, err)
	}
	if n, err := s.Replay(ctx, hub.Replay{EndpointID: "ep", Until: t0.Add(time.Nanosecond), Now: t0.Add(time.Hour)}); err != nil || n != 2*messages {
		t.Errorf("Replay(until a nanosecond after) = %d, %v; want %d", n, err, 2*messages)
	}
}

// TestOddText: text that PostgreSQL cannot store (NUL, invalid UTF-8), from
// a provider, a rejected request or an endpoint's response, is stored with
// U+FFFD instead of failing the write.
func TestOddText(t *testing.T) {
	t.Parallel()
	conns.reserve(t, poolSize)
	_, dbURL := newSchema(t)
	s := openStore(t, dbURL, newKey(t))
	ctx := ctxFor(t)
	if err := s.CreateEndpoint(ctx, testEndpoint("ep")); err != nil {
		t.Fatal(err)
	}
	rej := hub.Message{SourceID: "bad\x00source\xff", RemoteAddr: "1.2.3.4:5", HTTPStatus: 404, Reason: "unknown source"}
	if err := s.RecordRejection(ctx, rej); err != nil {
		t.Errorf("RecordRejection(odd source id) = %v", err)
	}
	in := testIngest("src", "key\x00", "ref\xff", nil)
	in.Message.EventName = "EVENT\x00"
	in.Message.Preview = json.RawMessage("{\"name\":\"\\u0000 and \xff\"}")
	in.Observations[0].Reasons = []string{"TAG\x00"}
	res, err := s.Ingest(ctx, in)
	if err != nil {
		t.Fatalf("Ingest(odd text) = %v", err)
	}
	m, err := s.Message(ctx, res.MessageID)
	if err != nil || m.EventName != "EVENT\uFFFD" || !json.Valid(m.Preview) {
		t.Errorf("Message = event name %q, preview %s, %v", m.EventName, m.Preview, err)
	}
	cs, err := s.ClaimDeliveries(ctx, t0, 10, time.Minute)
	if err != nil || len(cs) != 2 {
		t.Fatalf("ClaimDeliveries = %d, %v", len(cs), err)
	}
	err = s.RecordAttempt(ctx, hub.AttemptRecord{DeliveryID: cs[0].Delivery.ID, Lease: cs[0].Lease,
		Status: hub.DeliveryFailed, Attempt: hub.Attempt{At: t0, StatusCode: 500, Response: "oops\x00\xfe", Error: "HTTP 500"}})
	if err != nil {
		t.Errorf("RecordAttempt(odd response) = %v", err)
	}
	if d, err := s.Delivery(ctx, cs[0].Delivery.ID); err != nil || len(d.AttemptLog) != 1 || d.AttemptLog[0].Response != "oops\uFFFD\uFFFD" {
		t.Errorf("Delivery = %+v, %v", d.AttemptLog, err)
	}
}

// TestSynchronousCommit: the store's sessions commit durably even where the
// server or role turned synchronous_commit off.
func TestSynchronousCommit(t *testing.T) {
	t.Parallel()
	conns.reserve(t, 1)
	_, dbURL := newSchema(t)
	u, _ := url.Parse(dbURL)
	q := u.Query()
	q.Set("synchronous_commit", "off") // as a server default would
	u.RawQuery = q.Encode()
	s := openStore(t, u.String(), newKey(t), WithMaxConns(1))
	var got string
	if err := s.pool.QueryRow(ctxFor(t), "SHOW synchronous_commit").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "on" {
		t.Errorf("synchronous_commit = %s, want on", got)
	}
}

// TestQueryLazy: with lazyCommit, queryWith's statement runs with
// synchronous_commit off, in
// a transaction that commits (its write is there afterwards), and the
// session's setting is on again for the next statement, also after a
// statement that failed.
func TestQueryLazy(t *testing.T) {
	t.Parallel()
	conns.reserve(t, 1)
	_, dbURL := newSchema(t)
	s := openStore(t, dbURL, newKey(t), WithMaxConns(1)) // one session: the next statement sees what it kept
	ctx := ctxFor(t)
	show := func() string {
		t.Helper()
		var got string
		if err := s.pool.QueryRow(ctx, "SHOW synchronous_commit").Scan(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	var inside []string
	err := s.queryWith(ctx, lazyCommit, func(rows pgx.Rows) error {
		var err error
		inside, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	}, `INSERT INTO audit_log (id, at, token_id, token_name, method, route, target, status)
		VALUES ('aud_lazy', now(), '', '', 'POST', '/lazy', '', 200)
		RETURNING current_setting('synchronous_commit')`)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"off"}; !slices.Equal(inside, want) {
		t.Errorf("synchronous_commit in queryWith's statement = %v, want %v", inside, want)
	}
	if got := show(); got != "on" {
		t.Errorf("synchronous_commit after queryWith = %s, want on", got)
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE id = 'aud_lazy'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("rows written by queryWith's statement = %d, want 1 (committed)", n)
	}
	err = s.queryWith(ctx, lazyCommit, func(rows pgx.Rows) error { rows.Close(); return rows.Err() }, `SELECT 1 / 0`)
	if err == nil {
		t.Error("queryWith of a failing statement returned nil")
	}
	if got := show(); got != "on" {
		t.Errorf("synchronous_commit after a failed queryWith = %s, want on", got)
	}
}

// TestPlanCacheMode: the store's sessions plan every statement with its
// values (so that no plan made on a near-empty table is kept, see Open),
// unless the URL says otherwise.
func TestPlanCacheMode(t *testing.T) {
	t.Parallel()
	conns.reserve(t, 2)
	_, dbURL := newSchema(t)
	u, _ := url.Parse(dbURL)
	q := u.Query()
	q.Set("plan_cache_mode", "auto")
	u.RawQuery = q.Encode()
	key := newKey(t)
	for _, c := range []struct{ url, want string }{{dbURL, "force_custom_plan"}, {u.String(), "auto"}} {
		s := openStore(t, c.url, key, WithMaxConns(1))
		var got string
		if err := s.pool.QueryRow(ctxFor(t), "SHOW plan_cache_mode").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("plan_cache_mode = %s, want %s", got, c.want)
		}
	}
}

// BenchmarkIngestParallel measures many concurrent callers (32 per CPU, as
// an HTTP server under load has) on one store: each Ingest a message with
// one observation and an otp.requested event.
func BenchmarkIngestParallel(b *testing.B) { benchIngestParallel(b, 0) }

// BenchmarkIngestParallelEndpoints is BenchmarkIngestParallel with two
// endpoints that want every event: each Ingest also creates four
// deliveries.
func BenchmarkIngestParallelEndpoints(b *testing.B) { benchIngestParallel(b, 2) }

func benchIngestParallel(b *testing.B, endpoints int) {
	_, dbURL := newSchema(b)
	conns := int32(16)
	if v := os.Getenv("BENCH_CONNS"); v != "" {
		fmt.Sscan(v, &conns)
	}
	s := openStore(b, dbURL, newKey(b), WithMaxConns(conns))
	ctx := context.Background()
	for i := range endpoints {
		if err := s.CreateEndpoint(ctx, testEndpoint(fmt.Sprint("ep-", i))); err != nil {
			b.Fatal(err)
		}
	}
	body := bytes.Repeat([]byte(`{"field":"some value of a KYC payload"},`), 40)
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			if _, err := s.Ingest(ctx, testIngest("src", fmt.Sprint("k", i), fmt.Sprint("scan-", i), body)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ingests/s")
	if n := s.groups.Load(); n > 0 {
		b.ReportMetric(float64(s.grouped.Load())/float64(n), "ingests/commit")
	}
}

// TestListPlans: a list filtered on a rare value searches the partial index
// that holds the rare values (migration 0003), one filtered on the common
// value walks the primary key backwards, and the writer's lookup of a
// verification uses the key led by provider_ref. On empty tables the
// planner's choice says little, so sequential scans, bitmap scans and sorts
// are turned off: what is checked is that a plan of that shape exists, one
// that walks the right index in order.
func TestListPlans(t *testing.T) {
	baseURL(t)
	conns.reserve(t, poolSize)
	_, dbURL := newSchema(t)
	s := openStore(t, dbURL, newKey(t))
	ctx := ctxFor(t)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, set := range []string{`SET enable_seqscan = off`, `SET enable_bitmapscan = off`, `SET enable_sort = off`,
		// As a statement prepared long ago (pgx caches them) is planned:
		// without the values, so a partial index must be implied by the
		// query's own text.
		`SET plan_cache_mode = force_generic_plan`} {
		if _, err := conn.Exec(ctx, set); err != nil {
			t.Fatal(err)
		}
	}
	type plan struct {
		name, want string
		sql        string
		args       []any
	}
	var plans []plan
	add := func(name, want, sql string, args []any) { plans = append(plans, plan{name, want, sql, args}) }
	q, args := messagesSQL(hub.MessageFilter{Status: hub.MessageRejected}, "msg_z", 50)
	add("messages, rejected", "messages_unaccepted", q, args)
	q, args = messagesSQL(hub.MessageFilter{Status: hub.MessageAccepted}, "msg_z", 50)
	add("messages, accepted", "Index Scan Backward using messages_pkey", q, args)
	q, args = eventsSQL(hub.EventFilter{Type: hub.EventOTPRequested}, "evt_z", 50)
	add("events, otp.requested", "events_uncommon", q, args)
	q, args = eventsSQL(hub.EventFilter{Type: hub.EventVerificationUpdated}, "evt_z", 50)
	add("events, verification.updated", "Index Scan Backward using events_pkey", q, args)
	q, args = verificationsSQL(hub.VerificationFilter{Level: "nomatch"}, "vrf_z", 50)
	add("verifications, level", "Index Scan Backward using verifications_level", q, args)
	q, args = verificationsSQL(hub.VerificationFilter{Provider: "fractal"}, "vrf_z", 50)
	add("verifications, provider", "Index Scan Backward using verifications_provider", q, args)
	add("verification lookup", "verifications_key",
		`SELECT id FROM verifications WHERE source = $1 AND provider_ref = $2 AND level = $3`, []any{"s", "r", ""})
	for i, p := range plans {
		name := fmt.Sprint("plan", i)
		if _, err := conn.Exec(ctx, "PREPARE "+name+" AS "+p.sql); err != nil {
			t.Fatal(err)
		}
		// EXECUTE takes its arguments as SQL: quote the strings.
		params := make([]string, len(p.args))
		for j, a := range p.args {
			params[j] = fmt.Sprint(a)
			if str, ok := a.(string); ok {
				params[j] = "'" + strings.ReplaceAll(str, "'", "''") + "'"
			}
		}
		rows, err := conn.Query(ctx, "EXPLAIN EXECUTE "+name+"("+strings.Join(params, ", ")+")")
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if all := strings.Join(lines, "; "); !strings.Contains(all, p.want) || strings.Contains(all, "Sort") {
			t.Errorf("%s: plan = %s; want %s without a sort", p.name, all, p.want)
		}
	}
}

// TestWarnNoVacuum: Open warns when the server's autovacuum is off, and
// only then.
func TestWarnNoVacuum(t *testing.T) {
	t.Parallel()
	conns.reserve(t, 1)
	_, dbURL := newSchema(t)
	var log bytes.Buffer
	s := openStore(t, dbURL, newKey(t), WithMaxConns(1), WithLogger(slog.New(slog.NewTextHandler(&log, nil))))
	var setting string
	if err := s.pool.QueryRow(ctxFor(t), `SHOW autovacuum`).Scan(&setting); err != nil {
		t.Fatal(err)
	}
	if warned := strings.Contains(log.String(), "autovacuum is off"); warned != (setting == "off") {
		t.Errorf("autovacuum = %s, warned = %v; log:\n%s", setting, warned, log.String())
	}
}

// TestClaimPlan: the claims' plans, made once per connection and perhaps
// on a new database's empty tables, join by index lookups whatever the
// tables hold then (a hash join there reads deliveries and events whole at
// every claim), and are not compiled by the JIT (see indexPlan). The
// delivery claim's ordered check stays one probe of deliveries_ordered with
// an ordered endpoint's backlog, never analyzed and analyzed: on 50,000
// pending deliveries never analyzed, the NOT EXISTS of earlier pending
// deliveries by endpoint, verification and seq was planned on
// deliveries_due, a walk of the endpoint's whole backlog per candidate.
func TestClaimPlan(t *testing.T) {
	t.Parallel()
	conns.reserve(t, 1)
	_, dbURL := newSchema(t)
	s := openStore(t, dbURL, newKey(t), WithMaxConns(1))
	for name, sql := range map[string]string{"deliveries": claimSQL, "dispatches": claimDispatchesSQL} {
		t.Run(name, func(t *testing.T) { checkClaimPlan(t, s, name, sql) })
	}

	// An ordered endpoint that was down: the first delivery of each of
	// 3,000 verifications waits for its retry, the 47,000 after them are due.
	ctx := ctxFor(t)
	if _, err := s.pool.Exec(ctx, `
		INSERT INTO endpoints (id, url, secret, event_types, sources, enabled, ordered, created_at, updated_at)
		VALUES ('ep', 'http://127.0.0.1', '\x00', '{}', '{}', true, true, now(), now());
		INSERT INTO deliveries (id, endpoint_id, event_id, event_type, source, verification_id, status, attempts,
			next_attempt_at, created_at, updated_at)
		SELECT 'dlv_' || i, 'ep', 'evt_' || i, 't', 's', 'ver_' || i % 3000, 'pending', 0,
			now() - interval '1 hour' + i * interval '1 ms', now(), now()
		FROM generate_series(1, 50000) AS i;
		UPDATE deliveries SET attempts = 1, next_attempt_at = now() + interval '10 minutes' WHERE seq <= 3000`); err != nil {
		t.Fatal(err)
	}
	for _, stage := range []string{"backlog", "analyzed"} {
		if stage == "analyzed" {
			if _, err := s.pool.Exec(ctx, "ANALYZE deliveries"); err != nil {
				t.Fatal(err)
			}
		}
		// The ordered check is the claim's one subplan: its first scan.
		plan := checkClaimPlan(t, s, "deliveries_"+stage, claimSQL)
		_, sub, _ := strings.Cut(plan, "SubPlan")
		_, scan, _ := strings.Cut(sub, " using ")
		if !strings.HasPrefix(scan, "deliveries_ordered ") {
			t.Errorf("the claim of deliveries, %s: the ordered check is not a probe of deliveries_ordered:\n%s", stage, plan)
		}
	}
}

// TestDedupKeyPlan: the update that gives a message its dedup key, planned
// once per connection, perhaps on a new database's empty tables, looks for
// a holder of the key with one probe of messages_dedup, not a walk of the
// source's messages through messages_source (the plan that "a message of
// this source with this key" got there).
func TestDedupKeyPlan(t *testing.T) {
	t.Parallel()
	conns.reserve(t, 1)
	_, dbURL := newSchema(t)
	s := openStore(t, dbURL, newKey(t), WithMaxConns(1))
	plan := explainPrepared(t, s, planOnce, setDedupKeySQL, "'key', 'msg_1', 'src'")
	if !strings.Contains(plan, "using messages_dedup") || strings.Contains(plan, "messages_source") ||
		strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "Sort") {
		t.Errorf("setting a dedup key: the key's holder is not one probe of messages_dedup:\n%s", plan)
	}
}

// TestVerificationLockPlan: the verification locks, planned once per
// connection, perhaps on a new database's empty tables, search
// verifications_key even when verifications_source is the newer index (as
// on a schema restored by pg_dump), where the planner took
// verifications_source, a walk of the source's verifications, for the
// equalities alone.
func TestVerificationLockPlan(t *testing.T) {
	t.Parallel()
	conns.reserve(t, 1)
	_, dbURL := newSchema(t)
	s := openStore(t, dbURL, newKey(t), WithMaxConns(1))
	if _, err := s.pool.Exec(ctxFor(t), `DROP INDEX verifications_source;
		CREATE INDEX verifications_source ON verifications (source, id)`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, sql, args string }{
		{"the verification lock", lockVerificationSQL, "'ref', 'src', ''"},
		{"the lock under a former reference", lockFormerVerificationSQL, "'src', 'ref', '', 'former'"},
	} {
		plan := explainPrepared(t, s, planOnce, c.sql, c.args)
		if strings.Count(plan, "using verifications_key") != strings.Count(c.sql, "FROM verifications") ||
			strings.Contains(plan, "verifications_source") {
			t.Errorf("%s does not search verifications_key alone:\n%s", c.name, plan)
		}
	}
}

// explainPrepared returns the plan of sql, prepared in a transaction after
// the statement settings, and executed with args (SQL).
func explainPrepared(t *testing.T, s *Store, settings, sql, args string) string {
	t.Helper()
	ctx := ctxFor(t)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) // the connection goes back to the pool, which Close waits for
	for _, q := range []string{settings, "PREPARE explained AS " + sql} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := tx.Query(ctx, "EXPLAIN EXECUTE explained("+args+")")
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	// A prepared statement outlives the transaction.
	if _, err := tx.Exec(ctx, "DEALLOCATE explained"); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// checkClaimPlan checks the generic plan of the claim sql and returns it.
func checkClaimPlan(t *testing.T, s *Store, name, sql string) string {
	plan := explainPrepared(t, s, "SELECT "+indexPlan, sql, "now(), now() + interval '1 minute', 16")
	for _, bad := range []string{"Seq Scan on deliveries", "Seq Scan on events", "Seq Scan on dispatches",
		"Hash", "Merge", "Bitmap", "JIT"} {
		if strings.Contains(plan, bad) {
			t.Errorf("the claim of %s: the plan has %q:\n%s", name, bad, plan)
		}
	}
	return plan
}

// TestGroupCommit: ingests that wait while the committers are held up share
// one transaction when they go, and each keeps its own outcome: one that
// fails fails alone, a duplicate of a stored message and a copy within the
// group are reported as duplicates, and two updates of one verification in
// the group are both applied, each on the state the other left.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	s := openShared(t, 1)[0]
	schema := s.pool.Config().ConnConfig.RuntimeParams["search_path"]
	ctx := ctxFor(t)
	body := []byte(`{"k":"v"}`)
	conns.reserve(t, 1) // heldUp's

	stored := testIngest("src", "stored", "ref-stored", body)
	pending := testIngest("src", "pending", "ref-twice", body)
	pending.Observations[0].Status, pending.Observations[0].Final = hub.StatusPending, false
	for _, in := range []hub.Ingest{stored, pending} {
		if _, err := s.Ingest(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	goods := func(prefix string, n int) []hub.Ingest {
		var ins []hub.Ingest
		for i := range n {
			ins = append(ins, testIngest("src", fmt.Sprint(prefix, i), fmt.Sprint(prefix, "ref-", i), body))
		}
		return ins
	}

	bad := testIngest("src", "bad", "ref-bad", body)
	bad.Events[0].ID = stored.Events[0].ID // an event id stored already: ECONFLICT
	dupStored := testIngest("src", "stored", "ref-stored", body)
	copy1 := testIngest("src", "copy", "ref-copy", body)
	copy2 := testIngest("src", "copy", "ref-copy", body)
	ins := append(goods("a", 20), bad, dupStored, copy1, copy2)
	const iBad, iDupStored, iCopy1, iCopy2 = 20, 21, 22, 23
	groups0 := s.groups.Load()
	res, errs := heldUp(t, s, schema, ins)
	for i := range ins {
		switch i {
		case iBad:
			if hub.ErrorCode(errs[i]) != hub.ECONFLICT {
				t.Errorf("Ingest(event id stored already) = %v, want ECONFLICT", errs[i])
			}
			if _, err := s.Message(ctx, bad.Message.ID); hub.ErrorCode(err) != hub.ENOTFOUND {
				t.Errorf("the failed ingest's message: %v, want ENOTFOUND", err)
			}
		case iDupStored:
			if errs[i] != nil || !res[i].Duplicate || res[i].MessageID != stored.Message.ID {
				t.Errorf("copy of a stored message: %+v, %v; want a duplicate of %s", res[i], errs[i], stored.Message.ID)
			}
		default:
			if errs[i] != nil {
				t.Errorf("ingest %d: %v", i, errs[i])
			}
		}
	}
	if res[iCopy1].Duplicate == res[iCopy2].Duplicate {
		t.Errorf("two copies in one group: duplicate %v and %v, want one of them", res[iCopy1].Duplicate, res[iCopy2].Duplicate)
	}
	// The two held up, then the rest together (run again, each under its
	// savepoint, for the failure).
	if n := s.groups.Load() - groups0; n > 4 {
		t.Errorf("%d ingests committed in %d transactions, want at most 4", len(ins), n)
	}
	if s.alone.Load() != 1 {
		t.Errorf("%d groups run again under savepoints, want 1 (the failed ingest's)", s.alone.Load())
	}
	if n := countRows(t, schema, "messages"); n != 2+20+1 {
		t.Errorf("%d messages stored, want 23", n)
	}

	// Two updates of one verification in a group, which apply in either
	// order (neither final, no provider times).
	first := testIngest("src", "first", "ref-twice", body)
	second := testIngest("src", "second", "ref-twice", body)
	first.Observations[0].Status, first.Observations[0].Final = hub.StatusReview, false
	second.Observations[0].Status, second.Observations[0].Final = hub.StatusActionRequired, false
	_, errs = heldUp(t, s, schema, append(goods("b", committers), first, second))
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	vs, _, err := s.Verifications(ctx, hub.VerificationFilter{ProviderRef: "ref-twice"})
	if err != nil || len(vs) != 1 {
		t.Fatalf("Verifications(ref-twice) = %d, %v; want 1", len(vs), err)
	}
	if v := vs[0]; v.Version != 3 || (v.Status != hub.StatusReview && v.Status != hub.StatusActionRequired) {
		t.Errorf("verification updated twice in one group: %s v%d, want review or action_required, v3", v.Status, v.Version)
	}
	if s.alone.Load() != 1 {
		t.Errorf("%d groups run again under savepoints, want still 1", s.alone.Load())
	}
}

// heldUp ingests ins into s (whose tables are in schema) as one group: it
// holds the committers up with a lock on the endpoints, which Ingest reads
// FOR KEY SHARE, until each has taken one of the first ingests and every
// other is queued, then lets them go.
func heldUp(t *testing.T, s *Store, schema string, ins []hub.Ingest) ([]hub.IngestResult, []error) {
	t.Helper()
	ctx := ctxFor(t)
	waiting, release := lockTable(t, schema, "endpoints")
	res := make([]hub.IngestResult, len(ins))
	errs := make([]error, len(ins))
	var wg sync.WaitGroup
	send := func(from, to int) {
		for i := from; i < to; i++ {
			wg.Go(func() { res[i], errs[i] = s.Ingest(ctx, ins[i]) })
		}
	}
	send(0, committers)
	waiting(committers)
	send(committers, len(ins))
	waitFor(t, func() bool { return s.ingests.queued.Load() == int64(len(ins)) })
	release()
	wg.Wait()
	return res, errs
}

// lockTable locks table of schema (EXCLUSIVE: reads go on, writes wait) in
// a transaction of its own. waiting waits until n of the schema's sessions
// wait for a lock; release ends the transaction.
func lockTable(t *testing.T, schema, table string) (waiting func(n int), release func()) {
	t.Helper()
	ctx := ctxFor(t)
	lock, err := pgx.Connect(ctx, baseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close(context.Background()) })
	tx, err := lock.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE "+schema+"."+table+" IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	waiting = func(n int) {
		waitFor(t, func() bool {
			var waiting int
			// Within a transaction, pg_stat_activity is read once and kept.
			if _, err := tx.Exec(ctx, `SELECT pg_stat_clear_snapshot()`); err != nil {
				t.Fatal(err)
			}
			err := tx.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE application_name = $1 AND wait_event_type = 'Lock'`, schema).Scan(&waiting)
			return err == nil && waiting == n
		})
	}
	release = func() {
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return waiting, release
}

// waitFor waits until cond holds, for up to a minute.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within a minute")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGroupAttempts: attempts recorded at once share a transaction, and
// one whose lease is not held fails alone: the others are recorded, and
// its delivery is left as it was.
func TestGroupAttempts(t *testing.T) {
	t.Parallel()
	s := openShared(t, 1)[0]
	schema := s.pool.Config().ConnConfig.RuntimeParams["search_path"]
	ctx := ctxFor(t)
	conns.reserve(t, 1) // the lock's
	if err := s.CreateEndpoint(ctx, testEndpoint("ep")); err != nil {
		t.Fatal(err)
	}
	const n = 8
	for i := range n {
		if _, err := s.Ingest(ctx, testIngest("src", fmt.Sprint("k", i), fmt.Sprint("ref-", i), []byte(`{}`))); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := s.ClaimDeliveries(ctx, t0, n, time.Hour)
	if err != nil || len(cs) != n {
		t.Fatalf("ClaimDeliveries = %d claims, %v; want %d", len(cs), err, n)
	}
	const bad = n / 2 // recorded with a lease that is not its own

	// Every attempt writes the counters: a lock on them holds up the first
	// attempt, alone in its group, until the others are queued behind it.
	waiting, release := lockTable(t, schema, "stats")
	errs := make([]error, n)
	var wg sync.WaitGroup
	record := func(i int) {
		lease := cs[i].Lease
		if i == bad {
			lease = "lease_not-this-one"
		}
		wg.Go(func() {
			errs[i] = s.RecordAttempt(ctx, hub.AttemptRecord{DeliveryID: cs[i].Delivery.ID, Lease: lease,
				Status: hub.DeliverySucceeded, Attempt: hub.Attempt{At: t0, StatusCode: 204}})
		})
	}
	record(0)
	waiting(1)
	groups0 := s.attemptGroups.Load()
	for i := 1; i < n; i++ {
		record(i)
	}
	waitFor(t, func() bool { return s.attempts.queued.Load() == n })
	release()
	wg.Wait()
	for i, err := range errs {
		d, derr := s.Delivery(ctx, cs[i].Delivery.ID)
		if derr != nil {
			t.Fatal(derr)
		}
		if i == bad {
			if hub.ErrorCode(err) != hub.ECONFLICT || d.Status != hub.DeliveryPending || d.Attempts != 0 {
				t.Errorf("attempt under another lease: %v, delivery %s after %d attempts; want ECONFLICT, pending after 0",
					err, d.Status, d.Attempts)
			}
			continue
		}
		if err != nil || d.Status != hub.DeliverySucceeded || d.Attempts != 1 {
			t.Errorf("attempt %d: %v, delivery %s after %d attempts; want succeeded after 1", i, err, d.Status, d.Attempts)
		}
	}
	// The first attempt alone, then one transaction for the others.
	if g := s.attemptGroups.Load() - groups0; g != 1 {
		t.Errorf("%d attempts queued together recorded in %d group transactions, want 1", n-1, g)
	}
}
