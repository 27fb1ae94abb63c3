package httpapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/verihook/verihook/internal/hub"
)

type tokenKey struct{}

// authenticate admits requests whose bearer token has at least role want.
func (s *Server) authenticate(want hub.Role, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || strings.TrimSpace(secret) == "" {
			s.error(w, r, hub.Errorf(hub.EUNAUTHORIZED, "missing bearer token (create one with: verihook token create --role viewer)"))
			return
		}
		tok, err := s.Store.TokenByHash(r.Context(), hub.HashToken(strings.TrimSpace(secret)))
		if hub.ErrorCode(err) == hub.ENOTFOUND {
			s.error(w, r, hub.Errorf(hub.EUNAUTHORIZED, "invalid bearer token"))
			return
		} else if err != nil {
			s.error(w, r, err)
			return
		}
		if !tok.Role.Can(want) {
			s.error(w, r, hub.Errorf(hub.EFORBIDDEN, "this token's role (%s) may not do this; it needs %s", tok.Role, want))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok)))
	})
}
