package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/verihook/verihook/internal/hub"
)

// CreateToken stores a token; only its hash is ever given to the store. An
// id or hash stored already is ECONFLICT; see hub.Token.Prepare for what is
// EINVALID. A zero CreatedAt is the store's clock.
func (s *Store) CreateToken(ctx context.Context, t hub.Token) error {
	if err := t.Prepare(s.now()); err != nil {
		return err
	}
	if err := checkTime(t.CreatedAt, "created_at"); err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	if err := checkTime(t.ExpiresAt, "expires_at"); err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	_, err := s.exec(ctx, `INSERT INTO tokens (id, name, role, hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		t.ID, clean(t.Name), string(t.Role), clean(t.Hash), ts(t.CreatedAt), nullTime(t.ExpiresAt))
	return fail("create token", err)
}

const tokenCols = `id, name, role, hash, created_at, expires_at, last_used_at, revoked_at`

func scanToken(r pgx.Row) (hub.Token, error) {
	var (
		t                          hub.Token
		role                       string
		createdAt                  time.Time
		expires, lastUsed, revoked *time.Time
	)
	if err := r.Scan(&t.ID, &t.Name, &role, &t.Hash, &createdAt, &expires, &lastUsed, &revoked); err != nil {
		return hub.Token{}, err
	}
	t.Role, t.CreatedAt = hub.Role(role), createdAt.UTC()
	t.ExpiresAt, t.LastUsedAt, t.RevokedAt = fromNullTime(expires), fromNullTime(lastUsed), fromNullTime(revoked)
	return t, nil
}

// TokenByHash returns the token whose hash is hash, revoked and expired ones
// included.
func (s *Store) TokenByHash(ctx context.Context, hash string) (hub.Token, error) {
	t, err := scanToken(s.queryRow(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = $1`, clean(hash)))
	if err != nil {
		return hub.Token{}, notFound("get token", err, "token not found")
	}
	return t, nil
}

// Tokens returns every token, newest first.
func (s *Store) Tokens(ctx context.Context) ([]hub.Token, error) {
	rows, err := s.query(ctx, `SELECT `+tokenCols+` FROM tokens ORDER BY id DESC`)
	if err != nil {
		return nil, fail("list tokens", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (hub.Token, error) { return scanToken(r) })
	if err != nil {
		return nil, fail("list tokens", err)
	}
	return out, nil
}

// RevokeToken sets the token's RevokedAt unless it is set already, and
// returns the token.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) (hub.Token, error) {
	if at.IsZero() {
		at = s.now()
	}
	if err := checkTime(at, "revoked_at"); err != nil {
		return hub.Token{}, fmt.Errorf("revoke token: %w", err)
	}
	t, err := scanToken(s.queryRow(ctx, `UPDATE tokens SET revoked_at = coalesce(revoked_at, $1)
		WHERE id = $2 RETURNING `+tokenCols, ts(at), clean(id)))
	if err != nil {
		return hub.Token{}, notFound("revoke token", err, fmt.Sprintf("token %q not found", id))
	}
	return t, nil
}

// TouchToken moves the token's LastUsedAt forward to at.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	if err := checkTime(at, "last_used_at"); err != nil {
		return fmt.Errorf("touch token: %w", err)
	}
	_, err := s.exec(ctx, `UPDATE tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)`,
		ts(at), clean(id))
	return fail("touch token", err)
}
