package httpapi

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

type tokenKey struct{}

// authenticate admits requests whose bearer token is neither revoked nor
// expired and has at least role want. The token is looked up by hash on
// every request, with no cache, so a revoke or an expiry counts at once on
// every instance that shares the store.
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
		now := time.Now()
		if err := tok.Check(now); err != nil {
			s.error(w, r, err)
			return
		}
		if err := allowed(tok, want); err != nil {
			s.error(w, r, err)
			return
		}
		if s.tokenUse.due(tok, now) {
			s.recordUse(r.Context(), tok.ID, now)
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok)))
	})
}

// allowed returns nil when tok's role may act as want, else an EFORBIDDEN
// error saying why not.
func allowed(tok hub.Token, want hub.Role) error {
	if !tok.Role.Can(want) {
		return hub.Errorf(hub.EFORBIDDEN, "this token's role (%s) may not do this; it needs %s", tok.Role, want)
	}
	return nil
}

// useInterval is how often, at most, a token's last use is written: often
// enough to tell an idle token from a busy one, rarely enough that the API's
// reads do not become writes.
const useInterval = time.Minute

// tokenUse remembers when this instance last recorded each token's use.
type tokenUse struct {
	mu   sync.Mutex
	last map[string]time.Time // token id -> when this instance last wrote its use
}

// due reports whether the use of tok at now should be written, and if so
// counts it as written: when neither the store (where any instance may have
// written it) nor this instance has a use of tok within useInterval before
// now. So a token is written at most once per interval per instance, and
// concurrent requests on one instance write once.
func (u *tokenUse) due(tok hub.Token, now time.Time) bool {
	if now.Sub(tok.LastUsedAt) < useInterval {
		return false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if now.Sub(u.last[tok.ID]) < useInterval {
		return false
	}
	if u.last == nil {
		u.last = map[string]time.Time{}
	}
	for id, t := range u.last { // forget what the store now knows, so the map stays small
		if now.Sub(t) >= useInterval {
			delete(u.last, id)
		}
	}
	u.last[tok.ID] = now
	return true
}

// recordUse writes a token's last use. It runs in the request, before the
// handler: at most once a minute per token it costs one small write (one
// row by primary key, group-committed with the ingest writes on SQLite),
// and unlike a goroutine it cannot outlive the server's shutdown and write
// to a closed store. A failure is logged and does not fail the request.
func (s *Server) recordUse(ctx context.Context, id string, now time.Time) {
	if err := s.Store.TouchToken(ctx, id, now); err != nil {
		s.log().Warn("record token use", "token", id, "err", err)
	}
}
