package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/slots"
)

// Store is what the worker needs of the outbox; hub.Store satisfies it.
type Store interface {
	// ClaimDeliveries leases up to limit due deliveries until now+lease.
	ClaimDeliveries(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]hub.Claim, error)
	// RecordAttempt logs an attempt and applies its verdict; ECONFLICT when
	// the lease was lost.
	RecordAttempt(ctx context.Context, r hub.AttemptRecord) error
	// Release gives a claim back without an attempt, due at at; ECONFLICT
	// when the lease was lost.
	Release(ctx context.Context, deliveryID, lease string, at time.Time) error
}

var _ Store = hub.Store(nil)

// Worker defaults.
const (
	DefaultConcurrency  = 16
	DefaultBatchSize    = 64
	DefaultLease        = 60 * time.Second
	DefaultPollInterval = time.Second
)

// Outcomes of an attempt, as reported to Worker.OnAttempt: the delivery's
// status after it.
const (
	OutcomeSucceeded = "succeeded" // a 2xx response
	OutcomeRetrying  = "retrying"  // a failure; another attempt is scheduled
	OutcomeFailed    = "failed"    // a failure with no retry: the schedule is exhausted, or 410 Gone
)

const (
	// maxRateWait is how long a send may wait for its endpoint's rate limit;
	// a claim that would wait longer is released, due when it may go, so
	// that it holds neither a sending slot nor its lease meanwhile.
	maxRateWait = time.Second
	// excerptSize is how much of a response body an attempt keeps.
	excerptSize = 1024
	// drainSize is how much more of a response body is read and discarded so
	// that the connection can be reused.
	drainSize = 64 << 10
	// userAgent identifies verihook's requests.
	userAgent = "verihook"
)

// Worker sends due deliveries: it claims them from the Store, signs and
// POSTs each to its endpoint, and records the attempt with its verdict (see
// Decide). The exported fields configure it and must not change once Run
// has started; zero values select the defaults.
type Worker struct {
	// Store is the outbox.
	Store Store
	// Client sends the requests; use NewClient, which follows no redirect
	// and refuses private addresses.
	Client *http.Client
	// Schedule is the wait before each attempt; nil means DefaultSchedule.
	Schedule []time.Duration
	// Concurrency caps the requests in flight (default 16).
	Concurrency int
	// BatchSize caps the deliveries claimed at once (default 64).
	BatchSize int
	// Lease is how long a claim is held (default 60 s). It must exceed the
	// client's timeout plus a second of rate-limit wait: a send still running
	// when its lease ends may be duplicated by another worker.
	Lease time.Duration
	// PollInterval is how often Run looks for due retries when nothing
	// wakes it (default 1 s).
	PollInterval time.Duration
	// Now returns the current time (default time.Now). Latencies are
	// measured with the real monotonic clock regardless.
	Now func() time.Time
	// Rand jitters retry waits; nil means a randomly seeded source.
	Rand *rand.Rand
	// Logger receives one line per failed attempt, dead letter and disabled
	// endpoint, with endpoint and delivery ids and status codes; never event
	// data, URLs or secrets. Nil discards.
	Logger *slog.Logger
	// OnAttempt, when set, is called after every attempt with the endpoint
	// id, one of the Outcome constants (the delivery's status after the
	// attempt) and the request's latency: metrics.
	OnAttempt func(endpointID string, outcome string, latency time.Duration)

	// rateWait overrides maxRateWait when not zero; negative means a send
	// never waits for its rate limit (tests).
	rateWait time.Duration

	initOnce sync.Once
	wake     chan struct{}
	randMu   sync.Mutex // guards rnd: a *rand.Rand is not safe for concurrent use
	rnd      *rand.Rand
	log      *slog.Logger
	limits   limiter
}

func (w *Worker) init() {
	w.initOnce.Do(func() {
		w.wake = make(chan struct{}, 1)
		w.rnd = w.Rand
		if w.rnd == nil {
			w.rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		}
		w.log = w.Logger
		if w.log == nil {
			w.log = slog.New(slog.DiscardHandler)
		}
		if w.rateWait == 0 {
			w.rateWait = maxRateWait
		}
	})
}

func (w *Worker) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func (w *Worker) schedule() []time.Duration {
	if w.Schedule != nil {
		return w.Schedule
	}
	return DefaultSchedule
}

func orDefault[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Wake makes Run look for due deliveries at once instead of at its next
// poll. It never blocks; the ingest path calls it after committing a message
// that created deliveries, so that a new event goes out within milliseconds.
func (w *Worker) Wake() {
	w.init()
	select {
	case w.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// Run delivers until ctx is done: it claims due deliveries (as many as there
// are free sending slots, at most BatchSize), sends each in its own
// goroutine, and records the attempts. After a full claim it claims again at
// once; otherwise it waits for Wake, PollInterval or ctx. Store errors are
// logged and retried at the next poll. When ctx is done Run stops claiming,
// waits for the requests in flight to finish and be recorded (their own
// context is not canceled, so this takes at most the client's timeout), and
// returns nil.
func (w *Worker) Run(ctx context.Context) error {
	if w.Store == nil || w.Client == nil {
		return errors.New("delivery worker: no store or no client")
	}
	w.init()
	if w.Client.Timeout > 0 && orDefault(w.Lease, DefaultLease) < w.Client.Timeout+maxRateWait+5*time.Second {
		w.log.Warn("the delivery lease is not much longer than the client timeout: slow sends may be duplicated",
			"lease", orDefault(w.Lease, DefaultLease), "timeout", w.Client.Timeout)
	}
	p := w.newPass()
	defer p.slots.Wait()
	poll := time.NewTimer(orDefault(w.PollInterval, DefaultPollInterval))
	defer poll.Stop()
	for {
		_, full, err := p.claim(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			w.log.Error("claim deliveries", "error", err)
		} else if full {
			continue
		}
		poll.Reset(orDefault(w.PollInterval, DefaultPollInterval))
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
		case <-poll.C:
		}
	}
}

// drain claims and sends, waiting for every send, until a claim made with
// nothing in flight finds nothing due at Now: one pass of Run at one instant,
// for tests that move a fake clock. It returns how many it claimed.
func (w *Worker) drain(ctx context.Context) (int, error) {
	w.init()
	p := w.newPass()
	total, idle := 0, false
	for {
		n, full, err := p.claim(ctx)
		total += n
		if err != nil {
			p.slots.Wait()
			return total, err
		}
		if n == 0 && idle {
			return total, nil
		}
		if full {
			idle = false
			continue
		}
		p.slots.Wait()
		idle = true
	}
}

// pass holds the sending slots, and with them the sends in flight, of one
// Run.
type pass struct {
	w     *Worker
	slots *slots.Slots
}

func (w *Worker) newPass() *pass {
	return &pass{w: w, slots: slots.New(orDefault(w.Concurrency, DefaultConcurrency))}
}

// claim waits for a free sending slot, claims as many due deliveries as
// there are free slots (at most BatchSize), and starts sending them: a claim
// never waits for a slot while its lease runs. full reports whether it got
// as many as it asked for.
func (p *pass) claim(ctx context.Context) (n int, full bool, err error) {
	want := p.slots.Take(ctx, orDefault(p.w.BatchSize, DefaultBatchSize))
	if want == 0 {
		return 0, false, ctx.Err()
	}
	claims, err := p.w.Store.ClaimDeliveries(ctx, p.w.now(), want, orDefault(p.w.Lease, DefaultLease))
	if err != nil {
		claims = nil
		err = fmt.Errorf("claim deliveries: %w", err)
	}
	p.slots.Put(want - len(claims))
	for _, c := range claims {
		p.slots.Go(func() { p.w.process(ctx, c) })
	}
	return len(claims), err == nil && len(claims) == want, err
}

// process sends one claim, after waiting for its endpoint's rate limit, or
// releases it when that wait would be long or ctx ends during it.
func (w *Worker) process(ctx context.Context, c hub.Claim) {
	log := w.log.With("endpoint", c.Endpoint.ID, "delivery", c.Delivery.ID)
	if rate := c.Endpoint.RateLimit; rate > 0 {
		now := w.now()
		at, ok := w.limits.reserve(c.Endpoint.ID, rate, now, w.rateWait)
		if !ok {
			w.release(ctx, c, at, log)
			return
		}
		if wait := at.Sub(now); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				w.release(ctx, c, at, log)
				return
			}
		}
	}
	// The request and its record outlive a shutdown: an attempt that was
	// started is finished and recorded (bounded by the client's timeout).
	w.attempt(context.WithoutCancel(ctx), c, log)
}

func (w *Worker) release(ctx context.Context, c hub.Claim, at time.Time, log *slog.Logger) {
	err := w.Store.Release(context.WithoutCancel(ctx), c.Delivery.ID, c.Lease, at)
	switch hub.ErrorCode(err) {
	case "":
		log.Debug("delivery postponed by the endpoint's rate limit", "until", at)
	case hub.ECONFLICT:
		log.Debug("lease lost before release", "error", err)
	default:
		log.Error("release delivery", "error", err)
	}
}

// attempt sends one claim, classifies the result with Decide and records it.
func (w *Worker) attempt(ctx context.Context, c hub.Claim, log *slog.Logger) {
	now := w.now()
	start := time.Now()
	res, att := w.send(ctx, c, now)
	latency := time.Since(start)
	att.LatencyMS = latency.Milliseconds()

	w.randMu.Lock()
	v := Decide(res, c.Delivery.Attempts+1, w.schedule(), now, c.Endpoint.FailingSince, w.rnd)
	w.randMu.Unlock()

	err := w.Store.RecordAttempt(ctx, hub.AttemptRecord{
		DeliveryID: c.Delivery.ID, Lease: c.Lease, Attempt: att,
		Status: v.Status, NextAttemptAt: v.NextAttemptAt, DisableEndpoint: v.DisableEndpoint,
	})
	if w.OnAttempt != nil {
		w.OnAttempt(c.Endpoint.ID, outcome(v.Status), latency)
	}
	switch hub.ErrorCode(err) {
	case "":
	case hub.ECONFLICT:
		// The lease ended and another worker claimed the delivery: its
		// attempt is the one that counts.
		log.Debug("lease lost; attempt not recorded", "status_code", att.StatusCode, "error", err)
		return
	default:
		// The lease will end and the delivery be sent again: at-least-once.
		log.Error("record attempt", "status_code", att.StatusCode, "error", err)
		return
	}

	log = log.With("status_code", att.StatusCode, "attempt", c.Delivery.Attempts+1)
	if att.Error != "" {
		log = log.With("error", att.Error)
	}
	switch v.Status {
	case hub.DeliverySucceeded:
		log.Debug("delivered", "latency_ms", att.LatencyMS)
	case hub.DeliveryPending:
		log.Info("delivery attempt failed", "next_attempt_at", v.NextAttemptAt)
	case hub.DeliveryFailed:
		log.Warn("delivery failed: no more retries")
	}
	if v.DisableEndpoint != "" {
		log.Warn("endpoint disabled", "reason", v.DisableEndpoint)
	}
	if c.Endpoint.Ordered && v.Status != hub.DeliveryPending {
		// The verification's next event may go now.
		w.Wake()
	}
}

// send makes one request: the event JSON, signed per Standard Webhooks with
// the endpoint's secret and, during a rotation, its previous one.
func (w *Worker) send(ctx context.Context, c hub.Claim, now time.Time) (Result, hub.Attempt) {
	att := hub.Attempt{ID: hub.NewID("att", now), DeliveryID: c.Delivery.ID, At: now}
	fail := func(msg string) (Result, hub.Attempt) {
		att.Error = msg
		return Result{Err: errors.New(msg)}, att
	}
	body, err := json.Marshal(c.Event)
	if err != nil {
		return fail("the event does not encode as JSON")
	}
	secrets := []string{c.Endpoint.Secret}
	if c.Endpoint.PreviousSecret != "" && now.Before(c.Endpoint.PreviousSecretExpiresAt) {
		secrets = append(secrets, c.Endpoint.PreviousSecret)
	}
	sig, err := Sign(secrets, c.Event.ID, now, body)
	if err != nil {
		return fail("the endpoint secret is invalid")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint.URL, bytes.NewReader(body))
	if err != nil {
		return fail("the endpoint url is invalid")
	}
	req.Header.Set(HeaderID, c.Event.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, sig)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)

	resp, err := w.Client.Do(req)
	if err != nil {
		att.Error = transportError(err, c.Endpoint.URL, w.Client.Timeout)
		return Result{Err: err}, att
	}
	defer resp.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, excerptSize))
	io.CopyN(io.Discard, resp.Body, drainSize) // lets the connection be reused
	att.StatusCode = resp.StatusCode
	att.Response = validUTF8(excerpt)
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		att.Error = "redirect not followed"
	}
	return Result{StatusCode: resp.StatusCode, Header: resp.Header}, att
}

// transportError describes a failed request without its URL, whose user
// info or query may hold the endpoint's credentials.
func transportError(err error, rawURL string, timeout time.Duration) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() && timeout > 0 {
			return fmt.Sprintf("timeout: no complete response within %s", timeout)
		}
		if ue.Timeout() {
			return "timeout: no complete response in time"
		}
		err = ue.Err
	}
	msg := err.Error()
	if rawURL != "" {
		msg = strings.ReplaceAll(msg, rawURL, "<endpoint url>")
	}
	return msg
}

// outcome names a verdict for OnAttempt.
func outcome(st hub.DeliveryStatus) string {
	switch st {
	case hub.DeliverySucceeded:
		return OutcomeSucceeded
	case hub.DeliveryPending:
		return OutcomeRetrying
	default:
		return OutcomeFailed
	}
}

// validUTF8 returns b as a string with invalid bytes (such as a rune cut at
// the excerpt's end) removed.
func validUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "")
}

// limiter paces the requests to each rate-limited endpoint: a bucket of one
// token per endpoint, refilled RateLimit times a second, so that requests go
// at least 1/RateLimit apart and no window of one second holds more than
// RateLimit of them. It is local to one worker.
type limiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	next        time.Time // when the next request may go
	releaseNext time.Time // where the next postponed claim is due, to spread them out
}

// reserve books the endpoint's next free slot for a request ready at now. ok
// reports whether the slot is at most maxWait away (negative: only a slot
// that is free now); then the caller waits until at and sends. Otherwise
// nothing is booked and at is when the claim should be due again: the
// postponed claims of one endpoint are spread one interval apart.
func (l *limiter) reserve(endpointID string, rate float64, now time.Time, maxWait time.Duration) (at time.Time, ok bool) {
	interval := time.Duration(float64(time.Second) / rate)
	if interval <= 0 {
		return now, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[string]*bucket{}
	}
	b := l.buckets[endpointID]
	if b == nil {
		if len(l.buckets) >= 1024 {
			l.prune(now)
		}
		b = &bucket{}
		l.buckets[endpointID] = b
	}
	at = now
	if b.next.After(at) {
		at = b.next
	}
	if wait := at.Sub(now); wait == 0 || wait <= maxWait {
		b.next = at.Add(interval)
		return at, true
	}
	if b.releaseNext.After(at) {
		at = b.releaseNext
	}
	b.releaseNext = at.Add(interval)
	return at, false
}

// prune forgets the buckets that no longer hold anything back.
func (l *limiter) prune(now time.Time) {
	for id, b := range l.buckets {
		if !b.next.After(now) && !b.releaseNext.After(now) {
			delete(l.buckets, id)
		}
	}
}

// TestEventType is the type of the event SendTest sends.
const TestEventType = "verihook.test"

// SendTest sends e one signed test event, now, outside the outbox: nothing
// is stored, and the endpoint's filters and Enabled are not consulted, so
// that an operator can check an endpoint's URL and secret before any event
// is due. It returns the attempt as the delivery log would show it.
func (w *Worker) SendTest(ctx context.Context, e hub.Endpoint) hub.Attempt {
	now := w.now()
	ev := hub.Event{
		ID: hub.NewID("evt", now), Type: TestEventType, CreatedAt: now, Source: "verihook", Provider: "verihook",
		Data: json.RawMessage(`{"message":"a test event sent from verihook; it concerns no verification"}`),
	}
	start := time.Now()
	_, att := w.send(ctx, hub.Claim{Event: ev, Endpoint: e}, now)
	att.LatencyMS = time.Since(start).Milliseconds()
	if att.Error == "" && (att.StatusCode < 200 || att.StatusCode > 299) {
		att.Error = fmt.Sprintf("the endpoint answered %d", att.StatusCode)
	}
	return att
}
