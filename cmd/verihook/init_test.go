package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/testkit"
)

// runInitCmd runs verihook init; answers, when not "", are typed at its
// questions as on a terminal.
func runInitCmd(t *testing.T, answers string, getenv func(string) string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	e := env{stdout: &out, stderr: &errOut, getenv: getenv, stdin: strings.NewReader(answers), terminal: answers != ""}
	code = runEnv(context.Background(), e, append([]string{"init"}, args...))
	return code, out.String(), errOut.String()
}

// TestInit: init writes a 0600 config with a source per provider whose
// secrets are ${VAR}s, creates an admin token that works, says what to paste
// where, and never overwrites without --force.
func TestInit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, data := filepath.Join(dir, "verihook.yaml"), filepath.Join(dir, "data")
	args := []string{"--providers", "idenfy,fractal", "--url", "https://kyc.example.com/", "--config", path, "--data-dir", data}
	code, out, errOut := runInitCmd(t, "", nil, args...)
	if code != 0 {
		t.Fatalf("init = %d; stderr: %s", code, errOut)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config: %v, mode %v; want mode 0600", err, fi.Mode().Perm())
	}
	written, _ := os.ReadFile(path)
	for _, want := range []string{"id: idenfy-main", `signing_key: "${IDENFY_SIGNING_KEY}"`, "id: fractal-main", `webhook_secret: "${FRACTAL_WEBHOOK_SECRET}"`, "acme_domains: [kyc.example.com]"} {
		if !bytes.Contains(written, []byte(want)) {
			t.Errorf("config lacks %q:\n%s", want, written)
		}
	}
	if bytes.Contains(written, []byte("kycaid")) {
		t.Errorf("config declares a provider not chosen:\n%s", written)
	}
	idenfy, _ := registry().Get("idenfy")
	for _, want := range []string{"https://kyc.example.com/ingest/idenfy-main", "https://kyc.example.com/ingest/fractal-main",
		idenfy.Setup().URL, idenfy.Setup().Secret, "export IDENFY_SIGNING_KEY=", filepath.Join(data, keyFile)} {
		if !strings.Contains(out, want) {
			t.Errorf("init's output lacks %q:\n%s", want, out)
		}
	}

	// The token, on the last line, is an admin token of the store the
	// config names.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	secret := lines[len(lines)-1]
	cfg := DefaultConfig()
	cfg.DataDir = data
	store, err := openStore(context.Background(), cfg, func(string) string { return "" }, newLogger(io.Discard, "error"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := store.TokenByHash(context.Background(), hub.HashToken(secret))
	store.Close()
	if err != nil || tok.Role != hub.RoleAdmin {
		t.Fatalf("token on the last line: %+v, %v; want an admin token", tok, err)
	}

	// The config works once the secrets are in the environment.
	secrets := map[string]string{"IDENFY_SIGNING_KEY": "k1", "FRACTAL_WEBHOOK_SECRET": "k2"}
	var dout, derr bytes.Buffer
	if code := run(context.Background(), []string{"doctor", "--config", path}, &dout, &derr, func(k string) string { return secrets[k] }); code != 0 {
		t.Errorf("doctor on init's config = %d:\n%s%s", code, dout.String(), derr.String())
	}

	code, _, errOut = runInitCmd(t, "", nil, "--providers", "kycaid", "--config", path, "--data-dir", data)
	if after, _ := os.ReadFile(path); code != 1 || !strings.Contains(errOut, "--force") || !bytes.Equal(after, written) {
		t.Errorf("init again = %d (%s); want 1 naming --force, the file unchanged", code, errOut)
	}
	if code, _, errOut := runInitCmd(t, "", nil, "--providers", "kycaid", "--config", path, "--data-dir", data, "--force"); code != 0 {
		t.Fatalf("init --force = %d: %s", code, errOut)
	}
	if after, _ := os.ReadFile(path); !bytes.Contains(after, []byte("kycaid-main")) || bytes.Contains(after, []byte("idenfy-main")) {
		t.Errorf("init --force did not rewrite the config:\n%s", after)
	}
}

// TestInitNotesHTTPSOnly: with an http:// URL, init notes each chosen
// provider that calls back only https:// URLs, and no other.
func TestInitNotesHTTPSOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	code, out, errOut := runInitCmd(t, "", nil, "--providers", "idenfy,fractal,kycaid", "--url", "http://127.0.0.1:8080",
		"--config", filepath.Join(dir, "verihook.yaml"), "--data-dir", filepath.Join(dir, "data"))
	if code != 0 {
		t.Fatalf("init = %d; stderr: %s", code, errOut)
	}
	for title, want := range map[string]bool{"iDenfy": true, "Fractal ID": true, "KYCAID": false} {
		if got := strings.Contains(out, title+" accepts only https://"); got != want {
			t.Errorf("a note that %s accepts only https:// URLs: %v, want %v:\n%s", title, got, want, out)
		}
	}
}

// TestInitBadInput: an unknown provider or a bad URL writes nothing.
func TestInitBadInput(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--providers", "onfido"}, {"--url", "ftp://x"}, {"--providers", " , "}} {
		dir := t.TempDir()
		path := filepath.Join(dir, "verihook.yaml")
		code, _, errOut := runInitCmd(t, "", nil, append(args, "--config", path, "--data-dir", filepath.Join(dir, "data"))...)
		if code != 1 || errOut == "" {
			t.Errorf("init %v = %d, stderr %q; want 1 with a message", args, code, errOut)
		}
		if _, err := os.Stat(path); err == nil {
			t.Errorf("init %v wrote a config", args)
		}
	}
}

// TestInitInteractive: on a terminal, init asks for the providers and the
// address.
func TestInitInteractive(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "verihook.yaml")
	code, out, errOut := runInitCmd(t, "kycaid\nhttps://hooks.example.org\n", nil, "--config", path, "--data-dir", filepath.Join(dir, "data"))
	if code != 0 {
		t.Fatalf("init = %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "Providers to connect") || !strings.Contains(out, "https://hooks.example.org/ingest/kycaid-main") {
		t.Errorf("questions %q, answer %q", errOut, out)
	}
	if written, _ := os.ReadFile(path); !bytes.Contains(written, []byte("kycaid-main")) || bytes.Contains(written, []byte("idenfy")) {
		t.Errorf("config:\n%s", written)
	}
}

// TestReadmeProviderTable: the README's "Connecting each provider" table
// says what verihook init prints, so that the two never drift apart.
func TestReadmeProviderTable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	plain := strings.NewReplacer("**", "", "`", "")
	for _, name := range registry().Names() {
		p, _ := registry().Get(name)
		st := p.Setup()
		found := false
		for line := range strings.SplitSeq(string(readme), "\n") {
			cells := strings.Split(line, " | ")
			if len(cells) < 4 || cells[0] != "| "+st.Title {
				continue
			}
			found = true
			if got := plain.Replace(cells[1]); got != st.URL {
				t.Errorf("%s: README says the URL goes in %q; Setup says %q", name, got, st.URL)
			}
			if got := plain.Replace(cells[2]); got != st.Secret {
				t.Errorf("%s: README says the secret is %q; Setup says %q", name, got, st.Secret)
			}
		}
		if !found {
			t.Errorf("README's provider table has no row for %s", st.Title)
		}
	}
}

// TestServeWithoutSources: serve with no source points at verihook init,
// on the console and at / (which leads to the dashboard's login page).
func TestServeWithoutSources(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Sources = nil
	var log testkit.Buffer
	m := &Main{Config: cfg, LogOutput: &log}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if !strings.Contains(log.String(), "run verihook init") {
		t.Errorf("log does not point at verihook init:\n%s", log.String())
	}
	resp, err := http.Get("http://" + m.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "verihook init") {
		t.Errorf("GET / = %d %q; want 200 (the login page) pointing at verihook init", resp.StatusCode, body)
	}
}
