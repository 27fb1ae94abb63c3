// Package sqlitetest opens real SQLite stores for the tests of the packages
// that run on one: a fresh database in the test's temporary directory, under
// a random key, closed when the test ends.
package sqlitetest

import (
	"context"
	"crypto/rand"
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
