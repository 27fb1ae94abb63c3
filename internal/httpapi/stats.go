package httpapi

import (
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// StaleAfter is how long a verification may stay non-final before the
// overview lists it as needing attention.
const StaleAfter = 24 * time.Hour

// CountersKept is how long the retention purge keeps the per-minute
// counters: twice the day the overview charts, so that the hourly purge
// never trims what it reads. Counters hold no personal data, so retention
// (which may be shorter than a day, or months) does not decide it.
const CountersKept = 48 * time.Hour

// statBucket is what happened in one period, and the worst state of the
// outbox in it: the largest of its minutes' samples (0 for a period that
// has none).
type statBucket struct {
	Start          time.Time `json:"start"`
	Accepted       int64     `json:"accepted"`
	Quarantined    int64     `json:"quarantined"`
	Rejected       int64     `json:"rejected"`
	Delivered      int64     `json:"delivered"`
	DeliveryErrors int64     `json:"delivery_errors"`
	QueueDepth     int64     `json:"queue_depth"`
	// OldestDue is how long the oldest due delivery had been due, in seconds.
	OldestDue int64 `json:"oldest_due_seconds"`
}

func (b *statBucket) add(c hub.StatCount) {
	switch c.Name {
	case hub.CountAccepted:
		b.Accepted += c.N
	case hub.CountQuarantined:
		b.Quarantined += c.N
	case hub.CountRejected:
		b.Rejected += c.N
	case hub.CountDelivered:
		b.Delivered += c.N
	case hub.CountDeliveryError:
		b.DeliveryErrors += c.N
	case hub.CountQueueDepth:
		b.QueueDepth = max(b.QueueDepth, c.N)
	case hub.CountOldestDue:
		b.OldestDue = max(b.OldestDue, c.N)
	}
}

// endpointStats is one endpoint's attempts over the last day.
type endpointStats struct {
	Endpoint     string  `json:"endpoint"`
	Delivered    int64   `json:"delivered"`
	Errors       int64   `json:"errors"`
	SuccessRate  float64 `json:"success_rate"` // 0 to 1; 0 without attempts
	AvgLatencyMS int64   `json:"avg_latency_ms"`
}

// stats is the answer of GET /api/v1/stats: what the dashboard's overview
// shows, none of it personal data.
type stats struct {
	Now time.Time `json:"now"`
	// Hour is the last 60 minutes, a bucket per minute; Day the last 24
	// hours, a bucket per hour; oldest first, the current one last.
	Hour      []statBucket    `json:"hour"`
	Day       []statBucket    `json:"day"`
	LastHour  statBucket      `json:"last_hour"`
	LastDay   statBucket      `json:"last_day"`
	Endpoints []endpointStats `json:"endpoints"`
	Queue     struct {
		Pending   int       `json:"pending"`
		Capped    bool      `json:"capped"`
		Due       int       `json:"due"`
		OldestDue time.Time `json:"oldest_due,omitzero"`
	} `json:"queue"`
	// Rejections are the last day's refused requests by source and reason.
	Rejections  []hub.RejectionCount `json:"rejections"`
	LastMessage map[string]time.Time `json:"last_message"`
	// Stale are verifications still not final StaleAfter after they began.
	Stale []hub.Verification `json:"stale_verifications"`
}

// handleStats answers the overview's figures from the stores' counters and
// indexes, never by counting messages, so it stays fast on any database.
func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	now := time.Now().UTC()
	hourStart := now.Truncate(time.Minute).Add(-59 * time.Minute)
	dayStart := now.Truncate(time.Hour).Add(-23 * time.Hour)
	a, err := s.Store.Activity(r.Context(), dayStart)
	if err != nil {
		s.error(w, r, err)
		return
	}
	out := stats{Now: now, Hour: make([]statBucket, 60), Day: make([]statBucket, 24), Rejections: a.Rejections, LastMessage: a.LastMessage}
	for i := range out.Hour {
		out.Hour[i].Start = hourStart.Add(time.Duration(i) * time.Minute)
	}
	for i := range out.Day {
		out.Day[i].Start = dayStart.Add(time.Duration(i) * time.Hour)
	}
	eps := map[string]*endpointStats{}
	latency := map[string]int64{}
	for _, c := range a.Counts {
		if i := int(c.Minute.Sub(hourStart) / time.Minute); i >= 0 && i < 60 {
			out.Hour[i].add(c)
			out.LastHour.add(c)
		}
		if i := int(c.Minute.Sub(dayStart) / time.Hour); i >= 0 && i < 24 {
			out.Day[i].add(c)
			out.LastDay.add(c)
		}
		if c.Key == "" {
			continue
		}
		e := eps[c.Key]
		if e == nil {
			e = &endpointStats{Endpoint: c.Key}
			eps[c.Key] = e
		}
		if c.Name == hub.CountDelivered {
			e.Delivered += c.N
		} else {
			e.Errors += c.N
		}
		latency[c.Key] += c.LatencyMS
	}
	out.Endpoints = []endpointStats{}
	for _, id := range slices.Sorted(maps.Keys(eps)) {
		e := eps[id]
		if n := e.Delivered + e.Errors; n > 0 {
			e.SuccessRate = float64(e.Delivered) / float64(n)
			e.AvgLatencyMS = latency[id] / n
		}
		out.Endpoints = append(out.Endpoints, *e)
	}
	q, err := s.Store.QueueStats(r.Context(), now)
	if err != nil {
		s.error(w, r, err)
		return
	}
	out.Queue.Pending, out.Queue.Capped, out.Queue.Due, out.Queue.OldestDue = q.Pending, q.Capped, q.Due, q.OldestDue
	if out.Stale, err = s.Store.StaleVerifications(r.Context(), now.Add(-StaleAfter), 10); err != nil {
		s.error(w, r, err)
		return
	}
	if out.Rejections == nil {
		out.Rejections = []hub.RejectionCount{}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleTestEndpoint sends the endpoint a signed test event now and answers
// the attempt: status code, latency, the start of the answer, or the error.
func (s *Server) handleTestEndpoint(w http.ResponseWriter, r *http.Request) {
	e, err := s.Store.Endpoint(r.Context(), r.PathValue("id"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	if s.SendTest == nil {
		s.error(w, r, hub.Errorf(hub.EUNAVAILABLE, "this server does not send test events"))
		return
	}
	writeJSON(w, http.StatusOK, s.SendTest(r.Context(), e))
}
