package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// Service receives provider callbacks. Set Store and Providers before use.
type Service struct {
	Store     hub.Store
	Providers provider.Registry
	Logger    *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Wake, when set, is called after a commit that created deliveries, so
	// that the delivery worker sends them at once.
	Wake func()
	// MissingSecret, when set, is told of every request refused because its
	// source has no secret for its event type: the event type when the
	// provider's documents name it, else "other" (the type is chosen by
	// whoever sent the request).
	MissingSecret func(source, eventType string)
	// Dispatch, when set, says which events verihook sends to the
	// applicant itself: the dispatch to create with ev, in the same
	// transaction (see hub.DispatchFor).
	Dispatch func(ev hub.Event) (hub.Dispatch, bool)
	// WakeDispatch, when set, is called after a commit that created
	// dispatches, so that the dispatch worker sends them at once.
	WakeDispatch func()
	// SourceTTL is how long a source read from the store is reused before it
	// is read again (so that a change made on another instance is seen);
	// 0 means 5 seconds.
	SourceTTL time.Duration
	// RejectBudget is how many rejections of one source, reason and minute
	// are recorded in full (a row and a log line each) before the rest are
	// counted in one row; 0 means DefaultRejectBudget.
	RejectBudget int

	mu      sync.Mutex
	sources map[string]cachedSource
	rejects rejections
}

type cachedSource struct {
	src hub.Source
	at  time.Time
}

// maxEventTypeLen bounds the event type an ingest URL may name.
const maxEventTypeLen = 100

// Receive authenticates, parses and durably stores one request. It returns
// an ENOTFOUND error for an unknown source, an EINVALID one for an event type
// in the URL that is no name, and an EUNAUTHORIZED one for a bad signature
// (each after recording the rejection), and an EUNAVAILABLE one when the
// message could not be stored, or this build has no adapter for the
// source's provider: the provider must retry. An authenticated message is
// never dropped: what its provider package cannot map, or fails on, is
// stored as quarantined.
func (s *Service) Receive(ctx context.Context, r hub.Callback) (hub.Receipt, error) {
	now := s.now()
	if r.EventType != "" && !isName(r.EventType) {
		s.reject(ctx, r, "", http.StatusBadRequest, "event type in the URL is not a name")
		return hub.Receipt{}, hub.Errorf(hub.EINVALID, "the event type in the URL must be 1 to %d printable characters", maxEventTypeLen)
	}
	src, err := s.lookup(ctx, r)
	if err != nil {
		return hub.Receipt{}, err
	}
	p, err := s.Providers.Get(src.Provider)
	if err != nil {
		// The source was configured by a build that knows this provider (an
		// older or newer instance on the same database): nothing can be
		// verified here, so nothing is stored, and 503 makes the provider
		// retry until an instance that knows it answers. A 4xx would end
		// the provider's retries and lose the message.
		s.log().Error("source's provider is not in this build", "source", src.ID, "provider", src.Provider)
		s.reject(ctx, r, src.Provider, http.StatusServiceUnavailable, fmt.Sprintf("provider %q is not in this build", src.Provider))
		return hub.Receipt{}, hub.Errorf(hub.EUNAVAILABLE, "this instance cannot verify %s callbacks; retry later", src.Provider)
	}
	header := r.Header
	if r.EventType != "" {
		header = r.Header.Clone()
		header.Set(provider.HeaderEventType, r.EventType)
	}
	err = p.Verify(src.Secrets, header, r.Body)
	if old := src.GraceSecrets(now); err != nil && old != nil && p.Verify(old, header, r.Body) == nil {
		// After a rotation the provider may still sign with the old secret
		// for a while: it counts until its grace period ends.
		err = nil
	}
	if err != nil {
		s.reject(ctx, r, src.Provider, http.StatusUnauthorized, hub.ErrorMessage(err))
		var missing *provider.MissingSecretError
		if errors.As(err, &missing) && s.MissingSecret != nil {
			label := "other"
			if missing.Documented {
				label = missing.EventType
			}
			s.MissingSecret(src.ID, label)
		}
		return hub.Receipt{}, err
	}

	parsed, perr := parse(p, header, r.Body)
	if errors.Is(perr, errPanicked) {
		// The adapter panicked: whether an in-body secret was removed is
		// unknown, so the body is not stored; 503 lets the provider retry
		// once a fixed build runs.
		s.log().Error("parse panicked", "source", src.ID, "err", perr)
		s.reject(ctx, r, src.Provider, http.StatusServiceUnavailable, "message could not be parsed (internal error)")
		return hub.Receipt{}, hub.Errorf(hub.EUNAVAILABLE, "message could not be processed; retry later")
	}
	msg := hub.Message{
		ID: hub.NewID("msg", now), SourceID: src.ID, Provider: src.Provider,
		ReceivedAt: now, RemoteAddr: r.RemoteAddr, Status: hub.MessageAccepted,
		HTTPStatus: http.StatusOK, EventName: parsed.EventName, DedupKey: parsed.DedupKey,
		Body: parsed.Body,
	}
	if msg.Body == nil {
		msg.Body = r.Body
	}
	if msg.DedupKey == "" {
		msg.DedupKey = hub.RawHash(msg.Body)
	}
	in := hub.Ingest{Message: msg}
	if perr == nil {
		in.Observations, in.Events, perr = normalized(parsed, src, msg, now)
		in.Message.Dedup = parsed.Dedup
	}
	if perr != nil {
		// Not understood, or the adapter failed on it: either way the message
		// is authentic, so it is kept for an operator. Answering 5xx instead
		// would have the provider retry a message that fails the same way
		// every time, until its retries run out and the message is lost.
		if hub.ErrorCode(perr) != hub.EUNRECOGNIZED {
			s.log().Error("parse message", "source", src.ID, "err", perr)
		}
		in.Observations, in.Events = nil, nil
		in.Message.Dedup = hub.Dedup{} // a quarantined message describes no state: it dedups for ever
		in.Message.Status, in.Message.Reason = hub.MessageQuarantined, quarantineReason(perr)
	}
	if s.Dispatch != nil {
		for _, e := range in.Events {
			if d, ok := s.Dispatch(e); ok {
				in.Dispatches = append(in.Dispatches, d)
			}
		}
	}

	res, err := s.Store.Ingest(ctx, in)
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return hub.Receipt{}, hub.Errorf(hub.EUNAVAILABLE, "request ended before the message was stored")
		}
		s.log().Error("store message", "source", src.ID, "err", err)
		return hub.Receipt{}, hub.Errorf(hub.EUNAVAILABLE, "message could not be stored; retry later")
	}
	if res.Deliveries > 0 && s.Wake != nil {
		s.Wake()
	}
	if res.Dispatches > 0 && s.WakeDispatch != nil {
		s.WakeDispatch()
	}
	s.log().Debug("message received", "source", src.ID, "message", res.MessageID,
		"event", in.Message.EventName, "status", in.Message.Status, "duplicate", res.Duplicate, "events", len(res.Events))
	return hub.Receipt{MessageID: res.MessageID, Status: in.Message.Status, Duplicate: res.Duplicate, Events: res.Events}, nil
}

// Admit is asked before a request's body is read: it returns an ENOTFOUND
// error (after recording the rejection) when sourceID names no source, so
// that a request to an unknown source is refused before its body costs
// memory, and an EUNAVAILABLE one when the store cannot tell.
func (s *Service) Admit(ctx context.Context, sourceID, remoteAddr string) error {
	_, err := s.lookup(ctx, hub.Callback{SourceID: sourceID, RemoteAddr: remoteAddr})
	return err
}

// Reject records a request refused before it reached the provider (an
// oversized body, say), as every rejection: time, source, remote address and
// reason, never the body; counted past the budget.
func (s *Service) Reject(ctx context.Context, sourceID, remoteAddr string, status int, reason string) {
	var providerName string
	if src, err := s.source(ctx, sourceID); err == nil {
		providerName = src.Provider // the source is known: its rejections are counted apart
	}
	s.reject(ctx, hub.Callback{SourceID: sourceID, RemoteAddr: remoteAddr}, providerName, status, reason)
}

// lookup returns the request's source. Its errors answer the caller, so the
// ENOTFOUND one does not repeat the id it was sent.
func (s *Service) lookup(ctx context.Context, r hub.Callback) (hub.Source, error) {
	src, err := s.source(ctx, r.SourceID)
	if hub.ErrorCode(err) == hub.ENOTFOUND {
		s.reject(ctx, r, "", http.StatusNotFound, "unknown source")
		return hub.Source{}, hub.Errorf(hub.ENOTFOUND, "unknown source")
	} else if err != nil {
		s.log().Error("read source", "source", r.SourceID, "err", err)
		return hub.Source{}, hub.Errorf(hub.EUNAVAILABLE, "storage unavailable; retry later")
	}
	return src, nil
}

// errPanicked marks a provider adapter's panic in Parse.
var errPanicked = errors.New("adapter panicked")

// parse runs the provider's Parse, turning a panic into an errPanicked error
// with an empty Parsed.
func parse(p provider.Provider, h http.Header, body []byte) (parsed hub.Parsed, err error) {
	defer func() {
		if v := recover(); v != nil {
			parsed, err = hub.Parsed{}, fmt.Errorf("%s %w: %v", p.Name(), errPanicked, v)
		}
	}()
	return p.Parse(h, body)
}

// normalized returns what parsed reports, ready to store; an event whose
// data cannot be encoded is an EINTERNAL error.
func normalized(parsed hub.Parsed, src hub.Source, msg hub.Message, now time.Time) ([]hub.Observation, []hub.Event, error) {
	var obs []hub.Observation
	for _, o := range parsed.Observations {
		o.Source, o.Provider, o.ReceivedAt, o.MessageID = src.ID, src.Provider, now, msg.ID
		obs = append(obs, o)
	}
	var events []hub.Event
	for _, d := range parsed.Events {
		e, err := newEvent(d, src, msg, now)
		if err != nil {
			return nil, nil, err
		}
		events = append(events, e)
	}
	return obs, events, nil
}

// quarantineReason says why a message is quarantined: the provider
// package's message, or that it failed on the message.
func quarantineReason(err error) string {
	if hub.ErrorCode(err) == hub.EUNRECOGNIZED {
		return hub.ErrorMessage(err)
	}
	return "the adapter failed on this message (" + hub.ErrorMessage(err) + "); see the log"
}

// isName reports whether an event type from a URL is 1 to maxEventTypeLen
// printable characters.
func isName(s string) bool {
	if len(s) > maxEventTypeLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return s != ""
}

func newEvent(d hub.EventDraft, src hub.Source, msg hub.Message, now time.Time) (hub.Event, error) {
	data, err := marshal(d.Data)
	if err != nil {
		return hub.Event{}, fmt.Errorf("encode %s event: %w", d.Type, err)
	}
	return hub.Event{
		ID: hub.NewID("evt", now), Type: d.Type, CreatedAt: now, Source: src.ID,
		Provider: src.Provider, Data: data, MessageID: msg.ID,
	}, nil
}

// source returns the named source, from the cache while it is fresh. An id
// that no source can have (too long, say) is ENOTFOUND without a look-up.
func (s *Service) source(ctx context.Context, id string) (hub.Source, error) {
	if !hub.ValidID(id) {
		return hub.Source{}, hub.Errorf(hub.ENOTFOUND, "no such source")
	}
	ttl := s.SourceTTL
	if ttl == 0 {
		ttl = 5 * time.Second
	}
	now := time.Now()
	s.mu.Lock()
	c, ok := s.sources[id]
	s.mu.Unlock()
	if ok && now.Sub(c.at) < ttl {
		return c.src, nil
	}
	src, err := s.Store.Source(ctx, id)
	if err != nil {
		return hub.Source{}, err
	}
	s.mu.Lock()
	if s.sources == nil {
		s.sources = map[string]cachedSource{}
	}
	s.sources[id] = cachedSource{src: src, at: now}
	s.mu.Unlock()
	return src, nil
}

// Forget drops source id from the cache, so that a change made through
// this instance counts at its next callback (other instances see it within
// SourceTTL).
func (s *Service) Forget(id string) {
	s.mu.Lock()
	delete(s.sources, id)
	s.mu.Unlock()
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}
