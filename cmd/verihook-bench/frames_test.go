package main

import (
	"context"
	"testing"
)

// TestCountFrames: the frames of the webhooks measured are found in the log
// and named, the messages' table and the deliveries' among them when each
// webhook is delivered, and not the deliveries' when none is.
func TestCountFrames(t *testing.T) {
	for _, tc := range []struct {
		concurrency int
		delivered   bool
	}{{1, true}, {8, false}} {
		f, err := countFrames(context.Background(), t.TempDir(), 20, 10, tc.concurrency)
		if err != nil {
			t.Fatal(err)
		}
		named := f.unmatched
		for _, n := range f.perBTree {
			named += n
		}
		if f.frames == 0 || named != f.frames || f.distinct == 0 || f.distinct > f.frames {
			t.Errorf("concurrency %d: %d frames, %d named, %d distinct pages", tc.concurrency, f.frames, named, f.distinct)
		}
		if f.pageSize != 512 || f.perBTree["messages"] == 0 || f.perBTree["events"] == 0 {
			t.Errorf("concurrency %d: page size %d, per B-tree %v", tc.concurrency, f.pageSize, f.perBTree)
		}
		if got := f.perBTree["attempts"] > 0; got != tc.delivered {
			t.Errorf("concurrency %d: attempts' frames %d, want some: %v", tc.concurrency, f.perBTree["attempts"], tc.delivered)
		}
	}
}
