package ingest

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// DefaultRejectBudget is how many rejections of one source and status a
// minute are recorded in full unless Service.RejectBudget says otherwise.
const DefaultRejectBudget = 10

// maxCountRows bounds the counting rows of a minute. Most reasons are a
// provider's fixed messages, but some name what the request sent (an event
// type no secret is configured for), so past the bound further reasons share
// a row per source and status.
const maxCountRows = 20

// otherReasons is the reason of the rows that count them.
const otherReasons = "(other reasons)"

// countFlushDelay is how long counted rejections wait in memory before they
// are added to their row: a flood costs a write a second, not one a request.
const countFlushDelay = time.Second

// rejections decides which refused requests are recorded in full and counts
// the rest (SPEC section 10). Per source, status and minute the first budget
// get a row and a log line each; the others are counted in memory, per
// reason too, and added once a second to one row of that source, status,
// reason and minute, with one more log line when counting starts. Unknown
// sources share one bucket, so the buckets are bounded by the configured
// sources and the statuses, and the counting rows by maxCountRows, never by
// what a caller sends.
type rejections struct {
	mu     sync.Mutex
	minute time.Time
	full   map[rejectKey]int           // this minute's rejections by source and status, up to budget+1
	counts map[rejectKey]*rejectBucket // this minute's counting rows
	// dirty lists the counting rows, of any minute, with counts not yet
	// stored.
	dirty []*rejectBucket
	// flushMu makes flushes one at a time, so that a flush that returns has
	// stored what was counted before it began.
	flushMu sync.Mutex
}

type rejectKey struct {
	source string // "" for every unknown source
	status int
	reason string // "" in the keys of full
}

type rejectBucket struct {
	row     hub.Message // the counting row
	pending int64       // counted, not yet added to the row
}

// count notes the rejection m and reports whether it is to be recorded in
// full; if not, first says that it is the first one counted of its source
// and status this minute, and schedule that no flush was due yet. A
// rejection without a provider is of an unknown source.
func (r *rejections) count(m hub.Message, budget int) (full, first, schedule bool) {
	key := rejectKey{source: m.SourceID, status: m.HTTPStatus}
	if m.Provider == "" {
		key.source = ""
	}
	minute := m.ReceivedAt.Truncate(time.Minute)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !minute.Equal(r.minute) || r.full == nil {
		r.minute, r.full, r.counts = minute, map[rejectKey]int{}, map[rejectKey]*rejectBucket{}
	}
	switch n := r.full[key]; {
	case n < budget:
		r.full[key]++
		return true, false, false
	case n == budget:
		r.full[key]++
		first = true
	}
	key.reason = m.Reason
	b := r.counts[key]
	if b == nil && len(r.counts) >= maxCountRows {
		key.reason = otherReasons
		b = r.counts[key]
	}
	if b == nil {
		b = &rejectBucket{row: hub.Message{ID: hub.NewID("msg", m.ReceivedAt), SourceID: key.source,
			Provider: m.Provider, ReceivedAt: m.ReceivedAt, Status: hub.MessageRejected,
			HTTPStatus: m.HTTPStatus, Reason: key.reason}}
		r.counts[key] = b
	}
	if b.pending == 0 {
		schedule = len(r.dirty) == 0
		r.dirty = append(r.dirty, b)
	}
	b.pending++
	return false, first, schedule
}

// take returns the counting rows with what they have counted since the last
// take, and starts them again from 0.
func (r *rejections) take() []hub.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	rows := make([]hub.Message, 0, len(r.dirty))
	for _, b := range r.dirty {
		row := b.row
		row.Count, b.pending = b.pending, 0
		rows = append(rows, row)
	}
	r.dirty = r.dirty[:0]
	return rows
}

// reject records a refused request: in full (an audit row and a log line)
// within the budget of its source, status and minute, counted past it.
func (s *Service) reject(ctx context.Context, r hub.Callback, providerName string, status int, reason string) {
	now := s.now()
	m := hub.Message{SourceID: r.SourceID, Provider: providerName, ReceivedAt: now,
		RemoteAddr: r.RemoteAddr, Status: hub.MessageRejected, HTTPStatus: status, Reason: reason}
	if !hub.ValidID(m.SourceID) {
		m.SourceID = "" // no source can have it: it is the caller's, not kept
	}
	budget := s.RejectBudget
	if budget == 0 {
		budget = DefaultRejectBudget
	}
	full, first, schedule := s.rejects.count(m, budget)
	if full {
		m.ID = hub.NewID("msg", now)
		if err := s.Store.RecordRejection(ctx, m); err != nil {
			s.log().Error("record rejection", "source", m.SourceID, "err", err)
		}
		s.log().Warn("message rejected", "source", m.SourceID, "remote", m.RemoteAddr, "status", status, "reason", reason)
		return
	}
	if first {
		s.log().Warn("message rejected; more of this source and status this minute are counted, not logged", "source", m.SourceID,
			"remote", m.RemoteAddr, "status", status, "reason", reason, "budget", budget)
	}
	if schedule {
		time.AfterFunc(countFlushDelay, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.FlushRejections(ctx); err != nil {
				s.log().Error("record rejection counts", "err", err)
			}
		})
	}
}

// FlushRejections stores the rejections counted so far, which Receive and
// Reject otherwise store within a second. Call it before closing the store.
func (s *Service) FlushRejections(ctx context.Context) error {
	s.rejects.flushMu.Lock()
	defer s.rejects.flushMu.Unlock()
	var errs []error
	for _, row := range s.rejects.take() {
		errs = append(errs, s.Store.RecordRejection(ctx, row))
	}
	return errors.Join(errs...)
}
