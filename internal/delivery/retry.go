package delivery

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// DefaultSchedule is the wait before each attempt (SPEC section 6): the first
// at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h; a delivery whose
// last attempt fails is failed (dead letter).
var DefaultSchedule = []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// DisableAfter is how long an endpoint may fail without a success before it
// is disabled.
const DisableAfter = 5 * 24 * time.Hour

// maxRetryAfter caps how far a Retry-After header may push an attempt.
const maxRetryAfter = 24 * time.Hour

// Result is what happened to one attempt: a response (StatusCode, Header)
// or a transport error (Err).
type Result struct {
	StatusCode int
	Header     http.Header
	Err        error
}

// Verdict is what to do after an attempt.
type Verdict struct {
	Status hub.DeliveryStatus
	// NextAttemptAt is set when Status is pending.
	NextAttemptAt time.Time
	// DisableEndpoint, when not empty, disables the endpoint with this reason.
	DisableEndpoint string
}

// Decide classifies an attempt (the attempts-th of the delivery, counting
// from 1) and schedules the next one: 2xx succeeds; 410 fails the delivery
// and disables the endpoint; anything else, a timeout or a network error
// retries after the schedule's next wait (with ±10 % jitter), or after a
// 429/503's Retry-After when that is later; past the schedule the delivery
// fails. failingSince is when the endpoint's current run of failures began
// (zero if this is the first); a run longer than DisableAfter disables it.
func Decide(r Result, attempts int, schedule []time.Duration, now, failingSince time.Time, rnd *rand.Rand) Verdict {
	if r.Err == nil && r.StatusCode >= 200 && r.StatusCode <= 299 {
		return Verdict{Status: hub.DeliverySucceeded}
	}
	if r.Err == nil && r.StatusCode == http.StatusGone {
		return Verdict{Status: hub.DeliveryFailed, DisableEndpoint: "the endpoint answered 410 Gone"}
	}
	var v Verdict
	if !failingSince.IsZero() && now.Sub(failingSince) >= DisableAfter {
		v.DisableEndpoint = fmt.Sprintf("failing without a success since %s", failingSince.UTC().Format(time.RFC3339))
	}
	if attempts >= len(schedule) {
		v.Status = hub.DeliveryFailed
		return v
	}
	wait := jitter(schedule[attempts], rnd)
	if r.Err == nil && (r.StatusCode == http.StatusTooManyRequests || r.StatusCode == http.StatusServiceUnavailable) {
		if ra, ok := retryAfter(r.Header.Get("Retry-After"), now); ok && ra > wait {
			wait = ra
		}
	}
	v.Status, v.NextAttemptAt = hub.DeliveryPending, now.Add(wait)
	return v
}

// jitter spreads d by up to ±10 %, so that endpoints that fail together do
// not retry in lockstep.
func jitter(d time.Duration, rnd *rand.Rand) time.Duration {
	if d <= 0 || rnd == nil {
		return d
	}
	spread := int64(d) / 10
	return d + time.Duration(rnd.Int64N(2*spread+1)-spread)
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	return min(max(d, 0), maxRetryAfter), true
}
