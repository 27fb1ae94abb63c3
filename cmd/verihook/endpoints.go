package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// provisionEndpoints creates or updates the endpoints the config declares,
// idempotently. A declared secret replaces the stored one (the old one keeps
// signing for 24 h, as with a rotation); without one, a new endpoint gets a
// generated secret and an existing one keeps its own.
//
// An endpoint that verihook disabled (it answered 410, or failed for five
// days) stays disabled, whatever the config says: only an operator's
// PATCH {"enabled":true} enables it again, as otherwise every restart
// would undo the disable. The update is made over the version it read
// (hub.EditEndpoint), so a disable landing meanwhile, by a delivery of
// another instance, is not undone either. An endpoint the config declares
// as it is stored is not written at all, so that a restart does not move
// its version (its ETag) and refuse an operator's If-Match for nothing.
func provisionEndpoints(ctx context.Context, store hub.Store, cfg Config, getenv func(string) string,
	checkURL func(context.Context, string) error, log *slog.Logger) error {
	for i, ec := range cfg.Endpoints {
		field := fmt.Sprintf("endpoints[%d]", i)
		if err := checkURL(ctx, ec.URL); err != nil {
			return fmt.Errorf("config: %s.url: %s", field, hub.ErrorMessage(err))
		}
		secret, err := expand(ec.Secret, getenv)
		if err != nil {
			return fmt.Errorf("config: %s.secret: %w", field, err)
		}
		enabled := ec.Enabled == nil || *ec.Enabled
		var keptDisabled string // why verihook disabled it, when it stays so
		declare := func(e *hub.Endpoint) error {
			stored := *e
			now := time.Now().UTC()
			if secret != "" && secret != e.Secret {
				e.PreviousSecret, e.PreviousSecretExpiresAt, e.Secret = e.Secret, now.Add(24*time.Hour), secret
			}
			keptDisabled = ""
			if enabled && !e.Enabled && e.DisabledReason != "" {
				keptDisabled = e.DisabledReason
			} else {
				e.SetEnabled(enabled)
			}
			e.URL, e.Ordered, e.RateLimit, e.UpdatedAt = ec.URL, ec.Ordered, ec.RateLimit, now
			e.EventTypes, e.Sources = orEmpty(ec.EventTypes), orEmpty(ec.Sources)
			if sameDeclaration(stored, *e) {
				return errUnchanged
			}
			return nil
		}
		e := hub.Endpoint{ID: ec.ID, CreatedAt: time.Now().UTC(), Secret: secret}
		if e.Secret == "" {
			e.Secret = hub.NewEndpointSecret()
		}
		declare(&e)
		err = store.CreateEndpoint(ctx, e)
		switch {
		case err == nil && secret == "":
			log.Info("endpoint created with a generated secret; an admin reads it at GET /api/v1/endpoints/"+ec.ID+"/secret", "endpoint", ec.ID)
		case hub.ErrorCode(err) == hub.ECONFLICT: // it exists: update it
			_, err = hub.EditEndpoint(ctx, store, ec.ID, declare)
			if errors.Is(err, errUnchanged) {
				err = nil
			}
		}
		if err != nil {
			return fmt.Errorf("provision endpoint %s: %w", ec.ID, err)
		}
		if keptDisabled != "" {
			log.Warn(`endpoint stays disabled, as verihook disabled it; once it works again, enable it with PATCH /api/v1/endpoints/`+ec.ID+` {"enabled":true}`,
				"endpoint", ec.ID, "reason", keptDisabled)
		}
	}
	return nil
}

// errUnchanged stops hub.EditEndpoint from writing an endpoint that the
// config declares as it is stored.
var errUnchanged = errors.New("endpoint unchanged")

// sameDeclaration reports whether a and b differ at most in UpdatedAt and in
// a nil filter against an empty one (both mean every type, every source).
func sameDeclaration(a, b hub.Endpoint) bool {
	a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}
	a.EventTypes, b.EventTypes = orEmpty(a.EventTypes), orEmpty(b.EventTypes)
	a.Sources, b.Sources = orEmpty(a.Sources), orEmpty(b.Sources)
	return reflect.DeepEqual(a, b)
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}
