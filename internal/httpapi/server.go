// Package httpapi is verihook's HTTP edge: the ingest route that providers
// call, the JSON API under /api/v1 behind bearer tokens with roles, the
// dashboard at / (dashboard.go: a client of that API in the same process,
// behind sessions), and the health endpoints. It speaks to the rest of verihook only through hub types
// and the small interfaces declared here; cmd/verihook wires the concrete ones.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// Receiver is the ingest service as the ingest route uses it
// (ingest.Service): it stores one authenticated provider callback.
type Receiver interface {
	// Admit is asked before the body is read: ENOTFOUND (after recording
	// the rejection) when sourceID names no source, EUNAVAILABLE when the
	// store cannot tell.
	Admit(ctx context.Context, sourceID, remoteAddr string) error
	// Receive returns the stored message's id, whether it was quarantined,
	// and whether it was a duplicate. Its errors are *hub.Error values:
	// ENOTFOUND (unknown source), EINVALID (an event type in the URL that is
	// no name), EUNAUTHORIZED (bad signature) or EUNAVAILABLE (not stored;
	// the provider must retry).
	Receive(ctx context.Context, c hub.Callback) (hub.Receipt, error)
	// Reject records a request refused at the edge.
	Reject(ctx context.Context, sourceID, remoteAddr string, status int, reason string)
}

// DefaultMaxBody is the largest ingest body accepted unless configured: 1 MiB.
const DefaultMaxBody = 1 << 20

// DefaultMaxInflight bounds the bytes of the ingest bodies held at once
// unless configured: 64 MiB.
const DefaultMaxInflight = 64 << 20

// Server holds the handlers' dependencies. Set the fields, then use Handler.
type Server struct {
	Store    hub.Store
	Receiver Receiver
	Logger   *slog.Logger
	// MaxBody limits ingest bodies; 0 means DefaultMaxBody.
	MaxBody int64
	// MaxInflight bounds the bytes of the ingest bodies being read or
	// processed at once; past it requests get 503 with Retry-After. 0 means
	// DefaultMaxInflight.
	MaxInflight int64
	// CheckURL refuses endpoint URLs verihook must not call (SSRF guard).
	CheckURL func(ctx context.Context, url string) error
	// Wake tells the delivery worker that deliveries are due (after a retry,
	// a replay or an endpoint update); nil does nothing.
	Wake func()
	// EventsWithoutSecret, when set, lists the documented event types a
	// source's secrets cannot verify (shown by GET /api/v1/sources).
	EventsWithoutSecret func(hub.Source) []string
	// ObserveIngest, when set, is told of every ingest request.
	ObserveIngest func(source, outcome string, d time.Duration)
	// Providers are the names of the providers a source may use, sorted
	// (the dashboard's choices).
	Providers []string
	// CheckSecrets reports, as an EINVALID error, whether secrets are what
	// provider needs (an unknown provider is EINVALID too); nil accepts any.
	CheckSecrets func(provider string, secrets map[string]string) error
	// SourceChanged, when set, is told of every source the API changed or
	// deleted, so that the ingest route stops using its old secrets at once.
	SourceChanged func(id string)
	// SendTest sends an endpoint a signed test event now and returns the
	// attempt; nil answers that tests cannot be sent.
	SendTest func(ctx context.Context, e hub.Endpoint) hub.Attempt
	// Recovery, when set, serves refresh, reprocess and the stuck filter.
	Recovery Recovery
	// TrustedProxies are the peers whose X-Forwarded-For and X-Real-IP
	// headers are believed (remote.go); none by default.
	TrustedProxies []netip.Prefix

	tokenUse  tokenUse     // when this instance last recorded each token's use (auth.go)
	readiness readiness    // see ready.go
	inflight  atomic.Int64 // bytes reserved by ingest bodies in flight
	busyLogAt atomic.Int64 // when "ingest busy" was last logged, Unix seconds

	csrf    *http.CrossOriginProtection // the dashboard's forms (dashboard.go)
	apiOnce sync.Once
	api     http.Handler // the API for the dashboard's in-process calls
}

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /ingest/{source_id}", s.handleIngest)
	mux.HandleFunc("POST /ingest/{source_id}/{event_type}", s.handleIngest)
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	mux.HandleFunc("GET /api/v1/openapi.json", s.handleOpenAPI)

	for _, rt := range routes {
		mux.Handle(rt.Pattern, s.authenticate(rt.Role, s.routeHandler(rt)))
	}
	s.csrf = http.NewCrossOriginProtection()
	s.dashboardRoutes(mux)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		s.error(w, r, hub.Errorf(hub.ENOTFOUND, "no such API route: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// Route is one route of the JSON API.
type Route struct {
	// Pattern is the ServeMux pattern: method and path.
	Pattern string
	// Role is the least role that may use the route.
	Role   hub.Role
	handle func(*Server, http.ResponseWriter, *http.Request)
}

// routes is the JSON API, served behind bearer tokens. Every API route goes
// here, not straight onto the mux: the end-to-end tests walk each GET route
// with each role for personal data, and fail on a route they do not walk.
var routes = []Route{
	{"GET /api/v1/sources", hub.RoleViewer, (*Server).handleSources},
	{"GET /api/v1/sources/{id}", hub.RoleViewer, (*Server).handleSource},
	{"POST /api/v1/sources", hub.RoleAdmin, (*Server).handleCreateSource},
	{"PATCH /api/v1/sources/{id}", hub.RoleAdmin, (*Server).handleUpdateSource},
	{"DELETE /api/v1/sources/{id}", hub.RoleAdmin, (*Server).handleDeleteSource},
	{"POST /api/v1/sources/{id}/rotate-secret", hub.RoleAdmin, (*Server).handleRotateSourceSecret},
	{"GET /api/v1/stats", hub.RoleViewer, (*Server).handleStats},
	{"GET /api/v1/messages", hub.RoleViewer, (*Server).handleMessages},
	{"GET /api/v1/messages/{id}", hub.RoleViewer, (*Server).handleMessage},
	{"GET /api/v1/verifications", hub.RoleViewer, (*Server).handleVerifications},
	{"GET /api/v1/verifications/{id}", hub.RoleViewer, (*Server).handleVerification},
	{"POST /api/v1/verifications/{id}/refresh", hub.RoleAdmin, (*Server).handleRefresh},
	{"POST /api/v1/messages/{id}/reprocess", hub.RoleAdmin, (*Server).handleReprocess},
	{"POST /api/v1/messages/reprocess", hub.RoleAdmin, (*Server).handleReprocessAll},
	{"GET /api/v1/events", hub.RoleViewer, (*Server).handleEvents},
	{"GET /api/v1/events/{id}", hub.RoleViewer, (*Server).handleEvent},
	{"GET /api/v1/endpoints", hub.RoleViewer, (*Server).handleEndpoints},
	{"GET /api/v1/endpoints/{id}", hub.RoleViewer, (*Server).handleEndpoint},
	{"POST /api/v1/endpoints", hub.RoleAdmin, (*Server).handleCreateEndpoint},
	{"PATCH /api/v1/endpoints/{id}", hub.RoleAdmin, (*Server).handleUpdateEndpoint},
	{"DELETE /api/v1/endpoints/{id}", hub.RoleAdmin, (*Server).handleDeleteEndpoint},
	{"GET /api/v1/endpoints/{id}/secret", hub.RoleAdmin, (*Server).handleEndpointSecret},
	{"POST /api/v1/endpoints/{id}/rotate-secret", hub.RoleAdmin, (*Server).handleRotateSecret},
	{"POST /api/v1/endpoints/{id}/replay", hub.RoleAdmin, (*Server).handleReplay},
	{"POST /api/v1/endpoints/{id}/test", hub.RoleAdmin, (*Server).handleTestEndpoint},
	{"GET /api/v1/deliveries", hub.RoleViewer, (*Server).handleDeliveries},
	{"GET /api/v1/deliveries/{id}", hub.RoleViewer, (*Server).handleDelivery},
	{"POST /api/v1/deliveries/{id}/retry", hub.RoleAdmin, (*Server).handleRetry},
	{"GET /api/v1/dispatches", hub.RoleViewer, (*Server).handleDispatches},
	{"GET /api/v1/dispatches/{id}", hub.RoleViewer, (*Server).handleDispatch},
	{"GET /api/v1/tokens", hub.RoleAdmin, (*Server).handleTokens},
	{"POST /api/v1/tokens", hub.RoleAdmin, (*Server).handleCreateToken},
	{"DELETE /api/v1/tokens/{id}", hub.RoleAdmin, (*Server).handleRevokeToken},
	{"GET /api/v1/audit", hub.RoleAdmin, (*Server).handleAudit},
}

// Routes returns the JSON API's routes, in the order they are registered.
func Routes() []Route { return slices.Clone(routes) }

func (s *Server) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
