// Package slots bounds the sends a worker has in flight. The delivery and
// dispatch workers claim due rows under a lease and send each in a
// goroutine of its own. A claimed row must never wait for a free goroutine
// while its lease runs out, so a worker takes its slots first (one, waiting
// for it; then as many more as are free) and claims only as many rows as it
// holds slots. It imports only the standard library.
package slots

import (
	"context"
	"sync"
)

// Slots is a fixed number of slots and the goroutines that hold them.
type Slots struct {
	c  chan struct{} // one token per slot taken
	wg sync.WaitGroup
}

// New returns n slots; fewer than one means one.
func New(n int) *Slots { return &Slots{c: make(chan struct{}, max(n, 1))} }

// Take waits for a free slot, then takes as many more as are free at once,
// up to limit in all. It returns how many it took: 0 when ctx ended first.
// The caller frees each one, by Put or by a goroutine of Go.
func (s *Slots) Take(ctx context.Context, limit int) int {
	select {
	case s.c <- struct{}{}:
	case <-ctx.Done():
		return 0
	}
	n := 1
	for n < limit {
		select {
		case s.c <- struct{}{}:
			n++
		default:
			return n
		}
	}
	return n
}

// Put frees n slots that were taken and are not used.
func (s *Slots) Put(n int) {
	for range n {
		<-s.c
	}
}

// Go runs f in a goroutine that holds one taken slot and frees it when f
// returns.
func (s *Slots) Go(f func()) {
	s.wg.Go(func() {
		defer func() { <-s.c }()
		f()
	})
}

// Wait waits until every goroutine started by Go has returned.
func (s *Slots) Wait() { s.wg.Wait() }
