package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/store/sqlite"
	"github.com/verihook/verihook/internal/store/sqlite/sqlitetest"
	"github.com/verihook/verihook/internal/testkit"
)

// t0 is where the fake clocks of these tests start.
var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// env is a real SQLite store on a fake clock.
type env struct {
	t     testing.TB
	store *sqlite.Store
	clock *testkit.Clock
	seq   atomic.Int64
}

func newEnv(t testing.TB) *env {
	t.Helper()
	s := sqlitetest.Open(t)
	clock := testkit.NewClock(t0)
	s.Now = clock.Now
	return &env{t: t, store: s, clock: clock}
}

// endpoint creates an enabled endpoint for url that takes every event type,
// after mod has changed it.
func (e *env) endpoint(url string, mod func(*hub.Endpoint)) hub.Endpoint {
	e.t.Helper()
	ep := hub.Endpoint{ID: fmt.Sprintf("ep_%d", e.seq.Add(1)), URL: url, Secret: hub.NewEndpointSecret(), Enabled: true}
	if mod != nil {
		mod(&ep)
	}
	if err := e.store.CreateEndpoint(context.Background(), ep); err != nil {
		e.t.Fatal(err)
	}
	return ep
}

// otpText is the personal data in the events of ingestOTP; it must never be
// logged.
const otpText = "Your code is 424242"

// ingestOTP stores a message with n otp.requested events, due at once for
// every matching endpoint.
func (e *env) ingestOTP(n int) []hub.Event {
	e.t.Helper()
	now := e.clock.Now()
	m := hub.Message{ID: hub.NewID("msg", now), SourceID: "src", Provider: "identomat", ReceivedAt: now,
		Status: hub.MessageAccepted, HTTPStatus: 200, DedupKey: fmt.Sprintf("dedup-%d", e.seq.Add(1))}
	data, _ := json.Marshal(hub.OTPRequested{Channel: "sms", Recipient: "+15550100", Text: otpText, SessionRef: "sess"})
	in := hub.Ingest{Message: m}
	for range n {
		in.Events = append(in.Events, hub.Event{ID: hub.NewID("evt", now), Type: hub.EventOTPRequested, Data: data})
	}
	res, err := e.store.Ingest(context.Background(), in)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Events
}

// ingestStatus stores a message that reports status for the verification
// ref, which creates a verification.updated event when it changes it.
func (e *env) ingestStatus(ref string, status hub.Status, final bool) []hub.Event {
	e.t.Helper()
	now := e.clock.Now()
	m := hub.Message{ID: hub.NewID("msg", now), SourceID: "src", Provider: "idenfy", ReceivedAt: now,
		Status: hub.MessageAccepted, HTTPStatus: 200, DedupKey: fmt.Sprintf("dedup-%d", e.seq.Add(1))}
	res, err := e.store.Ingest(context.Background(), hub.Ingest{Message: m, Observations: []hub.Observation{{
		VerificationKey: hub.VerificationKey{ProviderRef: ref}, Kind: hub.KindKYC, Status: status, Final: final,
		ProviderEvent: "AUTO_FINISHED",
	}}})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Events
}

// worker returns a worker on the env's store and clock, with a client that
// may reach the loopback test servers and a seeded jitter source.
func (e *env) worker(timeout time.Duration) *Worker {
	return &Worker{
		Store:  e.store,
		Client: NewClient(true, timeout),
		Now:    e.clock.Now,
		Rand:   mrand.New(mrand.NewPCG(1, 2)),
		Logger: slog.New(slog.NewTextHandler(tlogWriter{e.t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// drain runs one pass of w at the current fake time and returns how many
// deliveries it claimed.
func (e *env) drain(w *Worker) int {
	e.t.Helper()
	n, err := w.drain(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// delivery returns the only delivery of the event to the endpoint, with its
// attempts.
func (e *env) delivery(endpointID, eventID string) hub.Delivery {
	e.t.Helper()
	ds, _, err := e.store.Deliveries(context.Background(), hub.DeliveryFilter{EndpointID: endpointID, EventID: eventID})
	if err != nil || len(ds) != 1 {
		e.t.Fatalf("deliveries of %s to %s: %v, %v", eventID, endpointID, ds, err)
	}
	d, err := e.store.Delivery(context.Background(), ds[0].ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// request is one request a receiver saw.
type request struct {
	Header http.Header
	Body   []byte
	At     time.Time // on the fake clock
}

// receiver is a test endpoint that records every request and answers with
// handle (200 when nil).
type receiver struct {
	*httptest.Server
	clock  *testkit.Clock
	handle func(w http.ResponseWriter, r *http.Request, body []byte)
	mu     sync.Mutex
	reqs   []request
}

func newReceiver(t testing.TB, clock *testkit.Clock, handle func(w http.ResponseWriter, r *http.Request, body []byte)) *receiver {
	rc := &receiver{clock: clock, handle: handle}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, request{Header: r.Header.Clone(), Body: body, At: clock.Now()})
		rc.mu.Unlock()
		if rc.handle != nil {
			rc.handle(w, r, body)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.reqs)
}

func status(code int) func(http.ResponseWriter, *http.Request, []byte) {
	return func(w http.ResponseWriter, _ *http.Request, _ []byte) { w.WriteHeader(code) }
}

func TestDeliverSigned(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var secret string
	rc := newReceiver(t, e.clock, func(w http.ResponseWriter, r *http.Request, body []byte) {
		if err := Verify(secret, r.Header, body, e.clock.Now(), DefaultTolerance); err != nil {
			http.Error(w, "bad signature: "+err.Error(), http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "ok")
	})
	ep := e.endpoint(rc.URL+"/hooks", nil)
	secret = ep.Secret
	ev := e.ingestOTP(1)[0]

	var logs testkit.Buffer
	w := e.worker(5 * time.Second)
	w.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var outcomes []string
	w.OnAttempt = func(endpointID, outcome string, latency time.Duration) {
		if endpointID != ep.ID || latency <= 0 {
			t.Errorf("OnAttempt(%s, %s, %s)", endpointID, outcome, latency)
		}
		outcomes = append(outcomes, outcome)
	}
	if n := e.drain(w); n != 1 {
		t.Fatalf("claimed %d, want 1", n)
	}

	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver saw %d requests, want 1", len(reqs))
	}
	h := reqs[0].Header
	if got := h.Get(HeaderID); got != ev.ID {
		t.Errorf("webhook-id %q, want the event id %q", got, ev.ID)
	}
	if got, want := h.Get(HeaderTimestamp), fmt.Sprint(t0.Unix()); got != want {
		t.Errorf("webhook-timestamp %s, want the attempt time %s", got, want)
	}
	if got := h.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
	if got := h.Get("User-Agent"); got != "verihook" {
		t.Errorf("User-Agent %q", got)
	}
	var got hub.Event
	if err := json.Unmarshal(reqs[0].Body, &got); err != nil {
		t.Fatal(err)
	}
	want, err := e.store.Event(context.Background(), ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != want.ID || got.Type != want.Type || !got.CreatedAt.Equal(want.CreatedAt) || got.Source != want.Source ||
		got.Provider != want.Provider || !jsonEqual(got.Data, want.Data) {
		t.Errorf("received event %+v, want %+v", got, want)
	}
	for _, field := range []string{`"id"`, `"type"`, `"created_at"`, `"source"`, `"provider"`, `"data"`} {
		if !bytes.Contains(reqs[0].Body, []byte(field)) {
			t.Errorf("body lacks %s: %s", field, reqs[0].Body)
		}
	}

	d := e.delivery(ep.ID, ev.ID)
	if d.Status != hub.DeliverySucceeded || d.Attempts != 1 || d.LastStatusCode != 200 {
		t.Errorf("delivery %s after %d attempts (last %d), want succeeded after 1 with 200", d.Status, d.Attempts, d.LastStatusCode)
	}
	if len(d.AttemptLog) != 1 {
		t.Fatalf("%d attempts logged, want 1", len(d.AttemptLog))
	}
	a := d.AttemptLog[0]
	if !a.At.Equal(t0) || a.StatusCode != 200 || a.Response != "ok" || a.Error != "" {
		t.Errorf("attempt %+v, want at %s, 200, response ok, no error", a, t0)
	}
	if !slices.Equal(outcomes, []string{OutcomeSucceeded}) {
		t.Errorf("outcomes %v, want [succeeded]", outcomes)
	}
	for _, secret := range []string{otpText, "+15550100", ep.Secret, strings.TrimPrefix(ep.Secret, hub.SecretPrefix), rc.URL} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log holds %q:\n%s", secret, logs.String())
		}
	}
	if !strings.Contains(logs.String(), d.ID) {
		t.Errorf("the log does not name the delivery:\n%s", logs.String())
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return bytes.Equal(xs, ys)
}

// TestRetrySchedule: a 500 retries after each wait of the schedule, jittered
// by at most 10 %, and not before; after the last the delivery is failed.
func TestRetrySchedule(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rc := newReceiver(t, e.clock, status(http.StatusInternalServerError))
	ep := e.endpoint(rc.URL, nil)
	ev := e.ingestOTP(1)[0]
	w := e.worker(5 * time.Second)

	e.drain(w)
	for k := 1; k <= len(DefaultSchedule); k++ {
		if n := len(rc.requests()); n != k {
			t.Fatalf("after attempt %d the receiver saw %d requests", k, n)
		}
		d := e.delivery(ep.ID, ev.ID)
		if d.Attempts != k || d.LastStatusCode != 500 || len(d.AttemptLog) != k {
			t.Fatalf("delivery after attempt %d: %d attempts, last %d, %d logged", k, d.Attempts, d.LastStatusCode, len(d.AttemptLog))
		}
		if k == len(DefaultSchedule) {
			if d.Status != hub.DeliveryFailed {
				t.Fatalf("after the whole schedule the delivery is %s, want failed", d.Status)
			}
			break
		}
		if d.Status != hub.DeliveryPending {
			t.Fatalf("after attempt %d the delivery is %s, want pending", k, d.Status)
		}
		wait, sched := d.NextAttemptAt.Sub(e.clock.Now()), DefaultSchedule[k]
		if wait < sched-sched/10 || wait > sched+sched/10 {
			t.Fatalf("after attempt %d the next is in %s, want %s ± 10%%", k, wait, sched)
		}
		e.clock.Set(d.NextAttemptAt.Add(-time.Millisecond))
		if n := e.drain(w); n != 0 {
			t.Fatalf("attempt %d went %s early", k+1, time.Millisecond)
		}
		e.clock.Set(d.NextAttemptAt)
		e.drain(w)
	}
	// Give the dead letter time to be noticed; nothing more is sent.
	e.clock.Advance(48 * time.Hour)
	e.drain(w)
	if n := len(rc.requests()); n != len(DefaultSchedule) {
		t.Errorf("receiver saw %d requests, want %d", n, len(DefaultSchedule))
	}
	got, err := e.store.Endpoint(context.Background(), ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.FailingSince.Equal(t0) || !got.Enabled {
		t.Errorf("endpoint failing since %s, enabled %v; want since %s and still enabled", got.FailingSince, got.Enabled, t0)
	}
}

// TestFirstRetryAfterFiveSeconds is the brief's check on the first retry: a
// 500 leaves the delivery pending for 5 s ± jitter, and 5.5 s later it is
// retried and succeeds.
func TestFirstRetryAfterFiveSeconds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var calls atomic.Int32
	rc := newReceiver(t, e.clock, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	ep := e.endpoint(rc.URL, nil)
	ev := e.ingestOTP(1)[0]
	w := e.worker(5 * time.Second)
	e.drain(w)
	d := e.delivery(ep.ID, ev.ID)
	if wait := d.NextAttemptAt.Sub(t0); d.Status != hub.DeliveryPending || wait < 4500*time.Millisecond || wait > 5500*time.Millisecond {
		t.Fatalf("after a 500: %s, next in %s; want pending, 5 s ± 10%%", d.Status, wait)
	}
	e.clock.Advance(5500 * time.Millisecond)
	e.drain(w)
	if d := e.delivery(ep.ID, ev.ID); d.Status != hub.DeliverySucceeded || d.Attempts != 2 || len(rc.requests()) != 2 {
		t.Errorf("after 5.5 s: %s after %d attempts, %d requests; want succeeded after 2", d.Status, d.Attempts, len(rc.requests()))
	}
}

// TestFailures: what a failed attempt records, by kind of failure.
func TestFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handle  func(http.ResponseWriter, *http.Request, []byte)
		timeout time.Duration
		code    int
		errLike string // a part of the attempt's error; "" for none
		outcome string
	}{
		{
			name: "hangs past the timeout",
			handle: func(w http.ResponseWriter, r *http.Request, _ []byte) {
				<-r.Context().Done() // until the client gives up
			},
			timeout: 200 * time.Millisecond, errLike: "timeout", outcome: OutcomeRetrying,
		},
		{
			name: "resets the connection",
			handle: func(w http.ResponseWriter, r *http.Request, _ []byte) {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err != nil {
					panic(err)
				}
				conn.(*net.TCPConn).SetLinger(0) // close with RST
				conn.Close()
			},
			timeout: 5 * time.Second, errLike: "", outcome: OutcomeRetrying,
		},
		{
			name: "answers 500 with a body",
			handle: func(w http.ResponseWriter, r *http.Request, _ []byte) {
				http.Error(w, "database down", http.StatusInternalServerError)
			},
			timeout: 5 * time.Second, code: 500, outcome: OutcomeRetrying,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			rc := newReceiver(t, e.clock, tt.handle)
			ep := e.endpoint(rc.URL, nil)
			ev := e.ingestOTP(1)[0]
			w := e.worker(tt.timeout)
			var outcome string
			w.OnAttempt = func(_, o string, _ time.Duration) { outcome = o }
			e.drain(w)

			d := e.delivery(ep.ID, ev.ID)
			if d.Status != hub.DeliveryPending || d.Attempts != 1 || d.NextAttemptAt.Sub(t0) < 4500*time.Millisecond {
				t.Fatalf("delivery %s after %d attempts, next at %s; want pending after 1, retried in ~5 s", d.Status, d.Attempts, d.NextAttemptAt)
			}
			a := d.AttemptLog[0]
			if a.StatusCode != tt.code {
				t.Errorf("attempt status %d, want %d", a.StatusCode, tt.code)
			}
			if tt.code == 0 && (a.Error == "" || !strings.Contains(a.Error, tt.errLike)) {
				t.Errorf("attempt error %q, want one saying %q", a.Error, tt.errLike)
			}
			if strings.Contains(a.Error, rc.URL) {
				t.Errorf("attempt error %q holds the endpoint URL", a.Error)
			}
			if tt.code == 500 && a.Response != "database down\n" {
				t.Errorf("response excerpt %q", a.Response)
			}
			if outcome != tt.outcome {
				t.Errorf("outcome %q, want %q", outcome, tt.outcome)
			}
		})
	}
}

// TestSlowReceiverWithinTimeout: an answer that takes a while but comes in
// time succeeds, and its latency is recorded.
func TestSlowReceiverWithinTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rc := newReceiver(t, e.clock, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		time.Sleep(150 * time.Millisecond) // the receiver is slow; nothing is asserted on time
		w.WriteHeader(http.StatusAccepted)
	})
	ep := e.endpoint(rc.URL, nil)
	ev := e.ingestOTP(1)[0]
	e.drain(e.worker(5 * time.Second))
	d := e.delivery(ep.ID, ev.ID)
	if d.Status != hub.DeliverySucceeded || d.AttemptLog[0].StatusCode != 202 {
		t.Fatalf("delivery %s, attempt %+v; want succeeded with 202", d.Status, d.AttemptLog[0])
	}
	if d.AttemptLog[0].LatencyMS < 150 {
		t.Errorf("latency %d ms, want at least the receiver's 150 ms", d.AttemptLog[0].LatencyMS)
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	other := newReceiver(t, e.clock, nil)
	rc := newReceiver(t, e.clock, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		http.Redirect(w, r, other.URL+"/elsewhere", http.StatusFound)
	})
	ep := e.endpoint(rc.URL, nil)
	ev := e.ingestOTP(1)[0]
	e.drain(e.worker(5 * time.Second))

	if n := len(other.requests()); n != 0 {
		t.Errorf("the redirect target saw %d requests", n)
	}
	d := e.delivery(ep.ID, ev.ID)
	if d.Status != hub.DeliveryPending || d.LastStatusCode != http.StatusFound || d.AttemptLog[0].StatusCode != http.StatusFound {
		t.Errorf("delivery %s with last status %d, want pending with 302", d.Status, d.LastStatusCode)
	}
	if !strings.Contains(d.AttemptLog[0].Error, "redirect") {
		t.Errorf("attempt error %q does not mention the redirect", d.AttemptLog[0].Error)
	}
}

// TestRetryAfter: a 429 or 503 with Retry-After: 120 is retried no sooner
// than 120 s later, although the schedule says 5 s.
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	for _, code := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			var calls atomic.Int32
			rc := newReceiver(t, e.clock, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
				if calls.Add(1) == 1 {
					w.Header().Set("Retry-After", "120")
					w.WriteHeader(code)
				}
			})
			ep := e.endpoint(rc.URL, nil)
			ev := e.ingestOTP(1)[0]
			w := e.worker(5 * time.Second)
			e.drain(w)
			d := e.delivery(ep.ID, ev.ID)
			if d.Status != hub.DeliveryPending || d.NextAttemptAt.Sub(t0) < 120*time.Second {
				t.Fatalf("after %d: %s, next in %s; want pending, at least 120 s", code, d.Status, d.NextAttemptAt.Sub(t0))
			}
			e.clock.Advance(119 * time.Second)
			e.drain(w)
			if n := len(rc.requests()); n != 1 {
				t.Fatalf("retried before Retry-After: %d requests", n)
			}
			e.clock.Set(d.NextAttemptAt)
			e.drain(w)
			if d := e.delivery(ep.ID, ev.ID); d.Status != hub.DeliverySucceeded || len(rc.requests()) != 2 {
				t.Errorf("after Retry-After: %s, %d requests; want succeeded on the second", d.Status, len(rc.requests()))
			}
		})
	}
}

// TestGoneDisablesEndpoint: a 410 fails the delivery, disables the endpoint,
// and nothing more is sent to it.
func TestGoneDisablesEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rc := newReceiver(t, e.clock, status(http.StatusGone))
	ep := e.endpoint(rc.URL, nil)
	evs := e.ingestOTP(3)
	w := e.worker(5 * time.Second)
	w.Concurrency = 1 // one at a time, so that the 410 comes before the rest are claimed
	var outcomes []string
	w.OnAttempt = func(_, o string, _ time.Duration) { outcomes = append(outcomes, o) }
	e.drain(w)
	if !slices.Equal(outcomes, []string{OutcomeFailed}) {
		t.Errorf("outcomes %v, want [failed]", outcomes)
	}

	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver saw %d requests, want 1", len(reqs))
	}
	first := reqs[0].Header.Get(HeaderID)
	for _, ev := range evs {
		d := e.delivery(ep.ID, ev.ID)
		want := hub.DeliveryPending
		if ev.ID == first {
			want = hub.DeliveryFailed
		}
		if d.Status != want {
			t.Errorf("delivery of %s is %s, want %s", ev.ID, d.Status, want)
		}
	}
	got, err := e.store.Endpoint(context.Background(), ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Enabled || !strings.Contains(got.DisabledReason, "410") {
		t.Errorf("endpoint enabled %v, reason %q; want disabled for the 410", got.Enabled, got.DisabledReason)
	}
	e.clock.Advance(time.Hour)
	e.ingestOTP(1)
	e.drain(w)
	if n := len(rc.requests()); n != 1 {
		t.Errorf("a disabled endpoint got %d requests", n)
	}
}

// TestFailingFiveDaysDisables: an endpoint that has been failing for 5 days
// is disabled at its next failure.
func TestFailingFiveDaysDisables(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rc := newReceiver(t, e.clock, status(http.StatusBadGateway))
	ep := e.endpoint(rc.URL, func(ep *hub.Endpoint) { ep.FailingSince = t0.Add(-DisableAfter) })
	e.ingestOTP(1)
	e.drain(e.worker(5 * time.Second))
	got, err := e.store.Endpoint(context.Background(), ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Enabled || !strings.Contains(got.DisabledReason, "failing") {
		t.Errorf("endpoint enabled %v, reason %q; want disabled for failing 5 days", got.Enabled, got.DisabledReason)
	}
}

// TestSecretRotation: while the previous secret is valid, a receiver that
// holds only it still verifies; once it has expired, only the new one signs.
func TestSecretRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	oldSecret := hub.NewEndpointSecret()
	rc := newReceiver(t, e.clock, func(w http.ResponseWriter, r *http.Request, body []byte) {
		if err := Verify(oldSecret, r.Header, body, e.clock.Now(), DefaultTolerance); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
		}
	})
	ep := e.endpoint(rc.URL, func(ep *hub.Endpoint) {
		ep.PreviousSecret, ep.PreviousSecretExpiresAt = oldSecret, t0.Add(24*time.Hour)
	})
	ev := e.ingestOTP(1)[0]
	w := e.worker(5 * time.Second)
	e.drain(w)
	if d := e.delivery(ep.ID, ev.ID); d.Status != hub.DeliverySucceeded {
		t.Fatalf("with the old secret still valid the delivery is %s (%s)", d.Status, d.AttemptLog[0].Response)
	}
	if sigs := strings.Fields(rc.requests()[0].Header.Get(HeaderSignature)); len(sigs) != 2 {
		t.Errorf("%d signatures during the rotation, want 2", len(sigs))
	}
	if err := Verify(ep.Secret, rc.requests()[0].Header, rc.requests()[0].Body, e.clock.Now(), DefaultTolerance); err != nil {
		t.Errorf("the new secret does not verify: %v", err)
	}

	e.clock.Advance(24 * time.Hour)
	ev = e.ingestOTP(1)[0]
	e.drain(w)
	d := e.delivery(ep.ID, ev.ID)
	if d.Status != hub.DeliveryPending || d.LastStatusCode != http.StatusUnauthorized {
		t.Errorf("after the old secret expired the delivery is %s (%d), want refused by the old-secret receiver", d.Status, d.LastStatusCode)
	}
	req := rc.requests()[1]
	if sigs := strings.Fields(req.Header.Get(HeaderSignature)); len(sigs) != 1 {
		t.Errorf("%d signatures after the rotation, want 1", len(sigs))
	}
	if err := Verify(ep.Secret, req.Header, req.Body, e.clock.Now(), DefaultTolerance); err != nil {
		t.Errorf("the new secret does not verify: %v", err)
	}
}

// TestRateLimit: with RateLimit 5/s and 20 due deliveries the receiver never
// sees more than 5 requests in any second of the fake clock, and gets all 20.
// Sends never wait here (rateWait < 0): each claim that may not go now is
// released to its slot, and the test moves the clock in 50 ms steps.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rc := newReceiver(t, e.clock, nil)
	ep := e.endpoint(rc.URL, func(ep *hub.Endpoint) { ep.RateLimit = 5 })
	evs := e.ingestOTP(20)
	w := e.worker(5 * time.Second)
	w.rateWait = -1
	for i := 0; len(rc.requests()) < len(evs); i++ {
		if i > 400 {
			t.Fatalf("after 20 s only %d of %d arrived", len(rc.requests()), len(evs))
		}
		e.drain(w)
		e.clock.Advance(50 * time.Millisecond)
	}
	reqs := rc.requests()
	ids := map[string]bool{}
	for i, r := range reqs {
		ids[r.Header.Get(HeaderID)] = true
		if i+5 < len(reqs) && reqs[i+5].At.Sub(r.At) < time.Second {
			t.Errorf("requests %d to %d arrived within %s: more than 5 in one second", i, i+5, reqs[i+5].At.Sub(r.At))
		}
	}
	if len(ids) != len(evs) {
		t.Errorf("%d distinct events arrived, want %d", len(ids), len(evs))
	}
	for _, ev := range evs {
		if d := e.delivery(ep.ID, ev.ID); d.Status != hub.DeliverySucceeded || d.Attempts != 1 {
			t.Errorf("delivery of %s: %s after %d attempts; postponements must not count as attempts", ev.ID, d.Status, d.Attempts)
		}
	}
}

// TestRateLimitShortWait: a send whose slot is less than a second away
// waits for it instead of being released. Real clock: the 5th of 5 requests
// at 50/s cannot arrive before 80 ms have passed.
func TestRateLimitShortWait(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.store.Now = time.Now
	var mu sync.Mutex
	var arrivals []time.Time
	rc := newReceiver(t, e.clock, func(http.ResponseWriter, *http.Request, []byte) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
	})
	e.clock.Set(time.Now())
	ep := e.endpoint(rc.URL, func(ep *hub.Endpoint) { ep.RateLimit = 50 })
	evs := e.ingestOTP(5)
	w := e.worker(5 * time.Second)
	w.Now = time.Now
	start := time.Now()
	if n := e.drain(w); n != 5 {
		t.Errorf("claimed %d times, want 5: none released", n)
	}
	if len(arrivals) != 5 {
		t.Fatalf("%d arrived in one pass, want 5", len(arrivals))
	}
	if last := slices.MaxFunc(arrivals, time.Time.Compare); last.Sub(start) < 80*time.Millisecond {
		t.Errorf("5 requests at 50/s took %s, less than 80 ms", last.Sub(start))
	}
	for _, ev := range evs {
		if d := e.delivery(ep.ID, ev.ID); d.Status != hub.DeliverySucceeded {
			t.Errorf("delivery of %s is %s", ev.ID, d.Status)
		}
	}
}

func TestLimiterReserve(t *testing.T) {
	t.Parallel()
	var l limiter
	now := t0
	at := func(ms int) time.Time { return now.Add(time.Duration(ms) * time.Millisecond) }
	steps := []struct {
		now    time.Time
		wantAt time.Time
		wantOK bool
	}{
		{at(0), at(0), true},       // the bucket is full
		{at(0), at(500), true},     // 2/s: the next slot is 500 ms away, within the 1 s wait
		{at(0), at(1000), true},    // exactly the wait
		{at(0), at(1500), false},   // too far: postponed to the free slot, not booked
		{at(0), at(2000), false},   // the next postponed one goes one interval later
		{at(1500), at(1500), true}, // it comes back when due and gets its slot
		{at(5000), at(5000), true}, // idle: no burst beyond one token
		{at(5000), at(5500), true},
	}
	for i, s := range steps {
		got, ok := l.reserve("ep", 2, s.now, time.Second)
		if !got.Equal(s.wantAt) || ok != s.wantOK {
			t.Errorf("step %d: reserve at %s = %s, %v; want %s, %v", i, s.now.Sub(now), got.Sub(now), ok, s.wantAt.Sub(now), s.wantOK)
		}
	}
	if got, ok := l.reserve("other", 2, now, time.Second); !ok || !got.Equal(now) {
		t.Errorf("another endpoint waits for ep's limit: %s, %v", got.Sub(now), ok)
	}
}

// TestOrdering: an ordered endpoint gets each verification's versions one at
// a time and in order, although its receiver fails 30 % of requests at
// random; an unordered endpoint gets everything too.
func TestOrdering(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const verifications, versions = 20, 5
	statuses := []hub.Status{hub.StatusPending, hub.StatusReview, hub.StatusActionRequired, hub.StatusReview, hub.StatusApproved}

	type check struct {
		mu        sync.Mutex
		rnd       *mrand.Rand
		done      map[string]int   // verification id -> highest version succeeded
		firsts    map[string][]int // verification id -> versions in order of first success
		inFlight  map[string]bool  // verification id -> a request is being handled
		succeeded map[string]bool  // event ids answered 200
		failures  int              // requests answered 500
		problems  []string
	}
	newCheck := func(seed uint64) *check {
		return &check{rnd: mrand.New(mrand.NewPCG(seed, seed)), done: map[string]int{}, firsts: map[string][]int{},
			inFlight: map[string]bool{}, succeeded: map[string]bool{}}
	}
	handler := func(c *check, ordered bool) func(http.ResponseWriter, *http.Request, []byte) {
		return func(w http.ResponseWriter, r *http.Request, body []byte) {
			var ev struct {
				ID   string
				Data struct {
					Verification struct {
						ID      string
						Version int
					}
				}
			}
			if err := json.Unmarshal(body, &ev); err != nil {
				panic(err)
			}
			vid, ver := ev.Data.Verification.ID, ev.Data.Verification.Version
			c.mu.Lock()
			if ordered {
				if c.inFlight[vid] {
					c.problems = append(c.problems, fmt.Sprintf("%s: two requests at once", vid))
				}
				if ver != c.done[vid]+1 {
					c.problems = append(c.problems, fmt.Sprintf("%s: version %d received when %d had succeeded", vid, ver, c.done[vid]))
				}
			}
			c.inFlight[vid] = true
			fail := c.rnd.IntN(10) < 3
			c.mu.Unlock()

			time.Sleep(time.Millisecond) // widen the window in which a concurrent request would be seen

			c.mu.Lock()
			defer c.mu.Unlock()
			c.inFlight[vid] = false
			if fail {
				c.failures++
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			if !c.succeeded[ev.ID] {
				c.firsts[vid] = append(c.firsts[vid], ver)
			}
			c.succeeded[ev.ID] = true
			c.done[vid] = max(c.done[vid], ver)
		}
	}
	orderedCheck, unorderedCheck := newCheck(7), newCheck(8)
	orderedRc := newReceiver(t, e.clock, handler(orderedCheck, true))
	unorderedRc := newReceiver(t, e.clock, handler(unorderedCheck, false))
	e.endpoint(orderedRc.URL, func(ep *hub.Endpoint) { ep.Ordered, ep.EventTypes = true, []string{"verification.*"} })
	e.endpoint(unorderedRc.URL, func(ep *hub.Endpoint) { ep.EventTypes = []string{"verification.*"} })

	// Every version of every verification is in the outbox before the
	// worker starts, interleaved across verifications.
	var events int
	for v := range versions {
		for i := range verifications {
			evs := e.ingestStatus(fmt.Sprintf("ref-%02d", i), statuses[v], v == versions-1)
			if len(evs) != 1 {
				t.Fatalf("ingest made %d events, want 1", len(evs))
			}
			events++
		}
	}

	w := e.worker(5 * time.Second)
	w.Concurrency = 8
	w.Schedule = slices.Repeat([]time.Duration{time.Second}, 40) // never a dead letter at 30 % failures
	count := func(c *check) int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.succeeded)
	}
	for round := 0; count(orderedCheck) < events || count(unorderedCheck) < events; round++ {
		if round > 200 {
			t.Fatalf("after %d rounds: ordered %d, unordered %d of %d", round, count(orderedCheck), count(unorderedCheck), events)
		}
		e.drain(w)
		e.clock.Advance(1200 * time.Millisecond) // past any jittered 1 s wait
	}

	for _, p := range orderedCheck.problems {
		t.Error(p)
	}
	if len(orderedCheck.firsts) != verifications {
		t.Errorf("%d verifications reached the ordered endpoint, want %d", len(orderedCheck.firsts), verifications)
	}
	for vid, got := range orderedCheck.firsts {
		if !slices.Equal(got, []int{1, 2, 3, 4, 5}) {
			t.Errorf("%s: versions succeeded in the order %v, want 1..5", vid, got)
		}
	}
	if orderedCheck.failures == 0 || unorderedCheck.failures == 0 {
		t.Errorf("the receivers never failed (%d, %d): the test tests nothing", orderedCheck.failures, unorderedCheck.failures)
	}
	pending, _, err := e.store.Deliveries(context.Background(), hub.DeliveryFilter{Status: hub.DeliveryPending})
	if err != nil || len(pending) != 0 {
		t.Errorf("%d deliveries still pending (%v)", len(pending), err)
	}
}

// TestLeaseEndsAfterCrash: a delivery claimed by a worker that then died is
// sent by another worker once the lease has ended; the dead worker's late
// record is refused and changes nothing.
func TestLeaseEndsAfterCrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rc := newReceiver(t, e.clock, nil)
	ep := e.endpoint(rc.URL, nil)
	ev := e.ingestOTP(1)[0]

	crashed := e.worker(5 * time.Second)
	var crashedLogs testkit.Buffer
	crashed.Logger = slog.New(slog.NewTextHandler(&crashedLogs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	crashed.init()
	claims, err := e.store.ClaimDeliveries(context.Background(), e.clock.Now(), 10, DefaultLease)
	if err != nil || len(claims) != 1 {
		t.Fatalf("claim: %d, %v", len(claims), err)
	}

	w := e.worker(5 * time.Second)
	if n := e.drain(w); n != 0 || len(rc.requests()) != 0 {
		t.Fatalf("a leased delivery was claimed again (%d) before its lease ended", n)
	}
	e.clock.Advance(DefaultLease - time.Second)
	if n := e.drain(w); n != 0 {
		t.Fatalf("a leased delivery was claimed 1 s before its lease ended")
	}
	e.clock.Advance(time.Second)
	if n := e.drain(w); n != 1 || len(rc.requests()) != 1 {
		t.Fatalf("after the lease: claimed %d, %d requests; want 1 and 1", n, len(rc.requests()))
	}

	// The crashed worker comes back and finishes its stale claim.
	crashed.attempt(context.Background(), claims[0], crashed.log)
	d := e.delivery(ep.ID, ev.ID)
	if d.Status != hub.DeliverySucceeded || d.Attempts != 1 || len(d.AttemptLog) != 1 {
		t.Errorf("delivery %s after %d attempts (%d logged), want succeeded after 1", d.Status, d.Attempts, len(d.AttemptLog))
	}
	if !strings.Contains(crashedLogs.String(), "lease lost") {
		t.Errorf("the stale record was not logged as a lost lease:\n%s", crashedLogs.String())
	}
}

// claimSignal is a Store that reports each claim's size on a channel.
type claimSignal struct {
	Store
	claims chan int
}

func (s claimSignal) ClaimDeliveries(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]hub.Claim, error) {
	c, err := s.Store.ClaimDeliveries(ctx, now, limit, lease)
	select {
	case s.claims <- len(c):
	default:
	}
	return c, err
}

// TestRunWakeAndShutdown: Wake makes Run claim at once, although its poll
// interval is an hour; when ctx ends Run lets the request in flight finish
// and records it before returning.
func TestRunWakeAndShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	arrived := make(chan string, 10)
	release := make(chan struct{})
	rc := newReceiver(t, e.clock, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		arrived <- r.Header.Get(HeaderID)
		<-release
	})
	ep := e.endpoint(rc.URL, nil)
	w := e.worker(30 * time.Second)
	sig := claimSignal{Store: e.store, claims: make(chan int, 100)}
	w.Store = sig
	w.PollInterval = time.Hour

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	if n := <-sig.claims; n != 0 {
		t.Fatalf("the first claim found %d deliveries in an empty outbox", n)
	}

	ev := e.ingestOTP(1)[0]
	w.Wake()
	select {
	case id := <-arrived:
		if id != ev.ID {
			t.Fatalf("received %s, want %s", id, ev.ID)
		}
	case <-time.After(10 * time.Second): // a failure guard, not a measurement
		t.Fatal("Wake did not make Run deliver the new event")
	}

	cancel()
	select {
	case <-done:
		t.Fatal("Run returned with a request in flight")
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if d := e.delivery(ep.ID, ev.ID); d.Status != hub.DeliverySucceeded {
		t.Errorf("the request in flight at shutdown left the delivery %s, want succeeded", d.Status)
	}
}

// TestErrorsHoldNoCredentials: an endpoint URL's user info and query are
// kept out of the attempt's error and the log.
func TestErrorsHoldNoCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	ep := e.endpoint("http://admin:hunter2@"+addr+"/hooks?token=s3cr3t", nil)
	ev := e.ingestOTP(1)[0]
	var logs testkit.Buffer
	w := e.worker(5 * time.Second)
	w.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.drain(w)
	d := e.delivery(ep.ID, ev.ID)
	if d.Status != hub.DeliveryPending || d.AttemptLog[0].Error == "" {
		t.Fatalf("delivery %s, attempt %+v; want pending with an error", d.Status, d.AttemptLog[0])
	}
	for _, s := range []string{"hunter2", "s3cr3t", d.AttemptLog[0].Error} {
		inLog := strings.Contains(logs.String(), s)
		if s == d.AttemptLog[0].Error {
			if !inLog {
				t.Errorf("the log does not say what failed (%q):\n%s", s, logs.String())
			}
			continue
		}
		if inLog || strings.Contains(d.AttemptLog[0].Error, s) || strings.Contains(d.LastError, s) {
			t.Errorf("%q leaked: error %q, log:\n%s", s, d.AttemptLog[0].Error, logs.String())
		}
	}
}

// TestResponseExcerpt: at most 1 KiB of the response is kept, cut on a
// character boundary.
func TestResponseExcerpt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	big := "x" + strings.Repeat("é", 4000) // 'é' is 2 bytes: byte 1024 falls inside one
	rc := newReceiver(t, e.clock, func(w http.ResponseWriter, _ *http.Request, _ []byte) { io.WriteString(w, big) })
	ep := e.endpoint(rc.URL, nil)
	ev := e.ingestOTP(1)[0]
	e.drain(e.worker(5 * time.Second))
	r := e.delivery(ep.ID, ev.ID).AttemptLog[0].Response
	if len(r) > 1024 || len(r) < 1020 || !utf8.ValidString(r) || !strings.HasPrefix(big, r) {
		t.Errorf("excerpt of %d bytes, valid UTF-8 %v", len(r), utf8.ValidString(r))
	}
}

// BenchmarkAttempt measures one delivery attempt: encode, sign, POST to a
// local receiver, record the attempt and its verdict in SQLite.
func BenchmarkAttempt(b *testing.B) {
	e := newEnv(b)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(srv.Close)
	e.endpoint(srv.URL, nil)
	for left := b.N; left > 0; left -= 500 {
		e.ingestOTP(min(left, 500))
	}
	var claims []hub.Claim
	for len(claims) < b.N {
		c, err := e.store.ClaimDeliveries(context.Background(), e.clock.Now(), min(b.N-len(claims), 1000), time.Hour)
		if err != nil || len(c) == 0 {
			b.Fatalf("claim: %d, %v", len(c), err)
		}
		claims = append(claims, c...)
	}
	w := e.worker(5 * time.Second)
	w.Logger = slog.New(slog.DiscardHandler)
	w.init()
	var failed atomic.Int32
	w.OnAttempt = func(_, outcome string, _ time.Duration) {
		if outcome != OutcomeSucceeded {
			failed.Add(1)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		w.attempt(context.Background(), claims[i], w.log)
	}
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d attempts failed", failed.Load())
	}
}
