package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/verihook/verihook/internal/hub"
)

// sourceRow is a source checked and sealed for writing.
type sourceRow struct {
	src               hub.Source
	secrets, previous []byte // sealed; previous nil when none
}

// prepareSource checks src (see hub.Source.Prepare) and seals its secrets
// and previous secrets, each as one JSON object.
func (s *Store) prepareSource(src hub.Source, op string) (sourceRow, error) {
	if err := src.Prepare(s.now()); err != nil {
		return sourceRow{}, err
	}
	if err := errors.Join(checkTime(src.CreatedAt, "created_at"), checkTime(src.UpdatedAt, "updated_at"),
		checkTime(src.PreviousSecretsExpireAt, "previous_secrets_expire_at")); err != nil {
		return sourceRow{}, fmt.Errorf("%s: %w", op, err)
	}
	secrets, previous, err := src.SealSecrets(s.cipher)
	if err != nil {
		return sourceRow{}, fmt.Errorf("%s: %w", op, err)
	}
	return sourceRow{src: src, secrets: secrets, previous: previous}, nil
}

// UpsertSource creates the source or replaces its provider, secrets and
// Managed (its previous secrets stay). A new source's zero CreatedAt is the
// store's clock; an existing source keeps its CreatedAt. A zero UpdatedAt is
// the store's clock. See hub.Source.Prepare for what is EINVALID.
func (s *Store) UpsertSource(ctx context.Context, src hub.Source) error {
	r, err := s.prepareSource(src, "upsert source")
	if err != nil {
		return err
	}
	return s.write(ctx, "upsert source", func(tx *wtx) error {
		_, err := tx.exec(`INSERT INTO sources (id, provider, secrets, managed, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET provider = excluded.provider, secrets = excluded.secrets,
				managed = excluded.managed, updated_at = excluded.updated_at`,
			r.src.ID, r.src.Provider, r.secrets, r.src.Managed, toNanos(r.src.CreatedAt), toNanos(r.src.UpdatedAt))
		return err
	})
}

// CreateSource stores a new source; ECONFLICT if its id exists.
func (s *Store) CreateSource(ctx context.Context, src hub.Source) error {
	r, err := s.prepareSource(src, "create source")
	if err != nil {
		return err
	}
	return s.write(ctx, "create source", func(tx *wtx) error {
		_, err := tx.exec(`INSERT INTO sources
			(id, provider, secrets, previous_secrets, previous_secrets_expire_at, managed, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			r.src.ID, r.src.Provider, r.secrets, r.previous, toNullNanos(r.src.PreviousSecretsExpireAt), r.src.Managed,
			toNanos(r.src.CreatedAt), toNanos(r.src.UpdatedAt))
		return err
	})
}

// UpdateSource replaces every field of a source but CreatedAt.
func (s *Store) UpdateSource(ctx context.Context, src hub.Source) error {
	r, err := s.prepareSource(src, "update source")
	if err != nil {
		return err
	}
	return s.write(ctx, "update source", func(tx *wtx) error {
		res, err := tx.exec(`UPDATE sources SET provider = ?, secrets = ?, previous_secrets = ?,
				previous_secrets_expire_at = ?, managed = ?, updated_at = ?
			WHERE id = ?`,
			r.src.Provider, r.secrets, r.previous, toNullNanos(r.src.PreviousSecretsExpireAt), r.src.Managed,
			toNanos(r.src.UpdatedAt), r.src.ID)
		if err != nil {
			return err
		}
		return mustAffect(res, hub.Errorf(hub.ENOTFOUND, "source %q not found", src.ID))
	})
}

// DeleteSource deletes a source; what it received stays.
func (s *Store) DeleteSource(ctx context.Context, id string) error {
	return s.write(ctx, "delete source", func(tx *wtx) error {
		res, err := tx.exec(`DELETE FROM sources WHERE id = ?`, id)
		if err != nil {
			return err
		}
		return mustAffect(res, hub.Errorf(hub.ENOTFOUND, "source %q not found", id))
	})
}

const sourceCols = `id, provider, secrets, previous_secrets, previous_secrets_expire_at, managed, created_at, updated_at`

func (s *Store) scanSource(r scanner) (hub.Source, error) {
	var (
		src                  hub.Source
		sealed, previous     []byte
		previousExpireAt     sql.NullInt64
		createdAt, updatedAt int64
	)
	if err := r.Scan(&src.ID, &src.Provider, &sealed, &previous, &previousExpireAt, &src.Managed,
		&createdAt, &updatedAt); err != nil {
		return hub.Source{}, err
	}
	if err := src.OpenSecrets(s.cipher, sealed, previous); err != nil {
		return hub.Source{}, err
	}
	src.PreviousSecretsExpireAt = fromNullNanos(previousExpireAt)
	src.CreatedAt, src.UpdatedAt = fromNanos(createdAt), fromNanos(updatedAt)
	return src, nil
}

// Source returns one source with its decrypted secrets. Secrets that do not
// decrypt with the store's key are an error wrapping hub.ErrDecrypt.
func (s *Store) Source(ctx context.Context, id string) (hub.Source, error) {
	src, err := s.scanSource(s.rdb.QueryRowContext(ctx, `SELECT `+sourceCols+` FROM sources WHERE id = ?`, id))
	if err != nil {
		return hub.Source{}, notFound("get source", err, fmt.Sprintf("source %q not found", id))
	}
	return src, nil
}

// Sources returns every source with its secrets, ordered by id.
func (s *Store) Sources(ctx context.Context) ([]hub.Source, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+sourceCols+` FROM sources ORDER BY id`)
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
