package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verihook/verihook/internal/store/sqlite"
	"github.com/verihook/verihook/internal/store/sqlite/sqlitetest"
)

// TestMigrateRebuilds: migrate rebuilds a database created with 4 KiB pages,
// as verihook created them before, says so with its progress, and then has
// nothing more to do.
func TestMigrateRebuilds(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(data, "verihook.db")
	sqlitetest.CreateOld(t, path)
	migrate := func() string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"migrate", "--data-dir", data}, &out, &errOut,
			func(string) string { return "" }); code != 0 {
			t.Fatalf("migrate: exit %d, %q %q", code, out.String(), errOut.String())
		}
		return out.String()
	}
	out := migrate()
	for _, want := range []string{"rebuilding the database with smaller pages (4096 bytes now)", "rebuild: 0 of about",
		"rebuilt the database in", "database is up to date"} {
		if !strings.Contains(out, want) {
			t.Errorf("migrate printed %q; want %q in it", out, want)
		}
	}
	if size, err := sqlite.PageSize(context.Background(), path); err != nil || size != 1024 {
		t.Errorf("page size after migrate: %d, %v; want 1024", size, err)
	}
	if out := migrate(); strings.Contains(out, "rebuil") {
		t.Errorf("second migrate printed %q; want nothing rebuilt", out)
	}
}
