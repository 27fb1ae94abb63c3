package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/verihook/verihook/internal/hub"
)

// statusOf maps hub error codes to HTTP statuses: the one table.
var statusOf = map[string]int{
	hub.EINVALID:      http.StatusBadRequest,
	hub.EUNAUTHORIZED: http.StatusUnauthorized,
	hub.EFORBIDDEN:    http.StatusForbidden,
	hub.ENOTFOUND:     http.StatusNotFound,
	hub.ECONFLICT:     http.StatusConflict,
	hub.EPRECONDITION: http.StatusPreconditionFailed,
	hub.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	hub.EUNAVAILABLE:  http.StatusServiceUnavailable,
	hub.EINTERNAL:     http.StatusInternalServerError,
}

// error writes err as {"error": message, "code": code}. Internal errors are
// logged and shown without their details.
func (s *Server) error(w http.ResponseWriter, r *http.Request, err error) {
	code, status := s.statusFor(r, err)
	if code == hub.EUNAUTHORIZED && strings.HasPrefix(r.URL.Path, "/api/") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="verihook"`)
	}
	writeJSON(w, status, map[string]string{"error": hub.ErrorMessage(err), "code": code})
}

// statusFor returns err's code and HTTP status, and logs an internal error
// (which users see without its details).
func (s *Server) statusFor(r *http.Request, err error) (string, int) {
	code := hub.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if code == hub.EINTERNAL {
		s.log().Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	return code, status
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
