package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// handleIngest receives one provider callback (SPEC section 3), on
// /ingest/{source_id} and on /ingest/{source_id}/{event_type} alike: the
// second names the event type for providers that send it only in a header
// (iDenfy lets each event type have its own URL). The body is read whole,
// within the limit, and passed on as raw bytes: signatures are checked over
// exactly what arrived.
func (s *Server) handleIngest(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sourceID := r.PathValue("source_id")
	remote := remoteAddr(r)
	// The source label is the source's id only once it is known to exist, so
	// that requests to made-up sources cannot grow the metric without bound.
	label, outcome := "unknown", "error"
	if s.ObserveIngest != nil {
		defer func() { s.ObserveIngest(label, outcome, time.Since(start)) }()
	}
	limit := s.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		outcome = "too_large"
		s.Receiver.Reject(r.Context(), sourceID, remote, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", limit))
		s.error(w, r, hub.Errorf(hub.ETOOLARGE, "body over the limit of %d bytes", limit))
		return
	} else if err != nil {
		s.error(w, r, hub.Errorf(hub.EINVALID, "could not read the body"))
		return
	}
	res, err := s.Receiver.Receive(r.Context(), IngestRequest{
		SourceID: sourceID, EventType: r.PathValue("event_type"), RemoteAddr: remote, Header: r.Header, Body: body,
	})
	switch code := hub.ErrorCode(err); {
	case err == nil:
		label, outcome = sourceID, string(res.Status)
		if res.Duplicate {
			outcome = "duplicate"
		}
	case code == hub.EUNAUTHORIZED:
		label, outcome = sourceID, "unauthorized"
	case code == hub.ENOTFOUND:
		outcome = "unknown_source"
	case code == hub.EUNAVAILABLE:
		outcome = "unavailable"
	}
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// remoteAddr is the peer's IP address. X-Forwarded-For is not trusted: an
// operator behind a proxy sees the proxy's address.
func remoteAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
