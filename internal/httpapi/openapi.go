package httpapi

import (
	_ "embed"
	"net/http"
	"slices"
)

// openAPI is the API's contract: an OpenAPI 3.1 document, written by hand.
// Its tests fail when a route of the table (Routes) is missing from it, and
// the end-to-end tests of cmd/verihook validate every answer they get from
// the API against it.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the API's OpenAPI 3.1 document (JSON).
func OpenAPI() []byte { return slices.Clone(openAPI) }

// handleOpenAPI serves the document without a token: it describes the
// routes and holds no data.
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(openAPI)
}
