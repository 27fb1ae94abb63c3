package delivery

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	resp := func(code int, kv ...string) Result {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return Result{StatusCode: code, Header: h}
	}
	tests := []struct {
		name         string
		r            Result
		attempts     int
		failingSince time.Time
		wantStatus   hub.DeliveryStatus
		wantWait     time.Duration // exact, with no jitter source
		wantDisable  bool
	}{
		{"2xx succeeds", resp(204), 1, time.Time{}, hub.DeliverySucceeded, 0, false},
		{"500 after the first attempt waits 5 s", resp(500), 1, time.Time{}, hub.DeliveryPending, 5 * time.Second, false},
		{"network error after the second waits 5 min", Result{Err: errors.New("connection reset")}, 2, time.Time{}, hub.DeliveryPending, 5 * time.Minute, false},
		{"redirect is a failure", resp(302, "Location", "http://elsewhere"), 3, time.Time{}, hub.DeliveryPending, 30 * time.Minute, false},
		{"429 Retry-After longer than the schedule", resp(429, "Retry-After", "120"), 1, time.Time{}, hub.DeliveryPending, 2 * time.Minute, false},
		{"503 Retry-After shorter than the schedule keeps the schedule", resp(503, "Retry-After", "1"), 2, time.Time{}, hub.DeliveryPending, 5 * time.Minute, false},
		{"503 Retry-After as an HTTP date", resp(503, "Retry-After", now.Add(time.Hour).Format(http.TimeFormat)), 1, time.Time{}, hub.DeliveryPending, time.Hour, false},
		{"Retry-After is capped at a day", resp(429, "Retry-After", "9999999"), 1, time.Time{}, hub.DeliveryPending, 24 * time.Hour, false},
		{"Retry-After on a 500 is ignored", resp(500, "Retry-After", "120"), 1, time.Time{}, hub.DeliveryPending, 5 * time.Second, false},
		{"410 fails and disables", resp(410), 1, time.Time{}, hub.DeliveryFailed, 0, true},
		{"the eighth failure is a dead letter", resp(500), 8, time.Time{}, hub.DeliveryFailed, 0, false},
		{"the seventh failure waits 10 h", resp(500), 7, time.Time{}, hub.DeliveryPending, 10 * time.Hour, false},
		{"failing for 5 days disables", resp(500), 3, now.Add(-DisableAfter), hub.DeliveryPending, 30 * time.Minute, true},
		{"failing for 4 days does not", resp(500), 3, now.Add(-4 * 24 * time.Hour), hub.DeliveryPending, 30 * time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := Decide(tt.r, tt.attempts, DefaultSchedule, now, tt.failingSince, nil)
			if v.Status != tt.wantStatus {
				t.Fatalf("status %s, want %s", v.Status, tt.wantStatus)
			}
			if tt.wantStatus == hub.DeliveryPending && !v.NextAttemptAt.Equal(now.Add(tt.wantWait)) {
				t.Errorf("next attempt in %s, want %s", v.NextAttemptAt.Sub(now), tt.wantWait)
			}
			if (v.DisableEndpoint != "") != tt.wantDisable {
				t.Errorf("disable %q, want %v", v.DisableEndpoint, tt.wantDisable)
			}
		})
	}
}

func TestJitterStaysWithinTenPercent(t *testing.T) {
	t.Parallel()
	rnd := rand.New(rand.NewPCG(1, 2))
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := jitter(time.Hour, rnd)
		if d < 54*time.Minute || d > 66*time.Minute {
			t.Fatalf("jitter(1h) = %s, outside ±10%%", d)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Errorf("jitter gave only %d distinct waits in 1000 draws", len(seen))
	}
	if jitter(0, rnd) != 0 {
		t.Error("the immediate first attempt was delayed")
	}
}
