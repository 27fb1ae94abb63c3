package httpapi

import (
	"fmt"
	"net/http"
)

// handleHome answers GET / until a dashboard takes that path: a newcomer
// who opens verihook in a browser learns what to do next. It shows no data,
// so it needs no token.
func (s *Server) handleHome(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	srcs, err := s.Store.Sources(r.Context())
	switch {
	case err != nil:
		s.log().Error("home: list sources", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "verihook is running, but its store is unavailable.")
	case len(srcs) == 0:
		fmt.Fprint(w, `verihook is running, but no sources are configured, so every callback gets 404.

Next: run 'verihook init' to write a config with a source per provider and an
admin token, then 'verihook serve --config verihook.yaml'. See 'verihook --help'.
`)
	default:
		fmt.Fprintf(w, `verihook is running with %d source(s).

Callbacks: POST /ingest/{source id}
API:       /api/v1/... with Authorization: Bearer <token> ('verihook token create')
`, len(srcs))
	}
}
