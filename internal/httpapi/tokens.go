package httpapi

import (
	"net/http"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// tokenView is a token as the API shows it: never its hash, and its secret
// only in the answer that created it.
type tokenView struct {
	hub.Token
	State  string `json:"state"` // active, expired or revoked
	Secret string `json:"token,omitempty"`
}

func viewToken(t hub.Token, now time.Time) tokenView {
	return tokenView{Token: t, State: t.State(now)}
}

func (s *Server) handleTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := s.Store.Tokens(r.Context())
	if err != nil {
		s.error(w, r, err)
		return
	}
	now := time.Now()
	views := make([]tokenView, len(ts))
	for i, t := range ts {
		views[i] = viewToken(t, now)
	}
	writeList(w, views, "")
}

// handleCreateToken creates a token from {"role", "name", "expires"}
// (expires as hub.ParseLifetime reads it, such as "90d"; absent: never) and
// answers 201 with its secret, shown this once.
func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Role    hub.Role `json:"role"`
		Name    string   `json:"name"`
		Expires string   `json:"expires"`
	}
	if err := decode(r, &in); err != nil {
		s.error(w, r, err)
		return
	}
	var lifetime time.Duration
	if in.Expires != "" {
		var err error
		if lifetime, err = hub.ParseLifetime(in.Expires); err != nil {
			s.error(w, r, err)
			return
		}
	}
	now := time.Now().UTC()
	tok, secret := hub.NewToken(in.Role, in.Name, lifetime, now)
	if err := s.Store.CreateToken(r.Context(), tok); err != nil {
		s.error(w, r, err)
		return
	}
	s.log().Info("token created", "token", tok.ID, "role", tok.Role, "by", callerID(r))
	setAuditTarget(r, tok.ID)
	v := viewToken(tok, now)
	v.Secret = secret
	writeJSON(w, http.StatusCreated, v)
}

// handleRevokeToken revokes a token, which is refused from then on; the
// token stays listed, with its revocation time. Revoking it again changes
// nothing.
func (s *Server) handleRevokeToken(w http.ResponseWriter, r *http.Request) {
	tok, err := s.Store.RevokeToken(r.Context(), r.PathValue("id"), time.Now().UTC())
	if err != nil {
		s.error(w, r, err)
		return
	}
	s.log().Info("token revoked", "token", tok.ID, "by", callerID(r))
	writeJSON(w, http.StatusOK, viewToken(tok, time.Now()))
}

// callerID is the id of the token that authenticated r.
func callerID(r *http.Request) string {
	tok, _ := r.Context().Value(tokenKey{}).(hub.Token)
	return tok.ID
}
