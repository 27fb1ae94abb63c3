package slots

import (
	"context"
	"sync/atomic"
	"testing"
)

// TestTake: the first slot is waited for, the others taken only when free,
// never more than limit or than there are, and none once ctx is done; Put
// and the end of a Go goroutine free them.
func TestTake(t *testing.T) {
	t.Parallel()
	s := New(4)
	if n := s.Take(context.Background(), 3); n != 3 {
		t.Fatalf("Take(3) of 4 free = %d, want 3", n)
	}
	if n := s.Take(context.Background(), 10); n != 1 {
		t.Fatalf("Take(10) with 1 free = %d, want 1", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n := s.Take(ctx, 1); n != 0 {
		t.Fatalf("Take with none free and ctx done = %d, want 0", n)
	}
	release := make(chan struct{})
	var ran atomic.Int64
	for range 2 {
		s.Go(func() { <-release; ran.Add(1) })
	}
	s.Put(2)
	if n := s.Take(context.Background(), 10); n != 2 {
		t.Fatalf("Take(10) with 2 put back = %d, want 2", n)
	}
	s.Put(2)
	close(release)
	s.Wait()
	if ran.Load() != 2 {
		t.Fatalf("%d goroutines ran, want 2", ran.Load())
	}
	if n := s.Take(context.Background(), 10); n != 4 {
		t.Fatalf("Take(10) once the goroutines ended = %d, want all 4", n)
	}
}

func TestNewAtLeastOne(t *testing.T) {
	t.Parallel()
	if n := New(0).Take(context.Background(), 5); n != 1 {
		t.Fatalf("New(0) gave %d slots, want 1", n)
	}
}
