package main

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/store/sqlite"
)

// TestCeilingStoresNothing drives the same signed payloads through verihook
// served in process and through the ceiling: both acknowledge every one as a
// fresh acceptance, and only verihook stores them.
func TestCeilingStoresNothing(t *testing.T) {
	ctx := context.Background()
	const n = 40
	for _, ceiling := range []bool{false, true} {
		dir := t.TempDir()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		stop, err := serveInProcess(ctx, ln, serverOpts{dataDir: dir, ceiling: ceiling})
		if err != nil {
			t.Fatal(err)
		}
		payloads, err := makePayloads(newRunID(), 0, n)
		if err != nil {
			t.Fatal(err)
		}
		res := drive(ctx, loadOpts{base: "http://" + ln.Addr().String(), conns: 4, duration: time.Minute, verihook: true}, payloads)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if res.OK != n || len(res.Errors) != 0 {
			t.Fatalf("ceiling %v: %d of %d acknowledged, errors %v", ceiling, res.OK, n, res.Errors)
		}

		key, err := ensureKey(dir)
		if err != nil {
			t.Fatal(err)
		}
		c, err := cipherFor(key)
		if err != nil {
			t.Fatal(err)
		}
		st, err := sqlite.Open(ctx, filepath.Join(dir, "verihook.db"), c)
		if err != nil {
			t.Fatal(err)
		}
		msgs, _, err := st.Messages(ctx, hub.MessageFilter{Page: hub.Page{Limit: 2 * n}})
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		want := n
		if ceiling {
			want = 0
		}
		if len(msgs) != want {
			t.Errorf("ceiling %v: %d messages stored, want %d", ceiling, len(msgs), want)
		}
	}
}
