package sqlite

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite's page cache, pcache1, is installed with one change, in
// pcacheRekey: a page filed for a moment under the page number of the lock
// byte no longer leaves that number behind as the highest the cache holds.
//
// balance_nonroot puts the pages of a B-tree it rebalances in ascending
// order by swapping their numbers through a temporary one, that of the page
// holding the lock byte at 1 GiB (2,097,153 with 512-byte pages).
// pcache1Rekey records it as the cache's highest key (iMaxKey), and it stays
// so after the swap. The commit then truncates the cache to the database's
// end, and pcache1TruncateUnsafe, which scans the hash slots from the end up
// to the highest key, scans the whole hash table and every page in it when
// that gap is longer than the table. So while the database is under 1 GiB,
// every commit that swapped a page walked the writer's whole cache: 8 % of
// verihook's CPU at 1,000 webhooks/s (BENCHMARKS.md, "Issue 12, seventh
// pass"). The swap moves the page to its final number within
// balance_nonroot, before anything can truncate the cache, so putting the
// highest key back as it was leaves it what it would have been without the
// temporary number, and the truncation scans a few slots.
//
// SQLite takes a page cache only before it initializes itself (at the first
// connection, or the first VFS lookup), so init installs it. Should SQLite
// refuse, it keeps pcache1 unchanged, and Open logs pcacheErr.
var (
	pcacheBase    sqlite3.Tsqlite3_pcache_methods2 // pcache1's methods
	pcacheMethods sqlite3.Tsqlite3_pcache_methods2 // pcacheBase, with pcacheRekey
	pcacheErr     error
	pcacheKept    atomic.Int64 // swaps after which pcacheRekey put the highest key back, for tests
)

// pendingByte is the offset of SQLite's lock byte (PENDING_BYTE): 1 GiB,
// which only a test control of SQLite's changes.
const pendingByte = 1 << 30

func init() { pcacheErr = installPageCache() }

func installPageCache() error {
	tls := libc.NewTLS()
	defer tls.Close()
	va := libc.Xmalloc(tls, 8) // sqlite3_config's one variadic argument
	if va == 0 {
		return fmt.Errorf("sqlite: page cache: out of memory")
	}
	defer libc.Xfree(tls, va)
	config := func(op int32, m *sqlite3.Tsqlite3_pcache_methods2) int32 {
		return sqlite3.Xsqlite3_config(tls, op, libc.VaList(va, uintptr(unsafe.Pointer(m))))
	}
	if rc := config(sqlite3.SQLITE_CONFIG_GETPCACHE2, &pcacheBase); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("sqlite: page cache: read SQLite's: error %d", rc)
	}
	pcacheMethods = pcacheBase
	setFunc(&pcacheMethods.FxRekey, pcacheRekey)
	if rc := config(sqlite3.SQLITE_CONFIG_PCACHE2, &pcacheMethods); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("sqlite: page cache: install: error %d", rc)
	}
	return nil
}

// pcacheRekey is the page cache's xRekey: pcache1's, then, if the page went
// to the lock byte's page number above the highest key, the highest key put
// back (see pcacheMethods). SQLite calls a cache from one connection at a
// time, so nothing else reads the key in between.
func pcacheRekey(tls *libc.TLS, cache, page uintptr, oldKey, newKey uint32) {
	c := (*sqlite3.TPCache1)(cptr(cache))
	highest := c.FiMaxKey
	rekey := cfunc[func(*libc.TLS, uintptr, uintptr, uint32, uint32)](&pcacheBase.FxRekey)
	rekey(tls, cache, page, oldKey, newKey)
	if newKey > highest && c.FszPage > 0 && newKey == pendingByte/uint32(c.FszPage)+1 {
		c.FiMaxKey = highest
		pcacheKept.Add(1)
	}
}
