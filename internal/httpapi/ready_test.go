package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/testkit"
)

// pingStore is a hub.Store whose Ping counts its calls and fails while
// failing is set; readiness uses nothing else.
type pingStore struct {
	hub.Store
	pings   atomic.Int64
	failing atomic.Bool
}

func (s *pingStore) Ping(context.Context) error {
	s.pings.Add(1)
	if s.failing.Load() {
		return hub.Errorf(hub.EUNAVAILABLE, "database or disk is full")
	}
	return nil
}

// TestReadyzProbesOncePerTTL: a storm of /readyz costs one probe per
// readyTTL, a failed probe answers 503 until the next one succeeds, and only
// the changes are logged.
func TestReadyzProbesOncePerTTL(t *testing.T) {
	t.Parallel()
	store := &pingStore{}
	var log testkit.Buffer
	s := &Server{Store: store, Logger: slog.New(slog.NewTextHandler(&log, nil))}
	var clock atomic.Int64 // nanoseconds since t0
	t0 := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	s.readiness.now = func() time.Time { return t0.Add(time.Duration(clock.Load())) }
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)

	storm := func(want int) {
		t.Helper()
		var wg sync.WaitGroup
		codes := make([]int, 50)
		for i := range codes {
			wg.Go(func() {
				resp, err := http.Get(srv.URL + "/readyz")
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				codes[i] = resp.StatusCode
			})
		}
		wg.Wait()
		for _, c := range codes {
			if c != want {
				t.Fatalf("/readyz answered %v, want %d from each", codes, want)
			}
		}
	}
	storm(http.StatusOK)
	if n := store.pings.Load(); n != 1 {
		t.Fatalf("50 requests at once made %d probes, want 1", n)
	}

	store.failing.Store(true)
	clock.Add(int64(readyTTL / 2))
	storm(http.StatusOK) // the last answer is still fresh
	clock.Add(int64(readyTTL / 2))
	storm(http.StatusServiceUnavailable)
	clock.Add(int64(readyTTL))
	storm(http.StatusServiceUnavailable)
	store.failing.Store(false)
	clock.Add(int64(readyTTL))
	storm(http.StatusOK)
	if n := store.pings.Load(); n != 4 {
		t.Errorf("%d probes over four TTLs, want 4", n)
	}
	if got := log.String(); strings.Count(got, "not ready") != 1 || strings.Count(got, "ready again") != 1 {
		t.Errorf("want one line when readiness is lost and one when it is back; log:\n%s", got)
	}
}
