package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runDoctorCmd runs verihook doctor with env and returns its exit code and
// its lines.
func runDoctorCmd(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"doctor"}, args...), &out, &errOut, func(k string) string { return env[k] })
	return code, out.String() + errOut.String()
}

// wantLines fails unless every want is the start of one of out's lines.
func wantLines(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		found := false
		for line := range strings.SplitSeq(out, "\n") {
			found = found || strings.HasPrefix(line, w)
		}
		if !found {
			t.Errorf("no line starts with %q in:\n%s", w, out)
		}
	}
}

// TestDoctor: one line per check; a missing, unexpanded or empty secret, an
// endpoint the SSRF guard refuses and a key file open to others fail it,
// and it passes once they are mended.
func TestDoctor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if code, _ := runDoctorCmd(t, nil, "--data-dir", data); code != 1 {
		t.Errorf("doctor before any store = %d, want 1", code)
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"migrate", "--data-dir", data}, &out, &errOut, func(string) string { return "" }); code != 0 {
		t.Fatalf("migrate = %d: %s", code, errOut.String())
	}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusMethodNotAllowed) }))
	t.Cleanup(hook.Close)
	path := filepath.Join(dir, "verihook.yaml")
	write := func(allowPrivate bool) {
		cfg := "allow_private_endpoints: " + map[bool]string{true: "true", false: "false"}[allowPrivate] + `
sources:
  - {id: idenfy-main, provider: idenfy, secrets: {signing_key: "${IDENFY_SIGNING_KEY}"}}
  - {id: kycaid-main, provider: kycaid, secrets: {api_token: "${KYCAID_API_TOKEN}"}}
  - {id: fractal-main, provider: fractal, secrets: {webhook_secret: "pre-${FRACTAL_WEBHOOK_SECRET}"}}
endpoints:
  - {id: backoffice, url: "` + hook.URL + `/hooks"}
`
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(false)
	env := map[string]string{"IDENFY_SIGNING_KEY": "k"}
	code, out1 := runDoctorCmd(t, env, "--config", path, "--data-dir", data)
	if code != 1 {
		t.Errorf("doctor = %d, want 1", code)
	}
	wantLines(t, out1,
		"ok    config: "+path,
		"ok    source idenfy-main",
		"FAIL  source kycaid-main: secrets.api_token: environment variable KYCAID_API_TOKEN is not set",
		"FAIL  source fractal-main: secrets.webhook_secret: holds ${",
		"ok    key: "+filepath.Join(data, keyFile),
		"ok    store: SQLite",
		"ok    clock: this machine's clock reads",
		"FAIL  endpoint backoffice: "+hook.URL+"/hooks: endpoint host 127.0.0.1 is",
	)

	write(true)
	env["KYCAID_API_TOKEN"] = "t"
	os.WriteFile(path, bytes.Replace(must(os.ReadFile(path)), []byte("pre-${"), []byte("${"), 1), 0o600)
	env["FRACTAL_WEBHOOK_SECRET"] = "f"
	code, out2 := runDoctorCmd(t, env, "--config", path, "--data-dir", data)
	if code != 0 {
		t.Errorf("doctor after mending = %d, want 0:\n%s", code, out2)
	}
	wantLines(t, out2, "ok    source kycaid-main", "ok    source fractal-main", "ok    endpoint backoffice: "+hook.URL+"/hooks answers (HTTP 405 to HEAD)")
	if strings.Contains(out2, "FAIL") {
		t.Errorf("a check failed:\n%s", out2)
	}

	if err := os.Chmod(filepath.Join(data, keyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out3 := runDoctorCmd(t, env, "--config", path, "--data-dir", data)
	if code != 1 {
		t.Errorf("doctor with a key file open to others = %d, want 1", code)
	}
	wantLines(t, out3, "FAIL  key: "+filepath.Join(data, keyFile)+" is mode 0644")
}

// TestDoctorPostgres: on PostgreSQL, doctor compares this machine's clock
// with the database server's, and a wrong key fails the store check.
func TestDoctorPostgres(t *testing.T) {
	t.Parallel()
	db := testDatabase(t)
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	env := map[string]string{"VERIHOOK_DATABASE_URL": db, "VERIHOOK_ENCRYPTION_KEY": key}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"migrate"}, &out, &errOut, func(k string) string { return env[k] }); code != 0 {
		t.Fatalf("migrate = %d: %s", code, errOut.String())
	}
	code, lines := runDoctorCmd(t, env)
	wantLines(t, lines, "ok    key: from VERIHOOK_ENCRYPTION_KEY", "ok    store: PostgreSQL", "ok    clock: within ", "FAIL  sources: none configured")
	if code != 1 {
		t.Errorf("doctor without sources = %d, want 1", code)
	}

	env["VERIHOOK_ENCRYPTION_KEY"] = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{8}, 32))
	_, lines = runDoctorCmd(t, env)
	wantLines(t, lines, "FAIL  store: ")
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
