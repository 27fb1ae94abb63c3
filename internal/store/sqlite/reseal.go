package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/verihook/verihook/internal/hub"
)

// sealedPlace is a table column that holds values of one hub sealed
// column: cursor orders its rows (and is indexed), row gives the row id the
// values are bound to.
type sealedPlace struct{ table, column, cursor, row string }

// sealedPlaces returns where the values of a hub sealed column are. A
// message's body is in message_bodies, or still in messages.body when it
// was stored before migration 0007.
func sealedPlaces(column string) ([]sealedPlace, error) {
	table, col, err := hub.SplitSealedColumn(column)
	if err != nil {
		return nil, err
	}
	if column == hub.SealedMessageBody {
		return []sealedPlace{{"message_bodies", "body", "seq", "message_id"}, {"messages", "body", "id", "id"}}, nil
	}
	return []sealedPlace{{table, col, "id", "id"}}, nil
}

// Reseal seals values again under the current key (see hub.Store). The
// rows are read on the read pool, then written by the writer, each only if
// it still holds the value read. The cursor is the index of the place
// (sealedPlaces) and the last cursor value read there.
func (s *Store) Reseal(ctx context.Context, column, after string, limit int) (hub.ResealResult, error) {
	var res hub.ResealResult
	places, err := sealedPlaces(column)
	if err != nil {
		return res, err
	}
	i, last := 0, ""
	if after != "" {
		n, v, _ := strings.Cut(after, ":")
		if i, err = strconv.Atoi(n); err != nil || i < 0 || i >= len(places) {
			return res, hub.Errorf(hub.EINVALID, "bad reseal cursor %q", after)
		}
		last = v
	}
	p := places[i]
	start := any(last)
	if p.cursor == "seq" {
		start, _ = strconv.ParseInt(last, 10, 64) // "" is 0: before the first
	}
	prefixes := s.cipher.SealedPrefixes() // all of one length
	args := []any{start, len(prefixes[0])}
	for _, p := range prefixes {
		args = append(args, p)
	}
	// The names come from sealedPlaces, never from input.
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+p.cursor+`, `+p.row+`, `+p.column+` FROM `+p.table+`
		WHERE `+p.cursor+` > ? AND `+p.column+` IS NOT NULL
		AND substr(`+p.column+`, 1, ?) NOT IN (?`+strings.Repeat(", ?", len(prefixes)-1)+`)
		ORDER BY `+p.cursor+` LIMIT ?`, append(args, limit)...)
	if err != nil {
		return res, fail("reseal", err)
	}
	type change struct {
		cursor   any
		old, new []byte
	}
	var changes []change
	n := 0
	for rows.Next() {
		var c change
		var row string
		if err := rows.Scan(&c.cursor, &row, &c.old); err != nil {
			rows.Close()
			return res, fail("reseal", err)
		}
		n++
		res.Next = fmt.Sprintf("%d:%v", i, c.cursor)
		if c.new, err = s.cipher.Reseal(c.old, column, row); errors.Is(err, hub.ErrDecrypt) {
			res.Unreadable++
			continue
		}
		changes = append(changes, c)
	}
	if err := rows.Err(); err != nil {
		return res, fail("reseal", err)
	}
	if n < limit { // this place is done: the next one, if any
		res.Next = ""
		if i+1 < len(places) {
			res.Next = fmt.Sprintf("%d:", i+1)
		}
	}
	if len(changes) == 0 {
		return res, nil
	}
	var resealed int // written by the writer goroutine
	err = s.write(ctx, "reseal", func(tx *wtx) error {
		resealed = 0
		for _, c := range changes {
			r, err := tx.exec(`UPDATE `+p.table+` SET `+p.column+` = ? WHERE `+p.cursor+` = ? AND `+p.column+` = ?`, c.new, c.cursor, c.old)
			if err != nil {
				return err
			}
			k, _ := r.RowsAffected()
			resealed += int(k)
		}
		return nil
	})
	if err != nil {
		// write may return (ctx done) while the writer still runs fn:
		// resealed is read only once write has seen fn end.
		return hub.ResealResult{}, err
	}
	res.Resealed = resealed
	return res, nil
}
