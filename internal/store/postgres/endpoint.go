package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/verihook/verihook/internal/hub"
)

// checkEndpoint validates e and normalizes it for storing (see
// hub.Endpoint.Prepare): times in UTC to the microsecond, slices copied,
// text cleaned.
func checkEndpoint(e *hub.Endpoint) error {
	if err := e.Prepare(storeTime); err != nil {
		return err
	}
	e.URL, e.DisabledReason = clean(e.URL), clean(e.DisabledReason)
	return nil
}

// sealedEndpoint is an endpoint row whose secrets are still sealed.
type sealedEndpoint struct {
	hub.Endpoint
	secret, previousSecret []byte
}

const endpointCols = `id, url, secret, previous_secret, previous_secret_expires_at, event_types, sources, enabled,
	disabled_reason, ordered, rate_limit, failing_since, created_at, updated_at, version`

// endpointArgs returns the column values of e, in endpointCols order,
// sealing its secrets.
func (s *Store) endpointArgs(e hub.Endpoint) []any {
	var prev []byte
	if e.PreviousSecret != "" {
		prev = s.cipher.Seal([]byte(e.PreviousSecret), hub.SealedEndpointPrevSecret, e.ID)
	}
	return []any{e.ID, e.URL, s.cipher.Seal([]byte(e.Secret), hub.SealedEndpointSecret, e.ID), prev, nullTime(e.PreviousSecretExpiresAt),
		e.EventTypes, e.Sources, e.Enabled, e.DisabledReason, e.Ordered, e.RateLimit, nullTime(e.FailingSince),
		e.CreatedAt, e.UpdatedAt, e.Version}
}

// endpointScan holds the destinations of a row of endpointCols.
type endpointScan struct {
	e                    sealedEndpoint
	prevExpires, failing *time.Time
}

func (x *endpointScan) dest() []any {
	e := &x.e
	return []any{&e.ID, &e.URL, &e.secret, &e.previousSecret, &x.prevExpires, &e.EventTypes, &e.Sources,
		&e.Enabled, &e.DisabledReason, &e.Ordered, &e.RateLimit, &x.failing, &e.CreatedAt, &e.UpdatedAt, &e.Version}
}

func (x *endpointScan) value() sealedEndpoint {
	e := x.e
	e.EventTypes, e.Sources = nonNil(e.EventTypes), nonNil(e.Sources)
	e.PreviousSecretExpiresAt, e.FailingSince = fromNullTime(x.prevExpires), fromNullTime(x.failing)
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	return e
}

// scanEndpoint reads a row of endpointCols.
func scanEndpoint(r pgx.Row) (sealedEndpoint, error) {
	var x endpointScan
	if err := r.Scan(x.dest()...); err != nil {
		return sealedEndpoint{}, err
	}
	return x.value(), nil
}

// openEndpoint decrypts the endpoint's secrets. Secrets that do not decrypt
// with the store's key are an error wrapping hub.ErrDecrypt.
func (s *Store) openEndpoint(se sealedEndpoint) (hub.Endpoint, error) {
	e := se.Endpoint
	secret, err := s.cipher.Open(se.secret, hub.SealedEndpointSecret, e.ID)
	if err != nil {
		return hub.Endpoint{}, fmt.Errorf("endpoint %s: secret: %w", e.ID, err)
	}
	prev, err := s.cipher.Open(se.previousSecret, hub.SealedEndpointPrevSecret, e.ID)
	if err != nil {
		return hub.Endpoint{}, fmt.Errorf("endpoint %s: previous secret: %w", e.ID, err)
	}
	e.Secret, e.PreviousSecret = string(secret), string(prev)
	return e, nil
}

// CreateEndpoint stores a new endpoint with its secrets sealed. An id stored
// already is ECONFLICT; see checkEndpoint for what is EINVALID. A zero
// CreatedAt or UpdatedAt is the store's clock.
func (s *Store) CreateEndpoint(ctx context.Context, e hub.Endpoint) error {
	now := s.now()
	if e.CreatedAt.IsZero() {
		e.CreatedAt = now
	}
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = now
	}
	e.Version = 1
	if err := checkEndpoint(&e); err != nil {
		return fmt.Errorf("create endpoint: %w", err)
	}
	tag, err := s.exec(ctx, `INSERT INTO endpoints (`+endpointCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
		ON CONFLICT (id) DO NOTHING`, s.endpointArgs(e)...)
	if err != nil {
		return fail("create endpoint", err)
	}
	if tag.RowsAffected() == 0 {
		return hub.Errorf(hub.ECONFLICT, "endpoint %q already exists", e.ID)
	}
	return nil
}

// UpdateEndpoint replaces every field of an endpoint but CreatedAt,
// FailingSince included, if its version is still e.Version, and adds one to
// the version. An unknown id is ENOTFOUND, another version ECONFLICT; see
// checkEndpoint for what is EINVALID. A zero UpdatedAt is the store's clock.
func (s *Store) UpdateEndpoint(ctx context.Context, e hub.Endpoint) error {
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = s.now()
	}
	e.CreatedAt = time.Time{}
	if err := checkEndpoint(&e); err != nil {
		return fmt.Errorf("update endpoint: %w", err)
	}
	// endpointArgs are in endpointCols order: id, url … failing_since,
	// created_at, updated_at, version.
	args := s.endpointArgs(e)
	tag, err := s.exec(ctx, `UPDATE endpoints SET url = $2, secret = $3, previous_secret = $4,
			previous_secret_expires_at = $5, event_types = $6, sources = $7, enabled = $8, disabled_reason = $9,
			ordered = $10, rate_limit = $11, failing_since = $12, updated_at = $13, version = version + 1
		WHERE id = $1 AND version = $14`, slices.Concat(args[:12], args[13:15])...)
	if err != nil {
		return fail("update endpoint", err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	var version int64
	err = s.queryRow(ctx, `SELECT version FROM endpoints WHERE id = $1`, e.ID).Scan(&version)
	if err != nil {
		return notFound("update endpoint", err, fmt.Sprintf("endpoint %q not found", e.ID))
	}
	return hub.Errorf(hub.ECONFLICT, "endpoint %q changed since it was read (version %d, not %d)", e.ID, version, e.Version)
}

// DeleteEndpoint deletes an endpoint; its deliveries and their attempts go
// with it (ON DELETE CASCADE). An unknown id is ENOTFOUND. It waits for the
// Ingest transactions that are creating deliveries to the endpoint (they
// hold a KEY SHARE lock on its row) to commit.
func (s *Store) DeleteEndpoint(ctx context.Context, id string) error {
	var tag pgconn.CommandTag
	// It may deadlock with a RecordAttempt of one of the deliveries (which
	// takes the delivery first, then the endpoint): then it runs again.
	err := retry(ctx, func() error {
		var err error
		tag, err = s.exec(ctx, `DELETE FROM endpoints WHERE id = $1`, clean(id))
		return err
	})
	if err != nil {
		return fail("delete endpoint", err)
	}
	if tag.RowsAffected() == 0 {
		return hub.Errorf(hub.ENOTFOUND, "endpoint %q not found", id)
	}
	return nil
}

// Endpoint returns one endpoint with its decrypted secrets.
func (s *Store) Endpoint(ctx context.Context, id string) (hub.Endpoint, error) {
	se, err := scanEndpoint(s.queryRow(ctx, `SELECT `+endpointCols+` FROM endpoints WHERE id = $1`, clean(id)))
	if err != nil {
		return hub.Endpoint{}, notFound("get endpoint", err, fmt.Sprintf("endpoint %q not found", id))
	}
	return s.openEndpoint(se)
}

// Endpoints returns every endpoint with its decrypted secrets, ordered by id.
func (s *Store) Endpoints(ctx context.Context) ([]hub.Endpoint, error) {
	rows, err := s.query(ctx, `SELECT `+endpointCols+` FROM endpoints ORDER BY id`)
	if err != nil {
		return nil, fail("list endpoints", err)
	}
	defer rows.Close()
	out := []hub.Endpoint{}
	for rows.Next() {
		se, err := scanEndpoint(rows)
		if err != nil {
			return nil, fail("list endpoints", err)
		}
		e, err := s.openEndpoint(se)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fail("list endpoints", err)
	}
	return out, nil
}

// enabledEndpointsSQL returns what Ingest needs of the enabled endpoints
// (ids, filters, ordered; no secrets), ordered by id, and locks their rows
// FOR KEY SHARE until the transaction ends. The lock is the one the foreign
// key of each delivery takes anyway, taken before the deliveries are written
// rather than after: an endpoint deleted meanwhile by another instance is
// then either gone from this list or deleted only after this commits,
// instead of failing the Ingest on the foreign key. It does not hold up
// UpdateEndpoint, ClaimDeliveries or RecordAttempt, which never change an
// endpoint's key. No instance caches this: another may have changed the
// endpoints since.
const enabledEndpointsSQL = `SELECT id, event_types, sources, ordered FROM endpoints
	WHERE enabled ORDER BY id FOR KEY SHARE`

// scanEnabledEndpoints reads the rows of enabledEndpointsSQL.
func scanEnabledEndpoints(rows pgx.Rows) ([]hub.Endpoint, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (hub.Endpoint, error) {
		e := hub.Endpoint{Enabled: true}
		err := row.Scan(&e.ID, &e.EventTypes, &e.Sources, &e.Ordered)
		return e, err
	})
}
