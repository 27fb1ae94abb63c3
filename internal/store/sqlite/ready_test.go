package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/verihook/verihook/internal/store/storetest"
)

// TestReadiness fills the database as a full disk would: PRAGMA
// max_page_count, capped at the database's size, fails the writes that need
// a new page with SQLITE_FULL. Raising it again is the disk getting room.
func TestReadiness(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "verihook.db"), newKey(t))
	// max_page_count belongs to a connection, so it is set on the writer's.
	setMaxPages := func(t *testing.T, n string) {
		t.Helper()
		if err := s.write(context.Background(), "test", func(tx *wtx) error {
			_, err := tx.exec("PRAGMA max_page_count = " + n)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	storetest.Readiness(t, s,
		func(t *testing.T) {
			var pages int
			if err := s.rdb.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
				t.Fatal(err)
			}
			setMaxPages(t, fmt.Sprint(pages))
		},
		func(t *testing.T) { setMaxPages(t, "4294967294") }) // SQLite's default
}
