package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// TestLeasesFollowTheTransaction: the leases kept in memory change with the
// writer's transaction: a claim whose batch is rolled back and run again
// leases the same deliveries, once; a write that takes a lease and then fails
// gives it back, under a savepoint and with a whole batch; and a claim writes
// nothing to the file while a recorded attempt does.
func TestLeasesFollowTheTransaction(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "verihook.db")
	s := openStore(t, path, newKey(t))
	ctx := context.Background()
	if err := s.CreateEndpoint(ctx, testEndpoint("ep")); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k1", "k2"} {
		if _, err := s.Ingest(ctx, testIngest("src", k, "scan-"+k, nil)); err != nil {
			t.Fatal(err)
		}
	}
	ds, _, err := s.Deliveries(ctx, hub.DeliveryFilter{})
	if err != nil || len(ds) < 2 {
		t.Fatalf("Deliveries = %d, %v; want 2 or more", len(ds), err)
	}
	n := len(ds)
	now := t0.Add(time.Minute)
	req := func(fn func(tx *wtx) error) *writeReq {
		return &writeReq{ctx: ctx, done: make(chan error, 1), fn: fn}
	}
	failing := req(func(*wtx) error { return errors.New("fails") })

	// The batch fails at its second request and runs again under
	// savepoints: the claim's first run must leave no lease behind, or its
	// second would find both deliveries held.
	var claims []sealedClaim
	claim := req(func(tx *wtx) error {
		var err error
		claims, err = s.claimTx(tx, now, now.Add(time.Minute), 10)
		return err
	})
	errs := s.commit([]*writeReq{claim, failing})
	if errs[0] != nil || errs[1] == nil || s.retried.Load() != 1 {
		t.Fatalf("claim and failing request: %v, %d retried; want the claim committed at the second run", errs,
			s.retried.Load())
	}
	if len(claims) != n || len(s.leases) != n {
		t.Fatalf("the claim run twice leased %d deliveries, %d held; want %d, %d", len(claims), len(s.leases), n, n)
	}
	if got, err := s.ClaimDeliveries(ctx, now, 10, time.Minute); err != nil || len(got) != 0 {
		t.Fatalf("ClaimDeliveries while both are leased = %d, %v; want none", len(got), err)
	}

	// A write that takes a lease and fails gives it back: alone in its batch
	// (the whole transaction rolls back) and beside one that commits (its
	// savepoint does).
	id, token := claims[0].delivery.ID, claims[0].lease
	takeAndFail := req(func(tx *wtx) error {
		if err := s.takeLease(tx, id, token); err != nil {
			return err
		}
		return errors.New("fails with the lease taken")
	})
	if errs := s.commit([]*writeReq{takeAndFail}); errs[0] == nil {
		t.Fatal("the failing write succeeded")
	}
	ok := req(func(tx *wtx) error { _, err := tx.exec(`UPDATE endpoints SET version = version + 1`); return err })
	takeAndFail.done = make(chan error, 1)
	if errs := s.commit([]*writeReq{ok, takeAndFail}); errs[0] != nil || errs[1] == nil {
		t.Fatalf("a good write and a failing one: %v", errs)
	}
	if l, held := s.leases[id]; !held || l.token != token {
		t.Fatalf("after the failed writes the lease is %+v (held %v), want token %s", l, held, token)
	}

	// When the leases end, a claim takes the deliveries again, writing
	// nothing: neither the file's version as another connection sees it
	// nor the WAL's size changes. Recording an attempt changes both.
	conn, err := s.rdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	written := func() (version int64, wal int64) {
		t.Helper()
		if err := conn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&version); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return version, fi.Size()
	}
	v0, w0 := written()
	later := now.Add(2 * time.Minute)
	again, err := s.ClaimDeliveries(ctx, later, 10, time.Minute)
	if err != nil || len(again) != n {
		t.Fatalf("ClaimDeliveries after the leases ended = %d, %v; want %d", len(again), err, n)
	}
	if v, w := written(); v != v0 || w != w0 {
		t.Errorf("a claim wrote: data_version %d -> %d, WAL %d -> %d bytes; want no change", v0, v, w0, w)
	}
	stale := hub.AttemptRecord{DeliveryID: id, Lease: token, Status: hub.DeliverySucceeded,
		Attempt: hub.Attempt{At: later, StatusCode: 200}}
	if err := s.RecordAttempt(ctx, stale); hub.ErrorCode(err) != hub.ECONFLICT {
		t.Errorf("RecordAttempt with the ended lease after a new claim = %v, want ECONFLICT", err)
	}
	for _, c := range again {
		r := stale
		r.DeliveryID, r.Lease = c.Delivery.ID, c.Lease
		if err := s.RecordAttempt(ctx, r); err != nil {
			t.Fatalf("RecordAttempt(%s) = %v", c.Delivery.ID, err)
		}
	}
	if v, w := written(); v == v0 || w == w0 {
		t.Errorf("recorded attempts: data_version %d -> %d, WAL %d -> %d bytes; want both to change", v0, v, w0, w)
	}
	if len(s.leases) != 0 {
		t.Errorf("%d leases held after every delivery was recorded, want 0", len(s.leases))
	}
}
