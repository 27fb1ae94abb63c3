package storetest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// Reopen opens the store of one database with cipher c, for RunRotation.
type Reopen func(t *testing.T, c *hub.Cipher) (hub.Store, error)

// RunRotation runs the tests of encryption key rotation on the database that
// newDB makes (fresh and empty; raw.Key is unused): a store opened with a new
// key and the old one as previous reads everything and seals new values
// under the new key; ResealAll moves every old value, in every format, to
// the new key, in batches, once even when two stores reseal at once;
// afterwards the new key alone opens the store, and the old key, or the
// keys swapped, are refused.
func RunRotation(t *testing.T, newDB func(t *testing.T) (Reopen, Raw)) {
	t.Parallel()
	reopen, raw := newDB(t)
	k1, k2, k3 := randomKey(), randomKey(), randomKey()
	open := func(keys ...[]byte) (hub.Store, error) {
		t.Helper()
		c, err := hub.NewCipher(keys[0], keys[1:]...)
		if err != nil {
			t.Fatal(err)
		}
		return reopen(t, c)
	}
	mustOpen := func(keys ...[]byte) hub.Store {
		t.Helper()
		s, err := open(keys...)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	wantRefused := func(what string, keys ...[]byte) {
		t.Helper()
		s, err := open(keys...)
		if err == nil {
			s.Close()
		}
		if !errors.Is(err, hub.ErrKeyMismatch) {
			t.Errorf("open with %s = %v, want hub.ErrKeyMismatch", what, err)
		}
	}

	s1 := mustOpen(k1)
	r := storeSealedRows(t, s1)
	otp := ingestOTP(t, s1, "src", "rotation-otp", at(10), time.Hour) // a message, an event and a dispatch
	cols := sealedColumns(t, s1, r)
	// Row 1 of every column holds a value of an older format, as databases
	// written by earlier versions do.
	for _, col := range cols {
		raw.Set(t, col.table, col.column, col.ids[1], SealBound(k1, col.want[1], col.table+"."+col.column, col.ids[1]))
	}
	s1.Close()
	wantRefused("an unknown key", k3)

	// Rotation starts: both keys read, the new one seals.
	s2 := mustOpen(k2, k1)
	sealedUnder := func(key, v []byte) bool {
		c, _ := hub.NewCipher(key)
		return c.SealedNow(v)
	}
	src := hub.Source{ID: "src-new", Provider: "idenfy", Secrets: map[string]string{"signing_key": "new"}}
	if err := s2.UpsertSource(ctx(t), src); err != nil {
		t.Fatal(err)
	}
	if v := raw.Get(t, "sources", "secrets", src.ID); !sealedUnder(k2, v) {
		t.Errorf("a source written during the rotation is sealed as %x…, not under the new key", v[:9])
	}
	readAll := func(s hub.Store, when string) {
		t.Helper()
		for _, col := range sealedColumns(t, s, r) {
			for i, id := range col.ids {
				if got, err := col.read(id); err != nil || !sameJSON(got, col.want[i]) {
					t.Errorf("%s: %s.%s of %s = %q, %v; want %q", when, col.table, col.column, id, got, err, col.want[i])
				}
			}
		}
	}
	readAll(s2, "during the rotation")

	// One batch at a time: Next walks the rows, "" at the end.
	first, err := s2.Reseal(ctx(t), hub.SealedMessageBody, "", 1)
	if err != nil || first.Resealed != 1 || first.Next == "" {
		t.Fatalf("Reseal of one message = %+v, %v; want 1 resealed, and more to come", first, err)
	}
	rest := 0
	for next := first.Next; next != ""; {
		r, err := s2.Reseal(ctx(t), hub.SealedMessageBody, next, 1)
		if err != nil {
			t.Fatal(err)
		}
		rest += r.Resealed
		next = r.Next
	}
	if rest != 2 {
		t.Fatalf("Reseal of the rest re-sealed %d messages, want 2", rest)
	}
	if _, err := s2.Reseal(ctx(t), "tokens.hash", "", 5); hub.ErrorCode(err) != hub.EINVALID {
		t.Errorf("Reseal of a column that holds no sealed value = %v, want EINVALID", err)
	}
	// A value no key opens is counted and left alone.
	foreign, _ := hub.NewCipher(k3)
	bad := foreign.Seal([]byte(`{"a":1}`), hub.SealedEventData, r.events[0].ID)
	good := raw.Get(t, "events", "data", r.events[0].ID)
	raw.Set(t, "events", "data", r.events[0].ID, bad)
	if got, err := s2.Reseal(ctx(t), hub.SealedEventData, "", 10); err != nil || got.Unreadable != 1 || got.Resealed != 2 {
		t.Errorf("Reseal with an unreadable value = %+v, %v; want 1 unreadable, 2 resealed", got, err)
	}
	if !bytes.Equal(raw.Get(t, "events", "data", r.events[0].ID), bad) {
		t.Error("Reseal changed a value it could not open")
	}
	raw.Set(t, "events", "data", r.events[0].ID, good)

	// Two stores reseal the rest at once: every value once.
	s3 := mustOpen(k2, k1)
	var wg sync.WaitGroup
	var totals [2]hub.ResealResult
	for i, s := range []hub.Store{s2, s3} {
		wg.Go(func() {
			var err error
			if totals[i], err = hub.ResealAll(ctx(t), s, nil); err != nil {
				t.Errorf("ResealAll: %v", err)
			}
		})
	}
	wg.Wait()
	// Left: 2 sources, 4 endpoint secrets, 1 dispatch, 1 event (restored
	// above).
	if n := totals[0].Resealed + totals[1].Resealed; n != 8 {
		t.Errorf("two stores resealed %d and %d values, want 8 in all", totals[0].Resealed, totals[1].Resealed)
	}
	if v := raw.Get(t, "dispatches", "content", otp.ID); !sealedUnder(k2, v) {
		t.Errorf("dispatches.content is %x… after the rotation, not under the new key", v[:9])
	}
	for _, col := range cols {
		for _, id := range col.ids {
			if v := raw.Get(t, col.table, col.column, id); !sealedUnder(k2, v) {
				t.Errorf("%s.%s of %s is %x… after the rotation, not under the new key", col.table, col.column, id, v[:9])
			}
		}
	}
	if again, err := hub.ResealAll(ctx(t), s2, nil); err != nil || again.Resealed != 0 {
		t.Errorf("ResealAll once done = %+v, %v; want nothing to do", again, err)
	}
	s2.Close()
	s3.Close()

	// Done: the new key alone reads everything; the old one is refused.
	s4 := mustOpen(k2)
	readAll(s4, "after the rotation, with the new key alone")
	if cs := claimDispatches(t, s4, at(10), time.Minute); len(cs) != 1 || cs[0].Dispatch.Content != otp.Content {
		t.Errorf("dispatch claimed after the rotation = %+v; want %s with its content", cs, otp.ID)
	}
	wantRefused("the replaced key", k1)
	wantRefused("the keys swapped", k1, k2)
}

func randomKey() []byte {
	k := make([]byte, hub.KeySize)
	rand.Read(k)
	return k
}
