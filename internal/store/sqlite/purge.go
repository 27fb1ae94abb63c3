package sqlite

import (
	"context"
	"strings"

	"github.com/verihook/verihook/internal/hub"
)

// purgeChunk is how many rows one transaction of Purge changes, so that a
// purge of millions of rows never holds the writer for long.
const purgeChunk = 1000

// Purge removes the personal data that p names (see hub.Store and
// hub.Purge), one kind after another, purgeChunk rows at a time, each chunk
// its own write, and returns what it changed, also when it fails part way.
// Where a chunk needs the cipher (a preview to render, event data to
// redact), the rows are read and the new values made outside the writer,
// which then changes only the rows that are still unpurged.
func (s *Store) Purge(ctx context.Context, p hub.Purge) (hub.PurgeResult, error) {
	var res hub.PurgeResult
	if err := p.Check(storeTime); err != nil {
		return res, err
	}
	for ids := range chunks(p.Events) {
		n, _, err := s.redactEventsChunk(ctx, `id IN `+params(len(ids)), anys(ids)...)
		res.Events += n
		if err != nil {
			return res, err
		}
	}
	for ids := range chunks(p.Messages) {
		n, _, err := s.purgeBodies(ctx, `id IN `+params(len(ids)), anys(ids)...)
		res.Bodies += n
		if err != nil {
			return res, err
		}
		n, _, err = s.purgeBodyTable(ctx, purgeBodyTableIDsCond(len(ids)), anys(ids)...)
		res.Bodies += n
		if err != nil {
			return res, err
		}
	}
	if !p.OTPBefore.IsZero() {
		if err := untilDone(&res.Events, func() (int, int, error) {
			return s.redactEventsChunk(ctx, purgeOTPCond, toNanos(p.OTPBefore))
		}); err != nil {
			return res, err
		}
	}
	if !p.CountersBefore.IsZero() {
		if err := untilDone(&res.Counters, func() (int, int, error) {
			return s.purgeWrite(ctx, "purge counters", purgeCountersSQL, toNanos(p.CountersBefore))
		}); err != nil {
			return res, err
		}
	}
	if p.Before.IsZero() {
		return res, nil // nothing happened before the zero time
	}
	before := toNanos(p.Before)
	steps := []struct {
		n    *int
		step func() (changed, found int, err error)
	}{
		{&res.Bodies, func() (int, int, error) { return s.purgeBodies(ctx, purgeBeforeCond, before) }},
		{&res.Bodies, func() (int, int, error) { return s.purgeBodyTable(ctx, purgeBeforeCond, before) }},
		{&res.Events, func() (int, int, error) { return s.redactEventsChunk(ctx, `created_at < ?`, before) }},
		{&res.Attempts, func() (int, int, error) {
			return s.purgeWrite(ctx, "purge attempts", purgeAttemptsSQL, before)
		}},
		{&res.Rejections, func() (int, int, error) {
			return s.purgeWrite(ctx, "purge rejections", purgeRejectionsSQL, before)
		}},
	}
	for _, st := range steps {
		if err := untilDone(st.n, st.step); err != nil {
			return res, err
		}
	}
	return res, nil
}

// The queries of Purge that find what is left to purge, through an index of
// those rows alone (migration 0007): that of message_bodies, or a partial
// index, whose condition the query repeats, as SQLite uses a partial index
// only for a query whose WHERE clause contains it (TestPurgePlans).
const (
	// purgeBodiesSQL, purgeBodyTableSQL and purgeEventsSQL are followed by
	// a condition, then LIMIT ?.
	purgeBodiesSQL    = `SELECT ` + messageCols + ` FROM messages WHERE body IS NOT NULL AND `
	purgeBodyTableSQL = `SELECT seq, message_id FROM message_bodies WHERE `
	purgeBeforeCond   = `received_at < ?`
	purgeEventsSQL    = `SELECT ` + eventCols + ` FROM events WHERE purged_at IS NULL AND `
	purgeAttemptsSQL  = `UPDATE attempts SET response = '', error = '' WHERE seq IN (
		SELECT seq FROM attempts WHERE (response <> '' OR error <> '') AND at < ? LIMIT ?)`
	purgeRejectionsSQL = `UPDATE messages SET remote_addr = '' WHERE id IN (
		SELECT id FROM messages WHERE status = 'rejected' AND remote_addr <> '' AND received_at < ? LIMIT ?)`
	// The counters' primary key leads with the minute.
	purgeCountersSQL = `DELETE FROM stats WHERE (minute, name, key) IN (
		SELECT minute, name, key FROM stats WHERE minute < ? LIMIT ?)`
)

// purgeOTPCond selects the events of hub.OTPEventTypes created before a time.
var purgeOTPCond = `type IN ('` + strings.Join(hub.OTPEventTypes, "', '") + `') AND created_at < ?`

// purgeBodyTableIDsCond selects, for purgeBodyTableSQL, the bodies of n
// messages by id: by their messages' received_at and id, the key of
// message_bodies' only index.
func purgeBodyTableIDsCond(n int) string {
	return `(received_at, message_id) IN (SELECT received_at, id FROM messages WHERE id IN ` + params(n) + `)`
}

// params is a list of n SQL parameters, "(?, ?, …)".
func params(n int) string { return `(?` + strings.Repeat(", ?", n-1) + `)` }

// untilDone runs step, one chunk, adding what it changed to *n, until it
// finds less than a full chunk of rows to purge.
func untilDone(n *int, step func() (changed, found int, err error)) error {
	for {
		changed, found, err := step()
		*n += changed
		if err != nil || found < purgeChunk {
			return err
		}
	}
}

// chunks splits ids into lists of at most purgeChunk.
func chunks(ids []string) func(yield func([]string) bool) {
	return func(yield func([]string) bool) {
		for len(ids) > 0 {
			n := min(len(ids), purgeChunk)
			if !yield(ids[:n]) {
				return
			}
			ids = ids[n:]
		}
	}
}

func anys(ids []string) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// purgeWrite runs one chunk of a purge that needs nothing but SQL: stmt,
// with before and purgeChunk as its last arguments, in one write.
func (s *Store) purgeWrite(ctx context.Context, op, stmt string, before int64) (changed, found int, err error) {
	var n int64
	err = s.write(ctx, op, func(tx *wtx) error {
		res, err := tx.exec(stmt, before, purgeChunk)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, 0, err // n is fn's until fn has returned: read it only on success
	}
	return int(n), int(n), nil
}

// purgeBodies deletes the next chunk of the bodies stored in messages.body
// (before migration 0007) of messages that match cond, whose parameters are
// args. A message
// without a stored preview gets the one rendered from its body (see
// hub.Store): Ingest leaves the preview to be rendered on read, and a purged
// body can no longer be read.
func (s *Store) purgeBodies(ctx context.Context, cond string, args ...any) (changed, found int, err error) {
	msgs, err := readAll(ctx, s, "purge bodies", purgeBodiesSQL+cond+` LIMIT ?`, append(args, purgeChunk),
		func(r scanner) (hub.Message, error) { return s.scanMessage(r, false) })
	if err != nil || len(msgs) == 0 {
		return 0, 0, err
	}
	up := rowsStmt{stmt: `UPDATE messages SET body = NULL, preview = ? WHERE id = ? AND body IS NOT NULL`}
	for _, m := range msgs {
		up.args = append(up.args, []any{string(m.Preview), m.ID})
	}
	n, err := s.purgeRows(ctx, "purge bodies", up)
	return n, len(msgs), err
}

// purgeBodyTable deletes the next chunk of the bodies in message_bodies
// that match cond, whose parameters are args, and stores their messages'
// previews as purgeBodies does.
func (s *Store) purgeBodyTable(ctx context.Context, cond string, args ...any) (changed, found int, err error) {
	type body struct {
		seq int64
		id  string
	}
	bodies, err := readAll(ctx, s, "purge bodies", purgeBodyTableSQL+cond+` LIMIT ?`, append(args, purgeChunk),
		func(r scanner) (b body, err error) { return b, r.Scan(&b.seq, &b.id) })
	if err != nil || len(bodies) == 0 {
		return 0, 0, err
	}
	ids := make([]any, len(bodies))
	for i, b := range bodies {
		ids[i] = b.id
	}
	msgs, err := readAll(ctx, s, "purge bodies", `SELECT `+messageCols+` FROM messages
		WHERE id IN `+params(len(ids)), ids,
		func(r scanner) (hub.Message, error) { return s.scanMessage(r, false) })
	if err != nil {
		return 0, 0, err
	}
	previews := rowsStmt{stmt: `UPDATE messages SET preview = ? WHERE id = ? AND preview IS NULL`}
	for _, m := range msgs {
		previews.args = append(previews.args, []any{string(m.Preview), m.ID})
	}
	del := rowsStmt{stmt: `DELETE FROM message_bodies WHERE seq = ?`}
	for _, b := range bodies {
		del.args = append(del.args, []any{b.seq})
	}
	n, err := s.purgeRows(ctx, "purge bodies", previews, del)
	return n, len(bodies), err
}

// redactEventsChunk replaces by its redacted form (hub.Event.Redact) the
// data of the next chunk of unpurged events that match cond.
func (s *Store) redactEventsChunk(ctx context.Context, cond string, args ...any) (changed, found int, err error) {
	evs, err := readAll(ctx, s, "purge events", purgeEventsSQL+cond+` LIMIT ?`, append(args, purgeChunk), s.scanEvent)
	if err != nil || len(evs) == 0 {
		return 0, 0, err
	}
	now := toNanos(s.now())
	up := rowsStmt{stmt: `UPDATE events SET data = ?, purged_at = ? WHERE id = ? AND purged_at IS NULL`}
	for _, e := range evs {
		e.Redact()
		up.args = append(up.args, []any{s.cipher.Seal(e.Data, hub.SealedEventData, e.ID), now, e.ID})
	}
	n, err := s.purgeRows(ctx, "purge events", up)
	return n, len(evs), err
}

// rowsStmt is one statement of a purge's write and the arguments of each
// run of it, one run a row.
type rowsStmt struct {
	stmt string
	args [][]any
}

// purgeRows runs each statement for each of its rows, in one write, and
// returns how many rows the last one changed. The callers make the new
// values beforehand, outside the writer.
func (s *Store) purgeRows(ctx context.Context, op string, stmts ...rowsStmt) (int, error) {
	var changed int64
	err := s.write(ctx, op, func(tx *wtx) error {
		for _, st := range stmts {
			changed = 0
			p, err := tx.tx.PrepareContext(tx.ctx, st.stmt)
			if err != nil {
				return err
			}
			defer p.Close()
			for _, a := range st.args {
				res, err := p.ExecContext(tx.ctx, a...)
				if err != nil {
					return err
				}
				k, err := res.RowsAffected()
				if err != nil {
					return err
				}
				changed += k
			}
		}
		return nil
	})
	if err != nil {
		// write may return on ctx's end while fn still runs: changed is
		// fn's until write has returned nil.
		return 0, err
	}
	return int(changed), nil
}

// readAll runs a query on the read pool and scans every row.
func readAll[T any](ctx context.Context, s *Store, op, stmt string, args []any, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := s.rdb.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, fail(op, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fail(op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fail(op, err)
	}
	return out, nil
}
