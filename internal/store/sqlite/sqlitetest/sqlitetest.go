// Package sqlitetest opens real SQLite stores for the tests of the packages
// that run on one: a fresh database in the test's temporary directory, under
// a random key, closed when the test ends.
package sqlitetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/store/sqlite"
)

// Open returns a new store on a fresh database file, sealed with a random
// key; it fails the test if the store cannot be opened.
func Open(t testing.TB) *sqlite.Store {
	t.Helper()
	key := make([]byte, hub.KeySize)
	rand.Read(key)
	c, err := hub.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "verihook.db"), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// CreateOld creates the database file path (which must not exist) empty, as
// verihook created its files before it used smaller pages: 4 KiB pages, WAL
// mode. Open then applies every migration to it and keeps its page size
// until `verihook migrate` rebuilds it.
func CreateOld(t testing.TB, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`PRAGMA page_size = 4096; PRAGMA journal_mode = WAL`); err != nil {
		t.Fatal(err)
	}
}
