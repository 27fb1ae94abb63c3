package httpapi

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// readyTTL is how long /readyz reuses the store's last answer. A probe is a
// commit (Store.Ping), and a storm of /readyz requests, from every load
// balancer checking every instance or from anyone on the public listener,
// must cost at most one a second.
const readyTTL = time.Second

// readyTimeout bounds one probe: a store that cannot commit within it is not
// ready.
const readyTimeout = 2 * time.Second

// readiness is the store's last answer to the readiness probe.
type readiness struct {
	// mu is held during a probe, so that the requests arriving meanwhile
	// wait for its answer instead of probing too.
	mu  sync.Mutex
	at  time.Time // when the last probe ended; zero before the first
	err error
	// now reads the clock; nil means time.Now (tests replace it).
	now func() time.Time
}

// handleReadyz answers 200 while the store can commit a write, 503 while it
// cannot, and comes back by itself: the probe runs again once its answer is
// readyTTL old.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if err := s.probe(r.Context()); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "storage cannot commit"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// probe returns the store's readiness, probing it at most once per readyTTL.
// It logs when readiness is lost and when it comes back, not at every probe.
func (s *Server) probe(ctx context.Context) error {
	rd := &s.readiness
	rd.mu.Lock()
	defer rd.mu.Unlock()
	now := time.Now
	if rd.now != nil {
		now = rd.now
	}
	if !rd.at.IsZero() && now().Sub(rd.at) < readyTTL {
		return rd.err
	}
	// The answer is shared, so a client that goes away must not cut it short.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyTimeout)
	defer cancel()
	err := s.Store.Ping(pctx)
	switch {
	case err != nil && rd.err == nil:
		s.log().Error("not ready: the store cannot commit", "err", err)
	case err == nil && rd.err != nil:
		s.log().Info("ready again: the store commits")
	}
	rd.at, rd.err = now(), err
	return err
}
