package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// dashHandler is a dashboard page or action.
type dashHandler func(*Server, http.ResponseWriter, *http.Request)

// dashPages are the dashboard's pages (GET), behind a session.
var dashPages = []struct {
	path   string
	handle dashHandler
}{
	{"/{$}", (*Server).pageOverview},
	{"/sources", (*Server).pageSources},
	{"/messages", (*Server).pageMessages},
	{"/messages/{id}", (*Server).pageMessage},
	{"/verifications", (*Server).pageVerifications},
	{"/verifications/{id}", (*Server).pageVerification},
	{"/endpoints", (*Server).pageEndpoints},
	{"/endpoints/{id}", (*Server).pageEndpoint},
	{"/deliveries", (*Server).pageDeliveries},
	{"/deliveries/{id}", (*Server).pageDelivery},
	{"/tokens", (*Server).pageTokens},
}

// dashActions are the dashboard's forms (POST), behind a session and CSRF
// protection. Each is one call of the JSON API.
var dashActions = []struct {
	path   string
	handle dashHandler
}{
	{"/logout", (*Server).handleLogout},
	{"/sources", (*Server).actCreateSource},
	{"/sources/{id}/rotate", (*Server).actRotateSource},
	{"/sources/{id}/delete", (*Server).actDeleteSource},
	{"/endpoints", (*Server).actCreateEndpoint},
	{"/endpoints/{id}/edit", (*Server).actEditEndpoint},
	{"/endpoints/{id}/enable", (*Server).actEnableEndpoint},
	{"/endpoints/{id}/disable", (*Server).actEnableEndpoint},
	{"/endpoints/{id}/delete", (*Server).actDeleteEndpoint},
	{"/endpoints/{id}/rotate", (*Server).actRotateEndpoint},
	{"/endpoints/{id}/reveal", (*Server).actRevealEndpoint},
	{"/endpoints/{id}/test", (*Server).actTestEndpoint},
	{"/endpoints/{id}/replay", (*Server).actReplay},
	{"/deliveries/{id}/retry", (*Server).actRetry},
	{"/verifications/{id}/refresh", (*Server).actRefresh},
	{"/messages/{id}/reprocess", (*Server).actReprocess},
	{"/tokens", (*Server).actCreateToken},
	{"/tokens/{id}/revoke", (*Server).actRevokeToken},
}

// pathOf builds an API path from segments (each escaped) and a query
// (empty values left out).
func pathOf(q url.Values, segments ...string) string {
	for i, seg := range segments {
		if i > 0 {
			segments[i] = url.PathEscape(seg)
		}
	}
	p := strings.Join(segments, "/")
	for k, v := range q {
		if len(v) == 0 || v[0] == "" {
			delete(q, k)
		}
	}
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return p
}

// filters copies the named query parameters of r.
func filters(r *http.Request, names ...string) url.Values {
	q := url.Values{}
	for _, n := range names {
		if v := strings.TrimSpace(r.URL.Query().Get(n)); v != "" {
			q.Set(n, v)
		}
	}
	return q
}

// listPage is a page of a list with its filters, for the templates.
type listPage[T any] struct {
	Items   []T
	Filters url.Values
	Next    string // the URL of the next page, "" on the last
	Extra   any
}

// getList reads one page of an API list, with the filters and cursor of r.
func getList[T any](s *Server, r *http.Request, api, page string, names ...string) (listPage[T], error) {
	f := filters(r, names...)
	q := filters(r, append(names, "cursor")...)
	var l list[T]
	if err := s.call(r, http.MethodGet, pathOf(q, api), nil, nil, &l); err != nil {
		return listPage[T]{}, err
	}
	out := listPage[T]{Items: l.Data, Filters: f}
	if l.NextCursor != "" {
		nq := filters(r, names...)
		nq.Set("cursor", l.NextCursor)
		out.Next = page + "?" + nq.Encode()
	}
	return out, nil
}

// overview is the data of the overview page.
type overview struct {
	Stats       stats
	Quarantined []hub.Message
	Failing     []hub.Endpoint
}

func (s *Server) pageOverview(w http.ResponseWriter, r *http.Request) {
	var o overview
	if err := s.call(r, http.MethodGet, "/api/v1/stats", nil, nil, &o.Stats); err != nil {
		s.dashError(w, r, err)
		return
	}
	var q list[hub.Message]
	if err := s.call(r, http.MethodGet, "/api/v1/messages?status=quarantined&limit=5", nil, nil, &q); err != nil {
		s.dashError(w, r, err)
		return
	}
	o.Quarantined = q.Data
	var eps list[hub.Endpoint]
	if err := s.call(r, http.MethodGet, "/api/v1/endpoints", nil, nil, &eps); err != nil {
		s.dashError(w, r, err)
		return
	}
	for _, e := range eps.Data {
		if !e.FailingSince.IsZero() || e.DisabledReason != "" {
			o.Failing = append(o.Failing, e)
		}
	}
	s.render(w, r, http.StatusOK, "overview", "Overview", o)
}

// sourceRow is one source on the sources page.
type sourceRow struct {
	sourceView
	IngestURL   string
	LastMessage time.Time
	Rejections  []hub.RejectionCount
}

func (s *Server) pageSources(w http.ResponseWriter, r *http.Request) {
	var srcs list[sourceView]
	if err := s.call(r, http.MethodGet, "/api/v1/sources", nil, nil, &srcs); err != nil {
		s.dashError(w, r, err)
		return
	}
	var st stats
	if err := s.call(r, http.MethodGet, "/api/v1/stats", nil, nil, &st); err != nil {
		s.dashError(w, r, err)
		return
	}
	base := "http://" + r.Host
	if r.TLS != nil {
		base = "https://" + r.Host
	}
	rows := make([]sourceRow, len(srcs.Data))
	for i, src := range srcs.Data {
		rows[i] = sourceRow{sourceView: src, IngestURL: base + src.IngestPath, LastMessage: st.LastMessage[src.ID]}
		for _, rej := range st.Rejections {
			if rej.Source == src.ID {
				rows[i].Rejections = append(rows[i].Rejections, rej)
			}
		}
	}
	s.render(w, r, http.StatusOK, "sources", "Sources", map[string]any{"Sources": rows, "Providers": s.Providers})
}

// secretsFromForm reads "name=value" lines (the config file's flat secret
// names) into a map.
func secretsFromForm(text string) (map[string]string, error) {
	out := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, hub.Errorf(hub.EINVALID, "write each secret on its own line as name=value, such as signing_key=…")
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}

func (s *Server) actCreateSource(w http.ResponseWriter, r *http.Request) {
	secrets, err := secretsFromForm(r.PostFormValue("secrets"))
	if err != nil {
		s.dashError(w, r, err)
		return
	}
	in := map[string]any{"id": strings.TrimSpace(r.PostFormValue("id")), "provider": r.PostFormValue("provider"), "secrets": secrets}
	if err := s.call(r, http.MethodPost, "/api/v1/sources", in, nil, nil); err != nil {
		s.dashError(w, r, err)
		return
	}
	done(w, r, "/sources", "Source "+in["id"].(string)+" created.")
}

func (s *Server) actRotateSource(w http.ResponseWriter, r *http.Request) {
	secrets, err := secretsFromForm(r.PostFormValue("secrets"))
	if err != nil {
		s.dashError(w, r, err)
		return
	}
	id := r.PathValue("id")
	in := map[string]any{"secrets": secrets, "grace": r.PostFormValue("grace")}
	if err := s.call(r, http.MethodPost, pathOf(nil, "/api/v1/sources", id, "rotate-secret"), in, nil, nil); err != nil {
		s.dashError(w, r, err)
		return
	}
	done(w, r, "/sources", "Secrets of "+id+" rotated.")
}

func (s *Server) actDeleteSource(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.call(r, http.MethodDelete, pathOf(nil, "/api/v1/sources", id), nil, nil, nil); err != nil {
		s.dashError(w, r, err)
		return
	}
	done(w, r, "/sources", "Source "+id+" deleted.")
}

func (s *Server) pageMessages(w http.ResponseWriter, r *http.Request) {
	l, err := getList[hub.Message](s, r, "/api/v1/messages", "/messages", "source", "status", "limit")
	if err != nil {
		s.dashError(w, r, err)
		return
	}
	l.Extra = s.sourceIDs(r)
	s.render(w, r, http.StatusOK, "messages", "Messages", l)
}

// sourceIDs lists the sources' ids for the filters' menus; nil if they
// cannot be read (the page still works without the menu).
func (s *Server) sourceIDs(r *http.Request) []string {
	var srcs list[sourceView]
	if s.call(r, http.MethodGet, "/api/v1/sources", nil, nil, &srcs) != nil {
		return nil
	}
	ids := make([]string, len(srcs.Data))
	for i, src := range srcs.Data {
		ids[i] = src.ID
	}
	return ids
}

func (s *Server) pageMessage(w http.ResponseWriter, r *http.Request) {
	var m hub.Message
	if err := s.call(r, http.MethodGet, pathOf(nil, "/api/v1/messages", r.PathValue("id")), nil, nil, &m); err != nil {
		s.dashError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "message", "Message "+m.ID, m)
}

func (s *Server) pageVerifications(w http.ResponseWriter, r *http.Request) {
	l, err := getList[hub.Verification](s, r, "/api/v1/verifications", "/verifications",
		"source", "provider", "status", "applicant_ref", "provider_ref", "level", "limit")
	if err != nil {
		s.dashError(w, r, err)
		return
	}
	l.Extra = map[string]any{"Sources": s.sourceIDs(r), "Providers": s.Providers, "Statuses": hub.Statuses}
	s.render(w, r, http.StatusOK, "verifications", "Verifications", l)
}

// step is one observation of a verification's timeline, with why it was
// superseded.
type step struct {
	hub.Observation
	Why string
}

// eventDeliveries is one event of a verification with its deliveries.
type eventDeliveries struct {
	hub.Event
	Deliveries []hub.Delivery
}

// maxTimelineEvents bounds how many of a verification's events the page
// reads deliveries for.
const maxTimelineEvents = 20

func (s *Server) pageVerification(w http.ResponseWriter, r *http.Request) {
	var v hub.Verification
	id := r.PathValue("id")
	if err := s.call(r, http.MethodGet, pathOf(nil, "/api/v1/verifications", id), nil, nil, &v); err != nil {
		s.dashError(w, r, err)
		return
	}
	var evs list[hub.Event]
	q := url.Values{"verification": {id}, "limit": {"20"}}
	if err := s.call(r, http.MethodGet, pathOf(q, "/api/v1/events"), nil, nil, &evs); err != nil {
		s.dashError(w, r, err)
		return
	}
	events := make([]eventDeliveries, 0, len(evs.Data))
	for _, e := range evs.Data[:min(len(evs.Data), maxTimelineEvents)] {
		var ds list[hub.Delivery]
		if err := s.call(r, http.MethodGet, pathOf(url.Values{"event": {e.ID}}, "/api/v1/deliveries"), nil, nil, &ds); err != nil {
			s.dashError(w, r, err)
			return
		}
		events = append(events, eventDeliveries{Event: e, Deliveries: ds.Data})
	}
	s.render(w, r, http.StatusOK, "verification", "Verification "+v.ProviderRef, map[string]any{
		"V": v, "Timeline": explain(v.Timeline), "Events": events,
	})
}

// explain says, for each superseded observation, which ordering rule (SPEC
// section 5) kept it from changing the status in force when it arrived.
func explain(timeline []hub.Observation) []step {
	out := make([]step, len(timeline))
	var cur *hub.Observation
	for i, o := range timeline {
		out[i].Observation = o
		if o.Outcome == hub.OutcomeApplied {
			cur = &timeline[i]
			continue
		}
		switch {
		case cur == nil:
			out[i].Why = "superseded"
		case !o.ProviderTime.IsZero() && !cur.ProviderTime.IsZero() && o.ProviderTime.Before(cur.ProviderTime):
			out[i].Why = "older than the status in force (provider time)"
		case cur.Final && !o.Final:
			out[i].Why = "not final, after a final result"
		default:
			out[i].Why = "did not replace the status in force"
		}
	}
	return out
}

// endpointRow is an endpoint with its last day's delivery figures.
type endpointRow struct {
	hub.Endpoint
	Stats endpointStats
}

func (s *Server) endpointRows(r *http.Request) ([]endpointRow, error) {
	var eps list[hub.Endpoint]
	if err := s.call(r, http.MethodGet, "/api/v1/endpoints", nil, nil, &eps); err != nil {
		return nil, err
	}
	var st stats
	if err := s.call(r, http.MethodGet, "/api/v1/stats", nil, nil, &st); err != nil {
		return nil, err
	}
	rows := make([]endpointRow, len(eps.Data))
	for i, e := range eps.Data {
		rows[i].Endpoint = e
		if j := slices.IndexFunc(st.Endpoints, func(x endpointStats) bool { return x.Endpoint == e.ID }); j >= 0 {
			rows[i].Stats = st.Endpoints[j]
		}
	}
	return rows, nil
}

func (s *Server) pageEndpoints(w http.ResponseWriter, r *http.Request) {
	rows, err := s.endpointRows(r)
	if err != nil {
		s.dashError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "endpoints", "Endpoints", map[string]any{"Endpoints": rows, "EventTypes": hub.EventTypes})
}

func (s *Server) pageEndpoint(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rows, err := s.endpointRows(r)
	if err != nil {
		s.dashError(w, r, err)
		return
	}
	i := slices.IndexFunc(rows, func(e endpointRow) bool { return e.ID == id })
	if i < 0 {
		s.dashError(w, r, hub.Errorf(hub.ENOTFOUND, "endpoint %q not found", id))
		return
	}
	var ds list[deliveryView]
	if err := s.call(r, http.MethodGet, pathOf(url.Values{"endpoint": {id}, "limit": {"10"}}, "/api/v1/deliveries"), nil, nil, &ds); err != nil {
		s.dashError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "endpoint", "Endpoint "+id, map[string]any{
		"E": rows[i], "Deliveries": ds.Data, "EventTypes": hub.EventTypes, "Sources": s.sourceIDs(r),
		// The edit form is made to this version: a change made since is
		// refused (412), not overwritten.
		"ETag": etag(rows[i].Endpoint),
	})
}

// words splits a form field of names separated by commas or spaces.
func words(s string) []string {
	out := []string{}
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }) {
		out = append(out, w)
	}
	return out
}

// endpointForm reads the endpoint form's fields as the API's JSON.
func endpointForm(r *http.Request) (map[string]any, error) {
	in := map[string]any{
		"url":         strings.TrimSpace(r.PostFormValue("url")),
		"event_types": words(r.PostFormValue("event_types")),
		"sources":     words(r.PostFormValue("sources")),
		"ordered":     r.PostFormValue("ordered") == "on",
	}
	if v := strings.TrimSpace(r.PostFormValue("rate_limit")); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, hub.Errorf(hub.EINVALID, "rate limit: %q is not a number of requests per second", v)
		}
		in["rate_limit"] = n
	}
	return in, nil
}

func (s *Server) actCreateEndpoint(w http.ResponseWriter, r *http.Request) {
	in, err := endpointForm(r)
	if err != nil {
		s.dashError(w, r, err)
		return
	}
	if id := strings.TrimSpace(r.PostFormValue("id")); id != "" {
		in["id"] = id
	}
	var out endpointView
	if err := s.call(r, http.MethodPost, "/api/v1/endpoints", in, nil, &out); err != nil {
		s.dashError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "secret", "Endpoint created", map[string]string{
		"What": "Endpoint " + out.ID + " is created. Its signing secret:", "Secret": out.Secret,
		"Back": "/endpoints/" + url.PathEscape(out.ID),
	})
}

func (s *Server) actEditEndpoint(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	h := http.Header{}
	if etag := r.PostFormValue("etag"); etag != "" {
		h.Set("If-Match", etag)
	}
	in, err := endpointForm(r)
	if err != nil {
		s.dashError(w, r, err)
		return
	}
	if err := s.call(r, http.MethodPatch, pathOf(nil, "/api/v1/endpoints", id), in, h, nil); err != nil {
		s.dashError(w, r, err)
		return
	}
	done(w, r, "/endpoints/"+url.PathEscape(id), "Endpoint saved.")
}

// actEnableEndpoint serves both enable and disable, by the path's end.
func (s *Server) actEnableEndpoint(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	enable := strings.HasSuffix(r.URL.Path, "/enable")
	if err := s.call(r, http.MethodPatch, pathOf(nil, "/api/v1/endpoints", id), map[string]bool{"enabled": enable}, nil, nil); err != nil {
		s.dashError(w, r, err)
		return
	}
	msg := "Endpoint disabled."
	if enable {
		msg = "Endpoint enabled."
	}
	done(w, r, "/endpoints/"+url.PathEscape(id), msg)
}

func (s *Server) actDeleteEndpoint(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.call(r, http.MethodDelete, pathOf(nil, "/api/v1/endpoints", id), nil, nil, nil); err != nil {
		s.dashError(w, r, err)
		return
	}
	done(w, r, "/endpoints", "Endpoint "+id+" deleted.")
}

func (s *Server) actRotateEndpoint(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var out endpointView
	if err := s.call(r, http.MethodPost, pathOf(nil, "/api/v1/endpoints", id, "rotate-secret"), map[string]string{}, nil, &out); err != nil {
		s.dashError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "secret", "Secret rotated", map[string]string{
		"What":   "The new signing secret of " + id + " (the old one keeps signing beside it for 24 hours):",
		"Secret": out.Secret, "Back": "/endpoints/" + url.PathEscape(id),
	})
}

func (s *Server) actRevealEndpoint(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var out struct {
		Secret string `json:"secret"`
	}
	if err := s.call(r, http.MethodGet, pathOf(nil, "/api/v1/endpoints", id, "secret"), nil, nil, &out); err != nil {
		s.dashError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "secret", "Endpoint secret", map[string]string{
		"What": "The signing secret of " + id + ":", "Secret": out.Secret, "Back": "/endpoints/" + url.PathEscape(id),
	})
}

func (s *Server) actTestEndpoint(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var a hub.Attempt
	if err := s.call(r, http.MethodPost, pathOf(nil, "/api/v1/endpoints", id, "test"), nil, nil, &a); err != nil {
		s.dashError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "tested", "Test event sent", map[string]any{"ID": id, "A": a})
}

// formTime reads a datetime-local field (the browser's local time, sent
// with its offset by the page's tz field) as RFC 3339; "" stays "".
func formTime(r *http.Request, name string) (string, error) {
	v := strings.TrimSpace(r.PostFormValue(name))
	if v == "" {
		return "", nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC().Format(time.RFC3339), nil
		}
	}
	return "", hub.Errorf(hub.EINVALID, "%s: %q is not a time such as 2026-11-24T12:00 (UTC)", name, v)
}

func (s *Server) actReplay(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	since, err := formTime(r, "since")
	if err != nil {
		s.dashError(w, r, err)
		return
	}
	until, err := formTime(r, "until")
	if err != nil {
		s.dashError(w, r, err)
		return
	}
	in := map[string]string{"since": since, "status": r.PostFormValue("status")}
	if until != "" {
		in["until"] = until
	}
	if since == "" {
		delete(in, "since") // the API says what is missing
	}
	var out struct {
		Deliveries int `json:"deliveries"`
	}
	if err := s.call(r, http.MethodPost, pathOf(nil, "/api/v1/endpoints", id, "replay"), in, nil, &out); err != nil {
		s.dashError(w, r, err)
		return
	}
	done(w, r, "/deliveries?endpoint="+url.QueryEscape(id), plural(out.Deliveries, "delivery", "deliveries")+" due again.")
}

func (s *Server) pageDeliveries(w http.ResponseWriter, r *http.Request) {
	l, err := getList[deliveryView](s, r, "/api/v1/deliveries", "/deliveries", "endpoint", "event", "status", "limit")
	if err != nil {
		s.dashError(w, r, err)
		return
	}
	var eps list[hub.Endpoint]
	if err := s.call(r, http.MethodGet, "/api/v1/endpoints", nil, nil, &eps); err != nil {
		s.dashError(w, r, err)
		return
	}
	ids := make([]string, len(eps.Data))
	for i, e := range eps.Data {
		ids[i] = e.ID
	}
	l.Extra = ids
	s.render(w, r, http.StatusOK, "deliveries", "Deliveries", l)
}

func (s *Server) pageDelivery(w http.ResponseWriter, r *http.Request) {
	var d deliveryView
	if err := s.call(r, http.MethodGet, pathOf(nil, "/api/v1/deliveries", r.PathValue("id")), nil, nil, &d); err != nil {
		s.dashError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "delivery", "Delivery "+d.ID, d)
}

func (s *Server) actRetry(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.call(r, http.MethodPost, pathOf(nil, "/api/v1/deliveries", id, "retry"), nil, nil, nil); err != nil {
		s.dashError(w, r, err)
		return
	}
	done(w, r, "/deliveries/"+url.PathEscape(id), "Delivery due again.")
}

// actRefresh asks the verification's provider for its status now.
func (s *Server) actRefresh(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var out struct{ Result hub.PollResult }
	if err := s.call(r, http.MethodPost, pathOf(nil, "/api/v1/verifications", id, "refresh"), nil, nil, &out); err != nil {
		s.dashError(w, r, err)
		return
	}
	flash := "Asked the provider: nothing new."
	switch {
	case out.Result.Error != "":
		flash = "Asked the provider, which did not answer: " + out.Result.Error
	case out.Result.Changed:
		flash = "Asked the provider: the status changed."
	}
	done(w, r, "/verifications/"+url.PathEscape(id), flash)
}

// actReprocess runs today's adapter over a quarantined message.
func (s *Server) actReprocess(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var out hub.Reprocessed
	if err := s.call(r, http.MethodPost, pathOf(nil, "/api/v1/messages", id, "reprocess"), nil, nil, &out); err != nil {
		s.dashError(w, r, err)
		return
	}
	flash := fmt.Sprintf("Reprocessed: accepted, %d events.", out.Events)
	if out.Status != hub.MessageAccepted {
		flash = "Reprocessed: still quarantined (" + out.Reason + ")."
	}
	done(w, r, "/messages/"+url.PathEscape(id), flash)
}

func (s *Server) pageTokens(w http.ResponseWriter, r *http.Request) {
	var ts list[tokenView]
	if err := s.call(r, http.MethodGet, "/api/v1/tokens", nil, nil, &ts); err != nil {
		s.dashError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "tokens", "Tokens", ts.Data)
}

func (s *Server) actCreateToken(w http.ResponseWriter, r *http.Request) {
	in := map[string]string{"role": r.PostFormValue("role"), "name": strings.TrimSpace(r.PostFormValue("name")),
		"expires": strings.TrimSpace(r.PostFormValue("expires"))}
	var out tokenView
	if err := s.call(r, http.MethodPost, "/api/v1/tokens", in, nil, &out); err != nil {
		s.dashError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "secret", "Token created", map[string]string{
		"What":   "The " + string(out.Role) + " token " + out.ID + " is created. Copy it now: it is shown this once.",
		"Secret": out.Secret, "Back": "/tokens",
	})
}

func (s *Server) actRevokeToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.call(r, http.MethodDelete, pathOf(nil, "/api/v1/tokens", id), nil, nil, nil); err != nil {
		s.dashError(w, r, err)
		return
	}
	done(w, r, "/tokens", "Token "+id+" revoked.")
}
