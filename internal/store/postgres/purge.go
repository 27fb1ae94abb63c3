package postgres

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/verihook/verihook/internal/hub"
)

// purgeChunk is how many rows one transaction of Purge changes, so that a
// purge of millions of rows never holds a transaction (and vacuum's horizon)
// open for long.
const purgeChunk = 1000

// Purge removes the personal data that p names (see hub.Store and
// hub.Purge), one kind after another, in chunks of purgeChunk rows, each
// its own transaction, and returns what it changed, also when it fails part
// way.
//
// Only one instance purges by time at once: each chunk's transaction first
// takes the purge advisory lock with pg_try_advisory_xact_lock, which never
// waits. When another instance holds it, Purge returns at once with what it
// has done so far and a nil error: the other instance is doing the same
// work, and the next periodic run will find what is left. The events and
// messages p names by id are purged without the lock.
func (s *Store) Purge(ctx context.Context, p hub.Purge) (hub.PurgeResult, error) {
	var res hub.PurgeResult
	if err := p.Check(storeTime); err != nil {
		return res, err
	}
	if s.closed.Load() {
		return res, fmt.Errorf("purge: %w", errClosed)
	}
	chunk := cmp.Or(s.purgeChunk, purgeChunk)
	// What p names by id, chunk ids a transaction.
	for _, byID := range []struct {
		ids  []string
		n    *int
		op   string
		work func(tx pgx.Tx, ids []string) (changed, found int, err error)
	}{
		{p.Events, &res.Events, "purge events", func(tx pgx.Tx, ids []string) (int, int, error) {
			return s.redactEvents(ctx, tx, `id = ANY($1)`, ids, chunk)
		}},
		{p.Messages, &res.Bodies, "purge bodies", func(tx pgx.Tx, ids []string) (int, int, error) {
			return s.purgeBodies(ctx, tx, `id = ANY($1)`, ids, chunk)
		}},
	} {
		for start := 0; start < len(byID.ids); start += chunk {
			ids := cleanAll(byID.ids[start:min(start+chunk, len(byID.ids))])
			var n int
			err := s.inTx(ctx, byID.op, func(tx pgx.Tx) error {
				var err error
				n, _, err = byID.work(tx, ids)
				return err
			})
			if err != nil {
				return res, err
			}
			*byID.n += n
		}
	}

	type step struct {
		n    *int
		op   string
		work func(tx pgx.Tx) (changed, found int, err error)
	}
	var steps []step
	if !p.OTPBefore.IsZero() {
		steps = append(steps, step{&res.Events, "purge events", func(tx pgx.Tx) (int, int, error) {
			return s.redactEvents(ctx, tx, `type IN (`+otpTypes+`) AND created_at < $1`, tsCeil(p.OTPBefore), chunk)
		}})
	}
	// sqlStep runs stmt, with before and chunk as $1 and $2, on one chunk.
	sqlStep := func(stmt string, before time.Time) func(tx pgx.Tx) (int, int, error) {
		return func(tx pgx.Tx) (int, int, error) {
			tag, err := tx.Exec(ctx, stmt, before, chunk)
			return int(tag.RowsAffected()), int(tag.RowsAffected()), err
		}
	}
	if !p.CountersBefore.IsZero() {
		// The counters' primary key leads with the minute.
		steps = append(steps, step{&res.Counters, "purge counters", sqlStep(`DELETE FROM stats
			WHERE (minute, name, key, shard) IN (SELECT minute, name, key, shard FROM stats WHERE minute < $1 LIMIT $2)`,
			tsCeil(p.CountersBefore))})
	}
	if before := tsCeil(p.Before); !p.Before.IsZero() {
		steps = append(steps,
			step{&res.Bodies, "purge bodies", func(tx pgx.Tx) (int, int, error) {
				return s.purgeBodies(ctx, tx, `received_at < $1`, before, chunk)
			}},
			step{&res.Events, "purge events", func(tx pgx.Tx) (int, int, error) {
				return s.redactEvents(ctx, tx, `created_at < $1`, before, chunk)
			}},
			step{&res.Attempts, "purge attempts", sqlStep(`UPDATE attempts SET response = '', error = ''
				WHERE seq IN (SELECT seq FROM attempts WHERE (response <> '' OR error <> '') AND at < $1 LIMIT $2)`, before)},
			step{&res.Rejections, "purge rejections", sqlStep(`UPDATE messages SET remote_addr = ''
				WHERE id IN (SELECT id FROM messages
					WHERE status = 'rejected' AND remote_addr <> '' AND received_at < $1 LIMIT $2)`, before)},
		)
	}
	for _, st := range steps {
		for {
			var (
				changed, found int
				locked         bool
			)
			err := s.inTx(ctx, st.op, func(tx pgx.Tx) error {
				changed, found = 0, 0
				if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1, hashtext(current_schema()))`,
					lockPurge).Scan(&locked); err != nil || !locked {
					return err
				}
				var err error
				changed, found, err = st.work(tx)
				return err
			})
			if err != nil {
				return res, err
			}
			*st.n += changed
			if !locked {
				return res, nil
			}
			if found < chunk {
				break
			}
		}
	}
	return res, nil
}

// otpTypes is hub.OTPEventTypes as a list of SQL strings.
var otpTypes = "'" + strings.Join(hub.OTPEventTypes, "', '") + "'"

// purgeBodies deletes the bodies of the next chunk of messages that match
// cond, whose one parameter is arg. A message without a stored preview gets
// the one rendered from its body (see hub.Store): Ingest leaves the preview
// to be rendered on read, and a purged body can no longer be read.
func (s *Store) purgeBodies(ctx context.Context, tx pgx.Tx, cond string, arg any, chunk int) (changed, found int, err error) {
	rows, err := tx.Query(ctx, `SELECT `+messageCols+` FROM messages
		WHERE body IS NOT NULL AND `+cond+` LIMIT $2 FOR UPDATE`, arg, chunk)
	if err != nil {
		return 0, 0, err
	}
	var ids, previews []string
	for rows.Next() {
		m, err := s.scanMessage(rows, false)
		if err != nil {
			rows.Close()
			return 0, 0, err
		}
		ids, previews = append(ids, m.ID), append(previews, string(m.Preview))
	}
	if err := rows.Err(); err != nil || len(ids) == 0 {
		return 0, 0, err
	}
	tag, err := tx.Exec(ctx, `UPDATE messages m SET body = NULL, preview = u.preview::json
		FROM unnest($1::text[], $2::text[]) AS u (id, preview) WHERE m.id = u.id`, ids, previews)
	return int(tag.RowsAffected()), len(ids), err
}

// redactEvents replaces by its redacted form (hub.Event.Redact) the data of
// the next chunk of unpurged events that match cond, whose one parameter is
// arg.
func (s *Store) redactEvents(ctx context.Context, tx pgx.Tx, cond string, arg any, chunk int) (changed, found int, err error) {
	// purged_at IS NULL: the condition of the partial indexes that hold the
	// events still to purge (migration 0004).
	rows, err := tx.Query(ctx, `SELECT `+eventCols+` FROM events
		WHERE purged_at IS NULL AND `+cond+` LIMIT $2 FOR UPDATE`, arg, chunk)
	if err != nil {
		return 0, 0, err
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (hub.Event, error) { return s.scanEvent(r) })
	if err != nil || len(evs) == 0 {
		return 0, 0, err
	}
	ids, data := make([]string, len(evs)), make([][]byte, len(evs))
	for i, e := range evs {
		e.Redact()
		ids[i], data[i] = e.ID, s.cipher.Seal(e.Data, hub.SealedEventData, e.ID)
	}
	tag, err := tx.Exec(ctx, `UPDATE events e SET data = u.data, purged_at = $3
		FROM unnest($1::text[], $2::bytea[]) AS u (id, data) WHERE e.id = u.id`, ids, data, ts(s.now()))
	return int(tag.RowsAffected()), len(evs), err
}
