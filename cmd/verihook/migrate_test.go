package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verihook/verihook/internal/store/sqlite"
	"github.com/verihook/verihook/internal/store/sqlite/sqlitetest"
	"github.com/verihook/verihook/internal/testkit"
)

// TestMigrateRebuilds: migrate rebuilds a database created with 4 KiB pages,
// as verihook created them before, says so with its progress, and then has
// nothing more to do. serve and doctor say that migrate would rebuild it;
// migrate itself does not, before or after.
func TestMigrateRebuilds(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Sources = nil
	data := cfg.DataDir
	path := filepath.Join(data, "verihook.db")
	sqlitetest.CreateOld(t, path)
	const hint = "`verihook migrate`, run while verihook is stopped, rebuilds it"
	serve := func() string {
		t.Helper()
		var logs testkit.Buffer
		m := &Main{Config: cfg, LogOutput: &logs}
		if err := m.Run(context.Background()); err != nil {
			t.Fatalf("serve: %v", err)
		}
		if err := m.Close(); err != nil {
			t.Fatalf("serve: close: %v", err)
		}
		return logs.String()
	}
	doctor := func() string {
		t.Helper()
		_, out := runDoctorCmd(t, nil, "--data-dir", data)
		return out
	}
	if logs := serve(); !strings.Contains(logs, hint) || !strings.Contains(logs, "4096-byte pages") {
		t.Errorf("serve on 4 KiB pages logged %q; want the hint %q with the page size", logs, hint)
	}
	if out := doctor(); !strings.Contains(out, "ok    store: the database has 4096-byte pages") || !strings.Contains(out, hint) {
		t.Errorf("doctor on 4 KiB pages printed %q; want the hint %q", out, hint)
	}
	migrate := func() string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"migrate", "--data-dir", data}, &out, &errOut,
			func(string) string { return "" }); code != 0 {
			t.Fatalf("migrate: exit %d, %q %q", code, out.String(), errOut.String())
		}
		if strings.Contains(out.String()+errOut.String(), hint) {
			t.Errorf("migrate printed %q %q; want no hint to run migrate", out.String(), errOut.String())
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
	if size, err := sqlite.PageSize(context.Background(), path); err != nil || size != 512 {
		t.Errorf("page size after migrate: %d, %v; want 512", size, err)
	}
	if out := migrate(); strings.Contains(out, "rebuil") {
		t.Errorf("second migrate printed %q; want nothing rebuilt", out)
	}
	if logs, out := serve(), doctor(); strings.Contains(logs+out, hint) {
		t.Errorf("after the rebuild serve logged %q and doctor printed %q; want no hint", logs, out)
	}
}
