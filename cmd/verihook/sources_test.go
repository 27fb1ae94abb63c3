package main

import (
	"net/http"
	"testing"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// kycaidCallback builds a KYCAID callback signed with token.
func kycaidCallback(t *testing.T, token, ref string) ([]byte, http.Header) {
	t.Helper()
	p, err := registry().Get("kycaid")
	if err != nil {
		t.Fatal(err)
	}
	body, h, err := p.Build("VERIFICATION_COMPLETED", provider.Fields{Ref: ref, Status: "true"})
	if err != nil {
		t.Fatal(err)
	}
	if h == nil {
		h = http.Header{}
	}
	body, err = p.Sign(map[string]string{"api_token": token}, h, body)
	if err != nil {
		t.Fatal(err)
	}
	return body, h
}

// TestSourcesAPI: sources are created, rotated (the old secret keeps
// working for the grace period, and not after), changed and deleted through
// the API by an admin; a viewer may not; sources declared in the config
// file cannot be changed or deleted through it.
func TestSourcesAPI(t *testing.T) {
	m := startMain(t, testConfig(t))
	base := "http://" + m.Addr()
	admin, viewer := token(t, m, hub.RoleAdmin), token(t, m, hub.RoleViewer)
	ingest := func(secret, ref string) int {
		t.Helper()
		body, h := kycaidCallback(t, secret, ref)
		return postRaw(t, base+"/ingest/kycaid-api", h, body, nil)
	}

	for _, c := range []struct {
		method, path string
		in           any
	}{
		{http.MethodPatch, "/api/v1/sources/kycaid-main", map[string]any{"secrets": map[string]string{"api_token": "x"}}},
		{http.MethodPost, "/api/v1/sources/kycaid-main/rotate-secret", map[string]any{"secrets": map[string]string{"api_token": "x"}}},
		{http.MethodDelete, "/api/v1/sources/kycaid-main", nil},
	} {
		var out struct{ Error string }
		if code := apiDo(t, c.method, base+c.path, admin, c.in, &out); code != http.StatusConflict {
			t.Errorf("%s %s of a config source = %d, want 409", c.method, c.path, code)
		}
	}

	create := map[string]any{"id": "kycaid-api", "provider": "kycaid", "secrets": map[string]string{"api_token": "one"}}
	if code := apiDo(t, http.MethodPost, base+"/api/v1/sources", viewer, create, nil); code != http.StatusForbidden {
		t.Errorf("viewer POST /api/v1/sources = %d, want 403", code)
	}
	for _, bad := range []map[string]any{
		{"id": "x", "provider": "nope", "secrets": map[string]string{"api_token": "one"}},
		{"id": "x", "provider": "kycaid", "secrets": map[string]string{}},
		{"id": "bad id", "provider": "kycaid", "secrets": map[string]string{"api_token": "one"}},
	} {
		if code := apiDo(t, http.MethodPost, base+"/api/v1/sources", admin, bad, nil); code != http.StatusBadRequest {
			t.Errorf("POST /api/v1/sources %v = %d, want 400", bad, code)
		}
	}
	var src struct {
		Managed     string   `json:"managed"`
		IngestPath  string   `json:"ingest_path"`
		SecretNames []string `json:"secret_names"`
	}
	if code := apiDo(t, http.MethodPost, base+"/api/v1/sources", admin, create, &src); code != http.StatusCreated {
		t.Fatalf("POST /api/v1/sources = %d, want 201", code)
	}
	if src.Managed != hub.ManagedAPI || src.IngestPath != "/ingest/kycaid-api" || len(src.SecretNames) != 1 {
		t.Errorf("created source = %+v", src)
	}
	if code := apiDo(t, http.MethodPost, base+"/api/v1/sources", admin, create, nil); code != http.StatusConflict {
		t.Errorf("POST /api/v1/sources again = %d, want 409", code)
	}
	if code := ingest("one", "k-1"); code != http.StatusOK {
		t.Errorf("callback with the source's secret = %d, want 200", code)
	}

	rotate := map[string]any{"secrets": map[string]string{"api_token": "two"}, "grace": "1h"}
	if code := apiDo(t, http.MethodPost, base+"/api/v1/sources/kycaid-api/rotate-secret", admin, rotate, nil); code != http.StatusOK {
		t.Fatalf("rotate-secret = %d", code)
	}
	if code := ingest("two", "k-2"); code != http.StatusOK {
		t.Errorf("callback with the new secret = %d, want 200", code)
	}
	if code := ingest("one", "k-3"); code != http.StatusOK {
		t.Errorf("callback with the old secret within the grace = %d, want 200", code)
	}
	rotate = map[string]any{"secrets": map[string]string{"api_token": "three"}, "grace": "0s"}
	if code := apiDo(t, http.MethodPost, base+"/api/v1/sources/kycaid-api/rotate-secret", admin, rotate, nil); code != http.StatusOK {
		t.Fatalf("rotate-secret = %d", code)
	}
	if code := ingest("two", "k-4"); code != http.StatusUnauthorized {
		t.Errorf("callback with the old secret after a rotation without grace = %d, want 401", code)
	}
	bad := map[string]any{"secrets": map[string]string{"api_token": "four"}, "grace": "30d"}
	if code := apiDo(t, http.MethodPost, base+"/api/v1/sources/kycaid-api/rotate-secret", admin, bad, nil); code != http.StatusBadRequest {
		t.Errorf("rotate-secret with a grace of 30d = %d, want 400", code)
	}

	if code := apiDo(t, http.MethodPatch, base+"/api/v1/sources/kycaid-api", admin, map[string]any{"secrets": map[string]string{"api_token": "five"}}, nil); code != http.StatusOK {
		t.Errorf("PATCH = %d, want 200", code)
	}
	if code := ingest("five", "k-5"); code != http.StatusOK {
		t.Errorf("callback with the patched secret = %d, want 200", code)
	}
	if code := apiDo(t, http.MethodDelete, base+"/api/v1/sources/kycaid-api", viewer, nil, nil); code != http.StatusForbidden {
		t.Errorf("viewer DELETE = %d, want 403", code)
	}
	if code := apiDo(t, http.MethodDelete, base+"/api/v1/sources/kycaid-api", admin, nil, nil); code != http.StatusNoContent {
		t.Errorf("DELETE = %d, want 204", code)
	}
	if code := ingest("five", "k-6"); code != http.StatusNotFound {
		t.Errorf("callback to a deleted source = %d, want 404", code)
	}
	if code := getJSON(t, base+"/api/v1/sources/kycaid-api", viewer, nil); code != http.StatusNotFound {
		t.Errorf("GET deleted source = %d, want 404", code)
	}
}
