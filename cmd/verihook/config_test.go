package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadConfigRefusesToStart checks that each bad setting stops serve with
// a message naming the field and the reason.
func TestBadConfigRefusesToStart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		env        map[string]string
		want       string
	}{
		{"unknown key", "lisen: 1.2.3.4:80\n", nil, "field lisen not found"},
		{"bad listen", "listen: nowhere\n", nil, `listen "nowhere"`},
		{"bad database", "database: mysql://x\n", nil, "database: want empty"},
		{"bad source id", "sources: [{id: 'a b', provider: idenfy, secrets: {signing_key: k}}]\n", nil, `sources[0].id "a b"`},
		{"unknown provider", "sources: [{id: a, provider: onfido, secrets: {k: v}}]\n", nil, `sources[0].provider: unknown provider "onfido"`},
		{"missing secret", "sources: [{id: a, provider: kycaid, secrets: {}}]\n", nil, `sources[0].secrets: secret "api_token" is required`},
		{"unset env secret", "sources: [{id: a, provider: identomat, secrets: {callback_api_key: '${NOPE_NOT_SET}'}}]\n", nil, "sources[0].secrets.callback_api_key: environment variable NOPE_NOT_SET is not set"},
		{"duplicate source", "sources: [{id: a, provider: idenfy, secrets: {signing_key: k}}, {id: a, provider: idenfy, secrets: {signing_key: k}}]\n", nil, `sources[1].id "a": declared twice`},
		{"bad endpoint url", "endpoints: [{id: e, url: 'ftp://x'}]\n", nil, `endpoints[0].url "ftp://x"`},
		{"small max_inflight_bytes", "max_inflight_bytes: 4096\n", nil, "max_inflight_bytes 4096: want at least max_body_bytes (1048576)"},
		{"bad retention", "retention: 1m\n", nil, "retention 1m0s: want at least 1h"},
		{"bad metrics_listen", "metrics_listen: nowhere\n", nil, `metrics_listen "nowhere": want host:port`},
		{"metrics on the ingest listener", "listen: 127.0.0.1:8089\nmetrics_listen: 127.0.0.1:8089\n", nil, `metrics_listen "127.0.0.1:8089": want an address of its own`},
		{"bad shutdown_timeout", "shutdown_timeout: 0s\n", nil, "shutdown_timeout 0s: want 1s to 10m"},
		{"bad otp retention", "otp_retention: 10m\n", nil, "otp_retention 10m0s: want at least 1h and at most retention"},
		{"otp retention past retention", "retention: 2h\n", nil, "otp_retention 24h0m0s: want at least 1h and at most retention (2h0m0s)"},
		{"reconcile fractal", "sources: [{id: f, provider: fractal, secrets: {webhook_secret: k}, reconcile: {}}]\n", nil, "sources[0].reconcile: Fractal cannot be polled"},
		{"reconcile without credentials", "sources: [{id: i, provider: idenfy, secrets: {signing_key: k, api_key: k}, reconcile: {}}]\n", nil, `sources[0].reconcile: the API credentials are missing: secret "api_secret" is required`},
		{"reconcile unset env credential", "sources: [{id: i, provider: identomat, secrets: {callback_api_key: k, company_key: '${NOPE_NOT_SET}'}, reconcile: {}}]\n", nil, "sources[0].secrets.company_key: environment variable NOPE_NOT_SET is not set"},
		{"reconcile bad api_url", "sources: [{id: k, provider: kycaid, secrets: {api_token: k}, reconcile: {api_url: 'ftp://x'}}]\n", nil, `sources[0].reconcile.api_url "ftp://x"`},
		{"reconcile bad deadline", "sources: [{id: k, provider: kycaid, secrets: {api_token: k}, reconcile: {deadline: 1s}}]\n", nil, "sources[0].reconcile.deadline 1s: want at least 1m"},
		{"bad env", "", map[string]string{"VERIHOOK_LOG_LEVEL": "loud"}, `log_level "loud"`},
		{"bad key", "", map[string]string{"VERIHOOK_ENCRYPTION_KEY": "short"}, "VERIHOOK_ENCRYPTION_KEY: want 32 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "verihook.yaml")
			yaml := "data_dir: " + filepath.Join(dir, "data") + "\n" + tt.yaml
			if !strings.Contains(tt.yaml, "listen:") {
				yaml += "listen: 127.0.0.1:0\n"
			}
			if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			getenv := func(k string) string { return tt.env[k] }
			code := run(context.Background(), []string{"serve", "--config", path}, &out, &errOut, getenv)
			if code != 1 || !strings.Contains(errOut.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want exit 1 and %q", code, errOut.String(), tt.want)
			}
		})
	}
}

func TestConfigPrecedence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "verihook.yaml")
	os.WriteFile(path, []byte("listen: 127.0.0.1:1111\ndata_dir: /from/file\nlog_level: warn\nsources: [{id: f, provider: fractal, secrets: {webhook_secrets: {verification_approved: '${S}'}}}]\n"), 0o600)
	fs := newFlagSet(env{stderr: &bytes.Buffer{}}, "serve", "")
	common := addCommonFlags(fs)
	fs.String("listen", "", "")
	fs.String("log-level", "", "")
	if err := fs.Parse([]string{"--config", path, "--listen", "127.0.0.1:3333"}); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		return map[string]string{"VERIHOOK_LISTEN": "127.0.0.1:2222", "VERIHOOK_DATA_DIR": "/from/env", "S": "sekret"}[k]
	}
	cfg, err := common.load(fs, getenv, registry())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:3333" || cfg.DataDir != "/from/env" || cfg.LogLevel != "warn" {
		t.Errorf("flags > env > file: got listen %s, data_dir %s, log_level %s", cfg.Listen, cfg.DataDir, cfg.LogLevel)
	}
	src, err := cfg.Sources[0].source(getenv)
	if err != nil || src.Secrets["webhook_secrets.verification_approved"] != "sekret" {
		t.Errorf("flattened secrets %v, %v", src.Secrets, err)
	}
}

func TestHelpSaysWhatToDoNext(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out, &errOut, os.Getenv); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	for _, want := range []string{"verihook serve", "token create", "simulate", "Getting started", "/ingest/"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help does not mention %q", want)
		}
	}
	if code := run(context.Background(), []string{"frobnicate"}, &out, &errOut, os.Getenv); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

// TestWrongKeyRefusesToStart: a data dir written with one key does not open
// with another.
func TestWrongKeyRefusesToStart(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	m := &Main{Config: cfg}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.Close()
	other := &Main{Config: cfg, Getenv: func(k string) string {
		if k == "VERIHOOK_ENCRYPTION_KEY" {
			return "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes, not the key file's
		}
		return ""
	}}
	err := other.Run(context.Background())
	if err == nil {
		other.Close()
		t.Fatal("serve started with another encryption key than the data was written with")
	}
	if !strings.Contains(err.Error(), "does not match") {
		t.Errorf("error %q does not say the key does not match", err)
	}
}

// TestMigrateAndToken: migrate prepares a fresh data dir, and token create
// then prints the token alone on its last line, against the same store.
func TestMigrateAndToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := []string{"--data-dir", filepath.Join(dir, "data")}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), append([]string{"migrate"}, args...), &out, &errOut, func(string) string { return "" }); code != 0 ||
		!strings.Contains(out.String(), "up to date") {
		t.Fatalf("migrate: exit %d, %q %q", code, out.String(), errOut.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "verihook.db")); err != nil {
		t.Fatalf("migrate left no database: %v", err)
	}
	out.Reset()
	if code := run(context.Background(), append([]string{"token", "create", "--role", "viewer"}, args...), &out, &errOut, func(string) string { return "" }); code != 0 {
		t.Fatalf("token create: exit %d, %q", code, errOut.String())
	}
	if tok := strings.TrimSpace(out.String()); !strings.HasPrefix(tok, "vh_") || strings.Contains(tok, "\n") {
		t.Errorf("token create printed %q, want the token alone", out.String())
	}
	if code := run(context.Background(), append([]string{"token", "create", "--role", "root"}, args...), &out, &errOut, func(string) string { return "" }); code != 1 {
		t.Errorf("token create --role root: exit %d, want 1", code)
	}
}
