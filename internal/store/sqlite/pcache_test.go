package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// TestPageCacheRekey drives the installed page cache (pcache1 itself) as
// balance_nonroot does when it swaps two pages' numbers: after the swap the
// cache's highest key is what it was, not the lock byte's page number, and
// the pages are where the swap put them. A truncation below them still drops
// them, as it must when a transaction that grew the file rolls back.
func TestPageCacheRekey(t *testing.T) {
	if pcacheErr != nil {
		t.Fatal(pcacheErr)
	}
	tls := libc.NewTLS()
	defer tls.Close()
	if rc := sqlite3.Xsqlite3_initialize(tls); rc != sqlite3.SQLITE_OK {
		t.Fatalf("initialize: error %d", rc)
	}
	var (
		m        = &pcacheMethods
		create   = cfunc[func(*libc.TLS, int32, int32, int32) uintptr](&m.FxCreate)
		setSize  = cfunc[func(*libc.TLS, uintptr, int32)](&m.FxCachesize)
		fetch    = cfunc[func(*libc.TLS, uintptr, uint32, int32) uintptr](&m.FxFetch)
		unpin    = cfunc[func(*libc.TLS, uintptr, uintptr, int32)](&m.FxUnpin)
		rekey    = cfunc[func(*libc.TLS, uintptr, uintptr, uint32, uint32)](&m.FxRekey)
		truncate = cfunc[func(*libc.TLS, uintptr, uint32)](&m.FxTruncate)
		destroy  = cfunc[func(*libc.TLS, uintptr)](&m.FxDestroy)
	)
	const size = 512
	cache := create(tls, size, 64, 1)
	if cache == 0 {
		t.Fatal("create: out of memory")
	}
	defer destroy(tls, cache)
	setSize(tls, cache, 100)
	pages := map[uint32]uintptr{}
	for key := uint32(1); key <= 10; key++ {
		if pages[key] = fetch(tls, cache, key, 2); pages[key] == 0 {
			t.Fatalf("fetch %d: out of memory", key)
		}
	}
	kept := pcacheKept.Load()
	temp := uint32(pendingByte/size + 1)
	rekey(tls, cache, pages[9], 9, temp)
	rekey(tls, cache, pages[10], 10, 9)
	rekey(tls, cache, pages[9], temp, 10)
	if got := (*sqlite3.TPCache1)(cptr(cache)).FiMaxKey; got != 10 {
		t.Errorf("highest key after the swap = %d, want 10", got)
	}
	if got := pcacheKept.Load() - kept; got != 1 {
		t.Errorf("pcacheRekey put the highest key back %d times, want 1", got)
	}
	if fetch(tls, cache, 9, 0) != pages[10] || fetch(tls, cache, 10, 0) != pages[9] || fetch(tls, cache, temp, 0) != 0 {
		t.Error("the swap did not leave page 10 at 9 and page 9 at 10")
	}
	for _, p := range pages {
		unpin(tls, cache, p, 0)
	}
	truncate(tls, cache, 9) // drop 9 and up
	for key := uint32(1); key <= 10; key++ {
		if cached := fetch(tls, cache, key, 0) != 0; cached != (key < 9) {
			t.Errorf("page %d cached after truncating to 8: %v", key, cached)
		}
	}
}

// TestPageCacheSwaps: inserts at random into an index of a 512-byte-page
// database, a commit each, make SQLite swap pages through the installed
// cache, and every row and page is still right afterwards, in this
// connection and in a new one.
func TestPageCacheSwaps(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "swaps.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{`PRAGMA page_size = 512`, `PRAGMA journal_mode = WAL`,
		`CREATE TABLE t (id INTEGER PRIMARY KEY, k BLOB NOT NULL)`, `CREATE INDEX t_k ON t (k)`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	kept := pcacheKept.Load()
	const rows = 2000
	for range rows {
		if _, err := db.Exec(`INSERT INTO t (k) VALUES (randomblob(16))`); err != nil {
			t.Fatal(err)
		}
	}
	if pcacheKept.Load() == kept {
		t.Error("no swap went through pcacheRekey")
	}
	for _, d := range []*sql.DB{db, nil} {
		if d == nil {
			if d, err = sql.Open("sqlite", path); err != nil {
				t.Fatal(err)
			}
			defer d.Close()
		}
		var check string
		var n int
		if err := d.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
			t.Fatalf("integrity_check = %q, %v", check, err)
		}
		if err := d.QueryRow(`SELECT count(*) FROM t INDEXED BY t_k WHERE k IS NOT NULL`).Scan(&n); err != nil || n != rows {
			t.Fatalf("rows in the index = %d, %v; want %d", n, err, rows)
		}
	}
}
