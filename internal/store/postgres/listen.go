package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// ListenDeliveries tells this instance when any instance has created
// deliveries, so that its delivery worker claims them within milliseconds
// rather than at its next poll. It holds a connection of its own (outside
// the pool) that LISTENs on the verihook_deliveries channel, on which
// Ingest NOTIFYs at commit, and calls wake on every notification for this
// store's schema. wake must not block (delivery.Worker.Wake does not).
//
// A notification sent by one of this store's own connections wakes
// nothing: in this process, whoever created the deliveries wakes its
// workers once it has committed (ingest.Service's Wake and WakeDispatch,
// the API's Wake, the dispatcher's OnEnded), and the same commit's NOTIFY,
// heard a moment later, made the worker claim a second time and the
// dispatcher claim at all, mostly finding nothing: at 500/s end to end,
// 1.8 delivery claims and one dispatch claim per webhook. Other instances
// still wake it, as do other processes on this one. Should a process id be
// missed or taken for one of the pool's (a pooler between verihook and the
// server reports ids of its own), a worker claims once more than it needs,
// or finds the deliveries at its next poll.
//
// NOTIFY reaches only sessions that are listening when it is sent, so wake
// is also called each time the connection starts listening (at the start
// and after every reconnection): deliveries created meanwhile are then
// claimed at once. When the connection fails, ListenDeliveries logs it and
// connects again, after a pause that doubles from 100 ms up to 30 s while
// connecting fails. A connection that has heard nothing for 30 s is pinged,
// so that one lost without a word (a network partition) is noticed.
//
// It returns nil when ctx ends or the store is closed; until then it runs.
func (s *Store) ListenDeliveries(ctx context.Context, wake func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	const minBackoff, maxBackoff = 100 * time.Millisecond, 30 * time.Second
	backoff := minBackoff
	for {
		listened, err := s.listen(ctx, wake)
		if ctx.Err() != nil {
			return nil
		}
		if listened {
			backoff = minBackoff
		}
		s.log.Warn("listen for deliveries: connection lost, reconnecting", "error", err, "after", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// listenIdle is how long listen waits for a notification before it checks
// that its connection is alive.
const listenIdle = 30 * time.Second

// listen connects, LISTENs and wakes until the connection fails or ctx
// ends. listened reports whether it got as far as listening.
func (s *Store) listen(ctx context.Context, wake func()) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, s.listenConfig.Copy())
	if err != nil {
		return false, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	var schema string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return false, err
	}
	if _, err := conn.Exec(ctx, `LISTEN `+notifyChannel); err != nil {
		return false, err
	}
	wake()
	for {
		wctx, wcancel := context.WithTimeout(ctx, listenIdle)
		n, err := conn.WaitForNotification(wctx)
		idle := wctx.Err() != nil
		wcancel()
		switch {
		case err == nil:
			// Other schemas of the same database (other deployments, other
			// tests) share the channel.
			if n.Payload == schema && !s.own.has(n.PID) {
				wake()
			}
		case ctx.Err() != nil:
			return true, ctx.Err()
		case idle:
			pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil {
				return true, err
			}
		default:
			return true, err
		}
	}
}

// backends is the set of server process ids of a pool's connections: a
// notification carries the id of the process that sent it.
type backends struct {
	mu   sync.Mutex
	pids map[uint32]bool
}

func (b *backends) add(pid uint32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pids == nil {
		b.pids = map[uint32]bool{}
	}
	b.pids[pid] = true
}

func (b *backends) remove(pid uint32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.pids, pid)
}

func (b *backends) has(pid uint32) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pids[pid]
}
