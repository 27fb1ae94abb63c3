package httpapi

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/verihook/verihook/internal/hub"
)

// list is the envelope of every list answer (SPEC section 8).
type list[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"next_cursor,omitempty"`
}

func writeList[T any](w http.ResponseWriter, items []T, next string) {
	if items == nil {
		items = []T{}
	}
	writeJSON(w, http.StatusOK, list[T]{Data: items, NextCursor: next})
}

// redacted reports whether the caller sees personal data redacted (SPEC
// section 8): every role but admin does. An admin, who configures the
// endpoints that receive the events, sees what they carry in clear.
func redacted(r *http.Request) bool {
	tok, _ := r.Context().Value(tokenKey{}).(hub.Token)
	return tok.Role != hub.RoleAdmin
}

// eventFor is e as the caller of r may see it: for a viewer, its data
// redacted like a message preview (recipients, texts, links, emails hidden;
// types, ids and statuses shown).
func eventFor(r *http.Request, e hub.Event) hub.Event {
	if redacted(r) {
		e.Data = hub.Preview(e.Data)
	}
	return e
}

// page reads limit and cursor.
func page(r *http.Request) (hub.Page, error) {
	p := hub.Page{Limit: hub.DefaultPageLimit, Cursor: r.URL.Query().Get("cursor")}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > hub.MaxPageLimit {
			return p, hub.Errorf(hub.EINVALID, "limit must be a whole number from 1 to %d", hub.MaxPageLimit)
		}
		p.Limit = n
	}
	return p, nil
}

func (s *Server) handleMessages(w http.ResponseWriter, r *http.Request) {
	p, err := page(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	q := r.URL.Query()
	f := hub.MessageFilter{Source: q.Get("source"), Status: hub.MessageStatus(q.Get("status")), Page: p}
	if f.Status != "" && !slices.Contains([]hub.MessageStatus{hub.MessageAccepted, hub.MessageQuarantined, hub.MessageRejected}, f.Status) {
		s.error(w, r, hub.Errorf(hub.EINVALID, "status must be accepted, quarantined or rejected"))
		return
	}
	msgs, next, err := s.Store.Messages(r.Context(), f)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeList(w, msgs, next)
}

func (s *Server) handleMessage(w http.ResponseWriter, r *http.Request) {
	m, err := s.Store.Message(r.Context(), r.PathValue("id"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	m.Body = nil // the API shows the redacted preview, never the raw payload
	writeJSON(w, http.StatusOK, m)
}

func (s *Server) handleVerifications(w http.ResponseWriter, r *http.Request) {
	p, err := page(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	q := r.URL.Query()
	f := hub.VerificationFilter{
		Source: q.Get("source"), Provider: q.Get("provider"), Status: hub.Status(q.Get("status")), ApplicantRef: q.Get("applicant_ref"),
		ProviderRef: q.Get("provider_ref"), Level: q.Get("level"), Page: p,
	}
	if f.Status != "" && !slices.Contains(hub.Statuses, f.Status) {
		s.error(w, r, hub.Errorf(hub.EINVALID, "status must be one of %v", hub.Statuses))
		return
	}
	if f.Stuck, err = s.stuckFilter(r); err != nil {
		s.error(w, r, err)
		return
	}
	vs, next, err := s.Store.Verifications(r.Context(), f)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeList(w, vs, next)
}

func (s *Server) handleVerification(w http.ResponseWriter, r *http.Request) {
	v, err := s.Store.Verification(r.Context(), r.PathValue("id"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	if v.Timeline == nil {
		v.Timeline = []hub.Observation{}
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	p, err := page(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	q := r.URL.Query()
	f := hub.EventFilter{Source: q.Get("source"), Type: q.Get("type"), VerificationID: q.Get("verification"), Page: p}
	es, next, err := s.Store.Events(r.Context(), f)
	if err != nil {
		s.error(w, r, err)
		return
	}
	for i := range es {
		es[i] = eventFor(r, es[i])
	}
	writeList(w, es, next)
}

func (s *Server) handleEvent(w http.ResponseWriter, r *http.Request) {
	e, err := s.Store.Event(r.Context(), r.PathValue("id"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, eventFor(r, e))
}
