package sqlite

import (
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/store/storetest"
)

// rawDB opens the database file at path on a connection of its own, past
// the store, and closes it when the test ends.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestSealing runs the suite's tests of sealed values, which move values
// between rows with SQL of their own.
func TestSealing(t *testing.T) {
	storetest.RunSealing(t, func(t *testing.T) (hub.Store, storetest.Raw) {
		path := filepath.Join(t.TempDir(), "verihook.db")
		key := newKey(t)
		s := openStore(t, path, key)
		return s, rawOf(rawDB(t, path), key)
	})
}

// TestRotation runs the suite's tests of key rotation.
func TestRotation(t *testing.T) {
	storetest.RunRotation(t, func(t *testing.T) (storetest.Reopen, storetest.Raw) {
		path := filepath.Join(t.TempDir(), "verihook.db")
		reopen := func(t *testing.T, c *hub.Cipher) (hub.Store, error) { return Open(t.Context(), path, c) }
		return reopen, rawOf(rawDB(t, path), nil)
	})
}

// rawOf reaches the database db past the store.
func rawOf(db *sql.DB, key []byte) storetest.Raw {
	return storetest.Raw{
		Key: key,
		Get: func(t *testing.T, table, column, id string) []byte {
			t.Helper()
			var v []byte
			tab, idCol := sealedRow(table, column)
			if err := db.QueryRow(`SELECT `+column+` FROM `+tab+` WHERE `+idCol+` = ?`, id).Scan(&v); err != nil {
				t.Fatalf("read %s.%s of %s: %v", table, column, id, err)
			}
			return v
		},
		Set: func(t *testing.T, table, column, id string, v []byte) {
			t.Helper()
			tab, idCol := sealedRow(table, column)
			if _, err := db.Exec(`UPDATE `+tab+` SET `+column+` = ? WHERE `+idCol+` = ?`, v, id); err != nil {
				t.Fatalf("write %s.%s of %s: %v", table, column, id, err)
			}
		},
	}
}

// TestUnboundKeyCheck: a database whose key check was written before values
// were bound still opens with its key, and still refuses another.
func TestUnboundKeyCheck(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "verihook.db")
	key := newKey(t)
	openStore(t, path, key).Close()
	if _, err := rawDB(t, path).Exec(`UPDATE key_check SET sealed = ? WHERE id = 1`,
		storetest.SealUnbound(key, []byte("verihook key check"))); err != nil {
		t.Fatal(err)
	}
	openStore(t, path, key).Close()
	c, _ := hub.NewCipher(newKey(t))
	if s, err := Open(t.Context(), path, c); !errors.Is(err, hub.ErrKeyMismatch) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("Open with another key = %v, want hub.ErrKeyMismatch", err)
	}
}

// sealedRow returns the table and id column where the store keeps
// table.column of a row: a message's body is in message_bodies (migration
// 0007).
func sealedRow(table, column string) (string, string) {
	if table == "messages" && column == "body" {
		return "message_bodies", "message_id"
	}
	return table, "id"
}
