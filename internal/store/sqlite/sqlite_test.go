package sqlite

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/store/storetest"
)

// TestStore runs the conformance suite on a fresh database file per subtest.
func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) hub.Store {
		return openStore(t, filepath.Join(t.TempDir(), "verihook.db"), newKey(t))
	})
}

// TestStoreOneHash runs the conformance suite with every dedup key under one
// hash, so that every dedup lookup meets every keyed message of the
// database: the suite's dedup cases pass only if a collision never makes a
// message a duplicate of another (see keyHash).
func TestStoreOneHash(t *testing.T) {
	storetest.Run(t, func(t *testing.T) hub.Store {
		s := openStore(t, filepath.Join(t.TempDir(), "verihook.db"), newKey(t))
		s.hashKey = func(string, string) int64 { return 42 }
		return s
	})
}

func newKey(t testing.TB) []byte {
	t.Helper()
	key := make([]byte, hub.KeySize)
	rand.Read(key)
	return key
}

// openStore opens the database at path with key and closes it when the test
// ends.
func openStore(t testing.TB, path string, key []byte) *Store {
	t.Helper()
	c, err := hub.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), path, c)
	if err != nil {
		t.Fatalf("Open(%s) = %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 123456789, time.UTC)

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

// TestEncryptionAtRest: neither the database file nor its WAL holds a body,
// event data (an OTP text) or a source or endpoint secret in plaintext.
func TestEncryptionAtRest(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "verihook.db")
	s := openStore(t, path, newKey(t))
	ctx := context.Background()
	const bodyMarker, secretMarker, otpMarker = "JANE-DOE-PASSPORT-X1234567", "signing-key-SUPERSECRET", "Your code is 918273"
	if err := s.UpsertSource(ctx, hub.Source{ID: "idenfy-main", Provider: "idenfy",
		Secrets: map[string]string{"signing_key": secretMarker}}); err != nil {
		t.Fatal(err)
	}
	ep := hub.Endpoint{ID: "crm", URL: "https://crm.example.com/hook", Secret: hub.NewEndpointSecret(),
		PreviousSecret: hub.NewEndpointSecret(), PreviousSecretExpiresAt: t0.Add(24 * time.Hour), Enabled: true}
	if err := s.CreateEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}
	// The key material, without the "whsec_" prefix that every secret shares.
	endpointMarker := strings.TrimPrefix(ep.Secret, hub.SecretPrefix)
	previousMarker := strings.TrimPrefix(ep.PreviousSecret, hub.SecretPrefix)
	in := testIngest("idenfy-main", "k1", "scan-1", []byte(`{"name":"`+bodyMarker+`"}`))
	otp := hub.Event{ID: hub.NewID("evt", time.Now()), Type: hub.EventOTPRequested, Data: []byte(`{"text":"` + otpMarker + `"}`)}
	in.Events = append(in.Events, otp)
	if _, err := s.Ingest(ctx, in); err != nil {
		t.Fatal(err)
	}
	if e, err := s.Event(ctx, otp.ID); err != nil || !bytes.Contains(e.Data, []byte(otpMarker)) {
		t.Fatalf("Event = data %q, %v; want the plaintext data", e.Data, err)
	}
	// The plaintext is readable through the store...
	m, err := s.Message(ctx, in.Message.ID)
	if err != nil || !bytes.Contains(m.Body, []byte(bodyMarker)) {
		t.Fatalf("Message = body %q, %v; want the plaintext body", m.Body, err)
	}
	src, err := s.Source(ctx, "idenfy-main")
	if err != nil || src.Secrets["signing_key"] != secretMarker {
		t.Fatalf("Source = %+v, %v", src, err)
	}
	if got, err := s.Endpoint(ctx, ep.ID); err != nil || got.Secret != ep.Secret || got.PreviousSecret != ep.PreviousSecret {
		t.Fatalf("Endpoint = %+v, %v; want its secrets in plaintext", got, err)
	}
	// Claims carry the event data and the endpoint secrets in plaintext too.
	cs, err := s.ClaimDeliveries(ctx, t0, 10, time.Minute)
	if err != nil || len(cs) != 3 { // verification.updated and two otp.requested
		t.Fatalf("ClaimDeliveries = %d claims, %v; want 3", len(cs), err)
	}
	for _, c := range cs {
		if c.Endpoint.Secret != ep.Secret || c.Endpoint.PreviousSecret != ep.PreviousSecret || len(c.Event.Data) == 0 {
			t.Errorf("claim of %s: endpoint secrets or event data missing", c.Event.ID)
		}
	}
	// ...and nowhere on disk, whether still in the WAL or checkpointed.
	check := func(when string) {
		t.Helper()
		seen := 0
		for _, p := range []string{path, path + "-wal"} {
			raw, err := os.ReadFile(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			seen += len(raw)
			for _, marker := range []string{bodyMarker, secretMarker, otpMarker, endpointMarker, previousMarker} {
				if bytes.Contains(raw, []byte(marker)) {
					t.Errorf("%s: %s holds %q in plaintext", when, filepath.Base(p), marker)
				}
			}
		}
		if seen == 0 {
			t.Fatalf("%s: no database bytes on disk", when)
		}
	}
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("expected a non-empty WAL while the store is open: %v", err)
	}
	check("open")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check("closed")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("database file mode = %o, want 600", mode)
	}
}

// TestReopen: everything survives a close and reopen, and migrations are not
// applied twice.
func TestReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "verihook.db")
	key := newKey(t)
	ctx := context.Background()
	s := openStore(t, path, key)
	in := testIngest("idenfy-main", "k1", "scan-1", []byte(`{"a":1}`))
	res, err := s.Ingest(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	src := hub.Source{ID: "idenfy-main", Provider: "idenfy", Secrets: map[string]string{"signing_key": "k"}}
	if err := s.UpsertSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	tok := hub.Token{ID: "tok_1", Name: "ops", Role: hub.RoleAdmin, Hash: "sha256:ff"}
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for i := range 2 {
		s := openStore(t, path, key)
		m, err := s.Message(ctx, in.Message.ID)
		if err != nil || string(m.Body) != `{"a":1}` || len(m.Events) != 2 {
			t.Fatalf("reopen %d: Message = %+v, %v", i, m, err)
		}
		if !m.ReceivedAt.Equal(t0) || m.ReceivedAt.Nanosecond() != t0.Nanosecond() {
			t.Errorf("reopen %d: received_at %v, want %v to the nanosecond", i, m.ReceivedAt, t0)
		}
		v, err := s.Verification(ctx, res.Events[0].VerificationID)
		if err != nil || v.Version != 1 || len(v.Timeline) != 1 {
			t.Fatalf("reopen %d: Verification = %+v, %v", i, v, err)
		}
		if got, err := s.Source(ctx, src.ID); err != nil || got.Secrets["signing_key"] != "k" {
			t.Errorf("reopen %d: Source = %+v, %v", i, got, err)
		}
		if got, err := s.TokenByHash(ctx, tok.Hash); err != nil || got.ID != tok.ID {
			t.Errorf("reopen %d: TokenByHash = %+v, %v", i, got, err)
		}
		again := testIngest("idenfy-main", "k1", "scan-1", []byte(`{"a":2}`))
		if r, err := s.Ingest(ctx, again); err != nil || !r.Duplicate || r.MessageID != in.Message.ID {
			t.Errorf("reopen %d: Ingest(same key) = %+v, %v; want a duplicate of %s", i, r, err, in.Message.ID)
		}
		var n int
		if err := s.rdb.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		files, _ := fs.Glob(migrations, "migrations/*.sql")
		if n != len(files) || n == 0 {
			t.Errorf("reopen %d: %d migrations recorded, want %d", i, n, len(files))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUpgradeSaysWhatItDoes: opening a database that lacks a migration
// applies it and logs it before and after (an index rebuild on a large
// database makes start-up wait), and the migrated database answers as a new
// one does; creating a new database logs nothing.
func TestUpgradeSaysWhatItDoes(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "verihook.db")
	key := newKey(t)
	c, _ := hub.NewCipher(key)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	s, err := Open(context.Background(), path, c, WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	in := testIngest("src", "k1", "scan-1", nil)
	if _, err := s.Ingest(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if logs.Len() != 0 {
		t.Errorf("creating a database logged %q, want nothing", logs.String())
	}

	// Back to the schema before 0006.
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DELETE FROM schema_migrations WHERE version = '0006_common_values_unindexed'`,
		`DROP INDEX messages_unaccepted`, `DROP INDEX events_uncommon`,
		`CREATE INDEX messages_status ON messages (status, id)`, `CREATE INDEX events_type ON events (type, id)`,
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	raw.Close()

	s, err = Open(context.Background(), path, c, WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := logs.String()
	if !strings.Contains(got, "upgrading the database") || !strings.Contains(got, "applied the migration") ||
		strings.Count(got, "version=0006_common_values_unindexed") != 2 || strings.Contains(got, "0005") {
		t.Errorf("upgrade logged %q; want 0006 (only) before and after", got)
	}
	if ms, _, err := s.Messages(context.Background(), hub.MessageFilter{Status: hub.MessageAccepted}); err != nil || len(ms) != 1 {
		t.Errorf("Messages after the upgrade = %d, %v; want 1", len(ms), err)
	}
	if plan := strings.Join(queryPlan(t, s, `SELECT id FROM messages WHERE status = 'rejected' AND status <> 'accepted'`), "; "); !strings.Contains(plan, "messages_unaccepted") {
		t.Errorf("after the upgrade the plan is %s; want messages_unaccepted", plan)
	}
}

// TestMigrationReport: while a migration runs, the size of the write-ahead
// log is logged every migrationReportEvery, and nothing once it has ended.
func TestMigrationReport(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "verihook.db")
		if err := os.WriteFile(path+"-wal", make([]byte, 3<<20), 0o600); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var logged bytes.Buffer
		log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logged}, nil))
		lines := func() []string {
			mu.Lock()
			defer mu.Unlock()
			return strings.Split(strings.TrimSpace(logged.String()), "\n")
		}
		stop := reportMigration(path, "0029_x", time.Now(), log)
		time.Sleep(2*migrationReportEvery + time.Second)
		synctest.Wait()
		got := lines()
		if len(got) != 2 || !strings.Contains(got[1], "version=0029_x written_mib=3 elapsed=10s") {
			t.Fatalf("logged %q, want two reports, the second after 10s of 3 MiB", got)
		}
		stop()
		time.Sleep(2 * migrationReportEvery)
		if n := len(lines()); n != 2 {
			t.Errorf("%d reports after the migration ended, want none more", n-2)
		}
	})
}

// lockedWriter writes to w under mu.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// downgrade runs stmts on the database at path, without the store, to take
// it back to an older schema, and checks that rows still reads want there.
func downgrade(t *testing.T, path string, rows func(*sql.DB) string, want string, stmts ...string) {
	t.Helper()
	raw, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, q := range stmts {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	if got := rows(raw); got != want {
		t.Fatalf("rows in the older schema = %s, want %s", got, want)
	}
}

// tableRows returns every row of table, cols of each quoted as SQL literals
// (so that NULL and ” differ) and joined, in rowid (or seq) order.
func tableRows(t *testing.T, db *sql.DB, table, cols string) string {
	t.Helper()
	quoted := strings.Split(cols, ",")
	for i, c := range quoted {
		quoted[i] = "quote(" + strings.TrimSpace(c) + ")"
	}
	var all string
	if err := db.QueryRow(`SELECT group_concat(concat_ws('|', ` + strings.Join(quoted, ", ") + `), ';') FROM (SELECT * FROM ` + table +
		` ORDER BY rowid)`).Scan(&all); err != nil {
		t.Fatal(err)
	}
	return all
}

// tableIndexes returns the names of table's indexes, sorted.
func tableIndexes(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.Query(`SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = ? ORDER BY name`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	return names
}

// TestUpgradeObservations: migration 0030 rewrites the observations of a
// database of the schema before it without the UNIQUE on their ids and
// without their foreign keys, every row as it was; timelines read as before
// and new observations are written after the old ones.
func TestUpgradeObservations(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "verihook.db")
	key := newKey(t)
	s := openStore(t, path, key)
	ctx := context.Background()
	var verificationID string
	for i, status := range []hub.Status{hub.StatusReview, hub.StatusApproved, hub.StatusReview} {
		in := testIngest("src", fmt.Sprint("k", i), "scan-1", nil)
		in.Observations[0].Status, in.Observations[0].Final = status, status == hub.StatusApproved
		res, err := s.Ingest(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Events) > 0 && res.Events[0].VerificationID != "" {
			verificationID = res.Events[0].VerificationID
		}
	}
	const cols = `seq, id, verification_id, message_id, source, provider, provider_ref, level, kind, applicant_ref,
		status, final, reasons, attempts_left, provider_time, provider_event, received_at, outcome, version,
		current_state, final_if_no_attempts, origin`
	rows := func(db *sql.DB) string { return tableRows(t, db, "observations", cols) }
	want := rows(s.rdb)
	before, err := s.Verification(ctx, verificationID)
	if err != nil || len(before.Timeline) != 3 {
		t.Fatalf("Verification = %d observations, %v; want 3", len(before.Timeline), err)
	}
	s.Close()

	// Back to the schema before 0030: observations as 0001, 0011 and 0019 made it.
	downgrade(t, path, rows, want,
		`DELETE FROM schema_migrations WHERE version = '0030_observations_unkeyed'`,
		`ALTER TABLE observations RENAME TO observations_0030`,
		`CREATE TABLE observations (seq INTEGER NOT NULL PRIMARY KEY, id TEXT NOT NULL UNIQUE,
			verification_id TEXT NOT NULL REFERENCES verifications (id), message_id TEXT NOT NULL REFERENCES messages (id),
			source TEXT NOT NULL, provider TEXT NOT NULL, provider_ref TEXT NOT NULL, level TEXT NOT NULL DEFAULT '',
			kind TEXT NOT NULL DEFAULT '', applicant_ref TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,
			final INTEGER NOT NULL CHECK (final IN (0, 1)), reasons TEXT NOT NULL, attempts_left INTEGER,
			provider_time INTEGER, provider_event TEXT NOT NULL DEFAULT '', received_at INTEGER NOT NULL,
			outcome TEXT NOT NULL CHECK (outcome IN ('applied', 'superseded')), version INTEGER NOT NULL) STRICT`,
		`ALTER TABLE observations ADD COLUMN current_state INTEGER NOT NULL DEFAULT 0 CHECK (current_state IN (0, 1))`,
		`ALTER TABLE observations ADD COLUMN final_if_no_attempts INTEGER NOT NULL DEFAULT 0 CHECK (final_if_no_attempts IN (0, 1))`,
		`ALTER TABLE observations ADD COLUMN origin TEXT NOT NULL DEFAULT 'callback'`,
		`INSERT INTO observations SELECT * FROM observations_0030`,
		`DROP TABLE observations_0030`,
		`CREATE INDEX observations_verification ON observations (verification_id, seq)`,
	)

	s = openStore(t, path, key)
	if got := rows(s.rdb); got != want {
		t.Errorf("observations after the upgrade = %s, want %s", got, want)
	}
	if indexes := tableIndexes(t, s.rdb, "observations"); !slices.Equal(indexes, []string{"observations_verification"}) {
		t.Errorf("observations' indexes after the upgrade = %v, want observations_verification alone", indexes)
	}
	var keys int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM pragma_foreign_key_list('observations')`).Scan(&keys); err != nil || keys != 0 {
		t.Errorf("observations' foreign keys after the upgrade = %d, %v; want none", keys, err)
	}
	after, err := s.Verification(ctx, verificationID)
	if err != nil || !reflect.DeepEqual(after.Timeline, before.Timeline) {
		t.Errorf("the timeline after the upgrade = %+v, %v; want %+v", after.Timeline, err, before.Timeline)
	}
	in := testIngest("src", "k3", "scan-1", nil)
	if _, err := s.Ingest(ctx, in); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Verification(ctx, verificationID); err != nil || len(v.Timeline) != 4 || v.Timeline[3].MessageID != in.Message.ID {
		t.Errorf("the timeline after an ingest = %+v, %v; want the new observation last", v.Timeline, err)
	}
}

// openWithDeliveries opens a new store at path with an endpoint and n
// messages stored, each with two events and so two deliveries.
func openWithDeliveries(t *testing.T, path string, key []byte, n int) *Store {
	t.Helper()
	s := openStore(t, path, key)
	ctx := context.Background()
	if err := s.CreateEndpoint(ctx, testEndpoint("ep")); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := s.Ingest(ctx, testIngest("src", fmt.Sprint("k", i), fmt.Sprint("scan-", i), nil)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// TestUpgradeAttempts: migration 0029 rewrites the attempts of a database of
// the schema before it without the UNIQUE on their ids, every row as it
// was, and attempts are read, recorded and purged as before.
func TestUpgradeAttempts(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "verihook.db")
	key := newKey(t)
	s := openWithDeliveries(t, path, key, 3)
	ctx := context.Background()
	now := t0.Add(time.Hour)
	for round := range 2 { // two attempts of each delivery, the first with a response to purge
		cs, err := s.ClaimDeliveries(ctx, now, 10, time.Minute)
		if err != nil || len(cs) != 6 { // two events a message
			t.Fatalf("round %d: ClaimDeliveries = %d, %v; want 6", round, len(cs), err)
		}
		for _, c := range cs {
			r := hub.AttemptRecord{DeliveryID: c.Delivery.ID, Lease: c.Lease, Status: hub.DeliverySucceeded,
				Attempt: hub.Attempt{At: now, StatusCode: 200, LatencyMS: 7}}
			if round == 0 {
				r.Status, r.NextAttemptAt, r.Attempt.StatusCode, r.Attempt.Response = hub.DeliveryPending, now, 503, "busy"
			}
			if err := s.RecordAttempt(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		now = now.Add(time.Second)
	}
	const cols = `seq, id, delivery_id, at, status_code, latency_ms, response, error`
	rows := func(db *sql.DB) string { return tableRows(t, db, "attempts", cols) }
	want := rows(s.rdb)
	s.Close()

	// Back to the schema before 0029: attempts as 0002 created it.
	downgrade(t, path, rows, want,
		`DELETE FROM schema_migrations WHERE version = '0029_attempts_id_unindexed'`,
		`ALTER TABLE attempts RENAME TO attempts_0029`,
		`CREATE TABLE attempts (seq INTEGER NOT NULL PRIMARY KEY, id TEXT NOT NULL UNIQUE,
			delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE, at INTEGER NOT NULL,
			status_code INTEGER NOT NULL DEFAULT 0, latency_ms INTEGER NOT NULL DEFAULT 0,
			response TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '') STRICT`,
		`INSERT INTO attempts SELECT * FROM attempts_0029`,
		`DROP TABLE attempts_0029`,
		`CREATE INDEX attempts_delivery ON attempts (delivery_id, seq)`,
		`CREATE INDEX attempts_unpurged ON attempts (at) WHERE response <> '' OR error <> ''`,
	)

	s = openStore(t, path, key)
	if got := rows(s.rdb); got != want {
		t.Errorf("attempts after the upgrade = %s, want %s", got, want)
	}
	if indexes := tableIndexes(t, s.rdb, "attempts"); !slices.Equal(indexes, []string{"attempts_delivery", "attempts_unpurged"}) {
		t.Errorf("attempts' indexes after the upgrade = %v, want attempts_delivery and attempts_unpurged", indexes)
	}
	ds, _, err := s.Deliveries(ctx, hub.DeliveryFilter{})
	if err != nil || len(ds) != 6 {
		t.Fatalf("Deliveries = %d, %v; want 6", len(ds), err)
	}
	d, err := s.Delivery(ctx, ds[0].ID)
	if err != nil || len(d.AttemptLog) != 2 || d.AttemptLog[0].StatusCode != 200 || d.AttemptLog[1].Response != "busy" {
		t.Errorf("Delivery after the upgrade = %+v, %v; want its two attempts, newest first", d.AttemptLog, err)
	}
	if n, err := s.Purge(ctx, hub.Purge{Before: now}); err != nil || n.Attempts != 6 {
		t.Errorf("Purge after the upgrade = %+v, %v; want the 6 responses purged", n, err)
	}
}

// TestUpgradeDeliveriesStatus: migration 0032 keys deliveries_status of a
// database of the schema before it first by whether the delivery is pending,
// every row as it was, and the status filters read as before.
func TestUpgradeDeliveriesStatus(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "verihook.db")
	key := newKey(t)
	s := openWithDeliveries(t, path, key, 2)
	ctx := context.Background()
	now := t0.Add(time.Hour)
	cs, err := s.ClaimDeliveries(ctx, now, 10, time.Minute)
	if err != nil || len(cs) != 4 { // two events a message
		t.Fatalf("ClaimDeliveries = %d, %v; want 4", len(cs), err)
	}
	for i, status := range []hub.DeliveryStatus{hub.DeliverySucceeded, hub.DeliverySucceeded, hub.DeliveryFailed} {
		r := hub.AttemptRecord{DeliveryID: cs[i].Delivery.ID, Lease: cs[i].Lease, Status: status,
			Attempt: hub.Attempt{At: now, StatusCode: 200}}
		if err := s.RecordAttempt(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	const cols = `seq, id, endpoint_id, event_id, status, attempts, next_attempt_at, lease, lease_until, updated_at`
	rows := func(db *sql.DB) string { return tableRows(t, db, "deliveries", cols) }
	want := rows(s.rdb)
	s.Close()

	// Back to the schema before 0032: deliveries_status as 0002 created it.
	downgrade(t, path, rows, want,
		`DELETE FROM schema_migrations WHERE version = '0032_deliveries_status_pending_last'`,
		`DROP INDEX deliveries_status`,
		`CREATE INDEX deliveries_status ON deliveries (status, id)`,
	)

	s = openStore(t, path, key)
	if got := rows(s.rdb); got != want {
		t.Errorf("deliveries after the upgrade = %s, want %s", got, want)
	}
	wantIndexes := []string{"deliveries_due", "deliveries_endpoint", "deliveries_ordered", "deliveries_status",
		"sqlite_autoindex_deliveries_1", "sqlite_autoindex_deliveries_2"}
	if indexes := tableIndexes(t, s.rdb, "deliveries"); !slices.Equal(indexes, wantIndexes) {
		t.Errorf("deliveries' indexes after the upgrade = %v, want %v", indexes, wantIndexes)
	}
	var def string
	if err := s.rdb.QueryRow(`SELECT sql FROM sqlite_schema WHERE name = 'deliveries_status'`).Scan(&def); err != nil ||
		!strings.HasSuffix(def, "ON deliveries (status = 'pending', status, id)") {
		t.Errorf("deliveries_status after the upgrade = %q, %v; want it keyed first by whether pending", def, err)
	}
	for status, want := range map[hub.DeliveryStatus]int{hub.DeliveryPending: 1, hub.DeliveryFailed: 1, hub.DeliverySucceeded: 2} {
		if ds, _, err := s.Deliveries(ctx, hub.DeliveryFilter{Status: status}); err != nil || len(ds) != want {
			t.Errorf("Deliveries(%s) after the upgrade = %d, %v; want %d", status, len(ds), err, want)
		}
	}
}

// TestUpgradeDedupHash: migration 0031 gives every keyed message of a
// database of the schema before it the hash keyHash gives its source and
// key (the SQL function and Go agree, a key with a 0 byte included), and
// none to the others, every row otherwise as it was; the index on the hash
// replaces the UNIQUE one, and copies of the old messages are still found,
// under each dedup rule.
func TestUpgradeDedupHash(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "verihook.db")
	key := newKey(t)
	s := openStore(t, path, key)
	ctx := context.Background()
	// Copies received after every first one, in the next minute and less
	// than a minute after: the window's copy is found under the
	// neighbouring interval's key.
	later := t0.Truncate(time.Minute).Add(time.Minute + 100*time.Millisecond)
	type message struct {
		in   hub.Ingest
		copy func() hub.Ingest // nil: no copy is a duplicate
	}
	keyed := func(source, dedup, ref string, rule hub.Dedup) message {
		in := testIngest(source, dedup, ref, []byte(`{"n":1}`))
		in.Message.Dedup = rule
		return message{in, func() hub.Ingest {
			c := testIngest(source, dedup, ref, []byte(`{"n":1}`))
			c.Message.Dedup, c.Message.ReceivedAt = rule, later
			c.Observations[0].ReceivedAt = later
			return c
		}}
	}
	msgs := []message{
		keyed("src", "evt-1", "scan-1", hub.Dedup{}),
		keyed("src", "sha256:"+strings.Repeat("ab", 32), "scan-2", hub.Dedup{}),
		keyed("other", "evt-1", "scan-3", hub.Dedup{}),
		keyed("src", "evt\x00nul", "scan-4", hub.Dedup{}),
		keyed("src", "body-5", "scan-5", hub.Dedup{Window: time.Minute}),
		keyed("src", "body-6", "scan-6", hub.Dedup{WhileCurrent: true}),
		{in: testIngest("src", "", "scan-7", nil)},
	}
	var ids []string
	for _, m := range msgs {
		res, err := s.Ingest(ctx, m.in)
		if err != nil || res.Duplicate {
			t.Fatalf("Ingest(%q) = {%s, %v}, %v; want a new message", m.in.Message.DedupKey, res.MessageID, res.Duplicate, err)
		}
		ids = append(ids, res.MessageID)
	}
	if err := s.RecordRejection(ctx, hub.Message{SourceID: "src", Provider: "idenfy", ReceivedAt: t0,
		RemoteAddr: "203.0.113.7:1", HTTPStatus: 401, Reason: "bad signature"}); err != nil {
		t.Fatal(err)
	}
	const cols = `id, source_id, provider, received_at, remote_addr, status, http_status, reason, event_name,
		hex(dedup_key), body, preview, count, origin`
	rows := func(db *sql.DB) string { return tableRows(t, db, "messages", cols) }
	hashes := func(db *sql.DB) string { return tableRows(t, db, "messages", "id, dedup_hash") }
	want, wantHashes := rows(s.rdb), hashes(s.rdb)
	if strings.Count(wantHashes, "NULL") != 2 {
		t.Fatalf("hashes = %s; want none for the two messages without a key", wantHashes)
	}
	s.Close()

	// Back to the schema before 0031: messages_dedup as 0001 created it.
	downgrade(t, path, rows, want,
		`DELETE FROM schema_migrations WHERE version = '0031_dedup_hash'`,
		`DROP INDEX messages_dedup_hash`,
		`ALTER TABLE messages DROP COLUMN dedup_hash`,
		`CREATE UNIQUE INDEX messages_dedup ON messages (source_id, dedup_key)`,
	)

	s = openStore(t, path, key)
	if got := rows(s.rdb); got != want {
		t.Errorf("messages after the upgrade = %s, want %s", got, want)
	}
	if got := hashes(s.rdb); got != wantHashes {
		t.Errorf("hashes after the upgrade = %s, want keyHash's %s", got, wantHashes)
	}
	if indexes := tableIndexes(t, s.rdb, "messages"); slices.Contains(indexes, "messages_dedup") ||
		!slices.Contains(indexes, "messages_dedup_hash") {
		t.Errorf("messages' indexes after the upgrade = %v, want messages_dedup_hash and not messages_dedup", indexes)
	}
	for i, m := range msgs {
		if m.copy == nil {
			continue
		}
		c := m.copy()
		if res, err := s.Ingest(ctx, c); err != nil || !res.Duplicate || res.MessageID != ids[i] {
			t.Errorf("Ingest(copy of %q) after the upgrade = {%s, %v}, %v; want a duplicate of %s",
				c.Message.DedupKey, res.MessageID, res.Duplicate, err, ids[i])
		}
	}
	in := testIngest("src", "evt-2", "scan-8", nil)
	if res, err := s.Ingest(ctx, in); err != nil || res.Duplicate {
		t.Errorf("Ingest(new key) after the upgrade = {%s, %v}, %v; want a new message", res.MessageID, res.Duplicate, err)
	}
}

// TestFillDedupHash: migration 0031's step fills every keyed message's hash
// chunk by chunk, the chunks meeting without a gap, and indexes them.
func TestFillDedupHash(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "verihook.db")
	s := openStore(t, path, newKey(t))
	ctx := context.Background()
	for i := range 10 {
		key := fmt.Sprint("evt-", i)
		if i == 4 {
			key = "" // no hash
		}
		if _, err := s.Ingest(ctx, testIngest("src", key, fmt.Sprint("scan-", i), nil)); err != nil {
			t.Fatal(err)
		}
	}
	hashes := func(db *sql.DB) string { return tableRows(t, db, "messages", "id, dedup_hash") }
	want := hashes(s.rdb)
	s.Close()

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{`DROP INDEX messages_dedup_hash`, `UPDATE messages SET dedup_hash = NULL`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := fillDedupHash(ctx, tx, 3); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := hashes(db); got != want {
		t.Errorf("hashes filled = %s, want %s", got, want)
	}
	if indexes := tableIndexes(t, db, "messages"); !slices.Contains(indexes, "messages_dedup_hash") {
		t.Errorf("messages' indexes = %v, want messages_dedup_hash", indexes)
	}
}

// TestDedupCollision: two keys of a source under one hash are not
// duplicates of each other, and each still finds its own copies, by its
// key, its window's neighbouring key and its current key.
func TestDedupCollision(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "verihook.db"), newKey(t))
	s.hashKey = func(source, key string) int64 { return int64(len(source)) } // every key of a source collides
	ctx := context.Background()
	later := t0.Truncate(time.Minute).Add(time.Minute + 100*time.Millisecond) // the next interval, less than a minute after t0
	for _, rule := range []hub.Dedup{{}, {Window: time.Minute}, {WhileCurrent: true}} {
		t.Run(fmt.Sprintf("%+v", rule), func(t *testing.T) {
			ingest := func(dedup, ref string, at time.Time) hub.IngestResult {
				t.Helper()
				in := testIngest("src", dedup, ref, nil)
				in.Message.Dedup, in.Message.ReceivedAt, in.Observations[0].ReceivedAt = rule, at, at
				res, err := s.Ingest(ctx, in)
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			prefix := fmt.Sprint(rule.Window, rule.WhileCurrent)
			a := ingest(prefix+"a", prefix+"scan-a", t0)
			b := ingest(prefix+"b", prefix+"scan-b", t0)
			if a.Duplicate || b.Duplicate || a.MessageID == b.MessageID {
				t.Fatalf("two keys under one hash: Ingest = {%s, %v}, {%s, %v}; want two new messages",
					a.MessageID, a.Duplicate, b.MessageID, b.Duplicate)
			}
			for _, first := range []struct {
				key string
				res hub.IngestResult
			}{{"a", a}, {"b", b}} {
				if res := ingest(prefix+first.key, prefix+"scan-"+first.key, later); !res.Duplicate || res.MessageID != first.res.MessageID {
					t.Errorf("Ingest(copy of %s) = {%s, %v}; want a duplicate of %s", first.key, res.MessageID,
						res.Duplicate, first.res.MessageID)
				}
			}
		})
	}
	var n, hashes int
	if err := s.rdb.QueryRow(`SELECT count(*), count(DISTINCT dedup_hash) FROM messages`).Scan(&n, &hashes); err != nil ||
		n != 6 || hashes != 1 {
		t.Errorf("messages = %d under %d hashes, %v; want 6 under 1", n, hashes, err)
	}
}

// TestWrongKey: a store opened with another key cannot read bodies or
// secrets, and says so.
func TestWrongKey(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "verihook.db")
	ctx := context.Background()
	s := openStore(t, path, newKey(t))
	in := testIngest("idenfy-main", "k1", "scan-1", []byte(`{"a":1}`))
	if _, err := s.Ingest(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertSource(ctx, hub.Source{ID: "idenfy-main", Provider: "idenfy",
		Secrets: map[string]string{"signing_key": "k"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateEndpoint(ctx, hub.Endpoint{ID: "crm", URL: "https://crm.example.com/",
		Secret: hub.NewEndpointSecret(), Enabled: true}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	wrong, _ := hub.NewCipher(newKey(t))
	if _, err := Open(ctx, path, wrong); !errors.Is(err, hub.ErrKeyMismatch) {
		t.Fatalf("Open with the wrong key = %v, want hub.ErrKeyMismatch", err)
	}
	// A database written before the key check existed has no check value:
	// every sealed column must still refuse the wrong key on its own.
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`DELETE FROM key_check; DELETE FROM encryption_keys`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	other := openStore(t, path, newKey(t))
	_, err = other.Message(ctx, in.Message.ID)
	if !errors.Is(err, hub.ErrDecrypt) || !strings.Contains(err.Error(), "wrong key") {
		t.Errorf("Message with the wrong key = %v, want an error wrapping hub.ErrDecrypt", err)
	}
	_, err = other.Source(ctx, "idenfy-main")
	if !errors.Is(err, hub.ErrDecrypt) {
		t.Errorf("Source with the wrong key = %v, want an error wrapping hub.ErrDecrypt", err)
	}
	_, err = other.Sources(ctx)
	if !errors.Is(err, hub.ErrDecrypt) {
		t.Errorf("Sources with the wrong key = %v, want an error wrapping hub.ErrDecrypt", err)
	}
	_, err = other.Endpoint(ctx, "crm")
	if !errors.Is(err, hub.ErrDecrypt) {
		t.Errorf("Endpoint with the wrong key = %v, want an error wrapping hub.ErrDecrypt", err)
	}
	_, err = other.Endpoints(ctx)
	if !errors.Is(err, hub.ErrDecrypt) {
		t.Errorf("Endpoints with the wrong key = %v, want an error wrapping hub.ErrDecrypt", err)
	}
	// What is not encrypted still reads.
	if ms, _, err := other.Messages(ctx, hub.MessageFilter{}); err != nil || len(ms) != 1 {
		t.Errorf("Messages with the wrong key = %d, %v; want 1, nil", len(ms), err)
	}
}

// request returns a writeReq for in, as Ingest would submit it, and where
// its result will be.
func request(t *testing.T, s *Store, ctx context.Context, in hub.Ingest) (*writeReq, *hub.IngestResult) {
	t.Helper()
	r, err := s.prepareIngest(in)
	if err != nil {
		t.Fatal(err)
	}
	var res hub.IngestResult
	return &writeReq{ctx: ctx, done: make(chan error, 1), fn: func(tx *wtx) error {
		var err error
		res, err = s.ingestTx(tx, r)
		return err
	}}, &res
}

// TestBatchIsolation runs one batch in which some requests fail: each fails
// alone, leaving no trace, and the others commit.
func TestBatchIsolation(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "verihook.db"), newKey(t))
	ctx := context.Background()

	good1 := testIngest("src", "k1", "scan-1", []byte(`{"n":1}`))
	// bad touches the verification good1 creates and then fails on an event
	// id that good1 stored in the same transaction.
	bad := testIngest("src", "k2", "scan-1", []byte(`{"n":2}`))
	bad.Observations[0].Status = hub.StatusRejected
	bad.Events[0].ID = good1.Events[0].ID
	canceled := testIngest("src", "k3", "scan-3", []byte(`{"n":3}`))
	panics := &writeReq{ctx: ctx, done: make(chan error, 1), fn: func(tx *wtx) error {
		if _, err := tx.exec(`INSERT INTO tokens (id, role, hash, created_at) VALUES ('tok_p', 'admin', 'h', 0)`); err != nil {
			return err
		}
		panic("boom")
	}}
	// good2 has the dedup key bad had: bad's rollback must not leave it
	// behind.
	good2 := testIngest("src", "k2", "scan-2", []byte(`{"n":4}`))

	// A batch in which every request succeeds commits at the first run,
	// without savepoints.
	ok1, okRes1 := request(t, s, ctx, testIngest("src", "k7", "scan-7", nil))
	ok2, okRes2 := request(t, s, ctx, testIngest("src", "k8", "scan-8", nil))
	if errs := s.commit([]*writeReq{ok1, ok2}); errs[0] != nil || errs[1] != nil || okRes1.MessageID == "" ||
		okRes2.MessageID == "" || s.retried.Load() != 0 {
		t.Fatalf("a batch of good requests: %v, results %+v %+v, %d retried; want both stored at once", errs, okRes1,
			okRes2, s.retried.Load())
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	r1, res1 := request(t, s, ctx, good1)
	r2, _ := request(t, s, ctx, bad)
	r3, _ := request(t, s, cctx, canceled)
	r5, res5 := request(t, s, ctx, good2)
	errs := s.commit([]*writeReq{r1, r2, r3, panics, r5})

	if errs[0] != nil || errs[4] != nil {
		t.Fatalf("good requests failed: %v, %v", errs[0], errs[4])
	}
	if n := s.retried.Load(); n != 1 {
		t.Errorf("%d batches run again under savepoints, want 1", n)
	}
	if code := hub.ErrorCode(fail("ingest", errs[1])); code != hub.ECONFLICT {
		t.Errorf("bad request: %v (code %s), want a conflict", errs[1], code)
	}
	if !errors.Is(errs[2], context.Canceled) {
		t.Errorf("canceled request: %v, want context.Canceled", errs[2])
	}
	if errs[3] == nil || !strings.Contains(errs[3].Error(), "boom") {
		t.Errorf("panicking request: %v, want an error", errs[3])
	}
	if res1.MessageID != good1.Message.ID || res5.MessageID != good2.Message.ID || res5.Duplicate {
		t.Errorf("results = %+v, %+v", res1, res5)
	}

	for _, id := range []string{bad.Message.ID, canceled.Message.ID} {
		if _, err := s.Message(ctx, id); hub.ErrorCode(err) != hub.ENOTFOUND {
			t.Errorf("Message(%s) of a failed request = %v, want not found", id, err)
		}
	}
	for _, id := range []string{good1.Message.ID, good2.Message.ID} {
		if _, err := s.Message(ctx, id); err != nil {
			t.Errorf("Message(%s) of a good request = %v", id, err)
		}
	}
	v, err := s.Verification(ctx, res1.Events[0].VerificationID)
	if err != nil || v.Status != hub.StatusApproved || v.Version != 1 || len(v.Timeline) != 1 {
		t.Errorf("verification after the batch = %+v, %v; want approved v1 with one entry", v, err)
	}
	if _, err := s.TokenByHash(ctx, "h"); hub.ErrorCode(err) != hub.ENOTFOUND {
		t.Errorf("the panicking request's write survived: %v", err)
	}
	// The counters, written once per batch, count the four messages stored
	// and not the failed one, which had counted itself before it failed.
	a, err := s.Activity(ctx, t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var accepted int64
	for _, c := range a.Counts {
		if c.Name == string(hub.MessageAccepted) {
			accepted += c.N
		}
	}
	if accepted != 4 {
		t.Errorf("accepted counter = %d after the batches, want 4 (%+v)", accepted, a.Counts)
	}

	// The writer goes on as before.
	if _, err := s.Ingest(ctx, testIngest("src", "k9", "scan-9", nil)); err != nil {
		t.Errorf("Ingest after the batch = %v", err)
	}
}

// TestCheckpointer: once the writer has appended checkpointEvery pages to
// the write-ahead log, the checkpointer copies them into the database file,
// and Close lets it finish.
func TestCheckpointer(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "verihook.db")
	s := openStore(t, path, newKey(t))
	s.checkpointEvery = 20
	ctx := context.Background()
	for i := range 10 {
		if _, err := s.Ingest(ctx, testIngest("src", fmt.Sprint("k", i), fmt.Sprint("scan-", i), []byte(`{}`))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := s.checkpoints.Load(); n == 0 {
		t.Errorf("the checkpointer copied nothing after 10 ingests of about 20 pages each")
	}
}

// TestCommitGap: an ingest that comes within commitGap of the end of the last
// durable commit waits for the rest of the gap and commits with what arrives
// meanwhile, in one transaction; one that comes later commits at once, and
// so do gapBatch that come together.
func TestCommitGap(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := openStore(t, filepath.Join(t.TempDir(), "verihook.db"), newKey(t))
		ctx := context.Background()
		ingest := func(key string) <-chan error {
			done := make(chan error, 1)
			go func() {
				_, err := s.Ingest(ctx, testIngest("src", key, "scan-"+key, nil))
				done <- err
			}()
			return done
		}
		if err := <-ingest("k1"); err != nil {
			t.Fatal(err)
		}
		batches, start := s.batches.Load(), time.Now()
		first := ingest("k2")
		synctest.Wait()
		select {
		case err := <-first:
			t.Fatalf("an ingest right after a commit returned %v at once, want it to wait", err)
		default:
		}
		time.Sleep(commitGap / 2)
		second := ingest("k3")
		for _, done := range []<-chan error{first, second} {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if waited := time.Since(start); waited != commitGap {
			t.Errorf("the ingests after a commit committed after %v, want %v", waited, commitGap)
		}
		if n := s.batches.Load() - batches; n != 1 {
			t.Errorf("two ingests within the gap took %d commits, want 1", n)
		}

		time.Sleep(commitGap)
		start = time.Now()
		if err := <-ingest("k4"); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("an ingest a gap after the last commit committed after %v, want at once", waited)
		}

		// Right after a commit, gapBatch ingests commit together at once;
		// one fewer wait out the gap.
		for _, n := range []int{gapBatch, gapBatch - 1} {
			batches, start := s.batches.Load(), time.Now()
			var all []<-chan error
			for i := range n {
				all = append(all, ingest(fmt.Sprintf("n%d-%d", n, i)))
			}
			for _, done := range all {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			want := time.Duration(0)
			if n < gapBatch {
				want = commitGap
			}
			if waited := time.Since(start); waited != want {
				t.Errorf("%d ingests right after a commit committed after %v, want %v", n, waited, want)
			}
			if c := s.batches.Load() - batches; c != 1 {
				t.Errorf("%d ingests right after a commit took %d commits, want 1", n, c)
			}
		}
	})
}

// TestPatientWrite: an attempt recorded while nothing else is queued waits
// for the next write and commits with it, in one transaction; with nothing
// coming, it commits alone once patientWait has passed, or at once when the
// store closes.
func TestPatientWrite(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := openStore(t, filepath.Join(t.TempDir(), "verihook.db"), newKey(t))
		ctx := context.Background()
		if err := s.CreateEndpoint(ctx, testEndpoint("ep")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Ingest(ctx, testIngest("src", "k1", "scan-1", nil)); err != nil {
			t.Fatal(err)
		}
		record := func(c hub.Claim) <-chan error {
			done := make(chan error, 1)
			go func() {
				done <- s.RecordAttempt(ctx, hub.AttemptRecord{DeliveryID: c.Delivery.ID, Lease: c.Lease,
					Attempt: hub.Attempt{StatusCode: 500}, Status: hub.DeliveryPending, NextAttemptAt: s.now()})
			}()
			return done
		}
		claim := func() hub.Claim {
			t.Helper()
			cs, err := s.ClaimDeliveries(ctx, t0.Add(time.Hour), 1, time.Minute)
			if err != nil || len(cs) != 1 {
				t.Fatalf("ClaimDeliveries = %d claims, %v; want 1", len(cs), err)
			}
			return cs[0]
		}

		c := claim()
		batches := s.batches.Load()
		done := record(c)
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("RecordAttempt alone returned %v at once, want it to wait for company", err)
		default:
		}
		if n := s.batches.Load(); n != batches {
			t.Fatalf("%d commits while the attempt waited, want none", n-batches)
		}
		if _, err := s.Ingest(ctx, testIngest("src", "k2", "scan-2", nil)); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("RecordAttempt = %v", err)
		}
		if n := s.batches.Load(); n != batches+1 {
			t.Errorf("the attempt and the next ingest took %d commits, want 1", n-batches)
		}
		d, err := s.Delivery(ctx, c.Delivery.ID)
		if err != nil || len(d.AttemptLog) != 1 {
			t.Fatalf("Delivery = %d attempts, %v; want 1", len(d.AttemptLog), err)
		}

		c = claim()
		start := time.Now()
		if err := <-record(c); err != nil {
			t.Fatalf("RecordAttempt = %v", err)
		}
		if waited := time.Since(start); waited != patientWait {
			t.Errorf("RecordAttempt alone committed after %v, want %v", waited, patientWait)
		}

		// Without a durable write within patientWait, company is not
		// expected: an attempt alone commits at once.
		time.Sleep(patientWait)
		c = claim()
		start = time.Now()
		if err := <-record(c); err != nil {
			t.Fatalf("RecordAttempt = %v", err)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("RecordAttempt alone with no ingest of late committed after %v, want at once", waited)
		}

		// Close does not wait for company either.
		if _, err := s.Ingest(ctx, testIngest("src", "k3", "scan-3", nil)); err != nil {
			t.Fatal(err)
		}
		c = claim()
		start = time.Now()
		done = record(c)
		synctest.Wait()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("RecordAttempt waiting at Close = %v, want it committed", err)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("Close took %v with an attempt waiting, want no wait", waited)
		}
	})
}

// TestClaimsUnsynced: a batch of claims alone commits at synchronous=NORMAL,
// any other batch at FULL (see syncFor), and ClaimDeliveries is such a claim.
func TestClaimsUnsynced(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "verihook.db"), newKey(t))
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		kinds []writeKind
		want  int // PRAGMA synchronous: 1 NORMAL, 2 FULL
	}{
		{"claims alone", []writeKind{unsynced, unsynced}, 1},
		{"a claim and an attempt", []writeKind{unsynced, patient}, 2},
		{"a claim alone", []writeKind{unsynced}, 1},
		{"an ingest after it", []writeKind{durable}, 2},
		{"an ingest and a claim", []writeKind{durable, unsynced}, 2},
	} {
		batch := make([]*writeReq, len(c.kinds))
		levels := make([]int, len(c.kinds))
		for i, kind := range c.kinds {
			batch[i] = &writeReq{ctx: ctx, kind: kind, done: make(chan error, 1), fn: func(tx *wtx) error {
				return tx.tx.QueryRowContext(tx.ctx, `PRAGMA synchronous`).Scan(&levels[i])
			}}
		}
		if errs := s.commit(batch); slices.ContainsFunc(errs, func(err error) bool { return err != nil }) {
			t.Fatalf("%s: %v", c.name, errs)
		}
		for i, got := range levels {
			if got != c.want {
				t.Errorf("%s: request %d committed at synchronous=%d, want %d", c.name, i, got, c.want)
			}
		}
	}
	if _, err := s.ClaimDeliveries(ctx, time.Time{}, 10, time.Minute); err != nil {
		t.Fatal(err)
	}
	if !s.syncNormal {
		t.Errorf("ClaimDeliveries alone committed synced")
	}
	if _, err := s.Ingest(ctx, testIngest("src", "k1", "scan-1", nil)); err != nil {
		t.Fatal(err)
	}
	if s.syncNormal {
		t.Errorf("Ingest after a claim committed unsynced")
	}
}

// TestCloseDrains: every Ingest that returned nil before or during Close is
// on disk after reopening; the others were refused as unavailable.
func TestCloseDrains(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "verihook.db")
	key := newKey(t)
	s := openStore(t, path, key)
	const n = 200
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		acked []string
		// Close starts once an ingest is acknowledged, with others in
		// flight (under load, none might have been submitted yet).
		first     = make(chan struct{})
		firstOnce sync.Once
	)
	for i := range n {
		in := testIngest("src", fmt.Sprint("k", i), fmt.Sprint("scan-", i), []byte(`{}`))
		wg.Go(func() {
			_, err := s.Ingest(context.Background(), in)
			switch hub.ErrorCode(err) {
			case "":
				mu.Lock()
				acked = append(acked, in.Message.ID)
				mu.Unlock()
				firstOnce.Do(func() { close(first) })
			case hub.EUNAVAILABLE:
			default:
				t.Errorf("Ingest = %v, want nil or unavailable", err)
			}
		})
		if i == n/2 {
			go func() { <-first; s.Close() }()
		}
	}
	wg.Wait()
	s.Close()
	if len(acked) == 0 {
		t.Fatal("no ingest was acknowledged")
	}
	s2 := openStore(t, path, key)
	for _, id := range acked {
		if _, err := s2.Message(context.Background(), id); err != nil {
			t.Errorf("acknowledged message %s: %v", id, err)
		}
	}
	t.Logf("%d of %d acknowledged before Close", len(acked), n)
}

// TestCanceled: an Ingest whose context has ended stores nothing.
func TestCanceled(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "verihook.db"), newKey(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	in := testIngest("src", "k", "scan", nil)
	if _, err := s.Ingest(ctx, in); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ingest(canceled) = %v, want context.Canceled", err)
	}
	if _, err := s.Message(context.Background(), in.Message.ID); hub.ErrorCode(err) != hub.ENOTFOUND {
		t.Errorf("Message after a canceled Ingest = %v, want not found", err)
	}
}

// TestClock: what the caller leaves unset comes from Store.Now.
func TestClock(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "verihook.db"), newKey(t))
	fixed := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	s.Now = func() time.Time { return fixed }
	ctx := context.Background()
	if err := s.RecordRejection(ctx, hub.Message{SourceID: "nope", HTTPStatus: 404, Reason: "unknown source"}); err != nil {
		t.Fatal(err)
	}
	ms, _, err := s.Messages(ctx, hub.MessageFilter{})
	if err != nil || len(ms) != 1 {
		t.Fatalf("Messages = %v, %v", ms, err)
	}
	if !ms[0].ReceivedAt.Equal(fixed) || !strings.HasPrefix(ms[0].ID, "msg_") {
		t.Errorf("rejection = id %s received %v, want a msg_ id received %v", ms[0].ID, ms[0].ReceivedAt, fixed)
	}
	in := testIngest("src", "k", "scan", nil)
	in.Message.ReceivedAt, in.Observations[0].ReceivedAt, in.Events[0].CreatedAt = time.Time{}, time.Time{}, time.Time{}
	res, err := s.Ingest(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range res.Events {
		if !e.CreatedAt.Equal(fixed) {
			t.Errorf("event %s created %v, want %v", e.ID, e.CreatedAt, fixed)
		}
	}
	if want := hub.NewID("evt", fixed)[:13]; !strings.HasPrefix(res.Events[0].ID, want) {
		t.Errorf("generated event id %s does not carry the clock's time (%s…)", res.Events[0].ID, want)
	}
}

// TestOpenErrors: bad paths, a missing cipher and a file that is not a
// database are refused.
func TestOpenErrors(t *testing.T) {
	t.Parallel()
	c, _ := hub.NewCipher(newKey(t))
	ctx := context.Background()
	dir := t.TempDir()
	for _, path := range []string{"", filepath.Join(dir, "a?b.db"), filepath.Join(dir, "missing", "verihook.db")} {
		if s, err := Open(ctx, path, c); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", path)
		}
	}
	if _, err := Open(ctx, filepath.Join(dir, "x.db"), nil); err == nil {
		t.Error("Open without a cipher succeeded")
	}
	// A file that is not a database is refused.
	junk := filepath.Join(dir, "junk.db")
	os.WriteFile(junk, bytes.Repeat([]byte("not a database "), 512), 0o600)
	if s, err := Open(ctx, junk, c); err == nil {
		s.Close()
		t.Error("Open(junk) succeeded")
	}
}

// benchBody is a body of typical size for a KYC result webhook.
var benchBody = bytes.Repeat([]byte(`{"field":"some value of a KYC payload"},`), 40)

func benchIngest(i int64) hub.Ingest {
	return testIngest("src", fmt.Sprint("k", i), fmt.Sprint("scan-", i), benchBody)
}

// BenchmarkIngest measures one caller at a time: every Ingest waits for its
// own fsync.
func BenchmarkIngest(b *testing.B) {
	s := openStore(b, filepath.Join(b.TempDir(), "verihook.db"), newKey(b))
	ctx := context.Background()
	b.ReportAllocs()
	var i int64
	for b.Loop() {
		i++
		if _, err := s.Ingest(ctx, benchIngest(i)); err != nil {
			b.Fatal(err)
		}
	}
	reportBatches(b, s)
}

// BenchmarkIngestParallel measures many concurrent callers (32 per CPU, as
// an HTTP server under load has), which group commit lets share fsyncs.
func BenchmarkIngestParallel(b *testing.B) { benchIngestParallel(b, 0) }

// BenchmarkIngestParallelEndpoints is BenchmarkIngestParallel with two
// endpoints that want every event: each Ingest also creates four
// deliveries.
func BenchmarkIngestParallelEndpoints(b *testing.B) { benchIngestParallel(b, 2) }

func benchIngestParallel(b *testing.B, endpoints int) {
	s := openStore(b, filepath.Join(b.TempDir(), "verihook.db"), newKey(b))
	ctx := context.Background()
	for i := range endpoints {
		if err := s.CreateEndpoint(ctx, testEndpoint(fmt.Sprint("ep-", i))); err != nil {
			b.Fatal(err)
		}
	}
	var (
		mu   sync.Mutex
		next int64
	)
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			next++
			i := next
			mu.Unlock()
			if _, err := s.Ingest(ctx, benchIngest(i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportBatches(b, s)
}

func reportBatches(b *testing.B, s *Store) {
	if n := s.batches.Load(); n > 0 {
		b.ReportMetric(float64(s.writes.Load())/float64(n), "writes/commit")
	}
}

// TestPragmas: the settings durability depends on are in force on the
// connections that need them.
func TestPragmas(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "verihook.db"), newKey(t))
	for _, tc := range []struct {
		db     *sql.DB
		pragma string
		want   string
	}{
		{s.wdb, "journal_mode", "wal"},
		{s.wdb, "synchronous", "2"}, // FULL
		{s.wdb, "foreign_keys", "1"},
		{s.wdb, "busy_timeout", fmt.Sprint(busyTimeout.Milliseconds())},
		{s.wdb, "query_only", "0"},
		{s.wdb, "page_size", fmt.Sprint(pageSize)},
		{s.wdb, "wal_autocheckpoint", fmt.Sprint(writerCheckpointPages(pageSize))},
		{s.wdb, "cache_size", fmt.Sprint(-smallCacheKiB)},
		{s.cdb, "synchronous", "2"}, // FULL: a checkpoint syncs the database file
		{s.rdb, "journal_mode", "wal"},
		{s.rdb, "query_only", "1"},
		{s.rdb, "busy_timeout", fmt.Sprint(busyTimeout.Milliseconds())},
	} {
		var got string
		if err := tc.db.QueryRow("PRAGMA " + tc.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tc.pragma, err)
		}
		if got != tc.want {
			t.Errorf("PRAGMA %s = %s, want %s (writer: %v)", tc.pragma, got, tc.want, tc.db == s.wdb)
		}
	}
	// The read pool refuses writes.
	if _, err := s.rdb.Exec(`DELETE FROM messages`); err == nil {
		t.Error("a write through the read pool succeeded")
	}
}

// TestCacheKiB: the writer's page cache is small while the database is
// under 1 GiB, whatever its page size, and large from 1 GiB on.
func TestCacheKiB(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pages, size, want int64
	}{
		{1, 1024, smallCacheKiB},
		{1<<20 - 1, 1024, smallCacheKiB},
		{1 << 20, 1024, largeCacheKiB},
		{1<<18 - 1, 4096, smallCacheKiB},
		{1 << 18, 4096, largeCacheKiB},
	} {
		if got := cacheKiB(tc.pages, tc.size); got != tc.want {
			t.Errorf("cacheKiB(%d, %d) = %d, want %d", tc.pages, tc.size, got, tc.want)
		}
	}
}

// testEndpoint returns an enabled endpoint that wants every event.
func testEndpoint(id string) hub.Endpoint {
	return hub.Endpoint{ID: id, URL: "https://crm.example.com/" + id, Secret: hub.NewEndpointSecret(), Enabled: true}
}

// endpointsOf returns the endpoint ids of the deliveries of the events of
// res, sorted.
func endpointsOf(t *testing.T, s *Store, res hub.IngestResult) []string {
	t.Helper()
	var ids []string
	for _, e := range res.Events {
		ds, _, err := s.Deliveries(context.Background(), hub.DeliveryFilter{EventID: e.ID})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			ids = append(ids, d.EndpointID)
		}
	}
	slices.Sort(ids)
	return ids
}

// TestEndpointCacheInBatch: within one batch, an Ingest sees the endpoint
// writes committed before it in the batch and none that were rolled back,
// although the writer caches the endpoints.
func TestEndpointCacheInBatch(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "verihook.db"), newKey(t))
	ctx := context.Background()
	createFn, err := s.createEndpoint(testEndpoint("ep-a"))
	if err != nil {
		t.Fatal(err)
	}
	create := &writeReq{ctx: ctx, done: make(chan error, 1), fn: createFn}
	// ghost creates an endpoint, lets Ingest's cache load it, and fails: its
	// rollback must take the endpoint out of the cache as well.
	ghostFn, err := s.createEndpoint(testEndpoint("ep-ghost"))
	if err != nil {
		t.Fatal(err)
	}
	ghost := &writeReq{ctx: ctx, done: make(chan error, 1), fn: func(tx *wtx) error {
		if err := ghostFn(tx); err != nil {
			return err
		}
		if _, err := s.enabledEndpoints(tx); err != nil {
			return err
		}
		return errors.New("ghost fails")
	}}
	r1, res1 := request(t, s, ctx, testIngest("src", "k1", "scan-1", nil))
	r2, res2 := request(t, s, ctx, testIngest("src", "k2", "scan-2", nil))
	r3, res3 := request(t, s, ctx, testIngest("src", "k3", "scan-3", nil))
	errs := s.commit([]*writeReq{r1, create, r2, ghost, r3})
	for i, err := range errs {
		if (err != nil) != (i == 3) {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if res1.Deliveries != 0 || res2.Deliveries != 2 || res3.Deliveries != 2 {
		t.Errorf("deliveries = %d, %d, %d; want 0 (no endpoint yet), 2, 2", res1.Deliveries, res2.Deliveries, res3.Deliveries)
	}
	if got := endpointsOf(t, s, *res3); !slices.Equal(got, []string{"ep-a", "ep-a"}) {
		t.Errorf("the last ingest delivered to %v, want ep-a twice", got)
	}
	if _, err := s.Endpoint(ctx, "ep-ghost"); hub.ErrorCode(err) != hub.ENOTFOUND {
		t.Errorf("Endpoint(ghost) = %v, want not found", err)
	}
	// And in the next batch.
	res, err := s.Ingest(ctx, testIngest("src", "k4", "scan-4", nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := endpointsOf(t, s, res); !slices.Equal(got, []string{"ep-a", "ep-a"}) {
		t.Errorf("the next ingest delivered to %v, want ep-a twice", got)
	}
}

// TestEndpointCacheOtherProcess: endpoint changes that another process
// (another connection) commits to the same file reach this store's Ingest
// and ClaimDeliveries at once.
func TestEndpointCacheOtherProcess(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "verihook.db")
	key := newKey(t)
	s := openStore(t, path, key)
	other := openStore(t, path, key)
	ctx := context.Background()
	if res, err := s.Ingest(ctx, testIngest("src", "k1", "scan-1", nil)); err != nil || res.Deliveries != 0 {
		t.Fatalf("Ingest = %+v, %v; want no deliveries", res, err)
	}
	if err := other.CreateEndpoint(ctx, testEndpoint("ep-a")); err != nil {
		t.Fatal(err)
	}
	res, err := s.Ingest(ctx, testIngest("src", "k2", "scan-2", nil))
	if err != nil || res.Deliveries != 2 {
		t.Fatalf("Ingest after another process created an endpoint = %d deliveries, %v; want 2", res.Deliveries, err)
	}
	e, err := other.Endpoint(ctx, "ep-a")
	if err != nil {
		t.Fatal(err)
	}
	e.Enabled = false
	if err := other.UpdateEndpoint(ctx, e); err != nil {
		t.Fatal(err)
	}
	if cs, err := s.ClaimDeliveries(ctx, t0, 10, time.Minute); err != nil || len(cs) != 0 {
		t.Errorf("ClaimDeliveries after another process disabled the endpoint = %d claims, %v; want none", len(cs), err)
	}
	if res, err := s.Ingest(ctx, testIngest("src", "k3", "scan-3", nil)); err != nil || res.Deliveries != 0 {
		t.Errorf("Ingest after another process disabled the endpoint = %d deliveries, %v; want none", res.Deliveries, err)
	}
}

// TestClaimPlans: the claim queries walk their indexes and sort nothing, so
// that a claim costs what it takes, not the size of the queue.
func TestClaimPlans(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "verihook.db"), newKey(t))
	for name, want := range map[string]string{
		"claimDue":        "USING INDEX deliveries_due",
		"claimDueOrdered": "USING INDEX deliveries_due",
	} {
		q := map[string]string{"claimDue": claimDueSQL, "claimDueOrdered": claimDueOrderedSQL}[name]
		plan := queryPlan(t, s, q, "ep", 0, 0, 10)
		all := strings.Join(plan, "; ")
		if !strings.Contains(plan[0], want) || strings.Contains(all, "TEMP B-TREE") || strings.Contains(all, "SCAN deliveries") {
			t.Errorf("%s plan = %s; want a search %s without a sort", name, all, want)
		}
		if name == "claimDueOrdered" && !strings.Contains(all, "deliveries_ordered") {
			t.Errorf("%s plan = %s; want the ordered check on deliveries_ordered", name, all)
		}
	}
}

// TestVerificationPlans: the writer's lookup of a verification and the list
// filter on a provider reference both search the one index led by
// provider_ref (migration 0005).
func TestVerificationPlans(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "verihook.db"), newKey(t))
	for q, args := range map[string][]any{
		`SELECT ` + verificationCols + ` FROM verifications WHERE provider_ref = ? AND source = ? AND level = ?`: {"r", "s", ""},
		`SELECT ` + verificationCols + ` FROM verifications WHERE provider_ref = ? ORDER BY id DESC LIMIT ?`:     {"r", 51},
	} {
		if all := strings.Join(queryPlan(t, s, q, args...), "; "); !strings.Contains(all, "SEARCH verifications USING INDEX verifications_key (provider_ref=?") {
			t.Errorf("plan of %s = %s; want a search of verifications_key", q, all)
		}
	}
}

// TestListPlans: a list filtered on a rare value searches the partial index
// that holds the rare values (migration 0006), and one filtered on the common
// value walks the primary key newest first; a list of deliveries filtered on
// any status searches its range of deliveries_status (migration 0032); none
// sorts.
func TestListPlans(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "verihook.db"), newKey(t))
	type plan struct {
		name, want string
		sql        string
		args       []any
	}
	var plans []plan
	add := func(name, want, sql string, args []any) { plans = append(plans, plan{name, want, sql, args}) }
	q, args := messagesSQL(hub.MessageFilter{Status: hub.MessageRejected}, "msg_z", 50)
	add("messages, rejected", "SEARCH messages USING INDEX messages_unaccepted (status=? AND id<?)", q, args)
	q, args = messagesSQL(hub.MessageFilter{Status: hub.MessageAccepted}, "msg_z", 50)
	add("messages, accepted", "SEARCH messages USING INDEX sqlite_autoindex_messages_1 (id<?)", q, args)
	q, args = eventsSQL(hub.EventFilter{Type: hub.EventOTPRequested}, "evt_z", 50)
	add("events, otp.requested", "SEARCH events USING INDEX events_uncommon (type=? AND id<?)", q, args)
	q, args = eventsSQL(hub.EventFilter{Type: hub.EventVerificationUpdated}, "evt_z", 50)
	add("events, verification.updated", "SEARCH events USING INDEX sqlite_autoindex_events_1 (id<?)", q, args)
	q, args = verificationsSQL(hub.VerificationFilter{Level: "nomatch"}, "vrf_z", 50)
	add("verifications, level", "SEARCH verifications USING INDEX verifications_level (level=? AND id<?)", q, args)
	q, args = verificationsSQL(hub.VerificationFilter{ApplicantRef: "nomatch"}, "vrf_z", 50)
	add("verifications, applicant", "SEARCH verifications USING INDEX verifications_applicant (applicant_ref=? AND id<?)", q, args)
	q, args = verificationsSQL(hub.VerificationFilter{Provider: "fractal"}, "vrf_z", 50)
	add("verifications, provider", "SEARCH verifications USING INDEX verifications_provider (provider=? AND id<?)", q, args)
	for _, c := range []struct {
		name   string
		filter hub.DeliveryFilter
	}{
		{"pending", hub.DeliveryFilter{Status: hub.DeliveryPending}},
		{"failed", hub.DeliveryFilter{Status: hub.DeliveryFailed}},
		{"succeeded", hub.DeliveryFilter{Status: hub.DeliverySucceeded}},
		{"pending, endpoint", hub.DeliveryFilter{Status: hub.DeliveryPending, EndpointID: "ep"}},
		{"failed, endpoint", hub.DeliveryFilter{Status: hub.DeliveryFailed, EndpointID: "ep"}},
		{"succeeded, endpoint", hub.DeliveryFilter{Status: hub.DeliverySucceeded, EndpointID: "ep"}},
	} {
		q, args = deliveriesSQL(c.filter, "dlv_z", 50)
		add("deliveries, "+c.name, "SEARCH deliveries USING INDEX deliveries_status (<expr>=? AND status=? AND id<?)", q, args)
	}
	for _, p := range plans {
		all := strings.Join(queryPlan(t, s, p.sql, p.args...), "; ")
		if !strings.Contains(all, p.want) || strings.Contains(all, "TEMP B-TREE") {
			t.Errorf("%s: plan = %s; want %s without a sort", p.name, all, p.want)
		}
	}
	// An event has a delivery per endpoint at most: a filter on it and a
	// status finds them by event (and sorts those few), not among every
	// delivery of the status.
	q, args = deliveriesSQL(hub.DeliveryFilter{Status: hub.DeliveryPending, EventID: "evt"}, "dlv_z", 50)
	if all := strings.Join(queryPlan(t, s, q, args...), "; "); !strings.Contains(all, "SEARCH deliveries USING INDEX sqlite_autoindex_deliveries_2 (event_id=?)") {
		t.Errorf("deliveries, pending, event: plan = %s; want a search by event", all)
	}
}

// TestReplayPlan: Replay reads its chunk from the two partial indexes on
// events' creation time and merges them, without a sort (migration 0027).
func TestReplayPlan(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "verihook.db"), newKey(t))
	all := strings.Join(queryPlan(t, s, replayEventsSQL, 0, 1, 0, 10), "; ")
	for _, want := range []string{"MERGE (UNION ALL)", "SEARCH events USING INDEX events_unpurged (created_at>? AND created_at<?)",
		"SEARCH events USING INDEX events_purged (created_at>? AND created_at<?)"} {
		if !strings.Contains(all, want) || strings.Contains(all, "TEMP B-TREE") {
			t.Errorf("replay plan = %s; want %s without a sort", all, want)
		}
	}
}

// queryPlan returns the details of EXPLAIN QUERY PLAN q, one per step.
func queryPlan(t *testing.T, s *Store, q string, args ...any) []string {
	t.Helper()
	rows, err := s.rdb.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}

// TestReplayChunks: a replay that spans several chunks, through events
// that share their creation time, purged and not (each kind in an index of
// its own, migration 0027), sees every event once.
func TestReplayChunks(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "verihook.db"), newKey(t))
	s.replayChunk = 3
	ctx := context.Background()
	if err := s.CreateEndpoint(ctx, testEndpoint("ep-all")); err != nil {
		t.Fatal(err)
	}
	for i := range 4 { // 8 events, all created at t0
		if _, err := s.Ingest(ctx, testIngest("src", fmt.Sprint("k", i), fmt.Sprint("scan-", i), nil)); err != nil {
			t.Fatal(err)
		}
	}
	events, _, err := s.Events(ctx, hub.EventFilter{})
	if err != nil || len(events) != 8 {
		t.Fatalf("Events = %d, %v; want 8", len(events), err)
	}
	var purge hub.Purge // every other event, so that each chunk reads both indexes
	for i := 0; i < len(events); i += 2 {
		purge.Events = append(purge.Events, events[i].ID)
	}
	if res, err := s.Purge(ctx, purge); err != nil || res.Events != 4 {
		t.Fatalf("Purge = %+v, %v; want 4 events", res, err)
	}
	late := testEndpoint("ep-otp")
	late.EventTypes = []string{hub.EventOTPRequested}
	if err := s.CreateEndpoint(ctx, late); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		r    hub.Replay
		want int
	}{
		{hub.Replay{EndpointID: "ep-all", Since: t0, Until: t0.Add(time.Nanosecond)}, 8},
		{hub.Replay{EndpointID: "ep-otp", Since: t0}, 4},                      // creates them
		{hub.Replay{EndpointID: "ep-otp"}, 4},                                 // resets them
		{hub.Replay{EndpointID: "ep-otp", Status: hub.DeliveryFailed}, 0},     // none failed
		{hub.Replay{EndpointID: "ep-all", Since: t0.Add(time.Nanosecond)}, 0}, // after every event
		{hub.Replay{EndpointID: "ep-all", Until: t0}, 0},                      // before every event
		{hub.Replay{EndpointID: "ep-all", Status: hub.DeliveryPending, Since: t0}, 8},
	} {
		n, err := s.Replay(ctx, tc.r)
		if err != nil || n != tc.want {
			t.Errorf("Replay(%+v) = %d, %v; want %d", tc.r, n, err, tc.want)
		}
	}
	ds, _, err := s.Deliveries(ctx, hub.DeliveryFilter{EndpointID: "ep-otp"})
	if err != nil || len(ds) != 4 {
		t.Fatalf("Deliveries(ep-otp) = %d, %v; want 4", len(ds), err)
	}
	for _, d := range ds {
		if d.EventType != hub.EventOTPRequested {
			t.Errorf("replay created a delivery of a %s event", d.EventType)
		}
	}
}

// benchClaimAndRecord runs workers that claim deliveries 10 at a time and
// record a verdict for each that makes it due again at once (the queue holds
// 1000 deliveries that go round), until b.N deliveries have been handled.
func benchClaimAndRecord(b *testing.B, workers int) {
	s := openStore(b, filepath.Join(b.TempDir(), "verihook.db"), newKey(b))
	ctx := context.Background()
	if err := s.CreateEndpoint(ctx, testEndpoint("ep")); err != nil {
		b.Fatal(err)
	}
	for i := range 500 { // two deliveries each
		if _, err := s.Ingest(ctx, benchIngest(int64(i))); err != nil {
			b.Fatal(err)
		}
	}
	var (
		mu   sync.Mutex
		left = b.N
		tick int64 // the clock: one nanosecond per claim, so that every claim is later than the verdicts before it
	)
	take := func() (int, time.Time) {
		mu.Lock()
		defer mu.Unlock()
		n := min(10, left)
		left -= n
		tick++
		return n, t0.Add(time.Duration(tick))
	}
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				n, now := take()
				if n == 0 {
					return
				}
				cs, err := s.ClaimDeliveries(ctx, now, n, time.Minute)
				if err != nil {
					b.Error(err)
					return
				}
				if len(cs) < n { // a worker that took its clock reading long ago may find fewer due
					mu.Lock()
					left += n - len(cs)
					mu.Unlock()
				}
				// Recorded concurrently, as the delivery worker's sends
				// record theirs: one at a time, each would wait patientWait
				// for company.
				var sends sync.WaitGroup
				for _, c := range cs {
					sends.Go(func() {
						err := s.RecordAttempt(ctx, hub.AttemptRecord{DeliveryID: c.Delivery.ID, Lease: c.Lease,
							Attempt: hub.Attempt{At: now, StatusCode: 500, LatencyMS: 12, Response: "busy"},
							Status:  hub.DeliveryPending, NextAttemptAt: now})
						if err != nil {
							b.Error(err)
						}
					})
				}
				sends.Wait()
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	reportBatches(b, s)
}

// BenchmarkClaimAndRecord measures the outbox's hot path, per delivery: a
// share of a claim of 10 and one RecordAttempt, for one worker: the claim a
// transaction of its own, the ten attempts sharing commits.
func BenchmarkClaimAndRecord(b *testing.B) { benchClaimAndRecord(b, 1) }

// BenchmarkClaimAndRecordParallel is the same with 16 workers, whose writes
// share commits.
func BenchmarkClaimAndRecordParallel(b *testing.B) { benchClaimAndRecord(b, 16) }

// TestPurgePlans: each purge query searches the partial index of the rows
// still to purge (migration 0007), so that a purge costs what it purges, not
// the size of the history.
func TestPurgePlans(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "verihook.db"), newKey(t))
	for q, want := range map[string]string{
		purgeBodiesSQL + purgeBeforeCond + ` LIMIT ?`:    "SEARCH messages USING INDEX messages_purge (received_at<?)",
		purgeBodyTableSQL + purgeBeforeCond + ` LIMIT ?`: "SEARCH message_bodies USING COVERING INDEX sqlite_autoindex_message_bodies_1 (received_at<?)",
		// By id, as when a dispatch is final.
		purgeBodiesSQL + `id IN (?, ?) LIMIT ?`:                   "SEARCH messages USING INDEX sqlite_autoindex_messages_1 (id=?)",
		purgeBodyTableSQL + purgeBodyTableIDsCond(2) + ` LIMIT ?`: "SEARCH message_bodies USING COVERING INDEX sqlite_autoindex_message_bodies_1 (received_at=? AND message_id=?)",
		// A message's body, as every read of messages finds it.
		`SELECT ` + messageCols + ` FROM messages WHERE id > ? LIMIT ?`: "SEARCH b USING INDEX sqlite_autoindex_message_bodies_1 (received_at=? AND message_id=?)",
		purgeEventsSQL + `created_at < ? LIMIT ?`:                       "SEARCH events USING INDEX events_unpurged (created_at<?)",
		purgeEventsSQL + purgeOTPCond + ` LIMIT ?`:                      "SEARCH events USING INDEX events_otp_unpurged (created_at<?)",
		purgeAttemptsSQL:   "SEARCH attempts USING INDEX attempts_unpurged (at<?)",
		purgeRejectionsSQL: "SEARCH messages USING INDEX messages_rejections_unpurged (received_at<?)",
	} {
		args := make([]any, strings.Count(q, "?")) // a plan needs them, of any value
		if all := strings.Join(queryPlan(t, s, q, args...), "; "); !strings.Contains(all, want) {
			t.Errorf("plan of %s = %s; want %s", q, all, want)
		}
	}
}

// TestDedupPlans: every dedup lookup of the writer searches the index on
// the key's hash (migration 0031), and no other index of messages.
func TestDedupPlans(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "verihook.db"), newKey(t))
	want := []string{"SEARCH messages USING INDEX messages_dedup_hash (dedup_hash=?)"}
	for name, p := range map[string]struct {
		sql  string
		args []any
	}{
		"findDuplicate": {findDuplicateSQL, []any{1, "src", "k"}},
		"findNear":      {findNearSQL, []any{1, 2, "src", "k@w1", "k@w3", 0, 1}},
		"insertMessage": {insertMessageSQL, []any{"msg_1", "src", "idenfy", 0, "", "accepted", 200, "", "", "k", 1, nil, "callback"}},
		// The UPDATE finds its row by id, then looks the key up.
		"setCurrentKey": {setCurrentKeySQL, []any{"k@v1", 1, "msg_1", "src"}},
	} {
		var searches []string
		for _, step := range queryPlan(t, s, p.sql, p.args...) {
			if strings.Contains(step, "messages") && !strings.HasSuffix(step, "sqlite_autoindex_messages_1 (id=?)") {
				searches = append(searches, step)
			}
		}
		if !slices.Equal(searches, want) {
			t.Errorf("%s: plan's dedup lookup = %q; want %q", name, searches, want)
		}
	}
}
