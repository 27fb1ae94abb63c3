package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// Recovery reconciles verifications with their provider and reprocesses
// quarantined messages; cmd/verihook wires the reconcile worker and the
// ingest service behind it.
type Recovery interface {
	// Refresh asks the provider's status API about a verification now:
	// EINVALID when its source cannot be polled, EUNAVAILABLE while the
	// source's rate limit holds, ENOTFOUND for an unknown verification.
	Refresh(ctx context.Context, verificationID string) (hub.PollResult, error)
	// Reprocess runs today's adapter over a quarantined message: ECONFLICT
	// when it is not quarantined, ENOTFOUND when unknown.
	Reprocess(ctx context.Context, messageID string) (hub.Reprocessed, error)
	// ReprocessAll reprocesses every quarantined message of a source ("":
	// all), oldest first.
	ReprocessAll(ctx context.Context, source string) ([]hub.Reprocessed, error)
	// Stuck returns the filter of the verifications stuck at now.
	Stuck(now time.Time) hub.Stuck
}

// stuckFilter reads the stuck query parameter: true selects only the
// verifications not final past their source's deadline.
func (s *Server) stuckFilter(r *http.Request) (*hub.Stuck, error) {
	v := r.URL.Query().Get("stuck")
	if v == "" {
		return nil, nil
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		return nil, hub.Errorf(hub.EINVALID, "stuck must be true or false")
	}
	if !on {
		return nil, nil
	}
	now := time.Now()
	st := hub.Stuck{Default: now.Add(-24 * time.Hour)}
	if s.Recovery != nil {
		st = s.Recovery.Stuck(now)
	}
	return &st, nil
}

// handleRefresh: POST /api/v1/verifications/{id}/refresh asks the provider
// and answers what the poll did and the verification as it is now.
func (s *Server) handleRefresh(w http.ResponseWriter, r *http.Request) {
	if s.Recovery == nil {
		s.error(w, r, hub.Errorf(hub.EINVALID, "reconciliation is not configured"))
		return
	}
	res, err := s.Recovery.Refresh(r.Context(), r.PathValue("id"))
	if err != nil {
		if hub.ErrorCode(err) == hub.EUNAVAILABLE {
			w.Header().Set("Retry-After", "60")
		}
		s.error(w, r, err)
		return
	}
	v, err := s.Store.Verification(r.Context(), r.PathValue("id"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Result       hub.PollResult   `json:"result"`
		Verification hub.Verification `json:"verification"`
	}{res, v})
}

// handleReprocess: POST /api/v1/messages/{id}/reprocess.
func (s *Server) handleReprocess(w http.ResponseWriter, r *http.Request) {
	if s.Recovery == nil {
		s.error(w, r, hub.Errorf(hub.EINVALID, "reprocessing is not configured"))
		return
	}
	res, err := s.Recovery.Reprocess(r.Context(), r.PathValue("id"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// handleReprocessAll: POST /api/v1/messages/reprocess with an optional
// {"source": …} reprocesses every quarantined message (of that source).
func (s *Server) handleReprocessAll(w http.ResponseWriter, r *http.Request) {
	if s.Recovery == nil {
		s.error(w, r, hub.Errorf(hub.EINVALID, "reprocessing is not configured"))
		return
	}
	var req struct {
		Source string `json:"source"`
	}
	if err := decode(r, &req); err != nil { // an empty body is no source
		s.error(w, r, err)
		return
	}
	res, err := s.Recovery.ReprocessAll(r.Context(), req.Source)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeList(w, res, "")
}
