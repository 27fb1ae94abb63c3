package ingest

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
	// SourceTTL is how long a source read from the store is reused before it
	// is read again (so that a change made on another instance is seen);
	// 0 means 5 seconds.
	SourceTTL time.Duration

	mu      sync.Mutex
	sources map[string]cachedSource
}

type cachedSource struct {
	src hub.Source
	at  time.Time
}

// Result is what Receive did with an accepted message.
type Result struct {
	MessageID string            `json:"message_id"`
	Status    hub.MessageStatus `json:"status"`
	Duplicate bool              `json:"duplicate"`
	// Events are the events the message produced (none for a duplicate).
	Events []hub.Event `json:"-"`
}

// Request is one received call on /ingest/{source}.
type Request struct {
	SourceID   string
	RemoteAddr string
	Header     http.Header
	Body       []byte
}

// Receive authenticates, parses and durably stores one request. It returns
// an ENOTFOUND error for an unknown source and an EUNAUTHORIZED one for a bad
// signature (both after recording an audit row), and an EUNAVAILABLE one when
// the message could not be stored: the provider must retry.
func (s *Service) Receive(ctx context.Context, r Request) (Result, error) {
	now := s.now()
	src, err := s.source(ctx, r.SourceID)
	if hub.ErrorCode(err) == hub.ENOTFOUND {
		s.reject(ctx, r, "", http.StatusNotFound, "unknown source")
		return Result{}, err
	} else if err != nil {
		s.log().Error("read source", "source", r.SourceID, "err", err)
		return Result{}, hub.Errorf(hub.EUNAVAILABLE, "storage unavailable; retry later")
	}
	p, err := s.Providers.Get(src.Provider)
	if err != nil {
		return Result{}, fmt.Errorf("source %s: %w", src.ID, err)
	}
	if err := p.Verify(src.Secrets, r.Header, r.Body); err != nil {
		s.reject(ctx, r, src.Provider, http.StatusUnauthorized, hub.ErrorMessage(err))
		return Result{}, err
	}

	parsed, perr := p.Parse(r.Header, r.Body)
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
	if perr != nil {
		if hub.ErrorCode(perr) != hub.EUNRECOGNIZED {
			return Result{}, fmt.Errorf("parse %s message: %w", src.Provider, perr)
		}
		in.Message.Status, in.Message.Reason = hub.MessageQuarantined, hub.ErrorMessage(perr)
	} else {
		for _, o := range parsed.Observations {
			o.Source, o.Provider, o.ReceivedAt, o.MessageID = src.ID, src.Provider, now, msg.ID
			in.Observations = append(in.Observations, o)
		}
		for _, d := range parsed.Events {
			e, err := newEvent(d, src, msg, now)
			if err != nil {
				return Result{}, err
			}
			in.Events = append(in.Events, e)
		}
	}

	res, err := s.Store.Ingest(ctx, in)
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return Result{}, hub.Errorf(hub.EUNAVAILABLE, "request ended before the message was stored")
		}
		s.log().Error("store message", "source", src.ID, "err", err)
		return Result{}, hub.Errorf(hub.EUNAVAILABLE, "message could not be stored; retry later")
	}
	if res.Deliveries > 0 && s.Wake != nil {
		s.Wake()
	}
	s.log().Debug("message received", "source", src.ID, "message", res.MessageID,
		"event", in.Message.EventName, "status", in.Message.Status, "duplicate", res.Duplicate, "events", len(res.Events))
	return Result{MessageID: res.MessageID, Status: in.Message.Status, Duplicate: res.Duplicate, Events: res.Events}, nil
}

// Reject records an audit row for a request refused before it reached the
// provider (an oversized body, say): time, source, remote address and
// reason, never the body.
func (s *Service) Reject(ctx context.Context, sourceID, remoteAddr string, status int, reason string) {
	s.reject(ctx, Request{SourceID: sourceID, RemoteAddr: remoteAddr}, "", status, reason)
}

func (s *Service) reject(ctx context.Context, r Request, providerName string, status int, reason string) {
	now := s.now()
	m := hub.Message{
		ID: hub.NewID("msg", now), SourceID: r.SourceID, Provider: providerName, ReceivedAt: now,
		RemoteAddr: r.RemoteAddr, Status: hub.MessageRejected, HTTPStatus: status, Reason: reason,
	}
	if err := s.Store.RecordRejection(ctx, m); err != nil {
		s.log().Error("record rejection", "source", r.SourceID, "err", err)
	}
	s.log().Warn("message rejected", "source", r.SourceID, "remote", r.RemoteAddr, "status", status, "reason", reason)
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

// source returns the named source, from the cache while it is fresh.
func (s *Service) source(ctx context.Context, id string) (hub.Source, error) {
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
