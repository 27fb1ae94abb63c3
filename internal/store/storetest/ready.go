package storetest

import (
	"fmt"
	"testing"

	"github.com/verihook/verihook/internal/hub"
)

// Readiness checks that a store's Ping, the readiness probe behind /readyz,
// follows whether the store can commit: block must make the store's writes
// fail as a full disk or a read-only database does, with the database still
// answering, and unblock must end that. Ping must fail once an Ingest fails,
// with the same kind of error, and succeed again by itself, on the same
// store, once writes are taken again. (How /readyz caches and answers Ping
// is tested in internal/httpapi.)
func Readiness(t *testing.T, s hub.Store, block, unblock func(t *testing.T)) {
	t.Helper()
	if err := s.Ping(ctx(t)); err != nil {
		t.Fatalf("Ping on a store that commits: %v", err)
	}

	block(t)
	// The store may have a little room left (SQLite reuses free pages):
	// ingest until an Ingest fails.
	var ingestErr error
	for i := 0; ingestErr == nil && i < 10000; i++ {
		m := msg("src", fmt.Sprint("blocked-", i), at(i))
		_, ingestErr = s.Ingest(ctx(t), hub.Ingest{Message: m,
			Observations: []hub.Observation{observe(m, fmt.Sprint("ref-", i), "", hub.StatusApproved, true)}})
	}
	if ingestErr == nil {
		t.Fatal("every Ingest succeeded while the store was blocked")
	}
	if _, err := s.Sources(ctx(t)); err != nil {
		t.Fatalf("blocked writes must leave reads working, so that only a write tells: %v", err)
	}
	for i := range 3 { // every probe fails, not only the first
		if err := s.Ping(ctx(t)); err == nil || hub.ErrorCode(err) != hub.ErrorCode(ingestErr) {
			t.Fatalf("Ping %d while Ingest fails with %v = %v, want the same kind of error", i, ingestErr, err)
		}
	}

	unblock(t)
	if err := s.Ping(ctx(t)); err != nil {
		t.Fatalf("Ping once writes are taken again: %v", err)
	}
	ingest(t, s, msg("src", "unblocked", at(0)), nil)
}
