package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

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
	return s.write(ctx, "create token", func(tx *wtx) error {
		_, err := tx.exec(`INSERT INTO tokens (id, name, role, hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
			t.ID, t.Name, string(t.Role), t.Hash, toNanos(t.CreatedAt), toNullNanos(t.ExpiresAt))
		return err
	})
}

const tokenCols = `id, name, role, hash, created_at, expires_at, last_used_at, revoked_at`

func scanToken(r scanner) (hub.Token, error) {
	var (
		t                          hub.Token
		role                       string
		createdAt                  int64
		expires, lastUsed, revoked sql.NullInt64
	)
	if err := r.Scan(&t.ID, &t.Name, &role, &t.Hash, &createdAt, &expires, &lastUsed, &revoked); err != nil {
		return hub.Token{}, err
	}
	t.Role, t.CreatedAt = hub.Role(role), fromNanos(createdAt)
	t.ExpiresAt, t.LastUsedAt, t.RevokedAt = fromNullNanos(expires), fromNullNanos(lastUsed), fromNullNanos(revoked)
	return t, nil
}

// TokenByHash returns the token whose hash is hash, revoked and expired ones
// included.
func (s *Store) TokenByHash(ctx context.Context, hash string) (hub.Token, error) {
	t, err := scanToken(s.rdb.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = ?`, hash))
	if err != nil {
		return hub.Token{}, notFound("get token", err, "token not found")
	}
	return t, nil
}

// Tokens returns every token, newest first.
func (s *Store) Tokens(ctx context.Context) ([]hub.Token, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+tokenCols+` FROM tokens ORDER BY id DESC`)
	if err != nil {
		return nil, fail("list tokens", err)
	}
	defer rows.Close()
	out := []hub.Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fail("list tokens", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
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
	var t hub.Token
	err := s.write(ctx, "revoke token", func(tx *wtx) error {
		var err error
		t, err = scanToken(tx.tx.QueryRowContext(tx.ctx, `UPDATE tokens SET revoked_at = coalesce(revoked_at, ?)
			WHERE id = ? RETURNING `+tokenCols, toNanos(at), id))
		if errors.Is(err, sql.ErrNoRows) {
			return hub.Errorf(hub.ENOTFOUND, "token %q not found", id)
		}
		return err
	})
	if err != nil {
		return hub.Token{}, err
	}
	return t, nil
}

// TouchToken moves the token's LastUsedAt forward to at.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	if err := checkTime(at, "last_used_at"); err != nil {
		return fmt.Errorf("touch token: %w", err)
	}
	return s.write(ctx, "touch token", func(tx *wtx) error {
		_, err := tx.exec(`UPDATE tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`,
			toNanos(at), id, toNanos(at))
		return err
	})
}
