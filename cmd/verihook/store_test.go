package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/verihook/verihook/internal/hub"
)

// TestKeyFileCreatedOnce: processes starting at the same moment on a fresh
// data dir (here goroutines, which race through the same system calls) all
// end up with the one key that was created, none reads a key half written,
// and no temporary file is left behind.
func TestKeyFileCreatedOnce(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	quiet := slog.New(slog.DiscardHandler)
	for range 20 {
		dir := t.TempDir()
		ciphers := make([]*hub.Cipher, 16)
		errs := make([]error, len(ciphers))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range ciphers {
			wg.Go(func() {
				<-start
				ciphers[i], errs[i] = loadCipher(dir, noEnv, true, quiet)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("starter %d: %v", i, err)
			}
		}
		sealed := ciphers[0].KeyCheck()
		for i, c := range ciphers {
			if err := c.CheckKey(sealed); err != nil {
				t.Fatalf("starter %d got another key than starter 0: %v", i, err)
			}
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 || entries[0].Name() != keyFile {
			t.Fatalf("data dir holds %v, want only %s", entries, keyFile)
		}
		if fi, err := os.Stat(filepath.Join(dir, keyFile)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file: %v, %v; want mode 0600", fi.Mode(), err)
		}
	}
}

// TestWarnsOfOpenPermissions: start-up warns when the data dir or the key
// file is open to group or others, and says nothing when they are private.
func TestWarnsOfOpenPermissions(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.DataDir = filepath.Join(cfg.DataDir, "data") // made by verihook
	open := func() string {
		t.Helper()
		var log bytes.Buffer
		s, err := openStore(context.Background(), cfg, func(string) string { return "" }, slog.New(slog.NewTextHandler(&log, nil)))
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		return log.String()
	}
	if got := open(); strings.Contains(got, "WARN") {
		t.Errorf("warnings about a private data dir and key file:\n%s", got)
	}
	key := filepath.Join(cfg.DataDir, keyFile)
	if err := os.Chmod(cfg.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	got := open()
	for _, want := range []string{
		`level=WARN msg="the data dir is open to group or others: chmod 700 it" path=` + cfg.DataDir + ` mode=0755`,
		`level=WARN msg="the key file is open to group or others: chmod 600 it" path=` + key + ` mode=0644`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
}
