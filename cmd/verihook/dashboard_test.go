package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/ingest"
	"github.com/verihook/verihook/internal/provider"
)

var screenshots = flag.String("screenshots", "", "TestScreenshots writes the dashboard's screenshots (PNG) to this directory")

// browser starts a headless Chromium for the test. Without one the test
// skips, saying how to get one, except under CI, where it fails: CI must
// never skip the browser tests silently (.ci/run installs Chromium).
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no Chromium found, and CI is set: install it (apt-get install -y chromium)")
		}
		t.Skip("no Chromium found: install it (apt-get install -y chromium) to run the dashboard's browser tests")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1440, 900))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancelTimeout)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return ctx
}

// page is a browser tab on one verihook.
type page struct {
	t    *testing.T
	ctx  context.Context
	base string
}

// open loads path and returns the HTTP status and the page's HTML.
func (p page) open(path string) (int, string) {
	p.t.Helper()
	resp, err := chromedp.RunResponse(p.ctx, chromedp.Navigate(p.base+path))
	if err != nil {
		p.t.Fatalf("open %s: %v", path, err)
	}
	return int(resp.Status), p.html()
}

// html returns the current page's HTML.
func (p page) html() string {
	p.t.Helper()
	html, err := chromedp.Run(p.ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		p.t.Fatalf("read the page: %v", err)
	}
	return html
}

// want opens path, requires a 200 and returns its HTML.
func (p page) want(path string) string {
	p.t.Helper()
	code, html := p.open(path)
	if code != http.StatusOK {
		p.t.Fatalf("GET %s = %d: %s", path, code, text(html))
	}
	return html
}

// submit fills the fields of the form that matches form (a CSS selector),
// submits it, and returns the status and HTML of the page it leads to.
// Confirmation prompts are answered yes.
func (p page) submit(form string, fields map[string]string) (int, string) {
	p.t.Helper()
	steps := []chromedp.Action[chromedp.Void]{
		chromedp.Evaluate[chromedp.Void](`document.querySelectorAll('[data-confirm]').forEach(f => f.removeAttribute('data-confirm'))`),
	}
	for name, v := range fields {
		sel := chromedp.CSS(form + ` [name="` + name + `"]`)
		if v == "on" {
			steps = append(steps, chromedp.Evaluate[chromedp.Void](`document.querySelector(`+jsString(form+` [name="`+name+`"]`)+`).checked = true`))
			continue
		}
		steps = append(steps, chromedp.SetValue(sel, v))
	}
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatalf("fill %s: %v", form, err)
	}
	resp, err := chromedp.RunResponse(p.ctx, chromedp.Submit(chromedp.CSS(form)))
	if err != nil {
		p.t.Fatalf("submit %s: %v", form, err)
	}
	return int(resp.Status), p.html()
}

// act submits form and requires it to end on a 200 page, whose HTML it
// returns.
func (p page) act(form string, fields map[string]string) string {
	p.t.Helper()
	code, html := p.submit(form, fields)
	if code != http.StatusOK {
		p.t.Fatalf("submit %s = %d: %s", form, code, text(html))
	}
	return html
}

func jsString(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}

var tags = regexp.MustCompile(`<[^>]*>`)

// text is HTML without its tags, spaces squeezed: for messages.
func text(html string) string {
	return strings.Join(strings.Fields(tags.ReplaceAllString(html, " ")), " ")
}

// login logs in with tok and returns the tab.
func login(t *testing.T, ctx context.Context, base, tok string) page {
	t.Helper()
	p := page{t: t, ctx: ctx, base: base}
	p.want("/login")
	if html := p.act(`form[action="/login"]`, map[string]string{"token": tok}); !strings.Contains(html, "Needs attention") {
		t.Fatalf("after login: %s", text(html))
	}
	return p
}

// listIDs returns the ids of an API list, first page.
func listIDs(t *testing.T, base, tok, path string) []string {
	t.Helper()
	var l struct{ Data []struct{ ID string } }
	if code := getJSON(t, base+path, tok, &l); code != http.StatusOK {
		t.Fatalf("GET %s = %d", path, code)
	}
	ids := make([]string, len(l.Data))
	for i, d := range l.Data {
		ids[i] = d.ID
	}
	return ids
}

// dashboardPages lists every page with data in it: the lists, and each
// item of them.
func dashboardPages(t *testing.T, base, admin string) []string {
	t.Helper()
	pages := []string{"/", "/sources", "/messages", "/messages?status=quarantined", "/messages?status=rejected",
		"/verifications", "/verifications?provider=idenfy", "/endpoints", "/deliveries", "/deliveries?status=pending"}
	for _, c := range []struct{ api, page string }{
		{"/api/v1/messages", "/messages/"}, {"/api/v1/verifications", "/verifications/"},
		{"/api/v1/endpoints", "/endpoints/"}, {"/api/v1/deliveries", "/deliveries/"},
	} {
		ids := listIDs(t, base, admin, c.api)
		if len(ids) == 0 {
			t.Fatalf("%s is empty: the walk would check nothing", c.api)
		}
		for _, id := range ids {
			pages = append(pages, c.page+url.PathEscape(id))
		}
	}
	return pages
}

// TestDashboardViewer: a viewer walks every page with data in it, sees no
// personal data and no admin control anywhere, and a forged admin request
// of theirs gets 403.
func TestDashboardViewer(t *testing.T) {
	ctx := browser(t)
	f := startWithPersonalData(t)
	p := login(t, ctx, f.base, f.viewer)
	leaks := leakPatterns(f.personal)
	for _, path := range dashboardPages(t, f.base, f.admin) {
		html := p.want(path)
		for i, re := range leaks {
			if re.MatchString(html) {
				t.Errorf("a viewer reads %q on %s", f.personal[i], path)
			}
		}
		// The only form a viewer may post is logging out.
		if n := strings.Count(html, `method="post"`); n != 1 || !strings.Contains(html, `action="/logout"`) {
			t.Errorf("%s shows a viewer %d forms: %s", path, n, text(html))
		}
		if strings.Contains(html, `href="/tokens"`) {
			t.Errorf("%s links a viewer to the tokens", path)
		}
	}
	for _, want := range []struct{ path, text string }{
		{"/verifications", "ver-pii"},
		{"/messages", "[redacted]"},
		{"/endpoints", "token=[redacted]"},
		{"/", "quarantined"},
		// Recently sent: each delivery's latency and its redacted payload.
		{"/deliveries", ` ms</td>`},
		{"/deliveries", `<code class="preview" title="{`},
		{"/deliveries", `[redacted]`},
		{"/", `aria-label="queue"`},
		{"/", `aria-label="oldest"`},
	} {
		if html := p.want(want.path); !strings.Contains(html, want.text) {
			t.Errorf("%s does not show a viewer %q", want.path, want.text)
		}
	}
	if code, _ := p.open("/tokens"); code != http.StatusForbidden {
		t.Errorf("a viewer's GET /tokens = %d, want 403", code)
	}

	// A forged admin form, sent from the dashboard's own page with the
	// viewer's valid CSRF token, still meets the API's role check.
	csrf, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(`form[action="/logout"] [name=csrf]`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, forged := range []string{"/tokens", "/endpoints/echo/delete", "/sources"} {
		js := `fetch(` + jsString(forged) + `, {method: "POST", body: new URLSearchParams({csrf: ` + jsString(csrf) +
			`, role: "admin", name: "x", id: "x", provider: "kycaid", secrets: "api_token=x"})}).then(r => r.status)`
		status, err := chromedp.Run(ctx, chromedp.Evaluate[int](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusForbidden {
			t.Errorf("a viewer's forged POST %s = %d, want 403", forged, status)
		}
	}
	if code := getJSON(t, f.base+"/api/v1/endpoints/echo", f.admin, nil); code != http.StatusOK {
		t.Errorf("after a viewer's forged delete, GET the endpoint = %d, want 200", code)
	}
}

// TestDashboardCSRF: a form without the session's CSRF token, or from
// another origin, is refused and changes nothing.
func TestDashboardCSRF(t *testing.T) {
	m := startMain(t, testConfig(t))
	base := "http://" + m.Addr()
	admin := token(t, m, hub.RoleAdmin)
	c, cookie := formLogin(t, base, admin)
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Errorf("session cookie %+v: want HttpOnly and SameSite=Strict", cookie)
	}
	form := url.Values{"role": {"admin"}, "name": {"csrf-victim"}}
	post := func(h http.Header, v url.Values) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+"/tokens", strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, vs := range h {
			req.Header[k] = vs
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(nil, form); code != http.StatusForbidden {
		t.Errorf("POST /tokens without a CSRF token = %d, want 403", code)
	}
	withToken := url.Values{"csrf": {hub.CSRFToken(cookie.Value)}}
	for k, v := range form {
		withToken[k] = v
	}
	if code := post(http.Header{"Sec-Fetch-Site": {"cross-site"}}, withToken); code != http.StatusForbidden {
		t.Errorf("cross-site POST /tokens = %d, want 403", code)
	}
	if code := post(http.Header{"Origin": {"https://evil.example"}}, withToken); code != http.StatusForbidden {
		t.Errorf("POST /tokens from another origin = %d, want 403", code)
	}
	var toks struct{ Data []hub.Token }
	getJSON(t, base+"/api/v1/tokens", admin, &toks)
	for _, tok := range toks.Data {
		if tok.Name == "csrf-victim" {
			t.Errorf("a refused form created token %s", tok.ID)
		}
	}
	// With the token, from the dashboard itself, the same form works.
	if code := post(http.Header{"Sec-Fetch-Site": {"same-origin"}}, withToken); code != http.StatusOK {
		t.Errorf("POST /tokens with the CSRF token = %d, want 200", code)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestDashboardAdmin: an admin walks every page and performs every admin
// action through the browser; each action's effect is checked through the
// API. Sessions end on logout and when their token is revoked.
func TestDashboardAdmin(t *testing.T) {
	ctx := browser(t)
	f := startWithPersonalData(t)
	base, admin := f.base, f.admin
	p := login(t, ctx, base, admin)
	for _, path := range dashboardPages(t, base, admin) {
		p.want(path)
	}
	if html := p.want("/endpoints/echo"); !strings.Contains(html, "hookpa55") {
		t.Errorf("an admin does not see the endpoint URL in clear")
	}
	api := func(method, path string, out any) int {
		t.Helper()
		return apiDo(t, method, base+path, admin, nil, out)
	}

	// Sources: create, rotate with grace, delete.
	p.want("/sources")
	p.act(`form[action="/sources"]`, map[string]string{"id": "kycaid-ui", "provider": "kycaid", "secrets": "api_token=ui-secret-one-7f3a"})
	var src struct {
		Managed     string    `json:"managed"`
		GraceEnd    time.Time `json:"previous_secrets_expire_at"`
		SecretNames []string  `json:"secret_names"`
	}
	if code := api(http.MethodGet, "/api/v1/sources/kycaid-ui", &src); code != http.StatusOK || src.Managed != hub.ManagedAPI {
		t.Fatalf("created source: %d %+v", code, src)
	}
	p.act(`form[action="/sources/kycaid-ui/rotate"]`, map[string]string{"secrets": "api_token=ui-secret-two-9c1b", "grace": "1h"})
	api(http.MethodGet, "/api/v1/sources/kycaid-ui", &src)
	if d := time.Until(src.GraceEnd); d < 50*time.Minute || d > time.Hour {
		t.Errorf("after a rotation with 1 h of grace, the old secret ends in %s", d)
	}
	if html := p.want("/sources"); strings.Contains(html, "ui-secret-one-7f3a") || strings.Contains(html, "ui-secret-two-9c1b") {
		t.Errorf("the sources page shows a secret")
	}
	p.act(`form[action="/sources/kycaid-ui/delete"]`, nil)
	if code := api(http.MethodGet, "/api/v1/sources/kycaid-ui", nil); code != http.StatusNotFound {
		t.Errorf("deleted source: GET = %d, want 404", code)
	}
	if html := p.want("/sources"); strings.Contains(html, `action="/sources/kycaid-main/delete"`) {
		t.Errorf("a source of the config file can be deleted from the dashboard")
	}

	// Endpoints: create (secret shown), edit, disable, enable, test,
	// reveal, rotate, replay, delete.
	p.want("/endpoints")
	html := p.act(`form[action="/endpoints"]`, map[string]string{"id": "ui-hook", "url": f.echoURL, "event_types": "verification.*", "ordered": "on"})
	var ep struct {
		hub.Endpoint
		Secret string `json:"secret"`
	}
	api(http.MethodGet, "/api/v1/endpoints/ui-hook/secret", &ep)
	if ep.Secret == "" || !strings.Contains(html, ep.Secret) {
		t.Errorf("the new endpoint's page does not show its secret")
	}
	if api(http.MethodGet, "/api/v1/endpoints/ui-hook", &ep); !ep.Ordered || len(ep.EventTypes) != 1 {
		t.Errorf("created endpoint = %+v", ep.Endpoint)
	}
	p.want("/endpoints/ui-hook")
	p.act(`form[action="/endpoints/ui-hook/edit"]`, map[string]string{"event_types": "otp.requested, verification.updated", "rate_limit": "5"})
	if api(http.MethodGet, "/api/v1/endpoints/ui-hook", &ep); len(ep.EventTypes) != 2 || ep.RateLimit != 5 {
		t.Errorf("edited endpoint = %+v", ep.Endpoint)
	}
	// A form made before a change made meanwhile is refused, not applied
	// over it (If-Match).
	p.want("/endpoints/ui-hook")
	if code := apiDo(t, http.MethodPatch, base+"/api/v1/endpoints/ui-hook", admin, map[string]any{"rate_limit": 7}, nil); code != http.StatusOK {
		t.Fatalf("PATCH = %d", code)
	}
	if code, html := p.submit(`form[action="/endpoints/ui-hook/edit"]`, map[string]string{"rate_limit": "9"}); code != http.StatusPreconditionFailed {
		t.Errorf("a stale edit form = %d, want 412: %s", code, text(html))
	}
	if api(http.MethodGet, "/api/v1/endpoints/ui-hook", &ep); ep.RateLimit != 7 {
		t.Errorf("after a stale edit, rate limit = %g, want 7", ep.RateLimit)
	}
	p.want("/endpoints/ui-hook")
	p.act(`form[action="/endpoints/ui-hook/disable"]`, nil)
	if api(http.MethodGet, "/api/v1/endpoints/ui-hook", &ep); ep.Enabled {
		t.Errorf("disabled endpoint is enabled")
	}
	p.act(`form[action="/endpoints/ui-hook/enable"]`, nil)
	if api(http.MethodGet, "/api/v1/endpoints/ui-hook", &ep); !ep.Enabled {
		t.Errorf("enabled endpoint is disabled")
	}
	if html := p.act(`form[action="/endpoints/ui-hook/test"]`, nil); !strings.Contains(text(html), "Answer 200") {
		t.Errorf("test event: %s", text(html))
	}
	p.want("/endpoints/ui-hook")
	var secret struct{ Secret string }
	api(http.MethodGet, "/api/v1/endpoints/ui-hook/secret", &secret)
	if html := p.act(`form[action="/endpoints/ui-hook/reveal"]`, nil); !strings.Contains(html, secret.Secret) {
		t.Errorf("reveal does not show the secret")
	}
	p.want("/endpoints/ui-hook")
	html = p.act(`form[action="/endpoints/ui-hook/rotate"]`, nil)
	var rotated struct{ Secret string }
	api(http.MethodGet, "/api/v1/endpoints/ui-hook/secret", &rotated)
	if rotated.Secret == secret.Secret || !strings.Contains(html, rotated.Secret) {
		t.Errorf("rotate: the secret did not change, or the page does not show the new one")
	}
	p.want("/endpoints/ui-hook")
	html = p.act(`form[action="/endpoints/ui-hook/replay"]`, map[string]string{"since": time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04")})
	if !strings.Contains(html, "due again") {
		t.Errorf("replay: %s", text(html))
	}
	waitFor(t, "the replayed deliveries of ui-hook", 10*time.Second, func() bool {
		return len(listIDs(t, base, admin, "/api/v1/deliveries?endpoint=ui-hook")) > 0
	})

	// Deliveries: retry one.
	dead := listIDs(t, base, admin, "/api/v1/deliveries?endpoint=dead")[0]
	var before, after hub.Delivery
	api(http.MethodGet, "/api/v1/deliveries/"+dead, &before)
	p.want("/deliveries/" + dead)
	p.act(`form[action="/deliveries/`+dead+`/retry"]`, nil)
	api(http.MethodGet, "/api/v1/deliveries/"+dead, &after)
	if !after.UpdatedAt.After(before.UpdatedAt) {
		t.Errorf("retry did not touch the delivery: updated %s, then %s", before.UpdatedAt, after.UpdatedAt)
	}

	// Recovery: reprocess the quarantined message (today's adapter still
	// does not know its type), and ask a verification's provider, whose
	// source has no status API configured: each is the API's call, audited.
	quarantined := listIDs(t, base, admin, "/api/v1/messages?status=quarantined")[0]
	p.want("/messages/" + quarantined)
	if html := p.act(`form[action="/messages/`+quarantined+`/reprocess"]`, nil); !strings.Contains(text(html), "still quarantined") {
		t.Errorf("reprocess: %s", text(html))
	}
	ver := listIDs(t, base, admin, "/api/v1/verifications")[0]
	p.want("/verifications/" + ver)
	if code, html := p.submit(`form[action="/verifications/`+ver+`/refresh"]`, nil); code != http.StatusBadRequest || !strings.Contains(html, "cannot be polled") {
		t.Errorf("refresh of a verification whose source has no status API = %d: %s", code, text(html))
	}
	var audit struct{ Data []hub.AuditEntry }
	api(http.MethodGet, "/api/v1/audit?limit=500", &audit)
	seen := map[string]string{}
	for _, e := range audit.Data {
		seen[e.Route] = e.Target
	}
	if seen["/api/v1/messages/{id}/reprocess"] != quarantined || seen["/api/v1/verifications/{id}/refresh"] != ver {
		t.Errorf("the audit log does not show the dashboard's reprocess of %s and refresh of %s: %v", quarantined, ver, seen)
	}

	p.want("/endpoints/ui-hook")
	p.act(`form[action="/endpoints/ui-hook/delete"]`, nil)
	if code := api(http.MethodGet, "/api/v1/endpoints/ui-hook", nil); code != http.StatusNotFound {
		t.Errorf("deleted endpoint: GET = %d, want 404", code)
	}

	// Tokens: create (shown once), revoke. A session of a revoked token
	// ends at once.
	p.want("/tokens")
	html = p.act(`form[action="/tokens"]`, map[string]string{"name": "ui-viewer", "role": "viewer", "expires": "1d"})
	newTok := regexp.MustCompile(`vh_[A-Za-z0-9_-]{43}`).FindString(html)
	if newTok == "" {
		t.Fatalf("the new token is not shown: %s", text(html))
	}
	if code := getJSON(t, base+"/api/v1/sources", newTok, nil); code != http.StatusOK {
		t.Errorf("the new token: GET /api/v1/sources = %d", code)
	}
	// A session of the new token, in a browser of its own (a Go client:
	// the tab's cookies are the admin's).
	jar, _ := cookiejar.New(nil)
	other := &http.Client{Jar: jar}
	if resp, err := other.PostForm(base+"/login", url.Values{"token": {newTok}}); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("log in with the new token: %v", err)
	} else {
		resp.Body.Close()
	}
	id := listIDs(t, base, admin, "/api/v1/tokens")[0] // newest first: the one just created
	p.want("/tokens")
	p.act(`form[action="/tokens/`+id+`/revoke"]`, nil)
	if code := getJSON(t, base+"/api/v1/sources", newTok, nil); code != http.StatusUnauthorized {
		t.Errorf("the revoked token: GET /api/v1/sources = %d, want 401", code)
	}
	resp, err := other.Get(base + "/verifications")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/login" || !strings.Contains(resp.Request.URL.RawQuery, "revoked") {
		t.Errorf("the revoked token's session goes on: GET /verifications ends at %s", resp.Request.URL)
	}

	// Logout ends the session.
	p.want("/")
	p.act(`form[action="/logout"]`, nil)
	if _, html := p.open("/endpoints"); !strings.Contains(html, `action="/login"`) {
		t.Errorf("after logout /endpoints does not ask to log in")
	}
}

// TestScreenshots writes screenshots of the main pages, for the README:
//
//	go test ./cmd/verihook -run TestScreenshots -args -screenshots=../../docs
func TestScreenshots(t *testing.T) {
	if *screenshots == "" {
		t.Skip("give -screenshots=DIR to write the dashboard's screenshots")
	}
	ctx := browser(t)
	f := startWithPersonalData(t)
	seedHistory(t, f)
	p := login(t, ctx, f.base, f.admin)
	ver := listIDs(t, f.base, f.admin, "/api/v1/verifications?provider_ref=scan-pii")
	dlv := listIDs(t, f.base, f.admin, "/api/v1/deliveries?endpoint=echo&limit=1")
	for name, path := range map[string]string{
		"overview":      "/",
		"sources":       "/sources",
		"messages":      "/messages?limit=15",
		"verifications": "/verifications?limit=15",
		"verification":  "/verifications/" + ver[0],
		"endpoint":      "/endpoints/echo",
		"deliveries":    "/deliveries?limit=15",
		"delivery":      "/deliveries/" + dlv[0],
	} {
		p.want(path)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(*screenshots, "dashboard-"+name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// seedHistory adds a day of callbacks to f's store, received over the last
// 24 hours (more in the last hours), so that the charts have a history:
// the ingest service runs with a clock set back for each, and the queue is
// sampled at that time too.
func seedHistory(t *testing.T, f piiFixture) {
	t.Helper()
	now := time.Now()
	var at time.Time
	svc := &ingest.Service{Store: f.m.Store, Providers: registry(), Now: func() time.Time { return at }}
	events := map[string]string{"idenfy": "IDENTIFICATION_MANUAL_FINISHED", "kycaid": "VERIFICATION_STATUS_CHANGED",
		"identomat": "session-change", "fractal": "verification_approved"}
	provs := []string{"idenfy", "kycaid", "identomat", "fractal"}
	for i := range 600 {
		minutes := (i * 7919) % 1440
		if i%3 == 0 {
			minutes %= 60 // a third in the last hour
		}
		at = now.Add(-time.Duration(minutes)*time.Minute - time.Duration(i%50)*time.Second)
		prov := provs[i%len(provs)]
		body, h := signed(t, prov, events[prov], provider.Fields{Ref: fmt.Sprintf("hist-%d", i), ApplicantRef: fmt.Sprintf("user-%d", i%97)})
		if i%41 == 0 {
			body = append(body[:len(body)-1], []byte(`,"tampered":true}`)...) // refused: bad signature
		}
		svc.Receive(context.Background(), hub.Callback{SourceID: prov + "-main", RemoteAddr: "198.51.100.7:443", Header: h, Body: body})
		if err := hub.SampleQueue(context.Background(), f.m.Store, at); err != nil {
			t.Fatal(err)
		}
	}
}
