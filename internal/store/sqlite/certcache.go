package sqlite

import (
	"context"

	"github.com/verihook/verihook/internal/hub"
)

// CertCache returns the value stored under key, opened; ENOTFOUND if none.
func (s *Store) CertCache(ctx context.Context, key string) ([]byte, error) {
	var sealed []byte
	if err := s.rdb.QueryRowContext(ctx, `SELECT data FROM cert_cache WHERE id = ?`, key).Scan(&sealed); err != nil {
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
	sealed := s.cipher.Seal(data, hub.SealedCertCache, key)
	return s.write(ctx, "put cert cache", func(tx *wtx) error {
		_, err := tx.exec(`INSERT INTO cert_cache (id, data, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`,
			key, sealed, toNanos(s.now()))
		return err
	})
}

// DeleteCertCache removes key.
func (s *Store) DeleteCertCache(ctx context.Context, key string) error {
	return s.write(ctx, "delete cert cache", func(tx *wtx) error {
		_, err := tx.exec(`DELETE FROM cert_cache WHERE id = ?`, key)
		return err
	})
}
