package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/store/sqlite"
)

// TestTokenUseDue: a token's use is written when neither the store nor this
// instance has one within a minute, and then not again for a minute.
func TestTokenUseDue(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	fresh := hub.Token{ID: "tok_a"}
	seenElsewhere := hub.Token{ID: "tok_b", LastUsedAt: now.Add(-30 * time.Second)} // another instance wrote it
	var u tokenUse
	steps := []struct {
		name string
		tok  hub.Token
		at   time.Time
		want bool
	}{
		{"first use", fresh, now, true},
		{"again at once", fresh, now, false},
		{"59 s later", fresh, now.Add(59 * time.Second), false},
		{"written by another instance", seenElsewhere, now, false},
		{"a minute later", fresh, now.Add(time.Minute), true},
		{"the other, a minute after its write", seenElsewhere, now.Add(30 * time.Second), true},
	}
	for _, s := range steps {
		if got := u.due(s.tok, s.at); got != s.want {
			t.Errorf("%s: due = %v, want %v", s.name, got, s.want)
		}
	}
	if len(u.last) != 2 {
		t.Errorf("remembers %d tokens, want 2", len(u.last))
	}
	u.due(hub.Token{ID: "tok_c"}, now.Add(time.Hour))
	if len(u.last) != 1 {
		t.Errorf("after an hour, remembers %d tokens, want only the one just used", len(u.last))
	}
}

// touchCounter is a real store that counts TouchToken calls.
type touchCounter struct {
	hub.Store
	touches atomic.Int32
}

func (c *touchCounter) TouchToken(ctx context.Context, id string, at time.Time) error {
	c.touches.Add(1)
	return c.Store.TouchToken(ctx, id, at)
}

// TestLastUsedOncePerMinute: fifty concurrent requests with one token write
// its last use once.
func TestLastUsedOncePerMinute(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	key := make([]byte, hub.KeySize)
	c, err := hub.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "verihook.db"), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	store := &touchCounter{Store: st}
	tok, secret := hub.NewToken(hub.RoleViewer, "ci", 0, time.Now().UTC())
	if err := store.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&Server{Store: store}).Handler())
	t.Cleanup(srv.Close)

	get := func() int {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/sources", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// All at once, so most read the token before any use is written: the
	// instance, not the store, must keep them from writing again.
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if code := get(); code != http.StatusOK {
				t.Errorf("GET = %d", code)
			}
		})
	}
	wg.Wait()
	if n := store.touches.Load(); n != 1 {
		t.Errorf("50 requests wrote the last use %d times, want 1", n)
	}
	got, err := store.TokenByHash(ctx, tok.Hash)
	if err != nil || got.LastUsedAt.IsZero() || time.Since(got.LastUsedAt) > time.Minute {
		t.Errorf("after the requests, LastUsedAt = %v, %v; want just now", got.LastUsedAt, err)
	}
}
