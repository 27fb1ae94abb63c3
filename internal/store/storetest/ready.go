package storetest

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/httpapi"
	"github.com/verihook/verihook/internal/hub"
)

// Readiness checks that a store's Ping, and /readyz served by the real
// handler, follow whether the store can commit: block must make the store's
// writes fail as a full disk or a read-only database does, with the
// database still answering, and unblock must end that. /readyz must say 503
// once an Ingest fails, and 200 again by itself once it would succeed.
func Readiness(t *testing.T, s hub.Store, block, unblock func(t *testing.T)) {
	t.Helper()
	srv := httptest.NewServer((&httpapi.Server{Store: s, Logger: slog.New(slog.DiscardHandler)}).Handler())
	t.Cleanup(srv.Close)
	waitReadyz(t, srv.URL, http.StatusOK)

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
	if err := s.Ping(ctx(t)); err == nil || hub.ErrorCode(err) != hub.ErrorCode(ingestErr) {
		t.Errorf("Ping while Ingest fails with %v = %v, want the same kind of error", ingestErr, err)
	}
	waitReadyz(t, srv.URL, http.StatusServiceUnavailable)

	unblock(t)
	waitReadyz(t, srv.URL, http.StatusOK)
	ingest(t, s, msg("src", "unblocked", at(0)), nil)
}

// waitReadyz polls /readyz until it answers want; its answer is cached for
// a second.
func waitReadyz(t *testing.T, base string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz answers %d, want %d", resp.StatusCode, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
