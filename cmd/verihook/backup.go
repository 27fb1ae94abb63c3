package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/verihook/verihook/internal/store/sqlite"
)

// fingerprintSuffix names the file written beside a backup with the
// fingerprint of the key that opens it.
const fingerprintSuffix = ".key-fingerprint"

func runBackup(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "backup", "backup FILE [flags]")
	common := addCommonFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	path := fs.Arg(0)
	cfg, err := common.load(fs, e.getenv, registry())
	if err != nil {
		return err
	}
	if cfg.Database != "" {
		return errors.New("verihook backup copies the embedded SQLite database; back PostgreSQL up with its own tools: pg_dump --format=custom (or continuous archiving), and keep the encryption key apart from the dump")
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "verihook.db")); err != nil {
		return fmt.Errorf("no database to back up: %w", err)
	}
	store, c, err := openStoreCipher(ctx, cfg, e.getenv, newLogger(e.stderr, cfg.LogLevel))
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.(*sqlite.Store).Backup(ctx, path); err != nil {
		return err
	}
	// The key itself never goes beside the backup: whoever holds both holds
	// the data. Its fingerprint tells which key opens the copy.
	ids := c.KeyIDs()
	note := fmt.Sprintf("%s\n", ids[0])
	if len(ids) > 1 {
		note = fmt.Sprintf("%s\n# during a key rotation: some values may still need one of %v\n", ids[0], ids[1:])
	}
	if err := os.WriteFile(path+fingerprintSuffix, []byte(note), 0o600); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(e.stdout, "backed up to %s; it opens with the encryption key of fingerprint %s (written to %s; keep the key itself apart)\n",
		path, ids[0], path+fingerprintSuffix)
	return nil
}
