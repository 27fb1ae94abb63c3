package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// TestRotateKey: rotate-key puts a new key before the old one in the key
// file; serve, restarted, reads the old data, writes under the new key and
// re-seals the old data in the background; rotate-key --finish leaves the
// new key alone in the file, which then reads everything, while the old key
// is refused.
func TestRotateKey(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	noEnv := func(string) string { return "" }
	quiet := slog.New(slog.DiscardHandler)
	ingestOne := func(m *Main, ref string) string {
		t.Helper()
		body, h := signed(t, "idenfy", "IDENTIFICATION_AUTO_FINISHED", provider.Fields{Ref: ref})
		var a ingestAnswer
		if code := postRaw(t, "http://"+m.Addr()+"/ingest/idenfy-main", h, body, &a); code != 200 {
			t.Fatalf("ingest: %d", code)
		}
		return a.MessageID
	}
	readAll := func(m *Main, ids []string) {
		t.Helper()
		for _, id := range ids {
			if msg, err := m.Store.Message(context.Background(), id); err != nil || len(msg.Body) == 0 {
				t.Errorf("message %s: %v, body %d bytes", id, err, len(msg.Body))
			}
		}
	}
	rotate := func(args ...string) (int, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		code := run(context.Background(), append([]string{"rotate-key", "--data-dir", cfg.DataDir}, args...), &out, &errOut, noEnv)
		return code, out.String() + errOut.String()
	}

	m := startMain(t, cfg)
	ids := []string{ingestOne(m, "scan-old-1"), ingestOne(m, "scan-old-2")}
	m.Close()
	oldKeys, _ := loadKeys(cfg.DataDir, noEnv, false, quiet)

	if code, out := rotate(); code != 0 || !strings.Contains(out, "rotate-key --finish") {
		t.Fatalf("rotate-key: exit %d, %q", code, out)
	}
	keys, err := loadKeys(cfg.DataDir, noEnv, false, quiet)
	if err != nil || len(keys) != 2 || !bytes.Equal(keys[1], oldKeys[0]) {
		t.Fatalf("key file after rotate-key holds %d keys (%v), want a new one, then the old one", len(keys), err)
	}
	if code, out := rotate(); code != 1 || !strings.Contains(out, "under way") {
		t.Errorf("a second rotate-key: exit %d, %q; want a refusal", code, out)
	}
	if fi, err := os.Stat(filepath.Join(cfg.DataDir, keyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}

	m = startMain(t, cfg)
	select {
	case <-m.resealed:
	case <-time.After(30 * time.Second):
		t.Fatal("the background re-seal did not end")
	}
	readAll(m, ids)
	ids = append(ids, ingestOne(m, "scan-new"))
	if r, err := hub.ResealAll(context.Background(), m.Store, nil); err != nil || r.Resealed != 0 {
		t.Errorf("after the background re-seal, ResealAll = %+v, %v; want nothing left", r, err)
	}
	m.Close()

	if code, out := rotate("--finish"); code != 0 || !strings.Contains(out, hub.KeyFingerprint(keys[0])) {
		t.Fatalf("rotate-key --finish: exit %d, %q", code, out)
	}
	if after, err := loadKeys(cfg.DataDir, noEnv, false, quiet); err != nil || len(after) != 1 || !bytes.Equal(after[0], keys[0]) {
		t.Fatalf("key file after --finish holds %d keys (%v), want the new one alone", len(after), err)
	}
	readAll(startMain(t, cfg), ids)

	old := &Main{Config: cfg, Getenv: func(k string) string {
		if k == "VERIHOOK_ENCRYPTION_KEY" {
			return base64.StdEncoding.EncodeToString(oldKeys[0])
		}
		return ""
	}}
	if err := old.Run(context.Background()); err == nil {
		old.Close()
		t.Error("serve started with the replaced key")
	} else if !strings.Contains(err.Error(), fmt.Sprint(hub.KeyFingerprint(keys[0]))) {
		t.Errorf("error %q does not name the current key", err)
	}
}

// TestPreviousKeysFromEnvironment: VERIHOOK_PREVIOUS_ENCRYPTION_KEYS adds
// keys that decrypt, after the current one, separated by commas or spaces;
// a bad one is an error naming the variable.
func TestPreviousKeysFromEnvironment(t *testing.T) {
	t.Parallel()
	k := func(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, hub.KeySize)) }
	env := map[string]string{"VERIHOOK_ENCRYPTION_KEY": k(1), "VERIHOOK_PREVIOUS_ENCRYPTION_KEYS": k(2) + ", " + k(3)}
	c, err := loadCipher(t.TempDir(), func(n string) string { return env[n] }, false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{hub.KeyFingerprint(bytes.Repeat([]byte{1}, hub.KeySize)), hub.KeyFingerprint(bytes.Repeat([]byte{2}, hub.KeySize)), hub.KeyFingerprint(bytes.Repeat([]byte{3}, hub.KeySize))}
	if got := c.KeyIDs(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("keys %v, want %v", got, want)
	}
	env["VERIHOOK_PREVIOUS_ENCRYPTION_KEYS"] = "not-a-key"
	if _, err := loadCipher(t.TempDir(), func(n string) string { return env[n] }, false, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "VERIHOOK_PREVIOUS_ENCRYPTION_KEYS") {
		t.Errorf("a bad previous key: %v", err)
	}
}
