package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/dispatch"
	"github.com/verihook/verihook/internal/httpapi"
	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// apiWalks names, for every GET route of the API, the list whose ids fill
// its {id}, or "" for a route without one. TestAPIShowsViewersNoPersonalData
// fails on a GET route missing here: when you add one, add it here and give
// the test data that the route shows, so that its answers are checked.
var apiWalks = map[string]string{
	"GET /api/v1/sources":               "",
	"GET /api/v1/sources/{id}":          "/api/v1/sources",
	"GET /api/v1/stats":                 notList,
	"GET /api/v1/messages":              "",
	"GET /api/v1/messages/{id}":         "/api/v1/messages",
	"GET /api/v1/verifications":         "",
	"GET /api/v1/verifications/{id}":    "/api/v1/verifications",
	"GET /api/v1/events":                "",
	"GET /api/v1/events/{id}":           "/api/v1/events",
	"GET /api/v1/endpoints":             "",
	"GET /api/v1/endpoints/{id}":        "/api/v1/endpoints",
	"GET /api/v1/endpoints/{id}/secret": "/api/v1/endpoints",
	"GET /api/v1/deliveries":            "",
	"GET /api/v1/deliveries/{id}":       "/api/v1/deliveries",
	"GET /api/v1/dispatches":            "",
	"GET /api/v1/dispatches/{id}":       "/api/v1/dispatches",
	"GET /api/v1/tokens":                "", // admin only: a viewer must get 403
	"GET /api/v1/audit":                 "", // admin only
}

// notList marks in apiWalks a route that answers one object, not a list.
const notList = "(not a list)"

// What the personal-data fixture's payloads hold.
const (
	otpCode   = "774411"
	otpText   = "Your code is " + otpCode
	emailCode = "552019"
	phone     = "+37069912345"
	email     = "ruta.kazlauskiene@example.lt"
	newEmail  = "mantas.jonaitis@example.com"
	link      = "https://widget.identomat.com/s/link-8f3a9c2e"
	linkText  = "Hello Ruta Kazlauskiene, finish your verification"
	hookCreds = "hookuser:hookpa55"
	hookToken = "tok-9f8e7d"
)

// piiFixture is a running verihook that holds callbacks full of personal
// data from every provider, delivered to an endpoint whose URL carries
// credentials and which echoes what it receives, and to one that cannot be
// reached; every delivery attempted at least once.
type piiFixture struct {
	m                            *Main
	base, admin, viewer, echoURL string
	// personal is every personal value given to verihook.
	personal []string
}

func startWithPersonalData(t *testing.T) piiFixture {
	t.Helper()
	// What the providers' payloads hold besides: the builders' fake people
	// (iDenfy's document holder, KYCAID's applicant) and document links.
	personal := []string{otpText, otpCode, emailCode, phone, email, newEmail, link, "link-8f3a9c2e", linkText,
		"Kazlauskiene", "JONAS", "PETRAITIS", "38912345", "39003151234", "1990-03-15", "GEDIMINO",
		"Olena", "Marchenko", "olena.marchenko@example.com", "FE417293", "1988-07-09", "AKIAIOSFODNN7EXAMPLE",
		"hookuser", "hookpa55", hookToken}

	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	t.Cleanup(echo.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close() // connections are refused: attempts fail with an error

	cfg := testConfig(t)
	cfg.AllowPrivateEndpoints = true
	// Identomat's OTPs and links are dispatched too, to servers that are not
	// there: retried, their errors recorded, and their events kept in clear
	// for the admin (a final dispatch would purge them).
	cfg.Sources[0].Dispatch = &dispatch.Config{
		SMS: &dispatch.SMSConfig{URL: "http://" + deadAddr + "/sms", From: "KYC", BodyFormat: "json", Body: `{"to": {{.To}}, "text": {{.Text}}}`},
		Email: &dispatch.EmailConfig{SMTP: dispatch.SMTPConfig{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port},
			From: "kyc@example.com"},
	}
	m := startMain(t, cfg)
	base := "http://" + m.Addr()
	admin, viewer := token(t, m, hub.RoleAdmin), token(t, m, hub.RoleViewer)

	var sent bytes.Buffer // every payload and endpoint URL given to verihook
	echoURL := "http://" + hookCreds + "@" + strings.TrimPrefix(echo.URL, "http://") + "/hook?token=" + hookToken + "&v=2"
	for id, u := range map[string]string{"echo": echoURL, "dead": "http://" + hookCreds + "@" + deadAddr + "/hook?token=" + hookToken} {
		sent.WriteString(u)
		if code := apiDo(t, http.MethodPost, base+"/api/v1/endpoints", admin, map[string]string{"id": id, "url": u}, nil); code != http.StatusCreated {
			t.Fatalf("create endpoint %s: %d", id, code)
		}
	}

	ingest := func(source string, h http.Header, body []byte, want int) {
		t.Helper()
		sent.Write(body)
		if code := postRaw(t, base+"/ingest/"+source, h, body, nil); code != want {
			t.Fatalf("ingest %s: %d, want %d", body, code, want)
		}
	}
	for _, c := range []struct {
		provider, event string
		f               provider.Fields
	}{
		{"identomat", "one-time-password", provider.Fields{Ref: "sess-pii", Text: otpText, Recipient: phone}},
		{"identomat", "email-one-time-password-request", provider.Fields{Ref: "sess-pii", Text: "Your code is " + emailCode, Recipient: email}},
		{"identomat", "share-session-link-via-sms", provider.Fields{Ref: "sess-pii", Text: linkText, Recipient: phone, Link: link}},
		{"identomat", "share-session-link-via-email", provider.Fields{Ref: "sess-pii", Text: linkText, Recipient: email, Link: link}},
		{"identomat", "session-change", provider.Fields{Ref: "sess-pii"}},
		{"idenfy", "IDENTIFICATION_MANUAL_FINISHED", provider.Fields{Ref: "scan-pii", ApplicantRef: "user-pii"}},
		{"kycaid", "VERIFICATION_COMPLETED", provider.Fields{Ref: "ver-pii", ApplicantRef: "user-pii", Status: "true"}},
		{"fractal", "email_changed", provider.Fields{Ref: "fractal-pii", Recipient: newEmail}},
		{"fractal", "verification_approved", provider.Fields{Ref: "fractal-pii"}},
	} {
		body, h := signed(t, c.provider, c.event, c.f)
		ingest(c.provider+"-main", h, body, http.StatusOK)
	}
	// A quarantined message (a type Identomat may add tomorrow) and a
	// rejected one (a bad signature), both full of personal data.
	body, h := signed(t, "identomat", "one-time-password", provider.Fields{Ref: "sess-pii-q", Text: otpText, Recipient: phone})
	ingest("identomat-main", h, bytes.Replace(body, []byte(`"one-time-password"`), []byte(`"one-time-password-v2"`), 1), http.StatusOK)
	body, h = signed(t, "kycaid", "VERIFICATION_COMPLETED", provider.Fields{Ref: "ver-pii-bad", Status: "true"})
	ingest("kycaid-main", h, bytes.Replace(body, []byte("ver-pii-bad"), []byte("ver-pii-b4d"), 1), http.StatusUnauthorized)
	for _, p := range personal {
		if !strings.Contains(sent.String(), p) {
			t.Fatalf("nothing given to verihook holds %q: the test would prove nothing about it", p)
		}
	}

	// Every event reaches both endpoints and is attempted at least once.
	waitFor(t, "an attempt of every delivery", 10*time.Second, func() bool {
		var events, deliveries struct{ Data []json.RawMessage }
		getJSON(t, base+"/api/v1/events?limit=500", admin, &events)
		getJSON(t, base+"/api/v1/deliveries?limit=500", admin, &deliveries)
		if len(events.Data) == 0 || len(deliveries.Data) != 2*len(events.Data) {
			return false
		}
		for _, raw := range deliveries.Data {
			var d hub.Delivery
			if json.Unmarshal(raw, &d) != nil || d.Attempts == 0 {
				return false
			}
		}
		return true
	})
	return piiFixture{m: m, base: base, admin: admin, viewer: viewer, echoURL: echoURL, personal: personal}
}

// TestAPIShowsViewersNoPersonalData is the API's counterpart of
// TestLogsHoldNoPersonalData. Callbacks full of personal data from every
// provider are ingested and delivered to an endpoint whose URL carries
// credentials and which echoes what it receives, and to one that cannot be
// reached. Then every GET route of the API is walked, each list page by page
// and every item it names: a viewer must meet no personal value, and an admin
// must still see the event data, the endpoint URLs and the answers in clear.
func TestAPIShowsViewersNoPersonalData(t *testing.T) {
	f := startWithPersonalData(t)
	base, admin, viewer, echoURL, personal := f.base, f.admin, f.viewer, f.echoURL, f.personal

	// The routes walked are the server's own: a GET route without a walk
	// fails here until someone decides what it may show.
	var gets []httpapi.Route
	for _, rt := range httpapi.Routes() {
		if !strings.HasPrefix(rt.Pattern, "GET ") {
			continue
		}
		if _, ok := apiWalks[rt.Pattern]; !ok {
			t.Errorf("GET route %q has no walk: add it to apiWalks, with data it shows", rt.Pattern)
		}
		gets = append(gets, rt)
	}
	for pattern := range apiWalks {
		if !containsRoute(gets, pattern) {
			t.Errorf("apiWalks names %q, which the server does not serve", pattern)
		}
	}

	ids := map[string][]string{} // list path -> the ids it names, read by the admin
	adminSaw := walkAPI(t, base, admin, hub.RoleAdmin, gets, ids)
	viewerSaw := walkAPI(t, base, viewer, hub.RoleViewer, gets, ids)

	leaks := leakPatterns(personal)
	for pattern, answer := range viewerSaw {
		for i, re := range leaks {
			if re.MatchString(answer) {
				t.Errorf("a viewer reads %q on %s", personal[i], pattern)
			}
		}
	}
	// Redaction must not hide what each role needs: an admin sees event
	// data, endpoint URLs and answers in clear; a viewer the structure.
	redactedEcho := hub.RedactURL(echoURL)
	for _, c := range []struct {
		saw     map[string]string
		pattern string
		want    []string
	}{
		{adminSaw, "GET /api/v1/events", []string{otpText, phone, email, link, linkText, newEmail}},
		{adminSaw, "GET /api/v1/events/{id}", []string{otpText, phone, email, link, linkText, newEmail}},
		{adminSaw, "GET /api/v1/endpoints", []string{echoURL}},
		{adminSaw, "GET /api/v1/endpoints/{id}", []string{echoURL}},
		{adminSaw, "GET /api/v1/endpoints/{id}/secret", []string{hub.SecretPrefix}},
		{adminSaw, "GET /api/v1/tokens", []string{`"role":"viewer"`}},
		{adminSaw, "GET /api/v1/audit", []string{`"route":"/api/v1/endpoints","target":"echo","status":201`}},
		{adminSaw, "GET /api/v1/stats", []string{`"last_day":{"start":`}},
		{viewerSaw, "GET /api/v1/sources/{id}", []string{`"managed":"config"`, `"secret_names":[`}},
		{adminSaw, "GET /api/v1/deliveries/{id}", []string{otpText, `"status_code":200`, "connection refused"}},
		{viewerSaw, "GET /api/v1/events", []string{`"channel":"sms"`, `"session_ref":"sess-pii"`, `"status":"approved"`, `"recipient":"[redacted]"`}},
		{viewerSaw, "GET /api/v1/events/{id}", []string{`"channel":"email"`, `"link":"[redacted]"`, `"email":"[redacted]"`}},
		{viewerSaw, "GET /api/v1/endpoints", []string{redactedEcho}},
		{viewerSaw, "GET /api/v1/endpoints/{id}", []string{redactedEcho}},
		{viewerSaw, "GET /api/v1/deliveries/{id}", []string{`"status_code":200`, `"response":"{`, "connection refused"}},
		{viewerSaw, "GET /api/v1/deliveries", []string{`"last_latency_ms":`, `"preview":{"created_at":`, `"recipient":"[redacted]"`}},
		{viewerSaw, "GET /api/v1/messages", []string{`"scanRef":"scan-pii"`, `"docFirstName":"[redacted]"`}},
		{viewerSaw, "GET /api/v1/verifications/{id}", []string{`"provider_ref":"ver-pii"`, `"timeline":[{`}},
	} {
		for _, w := range c.want {
			if !strings.Contains(c.saw[c.pattern], w) {
				t.Errorf("%s does not show %s", c.pattern, w)
			}
		}
	}
}

// walkAPI GETs every route in gets with tok, a token of role: each list page
// by page, each item route once per id of its list (ids, which the admin's
// walk fills and the viewer's reuses, so that both read the same items). It
// returns what it read by route pattern, JSON escapes of &, < and > undone.
// A route the role may not use must answer 403.
func walkAPI(t *testing.T, base, tok string, role hub.Role, gets []httpapi.Route, ids map[string][]string) map[string]string {
	t.Helper()
	saw := map[string]string{}
	get := func(rt httpapi.Route, path string) []byte {
		t.Helper()
		var raw json.RawMessage
		code := getJSON(t, base+path, tok, &raw)
		want := http.StatusOK
		if !role.Can(rt.Role) {
			want = http.StatusForbidden
		}
		if code != want {
			t.Errorf("%s GET %s = %d, want %d: %s", role, path, code, want, raw)
		}
		saw[rt.Pattern] += strings.NewReplacer(`\u0026`, "&", `\u003c`, "<", `\u003e`, ">").Replace(string(raw)) + "\n"
		if code != http.StatusOK {
			return nil
		}
		return raw
	}
	pathOf := func(rt httpapi.Route) string { return strings.TrimPrefix(rt.Pattern, "GET ") }
	for _, rt := range gets {
		if strings.Contains(rt.Pattern, "{") {
			continue
		}
		if apiWalks[rt.Pattern] == notList {
			get(rt, pathOf(rt))
			continue
		}
		var listed []string
		for cursor, pages := "", 0; ; pages++ {
			raw := get(rt, pathOf(rt)+"?limit=10&cursor="+url.QueryEscape(cursor))
			var page struct {
				Data []struct {
					ID string `json:"id"`
				} `json:"data"`
				NextCursor string `json:"next_cursor"`
			}
			if raw != nil {
				if err := json.Unmarshal(raw, &page); err != nil {
					t.Fatalf("GET %s: %v", pathOf(rt), err)
				}
			}
			for _, item := range page.Data {
				listed = append(listed, item.ID)
			}
			if page.NextCursor == "" || pages > 100 {
				break
			}
			cursor = page.NextCursor
		}
		if role == hub.RoleAdmin {
			if len(listed) == 0 {
				t.Errorf("%s is empty: the walk checks nothing there", rt.Pattern)
			}
			ids[pathOf(rt)] = listed
		}
	}
	for _, rt := range gets {
		if !strings.Contains(rt.Pattern, "{") {
			continue
		}
		from := apiWalks[rt.Pattern]
		if len(ids[from]) == 0 {
			t.Errorf("%s: no ids from %q to walk it with", rt.Pattern, from)
		}
		for _, id := range ids[from] {
			get(rt, strings.Replace(pathOf(rt), "{id}", url.PathEscape(id), 1))
		}
	}
	return saw
}

// leakPatterns matches each personal value; one of digits alone only where
// no digit touches it, so that a code is not found inside a timestamp.
func leakPatterns(values []string) []*regexp.Regexp {
	res := make([]*regexp.Regexp, len(values))
	for i, v := range values {
		p := regexp.QuoteMeta(v)
		if strings.Trim(v, "0123456789") == "" {
			p = `(?:^|\D)` + p + `(?:\D|$)`
		}
		res[i] = regexp.MustCompile(p)
	}
	return res
}

func containsRoute(routes []httpapi.Route, pattern string) bool {
	for _, rt := range routes {
		if rt.Pattern == pattern {
			return true
		}
	}
	return false
}
