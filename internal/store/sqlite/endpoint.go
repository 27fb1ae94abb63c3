package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// stringsJSON stores a filter list as a JSON array, nil as [].
func stringsJSON(s []string) string {
	if s == nil {
		return "[]"
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// fromStringsJSON reads a filter list back, never nil.
func fromStringsJSON(s string) ([]string, error) {
	out := []string{}
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// sealedEndpoint is an endpoint row whose secrets are still sealed: the
// writer reads endpoints but leaves the decryption to the caller's goroutine.
type sealedEndpoint struct {
	hub.Endpoint
	secret, previousSecret []byte
}

// endpointArgs returns the column values of e, in endpointCols order,
// sealing its secrets.
func (s *Store) endpointArgs(e hub.Endpoint) []any {
	var prev []byte
	if e.PreviousSecret != "" {
		prev = s.cipher.Seal([]byte(e.PreviousSecret), hub.SealedEndpointPrevSecret, e.ID)
	}
	return []any{e.ID, e.URL, s.cipher.Seal([]byte(e.Secret), hub.SealedEndpointSecret, e.ID), prev, toNullNanos(e.PreviousSecretExpiresAt),
		stringsJSON(e.EventTypes), stringsJSON(e.Sources), boolInt(e.Enabled), e.DisabledReason, boolInt(e.Ordered),
		e.RateLimit, toNullNanos(e.FailingSince), toNanos(e.CreatedAt), toNanos(e.UpdatedAt), e.Version}
}

const endpointCols = `id, url, secret, previous_secret, previous_secret_expires_at, event_types, sources, enabled,
	disabled_reason, ordered, rate_limit, failing_since, created_at, updated_at, version`

func scanEndpoint(r scanner) (sealedEndpoint, error) {
	var (
		e                    sealedEndpoint
		prevExpires, failing sql.NullInt64
		eventTypes, sources  string
		enabled, ordered     int
		createdAt, updatedAt int64
	)
	if err := r.Scan(&e.ID, &e.URL, &e.secret, &e.previousSecret, &prevExpires, &eventTypes, &sources, &enabled,
		&e.DisabledReason, &ordered, &e.RateLimit, &failing, &createdAt, &updatedAt, &e.Version); err != nil {
		return sealedEndpoint{}, err
	}
	var err error
	if e.EventTypes, err = fromStringsJSON(eventTypes); err != nil {
		return sealedEndpoint{}, fmt.Errorf("endpoint %s: event types: %w", e.ID, err)
	}
	if e.Sources, err = fromStringsJSON(sources); err != nil {
		return sealedEndpoint{}, fmt.Errorf("endpoint %s: sources: %w", e.ID, err)
	}
	e.Enabled, e.Ordered = enabled != 0, ordered != 0
	e.PreviousSecretExpiresAt, e.FailingSince = fromNullNanos(prevExpires), fromNullNanos(failing)
	e.CreatedAt, e.UpdatedAt = fromNanos(createdAt), fromNanos(updatedAt)
	return e, nil
}

// openEndpoint decrypts the endpoint's secrets. Secrets that do not decrypt with the
// store's key are an error wrapping hub.ErrDecrypt.
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
// already is ECONFLICT; see hub.Endpoint.Validate for what is EINVALID. A
// zero CreatedAt or UpdatedAt is the store's clock.
func (s *Store) CreateEndpoint(ctx context.Context, e hub.Endpoint) error {
	fn, err := s.createEndpoint(e)
	if err != nil {
		return fmt.Errorf("create endpoint: %w", err)
	}
	return s.write(ctx, "create endpoint", fn)
}

// createEndpoint checks e and returns CreateEndpoint's write.
func (s *Store) createEndpoint(e hub.Endpoint) (func(*wtx) error, error) {
	now := s.now()
	if e.CreatedAt.IsZero() {
		e.CreatedAt = now
	}
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = now
	}
	e.Version = 1
	if err := e.Prepare(storeTime); err != nil {
		return nil, err
	}
	args := s.endpointArgs(e)
	return func(tx *wtx) error {
		s.eps.invalidate()
		_, err := tx.exec(`INSERT INTO endpoints (`+endpointCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
		if err != nil {
			if c := classify(err); c != nil && c.Code == hub.ECONFLICT {
				return hub.Errorf(hub.ECONFLICT, "endpoint %q already exists", e.ID)
			}
		}
		return err
	}, nil
}

// UpdateEndpoint replaces every field of an endpoint but CreatedAt,
// FailingSince included, if its version is still e.Version, and adds one to
// the version. An unknown id is ENOTFOUND, another version ECONFLICT; see
// hub.Endpoint.Validate for what is EINVALID. A zero UpdatedAt is the
// store's clock.
func (s *Store) UpdateEndpoint(ctx context.Context, e hub.Endpoint) error {
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = s.now()
	}
	e.CreatedAt = time.Time{}
	if err := e.Prepare(storeTime); err != nil {
		return fmt.Errorf("update endpoint: %w", err)
	}
	// endpointArgs are in endpointCols order: id, url … failing_since,
	// created_at, updated_at, version.
	args := s.endpointArgs(e)
	set := append(slices.Clone(args[1:12]), args[13], args[0], args[14])
	return s.write(ctx, "update endpoint", func(tx *wtx) error {
		s.eps.invalidate()
		res, err := tx.exec(`UPDATE endpoints SET url = ?, secret = ?, previous_secret = ?,
			previous_secret_expires_at = ?, event_types = ?, sources = ?, enabled = ?, disabled_reason = ?, ordered = ?,
			rate_limit = ?, failing_since = ?, updated_at = ?, version = version + 1
			WHERE id = ? AND version = ?`, set...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		var version int64
		err = tx.tx.QueryRowContext(tx.ctx, `SELECT version FROM endpoints WHERE id = ?`, e.ID).Scan(&version)
		if errors.Is(err, sql.ErrNoRows) {
			return hub.Errorf(hub.ENOTFOUND, "endpoint %q not found", e.ID)
		} else if err != nil {
			return err
		}
		return hub.Errorf(hub.ECONFLICT, "endpoint %q changed since it was read (version %d, not %d)", e.ID, version, e.Version)
	})
}

// mustAffect returns notFound when res changed no row.
func mustAffect(res sql.Result, notFound error) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound
	}
	return nil
}

// DeleteEndpoint deletes an endpoint; its deliveries and their attempts go
// with it (ON DELETE CASCADE). An unknown id is ENOTFOUND.
func (s *Store) DeleteEndpoint(ctx context.Context, id string) error {
	return s.write(ctx, "delete endpoint", func(tx *wtx) error {
		s.eps.invalidate()
		res, err := tx.exec(`DELETE FROM endpoints WHERE id = ?`, id)
		if err != nil {
			return err
		}
		return mustAffect(res, hub.Errorf(hub.ENOTFOUND, "endpoint %q not found", id))
	})
}

// Endpoint returns one endpoint with its decrypted secrets.
func (s *Store) Endpoint(ctx context.Context, id string) (hub.Endpoint, error) {
	se, err := scanEndpoint(s.rdb.QueryRowContext(ctx, `SELECT `+endpointCols+` FROM endpoints WHERE id = ?`, id))
	if err != nil {
		return hub.Endpoint{}, notFound("get endpoint", err, fmt.Sprintf("endpoint %q not found", id))
	}
	return s.openEndpoint(se)
}

// Endpoints returns every endpoint with its decrypted secrets, ordered by id.
func (s *Store) Endpoints(ctx context.Context) ([]hub.Endpoint, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+endpointCols+` FROM endpoints ORDER BY id`)
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

// endpointCache holds what Ingest and ClaimDeliveries need of the enabled
// endpoints (ids, filters, ordered; no secrets), so that neither reads and
// decodes the endpoints table on every call. It belongs to the writer
// goroutine: only write functions and commit touch it, so it needs no lock.
//
// It goes stale in two ways, both covered. Endpoint writes of this store go
// through the writer, and each invalidates the cache when it runs, so that
// the requests after it in the same batch see its change. Any rollback, of
// one request to its savepoint or of a whole batch, invalidates it too, as
// the cache may have been loaded from rows that were rolled back. Writes by another process on the same file (a CLI command)
// are caught by PRAGMA data_version, which changes on a connection when
// another connection commits; it is read once per transaction, as nothing
// else can commit while the writer holds the write lock.
type endpointCache struct {
	valid       bool
	dataVersion int64
	enabled     []hub.Endpoint
}

func (c *endpointCache) invalidate() { c.valid = false }

// enabledEndpoints returns the enabled endpoints, ordered by id, from the
// cache or, when it is stale, from the database. Only a write function may
// call it; the caller must not change the slice.
func (s *Store) enabledEndpoints(tx *wtx) ([]hub.Endpoint, error) {
	c := &s.eps
	if !tx.versionChecked {
		var v int64
		if err := tx.queryRowStmt(s.q.dataVersion).Scan(&v); err != nil {
			return nil, fmt.Errorf("data version: %w", err)
		}
		if v != c.dataVersion {
			c.dataVersion = v
			c.valid = false
		}
		tx.versionChecked = true
	}
	if c.valid {
		return c.enabled, nil
	}
	rows, err := tx.queryStmt(s.q.enabledEndpoints)
	if err != nil {
		return nil, fmt.Errorf("load endpoints: %w", err)
	}
	defer rows.Close()
	var eps []hub.Endpoint
	for rows.Next() {
		var (
			e                   hub.Endpoint
			eventTypes, sources string
			ordered             int
		)
		if err := rows.Scan(&e.ID, &eventTypes, &sources, &ordered); err != nil {
			return nil, fmt.Errorf("load endpoints: %w", err)
		}
		if e.EventTypes, err = fromStringsJSON(eventTypes); err != nil {
			return nil, fmt.Errorf("endpoint %s: event types: %w", e.ID, err)
		}
		if e.Sources, err = fromStringsJSON(sources); err != nil {
			return nil, fmt.Errorf("endpoint %s: sources: %w", e.ID, err)
		}
		e.Enabled, e.Ordered = true, ordered != 0
		eps = append(eps, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load endpoints: %w", err)
	}
	c.enabled, c.valid = eps, true
	return eps, nil
}
