package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/slots"
)

// Store is what the worker needs of the store; hub.Store satisfies it.
type Store interface {
	ClaimDispatches(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]hub.DispatchClaim, error)
	RecordDispatch(ctx context.Context, r hub.DispatchRecord) error
	ExpireDispatches(ctx context.Context, now time.Time) ([]hub.Dispatch, error)
}

var _ Store = hub.Store(nil)

// Network is how the channels reach their servers. cmd/verihook gives the
// SSRF guard's dialer and HTTP client unless private addresses are allowed.
type Network struct {
	// Dial connects to SMTP servers.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// DialLocal connects to an SMTP server with tls none, which is on a
	// loopback address by configuration.
	DialLocal func(ctx context.Context, network, addr string) (net.Conn, error)
	// Client sends the SMS gateways' requests.
	Client *http.Client
}

// Source is one source's dispatch configuration, ready to send.
type Source struct {
	cfg      Config
	channels map[string]channel   // by hub.ChannelEmail, hub.ChannelSMS
	tmpl     map[string]templates // likewise
	timeout  map[string]time.Duration
}

// NewSource readies cfg, which Validate has accepted, for sending.
func NewSource(cfg Config, nw Network, now func() time.Time) (*Source, error) {
	s := &Source{cfg: cfg, channels: map[string]channel{}, tmpl: map[string]templates{}, timeout: map[string]time.Duration{}}
	var err error
	if e := cfg.Email; e != nil {
		dial := nw.Dial
		if e.SMTP.TLS == "none" {
			dial = nw.DialLocal
		}
		if s.channels[hub.ChannelEmail], err = newMailer(e, dial, now); err != nil {
			return nil, fmt.Errorf("email.%w", err)
		}
		if s.tmpl[hub.ChannelEmail], err = parseTemplates(e.Templates); err != nil {
			return nil, fmt.Errorf("email.%w", err)
		}
		s.timeout[hub.ChannelEmail] = e.SMTP.Timeout
	}
	if m := cfg.SMS; m != nil {
		if s.channels[hub.ChannelSMS], err = newGateway(m, nw.Client); err != nil {
			return nil, fmt.Errorf("sms.%w", err)
		}
		if s.tmpl[hub.ChannelSMS], err = parseTemplates(m.Templates); err != nil {
			return nil, fmt.Errorf("sms.%w", err)
		}
		s.timeout[hub.ChannelSMS] = m.Timeout
	}
	return s, nil
}

// OTPTTL is how long the source's dispatches may wait to be sent.
func (s *Source) OTPTTL() time.Duration { return s.cfg.OTPTTL }

// Worker defaults.
const (
	DefaultLease        = 30 * time.Second
	DefaultConcurrency  = 16
	DefaultPollInterval = time.Second
)

// Outcomes, as reported to Worker.OnOutcome.
const (
	OutcomeSent     = "sent"
	OutcomeRetrying = "retrying"
	OutcomeFailed   = "failed"
	OutcomeExpired  = "expired"
)

// Worker sends due dispatches: it claims them from the Store, renders each
// for its channel, sends it, and records the result; it expires those whose
// deadline passed. The exported fields must not change once Run started.
type Worker struct {
	Store Store
	// Sources are the sources with dispatch configured, by id.
	Sources map[string]*Source
	// Lease is how long a claim is held (default 30 s); it must exceed the
	// channels' timeouts, or a slow send may be made twice.
	Lease time.Duration
	// Concurrency caps the sends in flight (default 16).
	Concurrency int
	// PollInterval is how often Run looks for retries that came due and
	// dispatches to expire when nothing wakes it (default 1 s).
	PollInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger gets one line per failure and end, with ids, channel and
	// status; never a recipient, a code, a link or a text. Nil discards.
	Logger *slog.Logger
	// OnOutcome, when set, is told the outcome of every attempt and
	// expiry, by channel: metrics.
	OnOutcome func(channel, outcome string, latency time.Duration)
	// OnEnded, when set, is called after dispatches ended failed or
	// expired: their events have deliveries to send.
	OnEnded func()
	// Purge, when set, purges the personal data of the events that asked
	// for dispatches which are now final.
	Purge func(ctx context.Context, eventIDs []string) error

	initOnce sync.Once
	wake     chan struct{}
	log      *slog.Logger
	limits   limiter
}

func (w *Worker) init() {
	w.initOnce.Do(func() {
		w.wake = make(chan struct{}, 1)
		w.log = w.Logger
		if w.log == nil {
			w.log = slog.New(slog.DiscardHandler)
		}
	})
}

func (w *Worker) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func or[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Wake makes Run look for due dispatches at once. It never blocks; the
// ingest path calls it after a commit that created dispatches.
func (w *Worker) Wake() {
	w.init()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run sends dispatches until ctx is done, then waits for the sends in
// flight to be recorded.
func (w *Worker) Run(ctx context.Context) error {
	if w.Store == nil {
		return errors.New("dispatch worker: no store")
	}
	w.init()
	sl := slots.New(or(w.Concurrency, DefaultConcurrency))
	defer sl.Wait()
	poll := time.NewTicker(or(w.PollInterval, DefaultPollInterval))
	defer poll.Stop()
	expire := true
	for {
		if expire {
			w.expire(ctx)
		}
		for w.claim(ctx, sl) {
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
			expire = false
		case <-poll.C:
			expire = true
		}
	}
}

// drain expires and sends until nothing is due at Now, waiting for every
// send: one pass of Run at one instant, for tests that move a fake clock.
func (w *Worker) drain(ctx context.Context) {
	w.init()
	sl := slots.New(or(w.Concurrency, DefaultConcurrency))
	w.expire(ctx)
	for {
		more := w.claim(ctx, sl)
		sl.Wait()
		if !more && !w.claim(ctx, sl) {
			sl.Wait()
			return
		}
	}
}

// claim takes as many due dispatches as there are free slots and starts
// sending them; it reports whether it got any.
func (w *Worker) claim(ctx context.Context, sl *slots.Slots) bool {
	want := sl.Take(ctx, or(w.Concurrency, DefaultConcurrency))
	if want == 0 {
		return false
	}
	claims, err := w.Store.ClaimDispatches(ctx, w.now(), want, or(w.Lease, DefaultLease))
	if err != nil && ctx.Err() == nil {
		w.log.Error("claim dispatches", "error", err)
	}
	sl.Put(want - len(claims))
	for _, c := range claims {
		// A send that started is finished and recorded, even when
		// verihook is shutting down (bounded by its timeout).
		sl.Go(func() { w.process(context.WithoutCancel(ctx), c) })
	}
	return len(claims) > 0
}

// expire ends the dispatches that passed their deadline unsent.
func (w *Worker) expire(ctx context.Context) {
	ended, err := w.Store.ExpireDispatches(ctx, w.now())
	if err != nil {
		if ctx.Err() == nil {
			w.log.Error("expire dispatches", "error", err)
		}
		return
	}
	if len(ended) == 0 {
		return
	}
	ids := make([]string, len(ended))
	for i, d := range ended {
		ids[i] = d.EventID
		w.log.Warn("dispatch expired: not sent before its deadline", "dispatch", d.ID, "source", d.Source,
			"channel", d.Channel, "attempts", d.Attempts)
		if w.OnOutcome != nil {
			w.OnOutcome(d.Channel, OutcomeExpired, 0)
		}
	}
	w.ended(ctx, ids, true)
}

// ended purges the requesting events of dispatches that became final and,
// if one failed or expired, wakes whoever sends its event.
func (w *Worker) ended(ctx context.Context, eventIDs []string, raised bool) {
	if w.Purge != nil {
		if err := w.Purge(ctx, eventIDs); err != nil {
			w.log.Error("purge dispatched events", "error", err)
		}
	}
	if raised && w.OnEnded != nil {
		w.OnEnded()
	}
}

// process works on one claim: it sends it unless it is past its deadline,
// has no channel, or is over a rate limit, and records the result.
func (w *Worker) process(ctx context.Context, c hub.DispatchClaim) {
	d := c.Dispatch
	now := w.now()
	rec := hub.DispatchRecord{ID: d.ID, Lease: c.Lease, At: now}
	src := w.Sources[d.Source]
	var ch channel
	if src != nil {
		ch = src.channels[d.Channel]
	}
	var latency time.Duration
	switch {
	case !now.Before(d.Deadline):
		rec.Status, rec.Error = hub.DispatchExpired, "not sent before its deadline"
	case src == nil:
		rec.Status, rec.Error = hub.DispatchFailed, "the source has no dispatch configuration"
	case ch == nil:
		rec.Status, rec.Error = hub.DispatchFailed, "the source has no "+d.Channel+" channel configured"
	default:
		if d.Attempts == 0 {
			if ok, why := w.limits.allow(d.Source, d.Content.Recipient, src.cfg.Limits, now); !ok {
				rec.Status, rec.Error = hub.DispatchFailed, why
				break
			}
		}
		start := time.Now()
		err := w.send(ctx, src, ch, d, now)
		latency = time.Since(start)
		rec.Attempted = true
		rec.Status, rec.NextAttemptAt = decide(err, d.Attempts+1, src.cfg.RetrySchedule, now, d.Deadline)
		if err != nil {
			rec.Error = scrub(err.Error(), d.Content)
		}
	}
	if rec.Status == hub.DispatchSent {
		rec.At = w.now()
	}
	err := w.Store.RecordDispatch(ctx, rec)
	log := w.log.With("dispatch", d.ID, "source", d.Source, "channel", d.Channel, "attempt", d.Attempts+1)
	switch hub.ErrorCode(err) {
	case "":
	case hub.ECONFLICT:
		// The lease ended and another worker took the dispatch over.
		log.Warn("dispatch lease lost; result not recorded", "status", rec.Status)
		return
	default:
		// The lease will end and the dispatch be claimed again: a send
		// that succeeded may then be repeated (at least once).
		log.Error("record dispatch", "status", rec.Status, "error", err)
		return
	}
	outcome := string(rec.Status)
	if rec.Status == hub.DispatchPending {
		outcome = OutcomeRetrying
	}
	if w.OnOutcome != nil {
		w.OnOutcome(d.Channel, outcome, latency)
	}
	if rec.Error != "" {
		log = log.With("error", rec.Error)
	}
	switch rec.Status {
	case hub.DispatchSent:
		log.Debug("dispatch sent", "latency_ms", latency.Milliseconds())
	case hub.DispatchPending:
		log.Info("dispatch attempt failed", "next_attempt_at", rec.NextAttemptAt)
	default:
		log.Warn("dispatch " + outcome)
	}
	if rec.Status.Final() {
		w.ended(ctx, []string{d.EventID}, rec.Status != hub.DispatchSent)
	}
}

// send renders d for its channel and sends it, within the attempt's
// timeout and never past the dispatch's deadline.
func (w *Worker) send(ctx context.Context, src *Source, ch channel, d hub.Dispatch, now time.Time) error {
	subject, body, err := src.tmpl[d.Channel].render(contentOf(d))
	if err != nil {
		return permanent("%v", err)
	}
	// The attempt ends at its timeout or at the deadline, whichever is
	// first: a code is never handed to a server after its deadline.
	timeout := min(d.Deadline.Sub(now), src.timeout[d.Channel])
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return ch.Send(sctx, message{ID: d.ID, To: d.Content.Recipient, Subject: subject, Body: body})
}

// decide returns the status after the attempts-th attempt ended with err:
// sent; failed when err is permanent or the schedule is exhausted; else
// pending at the schedule's next wait, or expired when that is not before
// the deadline.
func decide(err error, attempts int, schedule []time.Duration, now, deadline time.Time) (hub.DispatchStatus, time.Time) {
	switch {
	case err == nil:
		return hub.DispatchSent, time.Time{}
	case isPermanent(err) || attempts >= len(schedule):
		return hub.DispatchFailed, time.Time{}
	}
	next := now.Add(schedule[attempts])
	if !next.Before(deadline) {
		return hub.DispatchExpired, time.Time{}
	}
	return hub.DispatchPending, next
}

// scrub removes a dispatch's personal data from an error message: servers
// echo the recipient ("<a@b.c>: mailbox unavailable"), gateways the number
// or the request they were sent, so each value is also looked for as a
// query, a path and a JSON string escape it, with its white space collapsed,
// in any letter case, and cut short at the end of an excerpt.
func scrub(msg string, c hub.DispatchContent) string {
	var values []string
	for _, s := range []string{c.Recipient, c.Link, c.Text, codePattern.FindString(c.Text)} {
		if len(s) >= 3 {
			j := jsonEscape(s)
			values = append(values, s, strings.Join(strings.Fields(s), " "), // as oneLine leaves it
				url.QueryEscape(s), url.PathEscape(s), j, strings.ReplaceAll(s, "/", `\/`), strings.ReplaceAll(j, "/", `\/`))
		}
	}
	if n, ok := phoneNumber(c.Recipient); ok {
		values = append(values, n, url.QueryEscape(n), strings.TrimPrefix(n, "+"))
	}
	for _, v := range values {
		msg = regexp.MustCompile("(?i)"+regexp.QuoteMeta(v)).ReplaceAllLiteralString(msg, "[redacted]")
	}
	// An excerpt cut short ("…", see oneLine) may end in the start of a value.
	if body, cut := strings.CutSuffix(msg, "…"); cut {
		for _, v := range values {
			for n := len(v) - 1; n >= 3; n-- {
				if tail := body[max(len(body)-n, 0):]; len(tail) == n && strings.EqualFold(tail, v[:n]) {
					body = body[:len(body)-n] + "[redacted]"
					break
				}
			}
		}
		msg = body + "…"
	}
	return msg
}

// jsonEscape returns s as it reads inside a JSON string that Go wrote (PHP
// escapes "/" instead of "&", which scrub looks for too).
func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

func itoa(n int) string { return strconv.Itoa(n) }
