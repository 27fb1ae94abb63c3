package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/httpapi"
	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
	"github.com/verihook/verihook/internal/store/sqlite/sqlitetest"
)

// endpointCall sends method to url as tok with If-Match ifMatch (none when
// empty) and a JSON body in (none when nil); it returns the status, the
// ETag and the endpoint answered (or the error's code).
func endpointCall(t *testing.T, method, url, tok, ifMatch string, in any) (int, string, hub.Endpoint, string) {
	t.Helper()
	h := http.Header{}
	if ifMatch != "" {
		h.Set("If-Match", ifMatch)
	}
	resp, raw := apiSend(t, method, url, tok, h, in)
	var out struct {
		hub.Endpoint
		Code string `json:"code"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: %q is not JSON", method, url, raw)
	}
	return resp.StatusCode, resp.Header.Get("ETag"), out.Endpoint, out.Code
}

// TestAutoDisableSurvivesRestart: an endpoint that verihook disabled (410)
// stays disabled when verihook starts again with the config that declares
// it enabled, the log says how to enable it, and only a PATCH does, at the
// version it names.
func TestAutoDisableSurvivesRestart(t *testing.T) {
	t.Parallel()
	gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusGone)
	}))
	t.Cleanup(gone.Close)
	cfg := testConfig(t)
	cfg.AllowPrivateEndpoints = true
	cfg.Endpoints = []EndpointConfig{{ID: "crm", URL: gone.URL + "/hooks", Secret: hub.NewEndpointSecret()}}
	m := startMain(t, cfg)
	body, h := signed(t, "idenfy", "IDENTIFICATION_MANUAL_FINISHED", provider.Fields{Ref: "scan-gone"})
	if code := postRaw(t, "http://"+m.Addr()+"/ingest/idenfy-main", h, body, nil); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	waitFor(t, "verihook to disable the endpoint", 5*time.Second, func() bool {
		e, err := m.Store.Endpoint(context.Background(), "crm")
		return err == nil && !e.Enabled
	})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	m = &Main{Config: cfg, LogOutput: &logs}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	base, admin := "http://"+m.Addr()+"/api/v1/endpoints/crm", token(t, m, hub.RoleAdmin)
	code, etag, e, _ := endpointCall(t, "GET", base, admin, "", nil)
	if code != 200 || e.Enabled || e.DisabledReason != "the endpoint answered 410 Gone" {
		t.Fatalf("after a restart: %d, enabled %v, reason %q; want still disabled by verihook", code, e.Enabled, e.DisabledReason)
	}
	// (The text log escapes the quotes of {"enabled":true}.)
	if want := `PATCH /api/v1/endpoints/crm {\"enabled\":true}`; !strings.Contains(logs.String(), want) ||
		!strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("the start-up log does not warn with %s:\n%s", want, logs.String())
	}
	if etag != `"`+jsonNumber(e.Version)+`"` {
		t.Errorf("GET answered ETag %s for version %d", etag, e.Version)
	}

	// A PATCH at a stale version is refused and changes nothing; at the
	// current one it enables the endpoint and answers the new ETag.
	code, _, _, errCode := endpointCall(t, "PATCH", base, admin, `"1"`, map[string]any{"enabled": true})
	if code != http.StatusPreconditionFailed || errCode != hub.EPRECONDITION {
		t.Errorf("PATCH with a stale If-Match: %d %s, want 412 %s", code, errCode, hub.EPRECONDITION)
	}
	code, _, _, _ = endpointCall(t, "PATCH", base, admin, `W/`+etag, map[string]any{"enabled": true})
	if code != http.StatusPreconditionFailed {
		t.Errorf("PATCH with a weak If-Match: %d, want 412 (If-Match compares strongly)", code)
	}
	if _, _, e, _ := endpointCall(t, "GET", base, admin, "", nil); e.Enabled {
		t.Fatal("a refused PATCH enabled the endpoint")
	}
	code, newTag, e, _ := endpointCall(t, "PATCH", base, admin, `"999", `+etag, map[string]any{"enabled": true})
	if code != 200 || !e.Enabled || e.DisabledReason != "" || newTag == etag || newTag != `"`+jsonNumber(e.Version)+`"` {
		t.Errorf("PATCH at the current ETag: %d, enabled %v, reason %q, ETag %s (was %s)", code, e.Enabled, e.DisabledReason, newTag, etag)
	}
}

func jsonNumber(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestPatchKeepsConcurrentDisable: a disable that lands between a PATCH's
// read and its write is not undone, with or without If-Match. The PATCH's
// URL check, which runs in between, is where the disable lands.
func TestPatchKeepsConcurrentDisable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := sqlitetest.Open(t)
	now := time.Now().UTC()
	if err := st.CreateEndpoint(ctx, hub.Endpoint{ID: "crm", URL: "https://crm.example.com/a", Secret: hub.NewEndpointSecret(),
		Enabled: true, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	admin := hub.NewTokenSecret()
	if err := st.CreateToken(ctx, hub.Token{ID: "tok_admin", Role: hub.RoleAdmin, Hash: hub.HashToken(admin), CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		disable bool // set: the next URL check disables the endpoint first
	)
	srv := &httpapi.Server{Store: st, CheckURL: func(ctx context.Context, _ string) error {
		mu.Lock()
		defer mu.Unlock()
		if !disable {
			return nil
		}
		disable = false
		_, err := hub.EditEndpoint(ctx, st, "crm", func(e *hub.Endpoint) error {
			e.Enabled, e.DisabledReason = false, "the endpoint answered 410 Gone"
			return nil
		})
		return err
	}}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	url := ts.URL + "/api/v1/endpoints/crm"
	race := func() {
		mu.Lock()
		disable = true
		mu.Unlock()
	}

	// Without If-Match: the PATCH is applied to the endpoint as it is now.
	race()
	code, _, e, _ := endpointCall(t, "PATCH", url, admin, "", map[string]any{"url": "https://crm.example.com/b"})
	if code != 200 || e.Enabled || e.DisabledReason == "" || e.URL != "https://crm.example.com/b" {
		t.Errorf("PATCH across a disable: %d, enabled %v, reason %q, url %s; want the new URL on the disabled endpoint",
			code, e.Enabled, e.DisabledReason, e.URL)
	}
	if stored, _ := st.Endpoint(ctx, "crm"); stored.Enabled || stored.URL != "https://crm.example.com/b" {
		t.Errorf("stored after the PATCH: enabled %v, url %s", stored.Enabled, stored.URL)
	}

	// With the If-Match of the version it read: 412, nothing written.
	_, etag, _, _ := endpointCall(t, "GET", url, admin, "", nil)
	race()
	code, _, _, errCode := endpointCall(t, "PATCH", url, admin, etag, map[string]any{"url": "https://crm.example.com/c"})
	if code != http.StatusPreconditionFailed || errCode != hub.EPRECONDITION {
		t.Errorf("PATCH with If-Match across a disable: %d %s, want 412", code, errCode)
	}
	if stored, _ := st.Endpoint(ctx, "crm"); stored.URL != "https://crm.example.com/b" {
		t.Errorf("a refused PATCH wrote the URL %s", stored.URL)
	}
}

// TestProvisionWritesOnlyChanges: provisioning the endpoints a config
// declares, as each start does, writes an endpoint only when the config
// declares it otherwise than it is stored, so that a restart does not move
// its version, and with it the ETag an operator's If-Match names.
func TestProvisionWritesOnlyChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := sqlitetest.Open(t)
	secret := hub.NewEndpointSecret()
	cfg := Config{Endpoints: []EndpointConfig{
		{ID: "crm", URL: "https://crm.example.com/a", Secret: secret},
		{ID: "erp", URL: "https://erp.example.com/a", EventTypes: []string{"verification.*"}}, // generated secret
	}}
	noCheck := func(context.Context, string) error { return nil }
	provision := func() {
		t.Helper()
		if err := provisionEndpoints(ctx, st, cfg, func(string) string { return "" }, noCheck, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
	}
	versions := func() map[string]int64 {
		t.Helper()
		v := map[string]int64{}
		for _, id := range []string{"crm", "erp"} {
			e, err := st.Endpoint(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			v[id] = e.Version
		}
		return v
	}

	provision()
	first := versions()
	provision() // a restart with the same config
	if got := versions(); got["crm"] != first["crm"] || got["erp"] != first["erp"] {
		t.Errorf("provisioning the same config again moved the versions %v to %v", first, got)
	}

	cfg.Endpoints[0].URL = "https://crm.example.com/b"
	provision()
	got := versions()
	if got["crm"] != first["crm"]+1 || got["erp"] != first["erp"] {
		t.Errorf("after changing crm's URL: versions %v, was %v; want crm's alone moved on by one", got, first)
	}
	if e, _ := st.Endpoint(ctx, "crm"); e.URL != "https://crm.example.com/b" || e.Secret != secret {
		t.Errorf("crm after the change: url %s, secret kept %v", e.URL, e.Secret == secret)
	}
}
