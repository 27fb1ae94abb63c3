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
	"runtime"
	"strings"
	"unicode"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/store/postgres"
	"github.com/verihook/verihook/internal/store/sqlite"
)

// openStore opens the configured database: embedded SQLite in the data dir,
// or PostgreSQL, which every instance shares.
func openStore(ctx context.Context, cfg Config, getenv func(string) string, log *slog.Logger) (hub.Store, error) {
	s, _, err := openStoreCipher(ctx, cfg, getenv, log)
	return s, err
}

// openStoreCipher is openStore, returning the cipher the store seals with
// too.
func openStoreCipher(ctx context.Context, cfg Config, getenv func(string) string, log *slog.Logger) (hub.Store, *hub.Cipher, error) {
	if cfg.Database != "" {
		// Every instance must encrypt with the same key, so none may invent
		// one: it comes from the environment or a key file put there.
		c, err := loadCipher(cfg.DataDir, getenv, false, log)
		if err != nil {
			return nil, nil, err
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
		s, err := postgres.Open(ctx, cfg.Database, c, opts...)
		return s, c, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("data dir: %w", err)
	}
	warnIfOpen(log, "data dir", cfg.DataDir, "chmod 700")
	c, err := loadCipher(cfg.DataDir, getenv, true, log)
	if err != nil {
		return nil, nil, err
	}
	s, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "verihook.db"), c, sqlite.WithLogger(log))
	return s, c, err
}

// rebuildHint returns, for a SQLite database file created with larger pages
// than verihook now creates files with, what rebuilding it would bring;
// "" otherwise. serve logs it and doctor prints it; migrate does neither,
// as it rebuilds the file.
func rebuildHint(s hub.Store) string {
	sq, ok := s.(*sqlite.Store)
	if !ok {
		return ""
	}
	if file, created := sq.PageSizes(); file != created {
		return fmt.Sprintf("the database has %d-byte pages, verihook now creates files with %d: `verihook migrate`, "+
			"run while verihook is stopped, rebuilds it with %[2]d-byte pages, on which a webhook writes fewer bytes to disk", file, created)
	}
	return ""
}

// defaultPoolSize is the PostgreSQL pool size unless the URL sets one.
const defaultPoolSize = 16

// keyFile is the name of the encryption key file in the data dir.
const keyFile = "verihook.key"

// loadCipher returns the cipher for data at rest: the keys from
// VERIHOOK_ENCRYPTION_KEY (32 bytes, base64 or hex) or from the key file in
// the data dir, created with mode 0600 on first start when create is set,
// and the previous keys of VERIHOOK_PREVIOUS_ENCRYPTION_KEYS. It warns on
// log when the key file is open to group or others.
func loadCipher(dataDir string, getenv func(string) string, create bool, log *slog.Logger) (*hub.Cipher, error) {
	keys, err := loadKeys(dataDir, getenv, create, log)
	if err != nil {
		return nil, err
	}
	return hub.NewCipher(keys[0], keys[1:]...)
}

// loadKeys returns the encryption keys, the current one first (see
// loadCipher).
func loadKeys(dataDir string, getenv func(string) string, create bool, log *slog.Logger) ([][]byte, error) {
	previous, err := decodeKeys(getenv("VERIHOOK_PREVIOUS_ENCRYPTION_KEYS"))
	if err != nil {
		return nil, fmt.Errorf("VERIHOOK_PREVIOUS_ENCRYPTION_KEYS: %w", err)
	}
	if v := strings.TrimSpace(getenv("VERIHOOK_ENCRYPTION_KEY")); v != "" {
		key, err := decodeKey(v)
		if err != nil {
			return nil, fmt.Errorf("VERIHOOK_ENCRYPTION_KEY: %w", err)
		}
		return append([][]byte{key}, previous...), nil
	}
	path := filepath.Join(dataDir, keyFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !create {
		return nil, fmt.Errorf("VERIHOOK_ENCRYPTION_KEY is required with PostgreSQL (every instance must share one key; make one with: openssl rand -base64 32), or put the key file at %s", path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		raw, err = createKeyFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	warnIfOpen(log, "key file", path, "chmod 600")
	keys, err := decodeKeys(string(raw))
	if err == nil && len(keys) == 0 {
		err = errors.New("no key in it")
	}
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return append(keys, previous...), nil
}

// decodeKeys decodes the keys of a key file, one a line, or of
// VERIHOOK_PREVIOUS_ENCRYPTION_KEYS, separated by commas or spaces: the
// current key first, then the previous ones, which only decrypt (during a
// key rotation, see rotatekey.go). Blank lines and lines starting with #
// are skipped.
func decodeKeys(s string) ([][]byte, error) {
	var keys [][]byte
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "#") {
			continue
		}
		for _, f := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
			key, err := decodeKey(f)
			if err != nil {
				return nil, fmt.Errorf("key %d: %w", len(keys)+1, err)
			}
			keys = append(keys, key)
		}
	}
	return keys, nil
}

// createKeyFile creates the key file at path with a new key and returns its
// contents, or those of the key file that another process starting at the
// same moment created first. The key is written to a temporary file (mode
// 0600) and synced before it is linked to path, so that path never holds
// part of a key; a link, unlike a rename, fails rather than replace a key
// that another process has just created (and may already use).
func createKeyFile(path string) ([]byte, error) {
	key := make([]byte, hub.KeySize)
	rand.Read(key)
	raw := []byte(base64.StdEncoding.EncodeToString(key) + "\n")
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, keyFile+".new-*")
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(raw)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	if err := os.Link(f.Name(), path); errors.Is(err, fs.ErrExist) {
		return os.ReadFile(path) // another process was first: its key it is
	} else if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	// The new name is durable once the directory is.
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("sync data dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return nil, fmt.Errorf("sync data dir: %w", err)
	}
	return raw, nil
}

// warnIfOpen warns on log when the file or directory at path may be used
// by its group or by others: the key file and the database are for
// verihook's user alone. fix is the command that mends it.
func warnIfOpen(log *slog.Logger, what, path, fix string) {
	fi, err := os.Stat(path)
	if err != nil || runtime.GOOS == "windows" { // Windows has no such mode bits
		return
	}
	if mode := fi.Mode().Perm(); mode&0o077 != 0 {
		log.Warn("the "+what+" is open to group or others: "+fix+" it", "path", path, "mode", fmt.Sprintf("%#o", mode))
	}
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
