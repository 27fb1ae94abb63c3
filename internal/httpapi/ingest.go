package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// handleIngest receives one provider callback (SPEC section 3), on
// /ingest/{source_id} and on /ingest/{source_id}/{event_type} alike: the
// second names the event type for providers that send it only in a header
// (iDenfy lets each event type have its own URL). What costs no memory is
// checked before the body is read: the source must exist (an unknown one
// gets 404 whatever it sends), and the body must fit the limit (413) and the
// bytes left for bodies in flight (503 with Retry-After). The body is then
// read whole and passed on as raw bytes: signatures are checked over exactly
// what arrived.
func (s *Server) handleIngest(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sourceID := r.PathValue("source_id")
	remote := s.remoteAddr(r)
	// The source label is the source's id only once it is known to exist, so
	// that requests to made-up sources cannot grow the metric without bound.
	label, outcome := "unknown", "error"
	if s.ObserveIngest != nil {
		defer func() { s.ObserveIngest(label, outcome, time.Since(start)) }()
	}
	if err := s.Receiver.Admit(r.Context(), sourceID, remote); err != nil {
		outcome = outcomeOf(err)
		s.error(w, r, err)
		return
	}
	label = sourceID
	limit := s.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	tooLarge := func() {
		outcome = "too_large"
		s.Receiver.Reject(r.Context(), sourceID, remote, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", limit))
		s.error(w, r, hub.Errorf(hub.ETOOLARGE, "body over the limit of %d bytes", limit))
	}
	if r.ContentLength > limit {
		tooLarge()
		return
	}
	// A body of unknown length (chunked) may grow to the limit.
	size := r.ContentLength
	if size < 0 {
		size = limit
	}
	if !s.reserve(size) {
		outcome = "busy"
		w.Header().Set("Retry-After", "1")
		s.error(w, r, hub.Errorf(hub.EUNAVAILABLE, "too many requests in flight; retry later"))
		return
	}
	defer s.inflight.Add(-size)
	body, err := readBody(http.MaxBytesReader(w, r.Body, limit), r.ContentLength)
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		tooLarge()
		return
	} else if err != nil {
		s.error(w, r, hub.Errorf(hub.EINVALID, "could not read the body"))
		return
	}
	res, err := s.Receiver.Receive(r.Context(), hub.Callback{
		SourceID: sourceID, EventType: r.PathValue("event_type"), RemoteAddr: remote, Header: r.Header, Body: body,
	})
	outcome = outcomeOf(err)
	if err != nil {
		s.error(w, r, err)
		return
	}
	outcome = string(res.Status)
	if res.Duplicate {
		outcome = "duplicate"
	}
	writeJSON(w, http.StatusOK, res)
}

// outcomeOf is the metric's outcome of an ingest error.
func outcomeOf(err error) string {
	switch hub.ErrorCode(err) {
	case hub.EUNAUTHORIZED:
		return "unauthorized"
	case hub.ENOTFOUND:
		return "unknown_source"
	case hub.EUNAVAILABLE:
		return "unavailable"
	}
	return "error"
}

// reserve takes n bytes of the budget for bodies in flight, or reports that
// they are not left; the caller gives them back when done with the body.
// Past the budget it logs, at most once a minute, that requests are refused.
func (s *Server) reserve(n int64) bool {
	budget := s.MaxInflight
	if budget <= 0 {
		budget = DefaultMaxInflight
	}
	for {
		used := s.inflight.Load()
		if used+n > budget {
			break
		}
		if s.inflight.CompareAndSwap(used, used+n) {
			return true
		}
	}
	now, last := time.Now().Unix(), s.busyLogAt.Load()
	if now-last >= 60 && s.busyLogAt.CompareAndSwap(last, now) {
		s.log().Warn("ingest requests refused with 503: the bodies in flight hold their bound of bytes", "bytes", budget)
	}
	return false
}

// readBody reads a body whole. One of declared length is read into a buffer
// of that length (net/http ends the body there): growing a buffer by
// doubling would hold up to twice the bytes reserved for it.
func readBody(r io.Reader, length int64) ([]byte, error) {
	if length < 0 {
		return io.ReadAll(r)
	}
	b := make([]byte, length)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}
