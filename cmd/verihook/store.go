package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/store/sqlite"
)

// openStore opens the configured database: embedded SQLite in the data dir,
// or PostgreSQL.
func openStore(ctx context.Context, cfg Config, getenv func(string) string) (hub.Store, error) {
	if cfg.Database != "" {
		return nil, errors.New("database: PostgreSQL is not available in this build yet; leave database empty for the embedded SQLite store")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	c, err := loadCipher(cfg.DataDir, getenv)
	if err != nil {
		return nil, err
	}
	return sqlite.Open(ctx, filepath.Join(cfg.DataDir, "verihook.db"), c)
}

// keyFile is the name of the encryption key file in the data dir.
const keyFile = "verihook.key"

// loadCipher returns the cipher for data at rest: the key from
// VERIHOOK_ENCRYPTION_KEY (32 bytes, base64 or hex) or from the key file in
// the data dir, created with mode 0600 on first start.
func loadCipher(dataDir string, getenv func(string) string) (*hub.Cipher, error) {
	if v := strings.TrimSpace(getenv("VERIHOOK_ENCRYPTION_KEY")); v != "" {
		key, err := decodeKey(v)
		if err != nil {
			return nil, fmt.Errorf("VERIHOOK_ENCRYPTION_KEY: %w", err)
		}
		return hub.NewCipher(key)
	}
	path := filepath.Join(dataDir, keyFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, hub.KeySize)
		rand.Read(key)
		raw = []byte(base64.StdEncoding.EncodeToString(key) + "\n")
		// O_EXCL: two processes starting at once must not both create a key.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return loadCipher(dataDir, getenv)
		} else if err != nil {
			return nil, fmt.Errorf("create key file: %w", err)
		}
		if _, err := f.Write(raw); err != nil {
			f.Close()
			return nil, fmt.Errorf("write key file: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("sync key file: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("close key file: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	key, err := decodeKey(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return hub.NewCipher(key)
}

func decodeKey(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == hub.KeySize {
		return b, nil
	}
	if b, err := hex.DecodeString(s); err == nil && len(b) == hub.KeySize {
		return b, nil
	}
	return nil, fmt.Errorf("want %d bytes as base64 or hex (e.g. openssl rand -base64 32)", hub.KeySize)
}
