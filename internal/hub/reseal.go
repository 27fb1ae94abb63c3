package hub

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// ResealResult is what Store.Reseal did to one batch of rows.
type ResealResult struct {
	// Resealed counts the values sealed again under the current key.
	Resealed int
	// Unreadable counts the values that none of the keys opens; they are
	// left as they are (and fail when read).
	Unreadable int
	// Next is the cursor after the rows read, to pass as after for the
	// next batch; "" when no row is left: the column is done.
	Next string
}

// ResealBatch is how many rows Reseal reads per call: small enough that a
// batch holds the SQLite writer for a few milliseconds only.
const ResealBatch = 200

// SplitSealedColumn returns the table and the column of one of
// SealedColumns, for stores that build their queries from it, and an error
// for any other name.
func SplitSealedColumn(column string) (table, col string, err error) {
	if !slices.Contains(SealedColumns, column) {
		return "", "", Errorf(EINVALID, "%q is not a sealed column (want one of %v)", column, SealedColumns)
	}
	table, col, _ = strings.Cut(column, ".")
	return table, col, nil
}

// ResealAll seals again under the store's current key every value that
// another key (or an older format) sealed, column by column, batch by
// batch; progress, when set, is told each batch's result with the column's
// running total. It is resumable and safe to run on several instances at
// once: what is left to do is read from the values themselves, and a value
// written meanwhile is never overwritten (see Store.Reseal).
func ResealAll(ctx context.Context, s Store, progress func(column string, total ResealResult)) (ResealResult, error) {
	var all ResealResult
	for _, column := range SealedColumns {
		var total ResealResult
		after := ""
		for {
			r, err := s.Reseal(ctx, column, after, ResealBatch)
			if err != nil {
				return all, fmt.Errorf("reseal %s: %w", column, err)
			}
			total.Resealed += r.Resealed
			total.Unreadable += r.Unreadable
			total.Next = r.Next
			if progress != nil && (r.Resealed > 0 || r.Unreadable > 0) {
				progress(column, total)
			}
			if r.Next == "" {
				break
			}
			after = r.Next
		}
		all.Resealed += total.Resealed
		all.Unreadable += total.Unreadable
	}
	return all, nil
}
