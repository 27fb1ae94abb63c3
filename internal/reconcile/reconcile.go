package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// Defaults.
const (
	DefaultDeadline = 24 * time.Hour
	DefaultInterval = time.Hour
	DefaultTick     = time.Minute
	// maxWait bounds the wait between two polls of one verification and
	// the pause of a failing source.
	maxWait = 24 * time.Hour
	// lease is how long a claim keeps other workers off a verification
	// while it is polled.
	lease = 10 * time.Minute
)

// Settings are one source's reconciliation options; zero values take the
// defaults (Deadline 24 h, Interval 1 h, Gap and MaxPolls from the
// provider's PollLimits).
type Settings struct {
	// Disabled turns reconciliation of the source off.
	Disabled bool
	// APIURL replaces the provider's API address (a sandbox, the emulator).
	APIURL string
	// Deadline: a verification not final this long after its last change
	// is polled.
	Deadline time.Duration
	// Interval is the first wait between two polls of one verification; it
	// doubles after each, up to a day.
	Interval time.Duration
	// Gap is the least time between two polls of the source.
	Gap time.Duration
	// MaxPolls is how many polls a verification gets before it is given up.
	MaxPolls int
}

// Recorder stores a poll's answer through the ingest path (the ingest
// service's RecordPoll).
type Recorder func(ctx context.Context, src hub.Source, v hub.Verification, parsed hub.Parsed, sentAt time.Time) (changed bool, err error)

// Worker polls providers about stuck verifications. Set Store, Providers and
// Record before use; the rest is optional.
type Worker struct {
	Store     hub.Store
	Providers provider.Registry
	Record    Recorder
	// Client sends the API requests; nil means a client with a 30 s
	// timeout.
	Client *http.Client
	// Sources holds the settings of the sources configured with some; any
	// other source gets the defaults.
	Sources map[string]Settings
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Tick is how often Run looks for due work; 0 means a minute.
	Tick   time.Duration
	Logger *slog.Logger

	mu sync.Mutex
	// next is when each source may be polled again: its gap after the
	// last poll, or the end of a pause after errors.
	next map[string]time.Time
	// failures counts each source's consecutive API errors.
	failures map[string]int
}

// Settings returns the settings of source src, defaults filled from its
// provider's limits.
func (w *Worker) Settings(src hub.Source) Settings {
	s := w.Sources[src.ID]
	if s.Deadline <= 0 {
		s.Deadline = DefaultDeadline
	}
	if s.Interval <= 0 {
		s.Interval = DefaultInterval
	}
	if p, ok := w.Providers[src.Provider].(provider.Poller); ok {
		gap, maxPolls := p.PollLimits()
		if s.Gap <= 0 {
			s.Gap = gap
		}
		if s.MaxPolls <= 0 {
			s.MaxPolls = maxPolls
		}
	}
	return s
}

// Stuck returns the filter of the verifications stuck at now: not final past
// their source's deadline (sources configured with a deadline of their own
// are named; others take the default).
func (w *Worker) Stuck(now time.Time) hub.Stuck {
	st := hub.Stuck{Default: now.Add(-DefaultDeadline), Before: map[string]time.Time{}}
	for id, s := range w.Sources {
		if s.Deadline > 0 {
			st.Before[id] = now.Add(-s.Deadline)
		}
	}
	return st
}

// poller returns src's provider as a Poller when it can poll src: its
// provider polls, the source has API credentials, and reconciliation is not
// disabled. The error is EINVALID and says why not.
func (w *Worker) poller(src hub.Source) (provider.Poller, error) {
	prov := w.Providers[src.Provider]
	p, ok := prov.(provider.Poller)
	switch {
	case !ok && prov != nil && prov.Setup().NoPolling != "":
		return nil, hub.Errorf(hub.EINVALID, "%s", prov.Setup().NoPolling)
	case !ok:
		return nil, hub.Errorf(hub.EINVALID, "provider %q has no status API verihook can poll", src.Provider)
	case w.Settings(src).Disabled:
		return nil, hub.Errorf(hub.EINVALID, "reconciliation is disabled for source %q", src.ID)
	}
	if err := p.CheckPollSecrets(src.Secrets); err != nil {
		return nil, hub.Errorf(hub.EINVALID, "source %q has no API credentials to poll with: %s", src.ID, hub.ErrorMessage(err))
	}
	return p, nil
}

// Run polls stuck verifications every Tick until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	t := time.NewTicker(w.tick())
	defer t.Stop()
	for {
		w.Round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Round polls, for every source that can be polled and is not paused, the
// verifications due (stuck, and their next poll due), as many as its gap
// allows in one Tick, one gap apart.
func (w *Worker) Round(ctx context.Context) {
	srcs, err := w.Store.Sources(ctx)
	if err != nil {
		w.log().Error("reconcile: read sources", "err", err)
		return
	}
	for _, src := range srcs {
		if ctx.Err() != nil {
			return
		}
		if _, err := w.poller(src); err != nil {
			continue
		}
		s := w.Settings(src)
		now := w.now()
		if now.Before(w.nextAt(src.ID)) {
			continue
		}
		limit := max(1, int(w.tick()/s.Gap))
		_, err := w.pollSource(ctx, src, hub.PollClaim{Source: src.ID, StaleBefore: now.Add(-s.Deadline), Now: now, Limit: limit})
		if err != nil && !errors.Is(err, errPaused) && ctx.Err() == nil {
			w.log().Error("reconcile: poll source", "source", src.ID, "err", err)
		}
	}
}

// Source polls, now, every verification of source id that is stuck (all
// when every is set: every one not final), whether its next poll is due or
// not, one gap apart, and returns what each poll did. Verifications given up
// are left alone (Refresh asks about one). EINVALID when the source cannot be
// polled.
func (w *Worker) Source(ctx context.Context, id string, every bool) ([]hub.PollResult, error) {
	src, err := w.Store.Source(ctx, id)
	if err != nil {
		return nil, err
	}
	if _, err := w.poller(src); err != nil {
		return nil, err
	}
	now := w.now()
	stale := now.Add(-w.Settings(src).Deadline)
	if every {
		stale = now.Add(time.Nanosecond)
	}
	return w.pollSource(ctx, src, hub.PollClaim{Source: id, StaleBefore: stale, Now: now, Force: true, Limit: 10000})
}

// pollSource claims what c asks for and polls it, one gap apart; it stops
// early when the source is paused by an error.
func (w *Worker) pollSource(ctx context.Context, src hub.Source, c hub.PollClaim) ([]hub.PollResult, error) {
	c.Until = c.Now.Add(lease)
	vs, err := w.Store.ClaimPolls(ctx, c)
	if err != nil {
		return nil, err
	}
	var out []hub.PollResult
	for i, v := range vs {
		if err := w.waitTurn(ctx, src.ID); err != nil {
			// Give the rest back: due again at once for the next round.
			for _, rest := range vs[i:] {
				w.release(ctx, rest)
			}
			return out, err
		}
		out = append(out, w.poll(ctx, src, v))
	}
	return out, nil
}

// release gives back a claimed verification that was not polled.
func (w *Worker) release(ctx context.Context, v hub.Verification) {
	st := hub.PollState{}
	if v.Poll != nil {
		st = *v.Poll
	}
	st.NextPollAt = w.now()
	if err := w.Store.RecordPoll(context.WithoutCancel(ctx), v.ID, st); err != nil {
		w.log().Error("reconcile: release", "verification", v.ID, "err", err)
	}
}

// Refresh asks the provider about one verification now, whatever its state,
// unless its source's gap or pause has not ended (EUNAVAILABLE, saying when
// to try again). EINVALID when the source cannot be polled; ENOTFOUND for an
// unknown verification.
func (w *Worker) Refresh(ctx context.Context, id string) (hub.PollResult, error) {
	v, err := w.Store.Verification(ctx, id)
	if err != nil {
		return hub.PollResult{}, err
	}
	src, err := w.Store.Source(ctx, v.Source)
	if err != nil {
		return hub.PollResult{}, err
	}
	if _, err := w.poller(src); err != nil {
		return hub.PollResult{}, err
	}
	if wait := w.nextAt(src.ID).Sub(w.now()); wait > 0 {
		return hub.PollResult{}, hub.Errorf(hub.EUNAVAILABLE, "source %s may be polled again in %s", src.ID, wait.Round(time.Second))
	}
	w.reserve(src.ID, w.Settings(src).Gap)
	return w.poll(ctx, src, v), nil
}

// poll asks the provider about v, records the answer and the poll state,
// and paces the source.
func (w *Worker) poll(ctx context.Context, src hub.Source, v hub.Verification) hub.PollResult {
	p, _ := w.poller(src)
	s := w.Settings(src)
	st := hub.PollState{}
	if v.Poll != nil {
		st = *v.Poll
	}
	sentAt := w.now()
	parsed, err := p.Poll(ctx, provider.PollRequest{Client: w.client(), BaseURL: s.APIURL, Secrets: src.Secrets, Verification: v})
	st.Polls++
	st.LastPolledAt = sentAt
	st.LastError = ""
	res := hub.PollResult{VerificationID: v.ID}
	final := false
	if err == nil {
		for _, o := range parsed.Observations {
			final = final || o.Final
		}
		res.Changed, err = w.Record(ctx, src, v, parsed, sentAt)
		if err != nil {
			w.log().Error("reconcile: store answer", "source", src.ID, "verification", v.ID, "err", err)
			err = hub.Errorf(hub.EUNAVAILABLE, "the answer could not be stored")
		}
	}
	w.paceAfter(src.ID, s.Gap, err)
	if err != nil {
		res.Error = hub.ErrorMessage(err)
		st.LastError = res.Error
		w.log().Warn("reconcile: poll failed", "source", src.ID, "verification", v.ID, "code", hub.ErrorCode(err), "err", res.Error)
	}
	st.NextPollAt = sentAt.Add(backoff(s.Interval, st.Polls))
	var apiErr *provider.APIError
	if errors.As(err, &apiErr) && apiErr.RetryAfter > 0 {
		st.NextPollAt = sentAt.Add(max(apiErr.RetryAfter, backoff(s.Interval, st.Polls)))
	}
	if !final && st.Polls >= s.MaxPolls && st.GaveUpAt.IsZero() {
		st.GaveUpAt, res.GaveUp = w.now(), true
		w.log().Warn("reconcile: gave up polling", "source", src.ID, "verification", v.ID, "polls", st.Polls)
	}
	if err := w.Store.RecordPoll(context.WithoutCancel(ctx), v.ID, st); err != nil {
		w.log().Error("reconcile: record poll", "verification", v.ID, "err", err)
	}
	return res
}

// backoff is the wait after the n-th poll of a verification: interval,
// doubling, at most a day.
func backoff(interval time.Duration, n int) time.Duration {
	d := interval
	for i := 1; i < n && d < maxWait; i++ {
		d *= 2
	}
	return min(d, maxWait)
}

// paceAfter sets when source id may be polled again after a poll that ended
// with err: after its gap; after an API error, or a rate limit, after a pause
// of a minute that doubles with every consecutive error (up to a day), or the
// provider's Retry-After when longer.
func (w *Worker) paceAfter(id string, gap time.Duration, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.init()
	wait := gap
	var apiErr *provider.APIError
	if errors.As(err, &apiErr) && (apiErr.Code == hub.EUNAVAILABLE || apiErr.Code == hub.EUNAUTHORIZED) {
		w.failures[id]++
		wait = max(gap, backoff(time.Minute, w.failures[id]), apiErr.RetryAfter)
	} else if err == nil || hub.ErrorCode(err) != hub.EUNAVAILABLE {
		delete(w.failures, id)
	}
	if t := w.now().Add(wait); t.After(w.next[id]) {
		w.next[id] = t
	}
}

// reserve takes the source's turn now (a Refresh).
func (w *Worker) reserve(id string, gap time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.init()
	w.next[id] = w.now().Add(gap)
}

// errPaused: a source's pause after errors outlasts the round.
var errPaused = errors.New("paused after errors")

// waitTurn waits until source id may be polled; it fails when ctx ends
// first or the source is paused for longer than a Tick (an error paused it:
// the next round tries again).
func (w *Worker) waitTurn(ctx context.Context, id string) error {
	wait := w.nextAt(id).Sub(w.now())
	if wait <= 0 {
		return nil
	}
	if wait > w.tick() {
		return fmt.Errorf("source %s: %w for %s", id, errPaused, wait.Round(time.Second))
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (w *Worker) nextAt(id string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.next[id]
}

func (w *Worker) init() {
	if w.next == nil {
		w.next, w.failures = map[string]time.Time{}, map[string]int{}
	}
}

func (w *Worker) tick() time.Duration {
	if w.Tick > 0 {
		return w.Tick
	}
	return DefaultTick
}

func (w *Worker) client() *http.Client {
	if w.Client != nil {
		return w.Client
	}
	return &http.Client{Timeout: 30 * time.Second}
}

func (w *Worker) now() time.Time {
	if w.Now != nil {
		return w.Now().UTC()
	}
	return time.Now().UTC()
}

func (w *Worker) log() *slog.Logger {
	if w.Logger != nil {
		return w.Logger
	}
	return slog.Default()
}
