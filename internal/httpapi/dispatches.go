package httpapi

import (
	"net/http"

	"github.com/verihook/verihook/internal/hub"
)

// Dispatches hold no personal data as the API shows them (hub.Dispatch's
// content is never encoded), so viewers and admins see the same.

func (s *Server) handleDispatches(w http.ResponseWriter, r *http.Request) {
	p, err := page(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	q := r.URL.Query()
	f := hub.DispatchFilter{Source: q.Get("source"), Status: hub.DispatchStatus(q.Get("status")), Page: p}
	if err := f.Validate(); err != nil {
		s.error(w, r, hub.Errorf(hub.EINVALID, "status must be pending, sent, failed or expired"))
		return
	}
	ds, next, err := s.Store.Dispatches(r.Context(), f)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeList(w, ds, next)
}

func (s *Server) handleDispatch(w http.ResponseWriter, r *http.Request) {
	d, err := s.Store.Dispatch(r.Context(), r.PathValue("id"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}
