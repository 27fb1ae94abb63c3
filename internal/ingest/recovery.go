package ingest

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// RecordPoll stores what a provider's status API answered about a
// verification, through the path a callback takes (Store.Ingest): a message
// of origin poll received at sentAt, the time its request was sent, so that
// the ordering rules never let it replace a state that changed after that
// (see hub.Apply). parsed is the provider's Poll result; its DedupKey is
// set here: the hash of what the answer says and the version of the
// verification when it was asked, so that the same answer about the same
// state is a duplicate, and the same answer after another change is new.
func (s *Service) RecordPoll(ctx context.Context, src hub.Source, v hub.Verification, parsed hub.Parsed, sentAt time.Time) (hub.Receipt, error) {
	sentAt = sentAt.UTC()
	msg := hub.Message{
		ID: hub.NewID("msg", s.now()), SourceID: src.ID, Provider: src.Provider, ReceivedAt: sentAt,
		Status: hub.MessageAccepted, HTTPStatus: http.StatusOK, EventName: parsed.EventName,
		Origin: hub.OriginPoll, Body: parsed.Body,
		DedupKey: fmt.Sprintf("poll:%s@v%d", hub.CanonicalHashOf(answerOf(parsed.Observations))[len("sha256:"):], v.Version),
	}
	obs, events, err := normalized(parsed, src, msg, sentAt)
	if err != nil {
		return hub.Receipt{}, err
	}
	return s.store(ctx, s.Store.Ingest, hub.Ingest{Message: msg, Observations: obs, Events: events})
}

// answerOf is what a poll's observations say, for its dedup key.
func answerOf(obs []hub.Observation) any {
	type answer struct {
		Ref, Level, Applicant string
		Status                hub.Status
		Final                 bool
		Reasons               []string
		AttemptsLeft          *int
	}
	out := make([]answer, 0, len(obs))
	for _, o := range obs {
		out = append(out, answer{o.ProviderRef, o.Level, o.ApplicantRef, o.Status, o.Final, o.Reasons, o.AttemptsLeft})
	}
	return out
}

// Reprocess runs today's adapter over a quarantined message and, when it
// now understands it, applies what it says through the ordering rules (each
// observation of origin reprocess, dated when the message was received) and
// makes the message accepted: one transaction, so that running it twice
// changes nothing the second time (ECONFLICT: the message is not
// quarantined). The headers of the request are not stored; the event type
// it named (the message's EventName) is given to the adapter as the
// provider.HeaderEventType header. An OTP or link request it now
// understands is recorded and delivered as an event but never dispatched to
// the applicant: its code or link is stale by then. ENOTFOUND for an unknown message,
// ECONFLICT for one that is not quarantined or whose body was purged.
func (s *Service) Reprocess(ctx context.Context, id string) (hub.Reprocessed, error) {
	m, err := s.Store.Message(ctx, id)
	if err != nil {
		return hub.Reprocessed{}, err
	}
	switch {
	case m.Status != hub.MessageQuarantined:
		return hub.Reprocessed{}, hub.Errorf(hub.ECONFLICT, "message %s is %s, not quarantined", id, m.Status)
	case m.Body == nil:
		return hub.Reprocessed{}, hub.Errorf(hub.ECONFLICT, "message %s's body was purged: it cannot be reprocessed", id)
	}
	out := hub.Reprocessed{MessageID: id, Status: hub.MessageQuarantined, Reason: m.Reason}
	src, err := s.Store.Source(ctx, m.SourceID)
	if err != nil {
		return out, err
	}
	p, err := s.Providers.Get(src.Provider)
	if err != nil {
		return out, hub.Errorf(hub.EUNAVAILABLE, "this instance has no adapter for %s", src.Provider)
	}
	h := http.Header{}
	if m.EventName != "" {
		h.Set(provider.HeaderEventType, m.EventName)
	}
	parsed, perr := parse(p, h, m.Body)
	now := s.now()
	in := hub.Ingest{Message: m}
	if perr == nil {
		in.Observations, in.Events, perr = normalized(parsed, src, m, now)
	}
	if perr != nil {
		out.Reason = quarantineReason(perr)
		return out, nil
	}
	for i := range in.Observations {
		in.Observations[i].ReceivedAt, in.Observations[i].Origin = m.ReceivedAt, hub.OriginReprocess
	}
	in.Message.Status, in.Message.Reason = hub.MessageAccepted, ""
	in.Message.EventName = provider.Or(parsed.EventName, m.EventName)
	in.Message.Events, in.Message.Preview = nil, nil
	res, err := s.store(ctx, s.Store.Reprocess, in)
	if err != nil {
		return out, err
	}
	out.Status, out.Reason, out.Events = hub.MessageAccepted, "", len(res.Events)
	return out, nil
}

// ReprocessAll reprocesses every message of source (every source when "")
// still quarantined, oldest first, and returns what happened to each.
func (s *Service) ReprocessAll(ctx context.Context, source string) ([]hub.Reprocessed, error) {
	var ids []string
	f := hub.MessageFilter{Source: source, Status: hub.MessageQuarantined, Page: hub.Page{Limit: hub.MaxPageLimit}}
	for {
		page, next, err := s.Store.Messages(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, m := range page {
			ids = append(ids, m.ID)
		}
		if next == "" {
			break
		}
		f.Cursor = next
	}
	slices.Reverse(ids) // lists are newest first; their original order is oldest first
	var out []hub.Reprocessed
	for _, id := range ids {
		r, err := s.Reprocess(ctx, id)
		if hub.ErrorCode(err) == hub.ECONFLICT {
			continue // reprocessed meanwhile, or purged
		}
		if err != nil {
			return out, fmt.Errorf("reprocess %s: %w", id, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// store runs one of the store's ingest paths and wakes the delivery worker
// when it created deliveries.
func (s *Service) store(ctx context.Context, fn func(context.Context, hub.Ingest) (hub.IngestResult, error), in hub.Ingest) (hub.Receipt, error) {
	res, err := fn(ctx, in)
	if err != nil {
		return hub.Receipt{}, err
	}
	if res.Deliveries > 0 && s.Wake != nil {
		s.Wake()
	}
	return hub.Receipt{MessageID: res.MessageID, Status: in.Message.Status, Duplicate: res.Duplicate, Events: res.Events}, nil
}
