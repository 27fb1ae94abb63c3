package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/verihook/verihook/internal/store/sqlite"
)

// runMigrate applies the migrations serve would apply at start-up and, with
// SQLite, rebuilds a database file whose page size is not the one verihook
// creates files with (sqlite.Rebuild): serve never does that by itself, as
// the copy takes minutes on a large database. It prints the copy's progress
// every few seconds.
func runMigrate(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "migrate", "migrate [flags]")
	common := addCommonFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := common.load(fs, e.getenv, registry())
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, e.getenv, newLogger(e.stderr, cfg.LogLevel)) // opening applies the migrations
	if err != nil {
		return err
	}
	if err := store.Close(); err != nil {
		return err
	}
	if cfg.Database == "" {
		if err := rebuild(ctx, e, filepath.Join(cfg.DataDir, "verihook.db")); err != nil {
			return err
		}
	}
	fmt.Fprintln(e.stdout, "database is up to date")
	return nil
}

// rebuildReportEvery is how often rebuild prints how far the copy is.
const rebuildReportEvery = 5 * time.Second

// rebuild rebuilds the SQLite database at path if its page size is not
// verihook's, saying what it does and how far it is.
func rebuild(ctx context.Context, e env, path string) error {
	size, err := sqlite.PageSize(ctx, path)
	if err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	start := time.Now()
	var last time.Time
	progress := func(done, total int64) {
		if last.IsZero() {
			fmt.Fprintf(e.stdout, "rebuilding the database with smaller pages (%d bytes now): "+
				"it writes a copy next to it, then replaces it; verihook must not run meanwhile\n", size)
		}
		if now := time.Now(); now.Sub(last) >= rebuildReportEvery {
			last = now
			fmt.Fprintf(e.stdout, "rebuild: %d of about %d MiB copied (%d%%), %s\n", done>>20, total>>20,
				100*done/max(total, 1), now.Sub(start).Round(time.Second))
		}
	}
	rebuilt, err := sqlite.Rebuild(ctx, path, progress)
	if err != nil {
		return err
	}
	if rebuilt {
		fmt.Fprintf(e.stdout, "rebuilt the database in %s\n", time.Since(start).Round(time.Millisecond))
	}
	return nil
}
