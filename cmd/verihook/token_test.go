package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// runCLI runs verihook in-process with args and returns its exit code,
// standard output and standard error.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut, func(string) string { return "" })
	return code, out.String(), errOut.String()
}

// lastLine is the last line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// tokenOf returns the stored token of secret.
func tokenOf(t *testing.T, m *Main, secret string) hub.Token {
	t.Helper()
	tok, err := m.Store.TokenByHash(context.Background(), hub.HashToken(secret))
	if err != nil {
		t.Fatalf("TokenByHash: %v", err)
	}
	return tok
}

// TestTokenCLI: token create, list and revoke against the data dir of a
// running server, which refuses a revoked token on its next request.
func TestTokenCLI(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	m := startMain(t, cfg)
	base := "http://" + m.Addr()
	dir := []string{"--data-dir", cfg.DataDir}

	code, out, errOut := runCLI(t, append([]string{"token", "create", "--role", "admin", "--name", "ops", "--expires", "90d"}, dir...)...)
	if code != 0 {
		t.Fatalf("token create: exit %d, %s", code, errOut)
	}
	ops := lastLine(out)
	if !strings.HasPrefix(ops, hub.TokenPrefix) || !strings.Contains(errOut, "expires") {
		t.Fatalf("token create printed %q, %q; want the token alone on the last line and its expiry", out, errOut)
	}
	opsTok := tokenOf(t, m, ops)
	if d := opsTok.ExpiresAt.Sub(opsTok.CreatedAt); d != 90*24*time.Hour || opsTok.Name != "ops" {
		t.Errorf("stored token %+v: want name ops, expiring 90 days after its creation", opsTok)
	}
	code, out, errOut = runCLI(t, append([]string{"token", "create", "--role", "viewer"}, dir...)...)
	if code != 0 {
		t.Fatalf("token create viewer: exit %d, %s", code, errOut)
	}
	viewer := lastLine(out)
	if !tokenOf(t, m, viewer).ExpiresAt.IsZero() {
		t.Errorf("a token created without --expires expires")
	}

	for _, bad := range []struct{ args, say string }{
		{"--role viewer --expires 90x", "a whole number and a unit"},
		{"--role viewer --expires 0d", "above zero"},
		{"--role viewer --expires 4000d", "at most"},
		{"--role root", "admin or viewer"},
	} {
		code, out, errOut := runCLI(t, append(append([]string{"token", "create"}, strings.Fields(bad.args)...), dir...)...)
		if code != 1 || out != "" || !strings.Contains(errOut, bad.say) {
			t.Errorf("token create %s: exit %d, %q, %q; want 1 and an error saying %q", bad.args, code, out, errOut, bad.say)
		}
	}
	if code, _, errOut := runCLI(t, append([]string{"token", "create", "--role", "viewer", "--name", "ops\x1b[2J"}, dir...)...); code != 1 || !strings.Contains(errOut, "printable") {
		t.Errorf("token create with control characters in the name: exit %d, %q", code, errOut)
	}

	code, out, errOut = runCLI(t, append([]string{"token", "list"}, dir...)...)
	if code != 0 {
		t.Fatalf("token list: exit %d, %s", code, errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") {
		t.Fatalf("token list printed %q; want a header and the two tokens", out)
	}
	viewerID := tokenOf(t, m, viewer).ID
	if f := strings.Fields(lines[1]); f[0] != viewerID || f[1] != "-" || f[2] != "viewer" || f[3] != "active" {
		t.Errorf("first row %q: want the newest, the unnamed active viewer", lines[1])
	}
	if f := strings.Fields(lines[2]); f[0] != opsTok.ID || f[1] != "ops" || f[2] != "admin" || f[3] != "active" {
		t.Errorf("second row %q: want the active admin ops", lines[2])
	}
	if strings.Contains(out, ops) || strings.Contains(out, opsTok.Hash) {
		t.Errorf("token list shows a secret or a hash: %q", out)
	}

	if code := getJSON(t, base+"/api/v1/sources", ops, nil); code != http.StatusOK {
		t.Fatalf("GET with the admin token before the revoke: %d", code)
	}
	// The id before the flags, as people type it.
	code, out, errOut = runCLI(t, append([]string{"token", "revoke", opsTok.ID}, dir...)...)
	if code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("token revoke: exit %d, %q, %q", code, out, errOut)
	}
	var answer struct{ Error string }
	if code := getJSON(t, base+"/api/v1/sources", ops, &answer); code != http.StatusUnauthorized || !strings.Contains(answer.Error, "revoked") {
		t.Errorf("GET with the revoked token: %d %q; want 401 saying it was revoked", code, answer.Error)
	}
	if code := getJSON(t, base+"/api/v1/sources", viewer, nil); code != http.StatusOK {
		t.Errorf("GET with the other token after the revoke: %d", code)
	}
	_, out, _ = runCLI(t, append([]string{"token", "list"}, dir...)...)
	if f := strings.Fields(strings.Split(out, "\n")[2]); f[0] != opsTok.ID || f[3] != "revoked" {
		t.Errorf("after the revoke, token list row %q: want ops revoked", strings.Split(out, "\n")[2])
	}

	for _, bad := range []struct {
		args []string
		code int
		say  string
	}{
		{[]string{"token", "revoke", "tok_unknown"}, 1, "not found"},
		{[]string{"token", "revoke"}, 2, "Usage"},
		{[]string{"token", "revoke", viewerID, opsTok.ID}, 2, "Usage"},
		{[]string{"token"}, 2, "token list"},
		{[]string{"token", "delete"}, 2, "token revoke ID"},
		{[]string{"token", "list", "extra"}, 1, "unexpected argument"},
	} {
		code, _, errOut := runCLI(t, append(bad.args, dir...)...)
		if code != bad.code || !strings.Contains(errOut, bad.say) {
			t.Errorf("%s: exit %d, %q; want %d saying %q", strings.Join(bad.args, " "), code, errOut, bad.code, bad.say)
		}
	}
	if got := tokenOf(t, m, viewer); !got.RevokedAt.IsZero() {
		t.Errorf("a refused revoke command revoked the viewer token")
	}
}

// tokenAnswer is a token as the API shows it.
type tokenAnswer struct {
	hub.Token
	State  string `json:"state"`
	Secret string `json:"token"`
}

// TestTokenAPI: admins create, list and revoke tokens over the API; viewers
// may not; a list shows no secret or hash; revoked and expired tokens are
// refused, saying why; a token's use is recorded.
func TestTokenAPI(t *testing.T) {
	t.Parallel()
	m := startMain(t, testConfig(t))
	base := "http://" + m.Addr() + "/api/v1"
	admin := token(t, m, hub.RoleAdmin)
	viewer := token(t, m, hub.RoleViewer)

	if code := apiDo(t, "GET", base+"/tokens", viewer, nil, nil); code != http.StatusForbidden {
		t.Errorf("viewer GET /tokens: %d, want 403", code)
	}
	if code := apiDo(t, "POST", base+"/tokens", viewer, map[string]string{"role": "admin"}, nil); code != http.StatusForbidden {
		t.Errorf("viewer POST /tokens: %d, want 403", code)
	}
	if code := apiDo(t, "DELETE", base+"/tokens/"+tokenOf(t, m, admin).ID, viewer, nil, nil); code != http.StatusForbidden {
		t.Errorf("viewer DELETE /tokens/{id}: %d, want 403", code)
	}

	var created tokenAnswer
	before := time.Now()
	if code := apiDo(t, "POST", base+"/tokens", admin, map[string]string{"role": "viewer", "name": "ci", "expires": "2w"}, &created); code != http.StatusCreated {
		t.Fatalf("POST /tokens: %d", code)
	}
	if !strings.HasPrefix(created.Secret, hub.TokenPrefix) || created.Name != "ci" || created.Role != hub.RoleViewer || created.State != hub.TokenActive ||
		created.ExpiresAt.Before(before.Add(14*24*time.Hour)) || created.ExpiresAt.After(time.Now().Add(14*24*time.Hour)) {
		t.Errorf("POST /tokens answered %+v; want the secret, ci, viewer, active, expiring in two weeks", created)
	}
	if code := getJSON(t, base+"/sources", created.Secret, nil); code != http.StatusOK {
		t.Errorf("GET with the created token: %d", code)
	}

	for _, bad := range []map[string]any{
		{"role": "viewer", "expires": "90x"},
		{"role": "viewer", "expires": "0d"},
		{"role": "root"},
		{},
		{"role": "viewer", "name": strings.Repeat("n", 101)},
		{"role": "viewer", "hash": "sha256:00"},
	} {
		var e struct{ Error string }
		if code := apiDo(t, "POST", base+"/tokens", admin, bad, &e); code != http.StatusBadRequest || e.Error == "" {
			t.Errorf("POST /tokens %v: %d %q, want 400 saying why", bad, code, e.Error)
		}
	}

	var list struct {
		Data []map[string]any `json:"data"`
	}
	if code := apiDo(t, "GET", base+"/tokens", admin, nil, &list); code != http.StatusOK {
		t.Fatalf("GET /tokens: %d", code)
	}
	if len(list.Data) != 3 || list.Data[0]["id"] != created.ID {
		t.Fatalf("GET /tokens listed %v; want the three tokens, newest first (a refused POST stores nothing)", list.Data)
	}
	for _, tok := range list.Data {
		if _, ok := tok["token"]; ok {
			t.Errorf("GET /tokens shows a secret: %v", tok)
		}
		for _, v := range tok {
			if s, ok := v.(string); ok && (strings.HasPrefix(s, hub.TokenPrefix) || len(s) == 64) {
				t.Errorf("GET /tokens shows a secret or hash: %v", tok)
			}
		}
		if tok["role"] == "admin" && tok["last_used_at"] == nil {
			t.Errorf("the admin token's use is not recorded: %v", tok)
		}
	}

	var revoked tokenAnswer
	if code := apiDo(t, "DELETE", base+"/tokens/"+created.ID, admin, nil, &revoked); code != http.StatusOK ||
		revoked.State != hub.TokenRevoked || revoked.RevokedAt.IsZero() || revoked.Secret != "" {
		t.Fatalf("DELETE /tokens/{id}: %d %+v; want 200, revoked, no secret", code, revoked)
	}
	var refused struct{ Error string }
	if code := getJSON(t, base+"/sources", created.Secret, &refused); code != http.StatusUnauthorized || !strings.Contains(refused.Error, "revoked") {
		t.Errorf("GET with the revoked token: %d %q; want 401 saying it was revoked", code, refused.Error)
	}
	var again tokenAnswer
	if code := apiDo(t, "DELETE", base+"/tokens/"+created.ID, admin, nil, &again); code != http.StatusOK || !again.RevokedAt.Equal(revoked.RevokedAt) {
		t.Errorf("DELETE again: %d, revoked at %v; want 200 and the first time %v kept", code, again.RevokedAt, revoked.RevokedAt)
	}
	if code := apiDo(t, "DELETE", base+"/tokens/tok_unknown", admin, nil, nil); code != http.StatusNotFound {
		t.Errorf("DELETE unknown token: %d, want 404", code)
	}

	secret := hub.NewTokenSecret()
	now := time.Now()
	expired := hub.Token{ID: hub.NewID("tok", now), Role: hub.RoleAdmin, Hash: hub.HashToken(secret),
		CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)}
	if err := m.Store.CreateToken(context.Background(), expired); err != nil {
		t.Fatal(err)
	}
	if code := getJSON(t, base+"/sources", secret, &refused); code != http.StatusUnauthorized || !strings.Contains(refused.Error, "expired") {
		t.Errorf("GET with an expired token: %d %q; want 401 saying it expired", code, refused.Error)
	}
	if tok := tokenOf(t, m, secret); !tok.LastUsedAt.IsZero() {
		t.Errorf("a refused token's use was recorded: %v", tok.LastUsedAt)
	}
}

// TestTokenRevokeEveryInstance: a token revoked through one instance is
// refused by another that shares the PostgreSQL database, on its next
// request.
func TestTokenRevokeEveryInstance(t *testing.T) {
	t.Parallel()
	dbURL := testDatabase(t)
	key := make([]byte, hub.KeySize)
	rand.Read(key)
	getenv := func(k string) string {
		if k == "VERIHOOK_ENCRYPTION_KEY" {
			return base64.StdEncoding.EncodeToString(key)
		}
		return ""
	}
	var ms [2]*Main
	for i := range ms {
		cfg := testConfig(t)
		cfg.Database = dbURL
		ms[i] = &Main{Config: cfg, Getenv: getenv}
		if err := ms[i].Run(context.Background()); err != nil {
			t.Fatalf("Run %d: %v", i, err)
		}
		t.Cleanup(func() { ms[i].Close() })
	}
	a, b := "http://"+ms[0].Addr()+"/api/v1", "http://"+ms[1].Addr()+"/api/v1"
	admin := token(t, ms[0], hub.RoleAdmin)
	var created tokenAnswer
	if code := apiDo(t, "POST", a+"/tokens", admin, map[string]string{"role": "viewer", "name": "elsewhere"}, &created); code != http.StatusCreated {
		t.Fatalf("POST /tokens on A: %d", code)
	}
	if code := getJSON(t, b+"/sources", created.Secret, nil); code != http.StatusOK {
		t.Fatalf("GET on B with the new token: %d", code)
	}
	if code := apiDo(t, "DELETE", a+"/tokens/"+created.ID, admin, nil, nil); code != http.StatusOK {
		t.Fatalf("DELETE on A: %d", code)
	}
	var refused struct{ Error string }
	if code := getJSON(t, b+"/sources", created.Secret, &refused); code != http.StatusUnauthorized || !strings.Contains(refused.Error, "revoked") {
		t.Errorf("GET on B with the token A revoked: %d %q; want 401", code, refused.Error)
	}
	var list struct{ Data []tokenAnswer }
	if code := apiDo(t, "GET", b+"/tokens", admin, nil, &list); code != http.StatusOK || len(list.Data) != 2 || list.Data[0].State != hub.TokenRevoked {
		t.Errorf("GET /tokens on B: %d %+v; want the revoked token first", code, list.Data)
	}
}
