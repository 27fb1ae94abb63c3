package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/verihook/verihook/internal/hub"
)

// Reseal seals values again under the current key (see hub.Store). Each row
// is written only if it still holds the value read, so instances resealing
// at once, or writing the same rows, never overwrite one another.
func (s *Store) Reseal(ctx context.Context, column, after string, limit int) (hub.ResealResult, error) {
	var res hub.ResealResult
	table, col, err := hub.SplitSealedColumn(column)
	if err != nil {
		return res, err
	}
	prefixes := s.cipher.SealedPrefixes() // all of one length
	// The names come from hub.SealedColumns, never from input.
	rows, err := s.pool.Query(ctx, `SELECT id, `+col+` FROM `+table+`
		WHERE id > $1 AND `+col+` IS NOT NULL AND substring(`+col+` from 1 for $2) <> ALL($3)
		ORDER BY id LIMIT $4`, after, len(prefixes[0]), prefixes, limit)
	if err != nil {
		return res, fail("reseal", err)
	}
	type change struct {
		id       string
		old, new []byte
	}
	var changes []change
	n := 0
	for rows.Next() {
		var c change
		if err := rows.Scan(&c.id, &c.old); err != nil {
			rows.Close()
			return res, fail("reseal", err)
		}
		n++
		res.Next = c.id
		if c.new, err = s.cipher.Reseal(c.old, column, c.id); errors.Is(err, hub.ErrDecrypt) {
			res.Unreadable++
			continue
		}
		changes = append(changes, c)
	}
	if err := rows.Err(); err != nil {
		return res, fail("reseal", err)
	}
	if n < limit {
		res.Next = ""
	}
	if len(changes) == 0 {
		return res, nil
	}
	err = s.inTx(ctx, "reseal", func(tx pgx.Tx) error {
		var b pgx.Batch
		for _, c := range changes {
			b.Queue(`UPDATE `+table+` SET `+col+` = $1 WHERE id = $2 AND `+col+` = $3`, c.new, c.id, c.old)
		}
		br := tx.SendBatch(ctx, &b)
		res.Resealed = 0
		for range changes {
			tag, err := br.Exec()
			if err != nil {
				br.Close()
				return err
			}
			res.Resealed += int(tag.RowsAffected())
		}
		return br.Close()
	})
	return res, err
}
