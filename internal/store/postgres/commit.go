package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// maxGroup is the most ingests committed in one transaction. Each runs in a
// subtransaction (its savepoint) that keeps an xid of its own until commit,
// and PostgreSQL caches 64 of them per backend: past that, every other
// session's snapshots must look subtransactions up on disk (pg_subtrans).
const maxGroup = 64

// committers is how many group transactions a store runs at once. One would
// leave the server idle while it flushes a group's commit; two let one group
// execute while the other's WAL is flushed. More add lock waits between the
// groups (and, when two groups lock the same verifications in opposite
// orders, a deadlock that PostgreSQL breaks after deadlock_timeout).
const committers = 2

// groups gathers concurrent calls into groups, each run by a committer
// in one transaction: the calls share its commit and its WAL flush, as
// SQLite's writer's do. A committer takes a job, then every other one
// already waiting (up to max), and runs them; while it commits, new jobs
// wait for it or another committer and form the next group: the busier the
// store, the larger the groups, with no timer and no added latency when it
// is idle.
type groups[J any] struct {
	ch     chan J
	mu     sync.RWMutex // held by submit to send, by stop to close ch
	closed bool
	wg     sync.WaitGroup
	// queued counts the jobs submitted and not yet answered.
	queued atomic.Int64
}

// start starts n committers, each running its groups of at most max jobs
// with run, which must answer every job of the group.
func (g *groups[J]) start(n, max int, run func([]J)) {
	g.ch = make(chan J)
	for range n {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			group := make([]J, 0, max)
			for j := range g.ch {
				group = append(group[:0], j)
			more:
				for len(group) < max {
					select {
					case j, ok := <-g.ch:
						if !ok {
							break more
						}
						group = append(group, j)
					default:
						break more
					}
				}
				run(group)
				clear(group)
			}
		}()
	}
}

// submit hands j to a committer and waits until done is closed. If ctx
// ends first, submit returns ctx's error; j may still run and commit (then
// it is as durable as any other), or be skipped if run sees the
// cancellation before starting it.
func (g *groups[J]) submit(ctx context.Context, j J, done <-chan struct{}) error {
	g.queued.Add(1)
	defer g.queued.Add(-1)
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return errClosed
	}
	select {
	case g.ch <- j:
		g.mu.RUnlock()
	case <-ctx.Done():
		g.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop lets the committers finish the groups queued and waits for them to
// exit; submit refuses jobs from then on.
func (g *groups[J]) stop() {
	g.mu.Lock()
	g.closed = true
	close(g.ch)
	g.mu.Unlock()
	g.wg.Wait()
}

// ingestJob is one Ingest waiting for a committer.
type ingestJob struct {
	ctx  context.Context
	r    *ingestReq
	res  hub.IngestResult
	err  error
	done chan struct{} // closed once res and err are final
}

// submit hands r to a committer and waits until the transaction that ran it
// has committed, or r or the transaction failed (see groups.submit).
func (s *Store) submit(ctx context.Context, r *ingestReq) (hub.IngestResult, error) {
	j := &ingestJob{ctx: ctx, r: r, done: make(chan struct{})}
	if err := s.ingests.submit(ctx, j, j.done); err != nil {
		return hub.IngestResult{}, err
	}
	return j.res, j.err
}

// startCommitters starts the goroutines that run the queued ingests and
// attempts.
func (s *Store) startCommitters() {
	s.ingests.start(committers, maxGroup, func(group []*ingestJob) {
		s.commitGroup(group)
		for _, j := range group {
			close(j.done)
		}
	})
	s.attempts.start(1, maxGroup, s.commitAttempts)
}

// stopCommitters answers every queued ingest and attempt and waits for the
// committers to exit.
func (s *Store) stopCommitters() {
	s.ingests.stop()
	s.attempts.stop()
}

// commitGroup runs a group in one transaction and sets each ingest's result.
//
// The group runs in waves (see runWave), each of ingests that lock no
// verification in common, two round trips per wave however large: a group
// of unrelated webhooks is one wave. Should anything fail, the transaction
// is rolled back and the group run again, each ingest under a savepoint of
// its own: one that fails (or is a duplicate, which must change nothing) is
// rolled back alone and gets its own error, and the others commit.
//
// Each ingest locks its verifications in key order, as when each had its
// own transaction, but a group holds the locks of all its ingests until it
// commits, so two groups (on one instance or two) may deadlock where two
// single ingests could not: PostgreSQL aborts one, and that group, rolled
// back whole, is run again from the start, each ingest once, up to
// maxTxAttempts times. If the transaction itself fails, every ingest that
// did not fail on its own gets that error: nothing of the group is
// acknowledged.
func (s *Store) commitGroup(group []*ingestJob) {
	// The statements run under a context that is never canceled: pgx
	// closes a connection whose query's context ends, which would throw
	// the whole group away. An ingest whose context has ended before its
	// turn is skipped instead.
	ctx := context.Background()
	var err error
	alone := false
	for attempt := 1; ; attempt++ {
		if !alone {
			err = s.runGroup(ctx, group)
			if err != nil && !retryable(err) {
				s.alone.Add(1)
				alone = true // and again at once, each under its savepoint
				attempt--
				continue
			}
		} else {
			err = s.runAlone(ctx, group)
		}
		if err == nil || attempt >= maxTxAttempts || !retryable(err) {
			break
		}
		// A short random pause, so that the groups that collided do not
		// collide again in lockstep.
		time.Sleep(time.Duration(attempt) * time.Duration(1+rand.IntN(5)) * time.Millisecond)
	}
	if err != nil {
		for _, j := range group {
			if j.err == nil {
				j.res, j.err = hub.IngestResult{}, err
			}
		}
	}
}

// runGroup runs the group's ingests in waves, without savepoints, in one
// transaction and commits it; any error fails the transaction.
func (s *Store) runGroup(ctx context.Context, group []*ingestJob) error {
	var runs []*ingestRun
	for _, j := range group {
		j.res, j.err = hub.IngestResult{}, j.ctx.Err()
		if j.err == nil {
			runs = append(runs, newIngestRun(j.r, s.now()))
		}
	}
	if len(runs) == 0 {
		return nil
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) // after Commit, a no-op
	for _, wave := range waves(runs) {
		if err := protect(func() error { return s.runWave(ctx, tx, wave, false) }); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	s.groups.Add(1)
	s.grouped.Add(int64(len(runs)))
	i := 0
	for _, j := range group {
		if j.err == nil {
			j.res = runs[i].res
			i++
		}
	}
	return nil
}

// waves splits runs, in order, into waves in which no two lock the same
// verification: a run reads its verifications in a wave's first round trip
// and writes them in its second, so a run that reads what an earlier one
// writes starts the next wave.
func waves(runs []*ingestRun) [][]*ingestRun {
	var out [][]*ingestRun
	start := 0
	locked := map[hub.VerificationKey]bool{}
	for i, w := range runs {
		ks := w.locks()
		if slices.ContainsFunc(ks, func(k hub.VerificationKey) bool { return locked[k] }) {
			out = append(out, runs[start:i])
			start = i
			clear(locked)
		}
		for _, k := range ks {
			locked[k] = true
		}
	}
	return append(out, runs[start:])
}

// runAlone runs the group's ingests one after the other, each under its own
// savepoint, in one transaction and commits it. It returns the error that
// failed the transaction as a whole; an ingest's own failure is its job's
// err, its work rolled back to its savepoint.
func (s *Store) runAlone(ctx context.Context, group []*ingestJob) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) // after Commit, a no-op
	ok := 0
	for _, j := range group {
		j.res, j.err = hub.IngestResult{}, j.ctx.Err()
		if j.err != nil {
			continue
		}
		w := newIngestRun(j.r, s.now())
		err := protect(func() error { return s.runWave(ctx, tx, []*ingestRun{w}, true) })
		if err == nil {
			j.res = w.res
			ok++
			continue
		}
		if retryable(err) {
			return err
		}
		if errors.Is(err, errDuplicate) {
			j.res = w.res
		} else {
			j.err = err
		}
		if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT request; RELEASE SAVEPOINT request`); err != nil {
			return fmt.Errorf("rollback to savepoint: %w", err)
		}
	}
	if ok == 0 {
		return nil // the deferred rollback ends it
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	s.groups.Add(1)
	s.grouped.Add(int64(ok))
	return nil
}

// protect calls fn, turning a panic into an error so that one bad ingest
// cannot take the committer, and every other ingest, down with it.
func protect(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in ingest: %v", p)
		}
	}()
	return fn()
}
