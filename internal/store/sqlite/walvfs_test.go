package sqlite

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWALVFS writes through walVFS as the writer does, but with
// synchronous=NORMAL, where a commit does not sync the log. Each commit
// writes its frames in at most a call per four frames (a call per 4 KiB of
// the file, 7 frames of 512 bytes), not two per frame, and a connection of
// SQLite's own VFS reads every commit as soon as it returned. Then, with a
// page cache of 10 pages, each transaction spills frames to the log,
// rewrites them in place and rewrites their checksums after its commit
// frame; a reader still reads every commit, and a copy of the database and
// its log taken before any checkpoint recovers every commit, which it would
// not if a frame or a checksum had stayed behind in the buffer.
//
// Not parallel: walWrites counts the writes of every walVFS file.
func TestWALVFS(t *testing.T) {
	if err := registerWALVFS(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "wal.db")
	w, err := sql.Open("sqlite", path+"?"+dsn("vfs="+walVFS, "_pragma=synchronous(NORMAL)", "_pragma=wal_autocheckpoint(0)"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, q := range []string{`PRAGMA page_size = 512`, `PRAGMA journal_mode = WAL`, `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`} {
		if _, err := w.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var page int64
	if err := w.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&page); err != nil {
		t.Fatal(err)
	}
	v := strings.Repeat("x", 300) // a row a page
	const commits, rows = 10, 200
	for c := range commits {
		spill := c >= commits/2
		if spill && c == commits/2 {
			if _, err := w.ExecContext(ctx, `PRAGMA cache_size = 10`); err != nil {
				t.Fatal(err)
			}
		}
		before, size := walWrites.Load(), walSize(t, path)
		tx, err := w.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			if _, err := tx.ExecContext(ctx, `INSERT INTO t (id, v) VALUES (?, ?)`, c*rows+i, v); err != nil {
				t.Fatal(err)
			}
		}
		// Once the cache is small, pages it spilled already change again.
		if _, err := tx.ExecContext(ctx, `UPDATE t SET v = upper(v) WHERE id >= ?`, c*rows); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		frames := (walSize(t, path) - size) / (page + walFrameHeader)
		if writes := walWrites.Load() - before; !spill && (frames < 50 || writes > frames/4) {
			t.Errorf("commit %d: %d writes for %d frames, want at least 50 frames in at most a quarter as many writes", c, writes, frames)
		}
		var n int
		var got string
		if err := r.QueryRowContext(ctx, `SELECT count(*), min(v) FROM t`).Scan(&n, &got); err != nil {
			t.Fatal(err)
		}
		if want := (c + 1) * rows; n != want || got != strings.ToUpper(v) {
			t.Fatalf("after commit %d, a reader finds %d rows (min %.5q…), want %d (%.5q…)", c, n, got, want, strings.ToUpper(v))
		}
	}

	copyDir := t.TempDir()
	for _, name := range []string{"wal.db", "wal.db-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(copyDir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := sql.Open("sqlite", filepath.Join(copyDir, "wal.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var n, upper int
	if err := c.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE v = upper(v)) FROM t`).Scan(&n, &upper); err != nil {
		t.Fatal(err)
	}
	if n != commits*rows || upper != n {
		t.Errorf("the copy recovers %d rows, %d of them updated; want %d, all updated", n, upper, commits*rows)
	}
	var check string
	if err := c.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("the copy's integrity_check = %q, %v", check, err)
	}
}

func walSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path + "-wal")
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
