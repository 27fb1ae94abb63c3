package hub

import "time"

// AuditEntry is one admin action, as the API records it: who (the token),
// what (method, route and the thing acted on), when, and the outcome. It
// holds no request or answer body, so no secret and no personal data.
type AuditEntry struct {
	ID        string    `json:"id"`
	At        time.Time `json:"at"`
	TokenID   string    `json:"token_id"`
	TokenName string    `json:"token_name"`
	Method    string    `json:"method"`
	// Route is the route's path pattern, such as /api/v1/endpoints/{id}.
	Route string `json:"route"`
	// Target is the id of what the request acted on (the route's {id}, or
	// what it created); "" when there is none.
	Target string `json:"target,omitempty"`
	// Status is the HTTP status answered: 2xx when the action was done.
	Status int `json:"status"`
}

// Prepare validates e before a store records it: an id, a time, a token,
// a method and a route are required, and a status must be from 100 to
// 599.
// Anything else is EINVALID.
func (e *AuditEntry) Prepare() error {
	switch {
	case !ValidID(e.ID):
		return Errorf(EINVALID, "audit entry: invalid id %q", e.ID)
	case e.At.IsZero():
		return Errorf(EINVALID, "audit entry: no time")
	case e.TokenID == "" || e.Method == "" || e.Route == "":
		return Errorf(EINVALID, "audit entry: token, method and route are required")
	case e.Status < 100 || e.Status > 599:
		return Errorf(EINVALID, "audit entry: invalid status %d", e.Status)
	}
	return nil
}
