package httpapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"embed"
	"encoding/json"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// The dashboard (SPEC section 8) is a client of the JSON API that runs in
// the same process: every page reads, and every form writes, through the
// API's own routes, with the token the session was opened with. So a page
// shows exactly what the API shows that token's role (the viewer's
// redaction included), an action is refused exactly as the API refuses it
// (a viewer's forged admin request gets the API's 403), and there is no
// second copy of any rule. What the dashboard adds: sessions, CSRF
// protection, and HTML.

//go:embed web
var webFS embed.FS

// SessionLifetime is how long a dashboard login lasts (never longer than its
// token).
const SessionLifetime = 12 * time.Hour

const (
	sessionCookie = "verihook_session"
	csrfField     = "csrf"
)

type sessionKey struct{}

// dashSession is the logged-in session of a dashboard request.
type dashSession struct {
	secret string // the cookie's value: the CSRF token is derived from it
	hash   string
	token  hub.Token
}

// dashboardRoutes registers the dashboard on mux.
func (s *Server) dashboardRoutes(mux *http.ServeMux) {
	static, _ := fs.Sub(webFS, "web/static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheStatic(http.FileServerFS(static))))
	mux.HandleFunc("GET /login", s.handleLoginPage)
	mux.Handle("POST /login", s.csrf.Handler(http.HandlerFunc(s.handleLogin)))
	for _, p := range dashPages {
		mux.Handle("GET "+p.path, s.session(p.handle))
	}
	for _, a := range dashActions {
		mux.Handle("POST "+a.path, s.csrf.Handler(s.session(s.checkCSRF(a.handle))))
	}
}

// cacheStatic lets browsers keep the embedded assets for an hour.
func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// session admits requests with a live session cookie whose token is
// neither revoked nor expired (both read from the store on every request,
// like a bearer token, so that a revoke ends the session at once on every
// instance), and sends the others to the login page.
func (s *Server) session(next func(*Server, http.ResponseWriter, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(sessionCookie)
		if err != nil || c.Value == "" {
			s.toLogin(w, r, "")
			return
		}
		hash := hub.HashToken(c.Value)
		ses, tok, err := s.Store.SessionByHash(r.Context(), hash)
		if hub.ErrorCode(err) == hub.ENOTFOUND {
			s.toLogin(w, r, "Your session ended: log in again.")
			return
		} else if err != nil {
			s.dashError(w, r, err)
			return
		}
		now := time.Now()
		if !now.Before(ses.ExpiresAt) {
			s.toLogin(w, r, "Your session expired: log in again.")
			return
		}
		if err := tok.Check(now); err != nil {
			s.Store.DeleteSession(r.Context(), hash)
			s.toLogin(w, r, "The token of this session "+tok.State(now)+": log in with another.")
			return
		}
		ctx := context.WithValue(r.Context(), tokenKey{}, tok)
		ctx = context.WithValue(ctx, sessionKey{}, &dashSession{secret: c.Value, hash: hash, token: tok})
		next(s, w, r.WithContext(ctx))
	})
}

func sessionOf(r *http.Request) *dashSession {
	ses, _ := r.Context().Value(sessionKey{}).(*dashSession)
	return ses
}

// checkCSRF refuses a form without the session's CSRF token, on top of
// http.CrossOriginProtection (which refuses cross-origin requests by their
// Sec-Fetch-Site and Origin headers) and the SameSite=Strict cookie.
func (s *Server) checkCSRF(next func(*Server, http.ResponseWriter, *http.Request)) func(*Server, http.ResponseWriter, *http.Request) {
	return func(s *Server, w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		want := hub.CSRFToken(sessionOf(r).secret)
		if !hmac.Equal([]byte(r.PostFormValue(csrfField)), []byte(want)) {
			s.dashError(w, r, hub.Errorf(hub.EFORBIDDEN, "this form is stale or was not sent from the dashboard: reload the page and try again"))
			return
		}
		next(s, w, r)
	}
}

func (s *Server) toLogin(w http.ResponseWriter, r *http.Request, msg string) {
	clearCookie(w, r)
	q := url.Values{}
	if msg != "" {
		q.Set("msg", msg)
	}
	if r.Method == http.MethodGet && r.URL.Path != "/" {
		q.Set("next", r.URL.RequestURI())
	}
	target := "/login"
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func (s *Server) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "login", "Log in", map[string]string{
		"Msg": r.URL.Query().Get("msg"), "Next": localPath(r.URL.Query().Get("next")),
	})
}

// handleLogin turns an API token into a session: the token is checked as a
// bearer token is, and only the hash of the new session's secret is stored.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	secret := strings.TrimSpace(r.PostFormValue("token"))
	next := localPath(r.PostFormValue("next"))
	fail := func(msg string) {
		s.render(w, r, http.StatusUnauthorized, "login", "Log in", map[string]string{"Error": msg, "Next": next})
	}
	if secret == "" {
		fail("Paste an API token (verihook token create --role viewer).")
		return
	}
	tok, err := s.Store.TokenByHash(r.Context(), hub.HashToken(secret))
	if hub.ErrorCode(err) == hub.ENOTFOUND {
		fail("This token is not valid.")
		return
	} else if err != nil {
		s.dashError(w, r, err)
		return
	}
	now := time.Now().UTC()
	if err := tok.Check(now); err != nil {
		fail(strings.Replace(hub.ErrorMessage(err), "bearer token", "token", 1) + ".")
		return
	}
	ses, cookie := hub.NewSession(tok, now, SessionLifetime)
	if err := s.Store.CreateSession(r.Context(), ses); err != nil {
		s.dashError(w, r, err)
		return
	}
	s.log().Info("dashboard login", "token", tok.ID, "session", ses.ID)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: cookie, Path: "/", Expires: ses.ExpiresAt,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	if next == "" {
		next = "/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// handleLogout ends the session.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if err := s.Store.DeleteSession(r.Context(), sessionOf(r).hash); err != nil {
		s.dashError(w, r, err)
		return
	}
	clearCookie(w, r)
	http.Redirect(w, r, "/login?msg="+url.QueryEscape("You are logged out."), http.StatusSeeOther)
}

func clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
}

// localPath returns p if it is a path on this site, else "": a login link
// must not send anyone elsewhere.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return ""
	}
	return p
}

// internalAPI is the JSON API's routes behind a role check only: the
// dashboard's requests carry the session's token in their context.
func (s *Server) internalAPI() http.Handler {
	s.apiOnce.Do(func() {
		mux := http.NewServeMux()
		for _, rt := range routes {
			h := s.routeHandler(rt)
			mux.Handle(rt.Pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tok, _ := r.Context().Value(tokenKey{}).(hub.Token)
				if err := allowed(tok, rt.Role); err != nil {
					s.error(w, r, err)
					return
				}
				h.ServeHTTP(w, r)
			}))
		}
		s.api = mux
	})
	return s.api
}

// call calls the JSON API as the session's token: method on path (with its
// query) with in as the JSON body (nil: none) and header's fields, and
// decodes a 2xx answer into out (nil: ignored). Any other answer is
// returned as the *hub.Error it carries.
func (s *Server) call(r *http.Request, method, path string, in any, header http.Header, out any) error {
	var body io.Reader = http.NoBody
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(r.Context(), method, path, body)
	if err != nil {
		return err
	}
	req.RemoteAddr = r.RemoteAddr
	for k, v := range header {
		req.Header[k] = v
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	s.internalAPI().ServeHTTP(rec, req)
	if rec.status < 200 || rec.status > 299 {
		var e struct {
			Error string `json:"error"`
			Code  string `json:"code"`
		}
		if json.Unmarshal(rec.body.Bytes(), &e) != nil || e.Code == "" {
			return hub.Errorf(hub.EINTERNAL, "the API answered %d", rec.status)
		}
		return hub.Errorf(e.Code, "%s", e.Error)
	}
	if out != nil && rec.body.Len() > 0 {
		if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
			return err
		}
	}
	return nil
}

// recorder is the http.ResponseWriter of an in-process API call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
}

// view is what every page template gets.
type view struct {
	Title  string
	Nav    string
	Admin  bool
	Role   hub.Role
	Token  string // the name or id of the session's token
	CSRF   string
	Flash  string
	Now    time.Time
	Data   any
	Status int
}

var (
	tmplOnce sync.Once
	tmpls    map[string]*template.Template
)

// templates parses each page with the layout, once.
func templates() map[string]*template.Template {
	tmplOnce.Do(func() {
		tmpls = map[string]*template.Template{}
		pages, _ := fs.Glob(webFS, "web/*.html")
		for _, p := range pages {
			name := strings.TrimSuffix(strings.TrimPrefix(p, "web/"), ".html")
			if name == "layout" {
				continue
			}
			tmpls[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(webFS, "web/layout.html", p))
		}
	})
	return tmpls
}

// render writes page name with data, under the security headers every
// dashboard page carries: no framing, no script or style from elsewhere or
// inline, no caching (pages may hold personal data for an admin).
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	v := view{Title: title, Nav: name, Now: time.Now().UTC(), Data: data, Status: status}
	if ses := sessionOf(r); ses != nil {
		v.Admin = ses.token.Role == hub.RoleAdmin
		v.Role = ses.token.Role
		v.Token = ses.token.Name
		if v.Token == "" {
			v.Token = ses.token.ID
		}
		v.CSRF = hub.CSRFToken(ses.secret)
	}
	v.Flash = r.URL.Query().Get("flash")
	var buf bytes.Buffer
	t, ok := templates()[name]
	if !ok {
		s.log().Error("dashboard: no template", "name", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		s.log().Error("dashboard: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// dashError shows err on an error page, with the status the API would give.
func (s *Server) dashError(w http.ResponseWriter, r *http.Request, err error) {
	_, status := s.statusFor(r, err)
	s.render(w, r, status, "error", http.StatusText(status), hub.ErrorMessage(err))
}

// done redirects after a successful action to target with a message.
func done(w http.ResponseWriter, r *http.Request, target, flash string) {
	sep := "?"
	if strings.Contains(target, "?") {
		sep = "&"
	}
	http.Redirect(w, r, target+sep+"flash="+url.QueryEscape(flash), http.StatusSeeOther)
}
