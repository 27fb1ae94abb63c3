package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Progress reports how far a long operation has come: done of about total
// bytes (done may pass total a little: total is an estimate).
type Progress func(done, total int64)

// PageSize returns the page size of the database file at path.
func PageSize(ctx context.Context, path string) (int, error) {
	db, err := sql.Open("sqlite", path+"?"+dsn("_pragma=busy_timeout("+fmt.Sprint(busyTimeout.Milliseconds())+")",
		"_pragma=query_only(1)"))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&n); err != nil {
		return 0, fail("page size", err)
	}
	return n, nil
}

// Rebuild rewrites the database file at path with the page size verihook
// creates databases with (see pageSize) if it has another, and reports
// whether it did. It is `verihook migrate`'s last step: SQLite changes the
// page size of a database in WAL mode only by copying it whole, which takes
// minutes for millions of messages, so serve never does it by itself.
//
// Nothing else may have the database open: Rebuild leaves WAL mode for the
// copy, which SQLite allows only to the one connection to the file, and
// fails (EUNAVAILABLE) otherwise, changing nothing. It then holds a lock
// that keeps any other writer out while VACUUM INTO writes a compacted copy
// with the new page size next to the file (path + ".rebuild", mode 0600);
// progress, if not nil, is called as the copy starts and then about once a
// second with the bytes written so far and the estimated total. The copy is synced, put in WAL
// mode and renamed over path, so a crash at any point leaves either the old
// file or the new one, each whole (a leftover .rebuild file is removed by
// the next Rebuild). The copy needs as much free disk as the data in the
// file: Rebuild checks that first and refuses without it.
func Rebuild(ctx context.Context, path string, progress Progress) (bool, error) {
	if progress == nil {
		progress = func(int64, int64) {}
	}
	size, err := PageSize(ctx, path)
	if err != nil || size == pageSize {
		return false, err
	}
	db, err := sql.Open("sqlite", path+"?"+dsn("_pragma=busy_timeout("+fmt.Sprint(busyTimeout.Milliseconds())+")"))
	if err != nil {
		return false, fail("rebuild", err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx) // the pragmas below hold for this connection only
	if err != nil {
		return false, fail("rebuild", err)
	}
	defer conn.Close()
	// Leaving WAL mode checkpoints the log into the file and needs the only
	// connection to it: a running verihook makes it fail here. It must
	// happen before the rebuilt file takes path's name: closing this
	// connection in WAL mode would delete path's -wal file, by then the new
	// file's.
	var mode string
	if err := conn.QueryRowContext(ctx, `PRAGMA journal_mode = DELETE`).Scan(&mode); err != nil {
		return false, fail("rebuild: leave WAL mode (is verihook running? stop it first)", err)
	}
	if mode != "delete" {
		return false, fmt.Errorf("rebuild: the database is in use (journal mode stays %q): stop verihook first", mode)
	}
	// Back to WAL if the copy fails: Open would set it again anyway, but
	// `verihook token` and the other short-lived commands open it as they
	// find it.
	rebuilt := false
	defer func() {
		if !rebuilt {
			conn.ExecContext(context.Background(), `PRAGMA journal_mode = WAL`)
		}
	}()
	// A shared lock held from the first read to the end keeps writers out
	// while the copy is made and renamed.
	var (
		locking     string
		pages, free int64
	)
	for _, q := range []struct {
		sql string
		dst any
	}{{`PRAGMA locking_mode = EXCLUSIVE`, &locking}, {`PRAGMA page_count`, &pages}, {`PRAGMA freelist_count`, &free}} {
		if err := conn.QueryRowContext(ctx, q.sql).Scan(q.dst); err != nil {
			return false, fail("rebuild", err)
		}
	}
	total := (pages - free) * int64(size)

	tmp := path + ".rebuild"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("rebuild: %w", err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err == nil {
		if avail := int64(st.Bavail) * int64(st.Bsize); avail < total+total/10 {
			return false, fmt.Errorf("rebuild: the copy needs about %d MiB of free disk next to %s, and %d MiB are free",
				(total+total/10)>>20, path, avail>>20)
		}
	}
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false, fmt.Errorf("rebuild: %w", err)
	}
	f.Close()
	defer os.Remove(tmp) // nothing left to remove once renamed

	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA page_size = %d`, pageSize)); err != nil {
		return false, fail("rebuild", err)
	}
	progress(0, total)
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if fi, err := os.Stat(tmp); err == nil {
					progress(fi.Size(), total)
				}
			}
		}
	}()
	_, err = conn.ExecContext(ctx, `VACUUM INTO ?`, tmp)
	close(stop)
	<-watched
	if err != nil {
		return false, fail("rebuild: copy", err)
	}
	if fi, err := os.Stat(tmp); err == nil {
		progress(fi.Size(), total)
	}
	if err := finishCopy(ctx, tmp); err != nil {
		return false, fmt.Errorf("rebuild: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, fmt.Errorf("rebuild: %w", err)
	}
	rebuilt = true
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		err = d.Sync() // the rename itself
		d.Close()
		if err != nil {
			return true, fmt.Errorf("rebuild: sync directory: %w", err)
		}
	}
	return true, nil
}

// finishCopy puts the copy VACUUM INTO made in WAL mode, checks its page
// size, and syncs it to disk.
func finishCopy(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	var size int
	_, err = db.ExecContext(ctx, `PRAGMA journal_mode = WAL`)
	if err == nil {
		err = db.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&size)
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	if size != pageSize {
		return fmt.Errorf("copy has %d-byte pages, want %d", size, pageSize)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
