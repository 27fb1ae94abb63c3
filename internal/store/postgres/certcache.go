package postgres

import (
	"context"

	"github.com/verihook/verihook/internal/hub"
)

// CertCache returns the value stored under key, opened; ENOTFOUND if none.
func (s *Store) CertCache(ctx context.Context, key string) ([]byte, error) {
	key = clean(key)
	var sealed []byte
	if err := s.pool.QueryRow(ctx, `SELECT data FROM cert_cache WHERE id = $1`, key).Scan(&sealed); err != nil {
		return nil, notFound("get cert cache", err, "no cached value under that key")
	}
	data, err := s.cipher.Open(sealed, hub.SealedCertCache, key)
	if err != nil {
		return nil, fail("open cert cache", err)
	}
	return data, nil
}

// PutCertCache stores data under key, sealed and bound to it.
func (s *Store) PutCertCache(ctx context.Context, key string, data []byte) error {
	key = clean(key)
	_, err := s.exec(ctx, `INSERT INTO cert_cache (id, data, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`,
		key, s.cipher.Seal(data, hub.SealedCertCache, key), s.now())
	return fail("put cert cache", err)
}

// DeleteCertCache removes key.
func (s *Store) DeleteCertCache(ctx context.Context, key string) error {
	_, err := s.exec(ctx, `DELETE FROM cert_cache WHERE id = $1`, clean(key))
	return fail("delete cert cache", err)
}
