package httpapi

import (
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// MaxSourceGrace is the longest grace period a source's rotated-out secrets
// may be given.
const MaxSourceGrace = 7 * 24 * time.Hour

// sourceView is a source as the API shows it: never its secrets, only their
// names, and where providers must send their callbacks.
type sourceView struct {
	hub.Source
	IngestPath  string   `json:"ingest_path"`
	SecretNames []string `json:"secret_names"`
	// EventsWithoutSecret are documented event types whose callbacks this
	// source refuses (401) for want of a secret.
	EventsWithoutSecret []string `json:"events_without_secret,omitempty"`
}

func (s *Server) viewSource(src hub.Source) sourceView {
	v := sourceView{Source: src, IngestPath: "/ingest/" + src.ID, SecretNames: slices.Sorted(maps.Keys(src.Secrets))}
	if s.EventsWithoutSecret != nil {
		v.EventsWithoutSecret = s.EventsWithoutSecret(src)
	}
	return v
}

func (s *Server) handleSources(w http.ResponseWriter, r *http.Request) {
	srcs, err := s.Store.Sources(r.Context())
	if err != nil {
		s.error(w, r, err)
		return
	}
	out := make([]sourceView, len(srcs))
	for i, src := range srcs {
		out[i] = s.viewSource(src)
	}
	writeList(w, out, "")
}

func (s *Server) handleSource(w http.ResponseWriter, r *http.Request) {
	src, err := s.Store.Source(r.Context(), r.PathValue("id"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.viewSource(src))
}

// checkSecrets asks the provider whether secrets are what it needs.
func (s *Server) checkSecrets(provider string, secrets map[string]string) error {
	if s.CheckSecrets == nil {
		return nil
	}
	return s.CheckSecrets(provider, secrets)
}

// handleCreateSource creates a source from {"id", "provider", "secrets"}
// (secrets by the config file's flat names) and answers 201.
func (s *Server) handleCreateSource(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ID       string            `json:"id"`
		Provider string            `json:"provider"`
		Secrets  map[string]string `json:"secrets"`
	}
	if err := decode(r, &in); err != nil {
		s.error(w, r, err)
		return
	}
	if !hub.ValidID(in.ID) {
		s.error(w, r, hub.Errorf(hub.EINVALID, "id must be 1 to 128 letters, digits, '.', '-' or '_'"))
		return
	}
	if err := s.checkSecrets(in.Provider, in.Secrets); err != nil {
		s.error(w, r, err)
		return
	}
	now := time.Now().UTC()
	src := hub.Source{ID: in.ID, Provider: in.Provider, Secrets: in.Secrets, Managed: hub.ManagedAPI, CreatedAt: now, UpdatedAt: now}
	if err := s.Store.CreateSource(r.Context(), src); err != nil {
		s.error(w, r, err)
		return
	}
	s.log().Info("source created", "source", src.ID, "provider", src.Provider, "by", callerID(r))
	setAuditTarget(r, src.ID)
	writeJSON(w, http.StatusCreated, s.viewSource(src))
}

// apiSource reads a source that the API may change: one declared in the
// config file is ECONFLICT, as a change would drift from the file.
func (s *Server) apiSource(r *http.Request) (hub.Source, error) {
	src, err := s.Store.Source(r.Context(), r.PathValue("id"))
	if err != nil {
		return hub.Source{}, err
	}
	if src.Managed == hub.ManagedConfig {
		return hub.Source{}, hub.Errorf(hub.ECONFLICT, "source %s is declared in the config file: change it there", src.ID)
	}
	return src, nil
}

// handleUpdateSource replaces a source's provider and secrets from
// {"provider", "secrets"} (absent: unchanged), at once, without a grace
// period; rotate-secret keeps the old secrets valid for a while.
func (s *Server) handleUpdateSource(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Provider *string           `json:"provider"`
		Secrets  map[string]string `json:"secrets"`
	}
	if err := decode(r, &in); err != nil {
		s.error(w, r, err)
		return
	}
	src, err := s.apiSource(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	if in.Provider != nil {
		src.Provider = *in.Provider
	}
	if in.Secrets != nil {
		src.Secrets = in.Secrets
	}
	if err := s.checkSecrets(src.Provider, src.Secrets); err != nil {
		s.error(w, r, err)
		return
	}
	src.UpdatedAt = time.Now().UTC()
	if err := s.Store.UpdateSource(r.Context(), src); err != nil {
		s.error(w, r, err)
		return
	}
	s.sourceChanged(src.ID)
	s.log().Info("source updated", "source", src.ID, "by", callerID(r))
	writeJSON(w, http.StatusOK, s.viewSource(src))
}

func (s *Server) handleDeleteSource(w http.ResponseWriter, r *http.Request) {
	src, err := s.apiSource(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	if err := s.Store.DeleteSource(r.Context(), src.ID); err != nil {
		s.error(w, r, err)
		return
	}
	s.sourceChanged(src.ID)
	s.log().Info("source deleted", "source", src.ID, "by", callerID(r))
	w.WriteHeader(http.StatusNoContent)
}

// handleRotateSourceSecret replaces a source's secrets from {"secrets",
// "grace"}; the old ones keep authenticating callbacks for grace (a Go
// duration such as "24h"; default RotationGrace, at most MaxSourceGrace;
// "0s" ends them at once), while the provider's side is switched over.
func (s *Server) handleRotateSourceSecret(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Secrets map[string]string `json:"secrets"`
		Grace   string            `json:"grace"`
	}
	if err := decode(r, &in); err != nil {
		s.error(w, r, err)
		return
	}
	grace := RotationGrace
	if in.Grace != "" {
		d, err := time.ParseDuration(in.Grace)
		if err != nil || d < 0 || d > MaxSourceGrace {
			s.error(w, r, hub.Errorf(hub.EINVALID, "grace must be a duration from 0s to %s, such as 24h", MaxSourceGrace))
			return
		}
		grace = d
	}
	src, err := s.apiSource(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	if err := s.checkSecrets(src.Provider, in.Secrets); err != nil {
		s.error(w, r, err)
		return
	}
	src.Rotate(in.Secrets, time.Now().UTC(), grace)
	if err := s.Store.UpdateSource(r.Context(), src); err != nil {
		s.error(w, r, err)
		return
	}
	s.sourceChanged(src.ID)
	s.log().Info("source secrets rotated", "source", src.ID, "grace", grace, "by", callerID(r))
	writeJSON(w, http.StatusOK, s.viewSource(src))
}

func (s *Server) sourceChanged(id string) {
	if s.SourceChanged != nil {
		s.SourceChanged(id)
	}
}
