package httpapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// routeHandler returns the handler of rt once its caller is authorized,
// audited when it is an admin action (audited): the API's mux and the
// dashboard's in-process calls (internalAPI) both serve routes with it, so
// an action taken from the dashboard is recorded like one taken with curl.
func (s *Server) routeHandler(rt Route) http.Handler {
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rt.handle(s, w, r) })
	if audited(rt) {
		h = s.audit(rt.Pattern, h)
	}
	return h
}

// audited reports whether requests on route are recorded in the audit log:
// those of admin routes that change something (any method but GET).
func audited(rt Route) bool {
	return rt.Role == hub.RoleAdmin && !strings.HasPrefix(rt.Pattern, http.MethodGet+" ")
}

// auditTargetKey carries, in a request's context, where its handler puts
// the id of what it created (setAuditTarget).
type auditTargetKey struct{}

// setAuditTarget names what r created (a new endpoint's or token's id), for
// the audit entry of a route without an {id}.
func setAuditTarget(r *http.Request, id string) {
	if p, ok := r.Context().Value(auditTargetKey{}).(*string); ok {
		*p = id
	}
}

// audit records an audit entry for every request on the route whose
// pattern is pattern, once next has answered: the token that
// authenticated it, the method, the route, the {id} acted on (or what was
// created) and the status answered. It runs after authenticate, so it
// records what an admin did or tried, never a body. The entry is stored
// before the answer is complete, so a client that has read its answer
// finds it in GET /api/v1/audit; failing to store it is logged and does
// not change the answer (the action is done).
func (s *Server) audit(pattern string, next http.Handler) http.Handler {
	method, route, _ := strings.Cut(pattern, " ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := r.PathValue("id")
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), auditTargetKey{}, &target)))
		tok, _ := r.Context().Value(tokenKey{}).(hub.Token)
		now := time.Now().UTC()
		e := hub.AuditEntry{ID: hub.NewID("aud", now), At: now, TokenID: tok.ID, TokenName: tok.Name,
			Method: method, Route: route, Target: target, Status: rec.status}
		if err := s.Store.RecordAudit(context.WithoutCancel(r.Context()), e); err != nil {
			s.log().Error("record audit entry", "token", tok.ID, "method", method, "route", route, "status", rec.status, "err", err)
		}
	})
}

// statusRecorder remembers the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusRecorder) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// handleAudit lists the admin actions, newest first.
func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) {
	p, err := page(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	es, next, err := s.Store.AuditLog(r.Context(), p)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeList(w, es, next)
}
