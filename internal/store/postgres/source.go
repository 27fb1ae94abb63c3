package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/verihook/verihook/internal/hub"
)

// UpsertSource creates the source or replaces its provider and secrets,
// sealed as one JSON object. A new source's zero CreatedAt is the store's
// clock; an existing source keeps its CreatedAt. A zero UpdatedAt is the
// store's clock. An id that is not 1 to 128 of [A-Za-z0-9_.-], or no
// provider, is EINVALID.
func (s *Store) UpsertSource(ctx context.Context, src hub.Source) error {
	if err := src.Prepare(s.now()); err != nil {
		return err
	}
	if err := checkTime(src.CreatedAt, "created_at"); err != nil {
		return fmt.Errorf("upsert source: %w", err)
	}
	if err := checkTime(src.UpdatedAt, "updated_at"); err != nil {
		return fmt.Errorf("upsert source: %w", err)
	}
	secrets, err := json.Marshal(src.Secrets)
	if err != nil {
		return fmt.Errorf("upsert source: encode secrets: %w", err)
	}
	_, err = s.exec(ctx, `INSERT INTO sources (id, provider, secrets, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET provider = excluded.provider, secrets = excluded.secrets,
			updated_at = excluded.updated_at`,
		src.ID, clean(src.Provider), s.cipher.Seal(secrets, hub.SealedSourceSecrets, src.ID), ts(src.CreatedAt), ts(src.UpdatedAt))
	return fail("upsert source", err)
}

const sourceCols = `id, provider, secrets, created_at, updated_at`

func (s *Store) scanSource(r pgx.Row) (hub.Source, error) {
	var (
		src    hub.Source
		sealed []byte
	)
	if err := r.Scan(&src.ID, &src.Provider, &sealed, &src.CreatedAt, &src.UpdatedAt); err != nil {
		return hub.Source{}, err
	}
	plain, err := s.cipher.Open(sealed, hub.SealedSourceSecrets, src.ID)
	if err != nil {
		return hub.Source{}, fmt.Errorf("source %s: secrets: %w", src.ID, err)
	}
	if err := json.Unmarshal(plain, &src.Secrets); err != nil {
		return hub.Source{}, fmt.Errorf("source %s: decode secrets: %w", src.ID, err)
	}
	src.CreatedAt, src.UpdatedAt = src.CreatedAt.UTC(), src.UpdatedAt.UTC()
	return src, nil
}

// Source returns one source with its decrypted secrets. Secrets that do not
// decrypt with the store's key are an error wrapping hub.ErrDecrypt.
func (s *Store) Source(ctx context.Context, id string) (hub.Source, error) {
	src, err := s.scanSource(s.queryRow(ctx, `SELECT `+sourceCols+` FROM sources WHERE id = $1`, clean(id)))
	if err != nil {
		return hub.Source{}, notFound("get source", err, fmt.Sprintf("source %q not found", id))
	}
	return src, nil
}

// Sources returns every source with its secrets, ordered by id.
func (s *Store) Sources(ctx context.Context) ([]hub.Source, error) {
	rows, err := s.query(ctx, `SELECT `+sourceCols+` FROM sources ORDER BY id`)
	if err != nil {
		return nil, fail("list sources", err)
	}
	defer rows.Close()
	out := []hub.Source{}
	for rows.Next() {
		src, err := s.scanSource(rows)
		if err != nil {
			return nil, fail("list sources", err)
		}
		out = append(out, src)
	}
	if err := rows.Err(); err != nil {
		return nil, fail("list sources", err)
	}
	return out, nil
}
