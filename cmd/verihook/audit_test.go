package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// TestAuditLog: every admin request that changes something is recorded,
// done or refused, with the token's id and name, the route, the id acted on
// and the status, newest first, page by page; reads are not recorded; the
// log holds no secret; only an admin reads it.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.AllowPrivateEndpoints = true
	m := startMain(t, cfg)
	base := "http://" + m.Addr()
	admin := token(t, m, hub.RoleAdmin)
	viewer := token(t, m, hub.RoleViewer)
	adminTok, err := m.Store.TokenByHash(t.Context(), hub.HashToken(admin))
	if err != nil {
		t.Fatal(err)
	}
	// A message no adapter understands, to reprocess.
	qbody, qh := signed(t, "identomat", "session-change", provider.Fields{Ref: "sess-audit"})
	qbody = bytes.Replace(qbody, []byte(`"session-change"`), []byte(`"brand-new-event"`), 1)
	var quarantined ingestAnswer
	if code := postRaw(t, base+"/ingest/identomat-main", qh, qbody, &quarantined); code != 200 || quarantined.Status != "quarantined" {
		t.Fatalf("ingest: %d %+v, want quarantined", code, quarantined)
	}
	secret := hub.NewEndpointSecret()
	var created struct {
		hub.Token
		Secret string `json:"token"`
	}
	steps := []struct {
		method, path string
		in           any
		out          any
		want         int
	}{
		{http.MethodPost, "/api/v1/endpoints", map[string]any{"id": "crm", "url": "http://127.0.0.1:9/hook?token=hooktok", "secret": secret}, nil, 201},
		{http.MethodGet, "/api/v1/endpoints/crm", nil, nil, 200},
		{http.MethodPatch, "/api/v1/endpoints/crm", map[string]any{"enabled": false}, nil, 200},
		{http.MethodPatch, "/api/v1/endpoints/nowhere", map[string]any{"enabled": false}, nil, 404},
		{http.MethodPost, "/api/v1/endpoints/crm/test", nil, nil, 200},
		{http.MethodPost, "/api/v1/tokens", map[string]any{"role": "viewer", "name": "grafana"}, &created, 201},
		{http.MethodDelete, "/api/v1/endpoints/crm", nil, nil, 204},
		{http.MethodPost, "/api/v1/messages/" + quarantined.MessageID + "/reprocess", nil, nil, 200}, // still not understood
	}
	for _, s := range steps {
		if code := apiDo(t, s.method, base+s.path, admin, s.in, s.out); code != s.want {
			t.Fatalf("%s %s = %d, want %d", s.method, s.path, code, s.want)
		}
	}
	if code := apiDo(t, http.MethodDelete, base+"/api/v1/tokens/"+created.ID, viewer, nil, nil); code != 403 {
		t.Fatalf("a viewer's DELETE = %d, want 403", code)
	}

	type entry = hub.AuditEntry
	var log []entry
	var raw strings.Builder
	for cursor := "start"; cursor != ""; {
		if cursor == "start" {
			cursor = ""
		}
		var page struct {
			Data       []entry `json:"data"`
			NextCursor string  `json:"next_cursor"`
		}
		var body json.RawMessage
		if code := getJSON(t, base+"/api/v1/audit?limit=2&cursor="+cursor, admin, &body); code != 200 {
			t.Fatalf("GET /api/v1/audit = %d", code)
		}
		raw.Write(body)
		json.Unmarshal(body, &page)
		log = append(log, page.Data...)
		cursor = page.NextCursor
	}
	want := []struct {
		method, route, target string
		status                int
	}{ // newest first
		{"POST", "/api/v1/messages/{id}/reprocess", quarantined.MessageID, 200},
		{"DELETE", "/api/v1/endpoints/{id}", "crm", 204},
		{"POST", "/api/v1/tokens", created.ID, 201},
		{"POST", "/api/v1/endpoints/{id}/test", "crm", 200},
		{"PATCH", "/api/v1/endpoints/{id}", "nowhere", 404},
		{"PATCH", "/api/v1/endpoints/{id}", "crm", 200},
		{"POST", "/api/v1/endpoints", "crm", 201},
	}
	if len(log) != len(want) {
		t.Fatalf("audit log holds %d entries, want %d: %+v", len(log), len(want), log)
	}
	for i, w := range want {
		e := log[i]
		if e.Method != w.method || e.Route != w.route || e.Target != w.target || e.Status != w.status ||
			e.TokenID != adminTok.ID || e.TokenName != adminTok.Name || e.At.IsZero() || e.ID == "" {
			t.Errorf("entry %d = %+v, want %s %s %s %d by %s", i, e, w.method, w.route, w.target, w.status, adminTok.ID)
		}
	}
	for _, s := range []string{secret, created.Secret, admin, "hooktok"} {
		if strings.Contains(raw.String(), s) {
			t.Errorf("the audit log shows %q", s)
		}
	}
	if code := getJSON(t, base+"/api/v1/audit", viewer, nil); code != 403 {
		t.Errorf("a viewer's GET /api/v1/audit = %d, want 403", code)
	}
}

// TestAuditLogOfDashboardActions: an admin action taken through the
// dashboard (a form, which calls the API in-process) is recorded like one
// taken with the API.
func TestAuditLogOfDashboardActions(t *testing.T) {
	t.Parallel()
	m := startMain(t, testConfig(t))
	base := "http://" + m.Addr()
	admin := token(t, m, hub.RoleAdmin)
	c, cookie := formLogin(t, base, admin)
	form := url.Values{"role": {"viewer"}, "name": {"from-the-dashboard"}, "csrf": {hub.CSRFToken(cookie.Value)}}
	req, _ := http.NewRequest(http.MethodPost, base+"/tokens", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /tokens from the dashboard = %d", resp.StatusCode)
	}
	var log struct{ Data []hub.AuditEntry }
	getJSON(t, base+"/api/v1/audit", admin, &log)
	if len(log.Data) != 1 || log.Data[0].Method != "POST" || log.Data[0].Route != "/api/v1/tokens" || log.Data[0].Status != 201 ||
		!strings.HasPrefix(log.Data[0].Target, "tok_") || log.Data[0].TokenID == "" {
		t.Errorf("audit log after a dashboard action = %+v, want the token's creation", log.Data)
	}
}

// formLogin logs in to the dashboard with tok as a browser's form does and
// returns a client that keeps the session (and does not follow redirects)
// and the session cookie.
func formLogin(t *testing.T, base, tok string) (*http.Client, *http.Cookie) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(base+"/login", url.Values{"token": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || len(jar.Cookies(mustURL(t, base))) != 1 {
		t.Fatalf("login = %d with cookies %v", resp.StatusCode, jar.Cookies(mustURL(t, base)))
	}
	return c, resp.Cookies()[0]
}
