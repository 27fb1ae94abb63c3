package storetest

import (
	"testing"

	"github.com/verihook/verihook/internal/hub"
)

// newToken returns a token created at(sec), named name, with a hash of its
// own.
func newToken(sec int, name string, role hub.Role) hub.Token {
	return hub.Token{ID: hub.NewID("tok", at(sec)), Name: name, Role: role, Hash: "sha256:" + name, CreatedAt: at(sec)}
}

// tokenByHash fetches tok by its hash, failing the test if it cannot.
func tokenByHash(t *testing.T, s hub.Store, tok hub.Token) hub.Token {
	t.Helper()
	got, err := s.TokenByHash(ctx(t), tok.Hash)
	if err != nil {
		t.Fatalf("TokenByHash(%s) = %v", tok.Name, err)
	}
	return got
}

func testTokens(t *testing.T, s hub.Store) {
	admin := newToken(0, "ops", hub.RoleAdmin)
	viewer := newToken(1, "dashboard", hub.RoleViewer)
	viewer.ExpiresAt = at(3600)
	for _, tok := range []hub.Token{admin, viewer} {
		if err := s.CreateToken(ctx(t), tok); err != nil {
			t.Fatalf("CreateToken(%s) = %v", tok.Name, err)
		}
	}
	for _, tok := range []hub.Token{admin, viewer} {
		if d := diff(tokenByHash(t, s, tok), tok); d != "" {
			t.Errorf("TokenByHash(%s) differs: %s", tok.Hash, d)
		}
	}
	same := hub.Token{ID: hub.NewID("tok", at(2)), Name: "again", Role: hub.RoleViewer, Hash: admin.Hash, CreatedAt: at(2)}
	wantCode(t, "CreateToken(hash stored already)", s.CreateToken(ctx(t), same), hub.ECONFLICT)
	if got := tokenByHash(t, s, admin); got.ID != admin.ID || got.Role != hub.RoleAdmin {
		t.Errorf("after a conflicting create: TokenByHash = %+v; want the admin token", got)
	}
	_, err := s.TokenByHash(ctx(t), "sha256:cccc")
	wantCode(t, "TokenByHash(unknown)", err, hub.ENOTFOUND)
}

// testTokenList: Tokens lists every token newest first, revoked and
// expired ones included, and a list without tokens is empty, not nil.
func testTokenList(t *testing.T, s hub.Store) {
	if got, err := s.Tokens(ctx(t)); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("Tokens(empty store) = %#v, %v; want [], nil", got, err)
	}
	var want []hub.Token
	for i, name := range []string{"first", "second", "third"} {
		tok := newToken(i, name, hub.RoleViewer)
		if i == 1 {
			tok.ExpiresAt = at(2) // expired by now
		}
		if err := s.CreateToken(ctx(t), tok); err != nil {
			t.Fatalf("CreateToken(%s) = %v", name, err)
		}
		want = append([]hub.Token{tok}, want...)
	}
	revoked, err := s.RevokeToken(ctx(t), want[2].ID, at(10))
	if err != nil {
		t.Fatalf("RevokeToken = %v", err)
	}
	want[2] = revoked
	got, err := s.Tokens(ctx(t))
	if err != nil {
		t.Fatalf("Tokens = %v", err)
	}
	if d := diff(got, want); d != "" {
		t.Errorf("Tokens differs (want newest first, all of them): %s", d)
	}
}

// testTokenRevoke: a revoke sets RevokedAt once, leaves the rest, is seen
// by TokenByHash at once, and is ENOTFOUND for an unknown id.
func testTokenRevoke(t *testing.T, s hub.Store) {
	tok := newToken(0, "ops", hub.RoleAdmin)
	other := newToken(1, "other", hub.RoleAdmin)
	for _, k := range []hub.Token{tok, other} {
		if err := s.CreateToken(ctx(t), k); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.RevokeToken(ctx(t), "tok_unknown", at(5))
	wantCode(t, "RevokeToken(unknown)", err, hub.ENOTFOUND)

	got, err := s.RevokeToken(ctx(t), tok.ID, at(5))
	if err != nil {
		t.Fatalf("RevokeToken = %v", err)
	}
	want := tok
	want.RevokedAt = at(5)
	if d := diff(got, want); d != "" {
		t.Errorf("RevokeToken returned a token that differs: %s", d)
	}
	if d := diff(tokenByHash(t, s, tok), want); d != "" {
		t.Errorf("TokenByHash after the revoke differs: %s", d)
	}
	if err := tokenByHash(t, s, tok).Check(at(6)); hub.ErrorCode(err) != hub.EUNAUTHORIZED {
		t.Errorf("a revoked token checks as %v, want EUNAUTHORIZED", err)
	}
	if again, err := s.RevokeToken(ctx(t), tok.ID, at(9)); err != nil || !again.RevokedAt.Equal(at(5)) {
		t.Errorf("RevokeToken again = %v, %v; want the first revocation time %v kept", again.RevokedAt, err, at(5))
	}
	if got := tokenByHash(t, s, other); !got.RevokedAt.IsZero() {
		t.Errorf("revoking one token revoked another: %+v", got)
	}
}

// testTokenExpiry: an expiry round-trips and decides Check; an expiry not
// after the creation, a used or revoked new token, and a name with control
// characters are EINVALID and store nothing.
func testTokenExpiry(t *testing.T, s hub.Store) {
	tok := newToken(0, "ci", hub.RoleViewer)
	tok.ExpiresAt = at(60)
	if err := s.CreateToken(ctx(t), tok); err != nil {
		t.Fatal(err)
	}
	got := tokenByHash(t, s, tok)
	if !got.ExpiresAt.Equal(at(60)) {
		t.Errorf("ExpiresAt = %v, want %v", got.ExpiresAt, at(60))
	}
	if err := got.Check(at(59)); err != nil {
		t.Errorf("Check before the expiry = %v", err)
	}
	if err := got.Check(at(60)); hub.ErrorCode(err) != hub.EUNAUTHORIZED {
		t.Errorf("Check at the expiry = %v, want EUNAUTHORIZED", err)
	}

	bad := map[string]func(*hub.Token){
		"expires at creation":   func(k *hub.Token) { k.ExpiresAt = k.CreatedAt },
		"expires before":        func(k *hub.Token) { k.ExpiresAt = at(-1) },
		"used already":          func(k *hub.Token) { k.LastUsedAt = at(1) },
		"revoked already":       func(k *hub.Token) { k.RevokedAt = at(1) },
		"control chars in name": func(k *hub.Token) { k.Name = "ops\x1b[2J" },
		"long name":             func(k *hub.Token) { k.Name = string(make([]byte, 101)) },
	}
	for name, change := range bad {
		k := newToken(1, "bad", hub.RoleViewer)
		change(&k)
		wantCode(t, "CreateToken("+name+")", s.CreateToken(ctx(t), k), hub.EINVALID)
		if _, err := s.TokenByHash(ctx(t), k.Hash); hub.ErrorCode(err) != hub.ENOTFOUND {
			t.Errorf("CreateToken(%s) stored the token: %v", name, err)
		}
	}
}

// testTokenTouch: TouchToken moves LastUsedAt forward only, changes nothing
// else, and ignores an unknown id.
func testTokenTouch(t *testing.T, s hub.Store) {
	tok := newToken(0, "ops", hub.RoleAdmin)
	if err := s.CreateToken(ctx(t), tok); err != nil {
		t.Fatal(err)
	}
	if got := tokenByHash(t, s, tok); !got.LastUsedAt.IsZero() {
		t.Fatalf("a new token has LastUsedAt %v", got.LastUsedAt)
	}
	for _, step := range []struct {
		touch, want int
	}{{30, 30}, {20, 30}, {30, 30}, {90, 90}} {
		if err := s.TouchToken(ctx(t), tok.ID, at(step.touch)); err != nil {
			t.Fatalf("TouchToken(at %d) = %v", step.touch, err)
		}
		want := tok
		want.LastUsedAt = at(step.want)
		if d := diff(tokenByHash(t, s, tok), want); d != "" {
			t.Errorf("after TouchToken(at %d): %s", step.touch, d)
		}
	}
	if err := s.TouchToken(ctx(t), "tok_unknown", at(100)); err != nil {
		t.Errorf("TouchToken(unknown) = %v, want nil", err)
	}
}
