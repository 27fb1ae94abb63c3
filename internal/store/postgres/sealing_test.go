package postgres

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/store/storetest"
)

// rawConn connects to dbURL past the store and closes the connection when
// the test ends.
func rawConn(t *testing.T, dbURL string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctxFor(t), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestSealing runs the suite's tests of sealed values, which move values
// between rows with SQL of their own.
func TestSealing(t *testing.T) {
	baseURL(t)
	storetest.RunSealing(t, func(t *testing.T) (hub.Store, storetest.Raw) {
		conns.reserve(t, poolSize+1)
		_, dbURL := newSchema(t)
		key := newKey(t)
		s := openStore(t, dbURL, key)
		return s, rawOf(rawConn(t, dbURL), key)
	})
}

// TestRotation runs the suite's tests of key rotation: two stores at once
// and a raw connection.
func TestRotation(t *testing.T) {
	baseURL(t)
	storetest.RunRotation(t, func(t *testing.T) (storetest.Reopen, storetest.Raw) {
		conns.reserve(t, 2*poolSize+1)
		_, dbURL := newSchema(t)
		reopen := func(t *testing.T, c *hub.Cipher) (hub.Store, error) {
			return Open(ctxFor(t), dbURL, c, WithMaxConns(poolSize), WithLogger(quiet))
		}
		return reopen, rawOf(rawConn(t, dbURL), nil)
	})
}

// rawOf reaches the database past the store, on db.
func rawOf(db *pgx.Conn, key []byte) storetest.Raw {
	return storetest.Raw{
		Key: key,
		Get: func(t *testing.T, table, column, id string) []byte {
			t.Helper()
			var v []byte
			if err := db.QueryRow(ctxFor(t), `SELECT `+column+` FROM `+table+` WHERE id = $1`, id).Scan(&v); err != nil {
				t.Fatalf("read %s.%s of %s: %v", table, column, id, err)
			}
			return v
		},
		Set: func(t *testing.T, table, column, id string, v []byte) {
			t.Helper()
			if _, err := db.Exec(ctxFor(t), `UPDATE `+table+` SET `+column+` = $1 WHERE id = $2`, v, id); err != nil {
				t.Fatalf("write %s.%s of %s: %v", table, column, id, err)
			}
		},
	}
}

// TestUnboundKeyCheck: a database whose key check was written before values
// were bound still opens with its key, and still refuses another.
func TestUnboundKeyCheck(t *testing.T) {
	t.Parallel()
	conns.reserve(t, poolSize+1)
	_, dbURL := newSchema(t)
	key := newKey(t)
	openStore(t, dbURL, key).Close()
	if _, err := rawConn(t, dbURL).Exec(ctxFor(t), `UPDATE key_check SET sealed = $1 WHERE id = 1`,
		storetest.SealUnbound(key, []byte("verihook key check"))); err != nil {
		t.Fatal(err)
	}
	openStore(t, dbURL, key).Close()
	if s, err := Open(ctxFor(t), dbURL, newCipher(t, newKey(t)), WithMaxConns(poolSize)); !errors.Is(err, hub.ErrKeyMismatch) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("Open with another key = %v, want hub.ErrKeyMismatch", err)
	}
}
