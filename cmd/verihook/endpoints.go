package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// provisionEndpoints creates or updates the endpoints the config declares,
// idempotently. A declared secret replaces the stored one (the old one keeps
// signing for 24 h, as with a rotation); without one, a new endpoint gets a
// generated secret and an existing one keeps its own.
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
		now := time.Now().UTC()
		e, err := store.Endpoint(ctx, ec.ID)
		exists := err == nil
		if err != nil && hub.ErrorCode(err) != hub.ENOTFOUND {
			return fmt.Errorf("read endpoint %s: %w", ec.ID, err)
		}
		if !exists {
			e = hub.Endpoint{ID: ec.ID, CreatedAt: now, Secret: secret}
			if e.Secret == "" {
				e.Secret = hub.NewEndpointSecret()
				log.Info("endpoint created with a generated secret; an admin reads it at GET /api/v1/endpoints/"+ec.ID+"/secret", "endpoint", ec.ID)
			}
		} else if secret != "" && secret != e.Secret {
			e.PreviousSecret, e.PreviousSecretExpiresAt, e.Secret = e.Secret, now.Add(24*time.Hour), secret
		}
		enabled := ec.Enabled == nil || *ec.Enabled
		if enabled && !e.Enabled {
			e.DisabledReason, e.FailingSince = "", time.Time{}
		}
		e.URL, e.Enabled, e.Ordered, e.RateLimit, e.UpdatedAt = ec.URL, enabled, ec.Ordered, ec.RateLimit, now
		e.EventTypes, e.Sources = orEmpty(ec.EventTypes), orEmpty(ec.Sources)
		if exists {
			err = store.UpdateEndpoint(ctx, e)
		} else {
			err = store.CreateEndpoint(ctx, e)
		}
		if err != nil {
			return fmt.Errorf("provision endpoint %s: %w", ec.ID, err)
		}
	}
	return nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}
