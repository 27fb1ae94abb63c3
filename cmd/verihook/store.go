package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/store/postgres"
	"github.com/verihook/verihook/internal/store/sqlite"
)

// openStore opens the configured database: embedded SQLite in the data dir,
// or PostgreSQL, which every instance shares.
func openStore(ctx context.Context, cfg Config, getenv func(string) string, log *slog.Logger) (hub.Store, error) {
	if cfg.Database != "" {
		// Every instance must encrypt with the same key, so none may invent
		// one: it comes from the environment or a key file put there.
		c, err := loadCipher(cfg.DataDir, getenv, false)
		if err != nil {
			return nil, err
		}
		opts := []postgres.Option{postgres.WithLogger(log)}
		if !strings.Contains(cfg.Database, "pool_max_conns=") {
			// pgxpool's default (4 on 2 cores) starves concurrent ingests:
			// 16 doubled throughput in BENCHMARKS.md. The URL's
			// pool_max_conns overrides it; mind max_connections when many
			// instances share one server (each also holds one LISTEN
			// connection).
			opts = append(opts, postgres.WithMaxConns(defaultPoolSize))
		}
		return postgres.Open(ctx, cfg.Database, c, opts...)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	c, err := loadCipher(cfg.DataDir, getenv, true)
	if err != nil {
		return nil, err
	}
	return sqlite.Open(ctx, filepath.Join(cfg.DataDir, "verihook.db"), c, sqlite.WithLogger(log))
}

// defaultPoolSize is the PostgreSQL pool size unless the URL sets one.
const defaultPoolSize = 16

// keyFile is the name of the encryption key file in the data dir.
const keyFile = "verihook.key"

// loadCipher returns the cipher for data at rest: the key from
// VERIHOOK_ENCRYPTION_KEY (32 bytes, base64 or hex) or from the key file in
// the data dir, created with mode 0600 on first start when create is set.
func loadCipher(dataDir string, getenv func(string) string, create bool) (*hub.Cipher, error) {
	if v := strings.TrimSpace(getenv("VERIHOOK_ENCRYPTION_KEY")); v != "" {
		key, err := decodeKey(v)
		if err != nil {
			return nil, fmt.Errorf("VERIHOOK_ENCRYPTION_KEY: %w", err)
		}
		return hub.NewCipher(key)
	}
	path := filepath.Join(dataDir, keyFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !create {
		return nil, fmt.Errorf("VERIHOOK_ENCRYPTION_KEY is required with PostgreSQL (every instance must share one key; make one with: openssl rand -base64 32), or put the key file at %s", path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, hub.KeySize)
		rand.Read(key)
		raw = []byte(base64.StdEncoding.EncodeToString(key) + "\n")
		// O_EXCL: two processes starting at once must not both create a key.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return loadCipher(dataDir, getenv, create)
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
