package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// RotationGrace is how long a rotated-out endpoint secret keeps signing.
const RotationGrace = 24 * time.Hour

// endpointView is an endpoint as the API shows it; the secret only when it
// was just created or rotated.
type endpointView struct {
	hub.Endpoint
	Secret string `json:"secret,omitempty"`
}

// endpointFor is e as the caller of r may see it: for a viewer, its URL
// without the credentials it may carry (user info, query values).
func endpointFor(r *http.Request, e hub.Endpoint) hub.Endpoint {
	if redacted(r) {
		e.URL = hub.RedactURL(e.URL)
	}
	return e
}

// endpointInput is the body of POST and PATCH /api/v1/endpoints; absent
// fields keep their value on PATCH.
type endpointInput struct {
	ID         *string   `json:"id"`
	URL        *string   `json:"url"`
	Secret     *string   `json:"secret"`
	EventTypes *[]string `json:"event_types"`
	Sources    *[]string `json:"sources"`
	Enabled    *bool     `json:"enabled"`
	Ordered    *bool     `json:"ordered"`
	RateLimit  *float64  `json:"rate_limit"`
}

var endpointIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// decode reads a JSON body of at most 64 KiB, refusing unknown fields.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return hub.Errorf(hub.EINVALID, "invalid JSON body: %v", err)
	}
	return nil
}

// apply validates in and copies it onto e.
func (s *Server) apply(r *http.Request, e *hub.Endpoint, in endpointInput) error {
	if in.URL != nil {
		if err := s.CheckURL(r.Context(), *in.URL); err != nil {
			return err
		}
		e.URL = *in.URL
	}
	if in.Secret != nil {
		if !hub.ValidEndpointSecret(*in.Secret) {
			return hub.Errorf(hub.EINVALID, "secret must be whsec_ followed by base64 of 24 to 64 bytes (or leave it out to have one generated)")
		}
		e.Secret = *in.Secret
	}
	if in.EventTypes != nil {
		for _, t := range *in.EventTypes {
			if !hub.ValidEventTypeFilter(t) {
				return hub.Errorf(hub.EINVALID, "event_types: %q is not an event type or a prefix like verification.* (types: %v)", t, hub.EventTypes)
			}
		}
		e.EventTypes = slices.Clone(*in.EventTypes)
	}
	if in.Sources != nil {
		e.Sources = slices.Clone(*in.Sources)
	}
	if in.Enabled != nil {
		e.SetEnabled(*in.Enabled)
	}
	if in.Ordered != nil {
		e.Ordered = *in.Ordered
	}
	if in.RateLimit != nil {
		if *in.RateLimit < 0 {
			return hub.Errorf(hub.EINVALID, "rate_limit must be 0 (no limit) or more requests per second")
		}
		e.RateLimit = *in.RateLimit
	}
	return nil
}

func (s *Server) handleCreateEndpoint(w http.ResponseWriter, r *http.Request) {
	var in endpointInput
	if err := decode(r, &in); err != nil {
		s.error(w, r, err)
		return
	}
	now := time.Now().UTC()
	e := hub.Endpoint{ID: hub.NewID("ep", now), Enabled: true, EventTypes: []string{}, Sources: []string{}, CreatedAt: now, UpdatedAt: now}
	if in.ID != nil {
		if !endpointIDPattern.MatchString(*in.ID) {
			s.error(w, r, hub.Errorf(hub.EINVALID, "id must be 1-64 letters, digits, - or _"))
			return
		}
		e.ID = *in.ID
	}
	if in.URL == nil {
		s.error(w, r, hub.Errorf(hub.EINVALID, "url is required"))
		return
	}
	if err := s.apply(r, &e, in); err != nil {
		s.error(w, r, err)
		return
	}
	if e.Secret == "" {
		e.Secret = hub.NewEndpointSecret()
	}
	if err := s.Store.CreateEndpoint(r.Context(), e); err != nil {
		s.error(w, r, err)
		return
	}
	e.Version = 1 // as CreateEndpoint stored it
	setAuditTarget(r, e.ID)
	setETag(w, e)
	writeJSON(w, http.StatusCreated, endpointView{Endpoint: e, Secret: e.Secret})
}

func (s *Server) handleEndpoints(w http.ResponseWriter, r *http.Request) {
	es, err := s.Store.Endpoints(r.Context())
	if err != nil {
		s.error(w, r, err)
		return
	}
	for i := range es {
		es[i] = endpointFor(r, es[i])
	}
	writeList(w, es, "")
}

func (s *Server) handleEndpoint(w http.ResponseWriter, r *http.Request) {
	e, err := s.Store.Endpoint(r.Context(), r.PathValue("id"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	setETag(w, e)
	writeJSON(w, http.StatusOK, endpointFor(r, e))
}

// handleUpdateEndpoint applies the fields given to the endpoint as stored
// when it is written (hub.EditEndpoint), so that it never writes back a
// stale copy over a change made meanwhile (verihook disabling the
// endpoint). With If-Match, the change is made only to the version named.
func (s *Server) handleUpdateEndpoint(w http.ResponseWriter, r *http.Request) {
	var in endpointInput
	if err := decode(r, &in); err != nil {
		s.error(w, r, err)
		return
	}
	if in.ID != nil || in.Secret != nil {
		s.error(w, r, hub.Errorf(hub.EINVALID, "id cannot change; rotate the secret with POST /api/v1/endpoints/{id}/rotate-secret"))
		return
	}
	e, err := hub.EditEndpoint(r.Context(), s.Store, r.PathValue("id"), func(e *hub.Endpoint) error {
		if err := checkIfMatch(r, *e); err != nil {
			return err
		}
		e.UpdatedAt = time.Now().UTC()
		return s.apply(r, e, in)
	})
	if err != nil {
		s.error(w, r, err)
		return
	}
	s.wake()
	setETag(w, e)
	writeJSON(w, http.StatusOK, e)
}

// etag is the entity tag of an endpoint: its version, which every write
// moves on.
func etag(e hub.Endpoint) string { return `"` + strconv.FormatInt(e.Version, 10) + `"` }

// setETag answers e's entity tag.
func setETag(w http.ResponseWriter, e hub.Endpoint) { w.Header().Set("ETag", etag(e)) }

// checkIfMatch returns EPRECONDITION when the request has an If-Match header
// that admits neither any version ("*") nor e's. Entity tags compare
// strongly, as If-Match requires: a weak one (W/"3") never matches.
func checkIfMatch(r *http.Request, e hub.Endpoint) error {
	values := r.Header.Values("If-Match")
	if len(values) == 0 {
		return nil
	}
	for _, v := range values {
		for _, tag := range strings.Split(v, ",") {
			if tag = strings.TrimSpace(tag); tag == "*" || tag == etag(e) {
				return nil
			}
		}
	}
	return hub.Errorf(hub.EPRECONDITION, "endpoint %q changed since you read it (its ETag is now %s): read it again and retry",
		e.ID, etag(e))
}

func (s *Server) handleDeleteEndpoint(w http.ResponseWriter, r *http.Request) {
	if err := s.Store.DeleteEndpoint(r.Context(), r.PathValue("id")); err != nil {
		s.error(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleRotateSecret replaces the secret; the old one keeps signing, beside
// the new, for RotationGrace so that receivers can switch without a gap.
func (s *Server) handleRotateSecret(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Secret string `json:"secret"`
	}
	if err := decode(r, &in); err != nil {
		s.error(w, r, err)
		return
	}
	if in.Secret != "" && !hub.ValidEndpointSecret(in.Secret) {
		s.error(w, r, hub.Errorf(hub.EINVALID, "secret must be whsec_ followed by base64 of 24 to 64 bytes"))
		return
	}
	secret := in.Secret
	if secret == "" {
		secret = hub.NewEndpointSecret()
	}
	e, err := hub.EditEndpoint(r.Context(), s.Store, r.PathValue("id"), func(e *hub.Endpoint) error {
		now := time.Now().UTC()
		e.PreviousSecret, e.PreviousSecretExpiresAt = e.Secret, now.Add(RotationGrace)
		e.Secret, e.UpdatedAt = secret, now
		return nil
	})
	if err != nil {
		s.error(w, r, err)
		return
	}
	setETag(w, e)
	writeJSON(w, http.StatusOK, endpointView{Endpoint: e, Secret: e.Secret})
}

// handleEndpointSecret shows the current secret to an admin.
func (s *Server) handleEndpointSecret(w http.ResponseWriter, r *http.Request) {
	e, err := s.Store.Endpoint(r.Context(), r.PathValue("id"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"secret": e.Secret})
}

func (s *Server) handleReplay(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Since  time.Time          `json:"since"`
		Until  time.Time          `json:"until"`
		Status hub.DeliveryStatus `json:"status"`
	}
	if err := decode(r, &in); err != nil {
		s.error(w, r, err)
		return
	}
	if in.Since.IsZero() {
		s.error(w, r, hub.Errorf(hub.EINVALID, `since is required, e.g. {"since": "2026-11-24T00:00:00Z"}`))
		return
	}
	if in.Status != "" && !slices.Contains([]hub.DeliveryStatus{hub.DeliveryPending, hub.DeliverySucceeded, hub.DeliveryFailed}, in.Status) {
		s.error(w, r, hub.Errorf(hub.EINVALID, "status must be pending, succeeded or failed"))
		return
	}
	n, err := s.Store.Replay(r.Context(), hub.Replay{EndpointID: r.PathValue("id"), Since: in.Since, Until: in.Until, Status: in.Status, Now: time.Now().UTC()})
	if err != nil {
		s.error(w, r, err)
		return
	}
	s.wake()
	writeJSON(w, http.StatusAccepted, map[string]int{"deliveries": n})
}

// deliveryView is a delivery with a redacted preview of what it sends: the
// same for every role, so a viewer sees no personal data in it.
type deliveryView struct {
	hub.Delivery
	Preview json.RawMessage `json:"preview,omitempty"`
}

// eventPreview is the redacted preview of event e as a delivery sends it.
func eventPreview(e hub.Event) json.RawMessage {
	body, _ := json.Marshal(e)
	return hub.Preview(body)
}

// withPreviews returns ds, each with the preview of its event, the events
// of the whole page read in one query. A delivery whose event is gone has
// none.
func (s *Server) withPreviews(r *http.Request, ds []hub.Delivery) ([]deliveryView, error) {
	var ids []string
	for _, d := range ds {
		if !slices.Contains(ids, d.EventID) {
			ids = append(ids, d.EventID)
		}
	}
	previews := make(map[string]json.RawMessage, len(ids))
	if len(ids) > 0 {
		evs, _, err := s.Store.Events(r.Context(), hub.EventFilter{IDs: ids, Page: hub.Page{Limit: len(ids)}})
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			previews[e.ID] = eventPreview(e)
		}
	}
	out := make([]deliveryView, len(ds))
	for i, d := range ds {
		out[i] = deliveryView{Delivery: d, Preview: previews[d.EventID]}
	}
	return out, nil
}

func (s *Server) handleDeliveries(w http.ResponseWriter, r *http.Request) {
	p, err := page(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	q := r.URL.Query()
	f := hub.DeliveryFilter{EndpointID: q.Get("endpoint"), EventID: q.Get("event"), Status: hub.DeliveryStatus(q.Get("status")), Page: p}
	ds, next, err := s.Store.Deliveries(r.Context(), f)
	if err != nil {
		s.error(w, r, err)
		return
	}
	views, err := s.withPreviews(r, ds)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeList(w, views, next)
}

func (s *Server) handleDelivery(w http.ResponseWriter, r *http.Request) {
	d, err := s.Store.Delivery(r.Context(), r.PathValue("id"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	v := deliveryView{Delivery: d}
	if e, err := s.Store.Event(r.Context(), d.EventID); err == nil {
		v.Preview = eventPreview(e)
	}
	if redacted(r) {
		// What an endpoint answers is outside verihook's hands: it may echo
		// the event, OTP code and all.
		for i := range v.AttemptLog {
			v.AttemptLog[i].Response = redactText(v.AttemptLog[i].Response)
		}
	}
	writeJSON(w, http.StatusOK, v)
}

// redactText is free text from outside as a viewer may see it: the preview
// of it when it is JSON, else its size.
func redactText(s string) string {
	if s == "" {
		return ""
	}
	p := hub.Preview([]byte(s))
	var text string
	if json.Unmarshal(p, &text) == nil {
		return text // "[redacted]", or "[n bytes, not JSON]"
	}
	return string(p)
}

func (s *Server) handleRetry(w http.ResponseWriter, r *http.Request) {
	d, err := s.Store.RetryDelivery(r.Context(), r.PathValue("id"), time.Now().UTC())
	if err != nil {
		s.error(w, r, err)
		return
	}
	s.wake()
	writeJSON(w, http.StatusAccepted, d)
}

func (s *Server) wake() {
	if s.Wake != nil {
		s.Wake()
	}
}
