package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
	"github.com/verihook/verihook/internal/store/sqlite"
)

// TestBackupWhileIngesting: a backup taken while callbacks keep arriving
// opens with the key, holds every message acknowledged before it began
// (bodies readable) and none that was never acknowledged, and is written
// with the key's fingerprint beside it, never the key. A second backup to
// the same file is refused, and a PostgreSQL one points at pg_dump.
func TestBackupWhileIngesting(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	m := startMain(t, cfg)
	url := "http://" + m.Addr() + "/ingest/idenfy-main"
	const n = 80
	type callback struct {
		body []byte
		h    http.Header
	}
	cbs := make([]callback, n)
	for i := range cbs {
		cbs[i].body, cbs[i].h = signed(t, "idenfy", "IDENTIFICATION_AUTO_FINISHED", provider.Fields{Ref: fmt.Sprintf("scan-backup-%d", i)})
	}
	var mu sync.Mutex
	var acked []string
	send := func(cb callback) error {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(cb.body))
		req.Header = cb.h.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var a ingestAnswer
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != 200 || a.MessageID == "" {
			return fmt.Errorf("ingest: %d %+v %v", resp.StatusCode, a, err)
		}
		mu.Lock()
		acked = append(acked, a.MessageID)
		mu.Unlock()
		return nil
	}
	for _, cb := range cbs[:n/2] {
		if err := send(cb); err != nil {
			t.Fatal(err)
		}
	}
	before := slices.Clone(acked)

	var wg sync.WaitGroup
	for w := range 2 { // the other half arrives during the backup
		wg.Go(func() {
			for i := n/2 + w; i < n; i += 2 {
				if err := send(cbs[i]); err != nil {
					t.Error(err)
				}
			}
		})
	}
	path := filepath.Join(t.TempDir(), "copy.db")
	noEnv := func(string) string { return "" }
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"backup", "--data-dir", cfg.DataDir, path}, &out, &errOut, noEnv)
	wg.Wait()
	if code != 0 {
		t.Fatalf("backup: exit %d: %s", code, errOut.String())
	}

	keys, err := loadKeys(cfg.DataDir, noEnv, false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := hub.NewCipher(keys[0])
	fp, err := os.ReadFile(path + fingerprintSuffix)
	if err != nil || strings.TrimSpace(string(fp)) != c.KeyID() || !strings.Contains(out.String(), c.KeyID()) {
		t.Errorf("fingerprint file %q (%v), output %q; want %s", fp, err, out.String(), c.KeyID())
	}
	keyText, _ := os.ReadFile(filepath.Join(cfg.DataDir, keyFile))
	if bytes.Contains(fp, bytes.TrimSpace(keyText)) || strings.Contains(out.String(), strings.TrimSpace(string(keyText))) {
		t.Error("backup wrote or printed the key itself")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file mode %v (%v), want 0600", fi.Mode(), err)
	}

	cp, err := sqlite.Open(context.Background(), path, c)
	if err != nil {
		t.Fatalf("open the backup with the key: %v", err)
	}
	defer cp.Close()
	for _, id := range before {
		if msg, err := cp.Message(context.Background(), id); err != nil || len(msg.Body) == 0 {
			t.Errorf("message %s, acknowledged before the backup: %v, body %d bytes", id, err, len(msg.Body))
		}
	}
	var copied []string
	for cursor := "start"; cursor != ""; {
		if cursor == "start" {
			cursor = ""
		}
		msgs, next, err := cp.Messages(context.Background(), hub.MessageFilter{Page: hub.Page{Limit: hub.MaxPageLimit, Cursor: cursor}})
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range msgs {
			copied = append(copied, msg.ID)
		}
		cursor = next
	}
	for _, id := range copied {
		if !slices.Contains(acked, id) {
			t.Errorf("the backup holds message %s, never acknowledged", id)
		}
	}
	t.Logf("%d acknowledged before the backup, %d in it, %d in all", len(before), len(copied), len(acked))
	if len(copied) < len(before) {
		t.Errorf("the backup holds %d messages, fewer than the %d acknowledged before it", len(copied), len(before))
	}

	errOut.Reset()
	if code := run(context.Background(), []string{"backup", "--data-dir", cfg.DataDir, path}, &out, &errOut, noEnv); code != 1 || !strings.Contains(errOut.String(), "exists") {
		t.Errorf("backup over an existing file: exit %d, %q; want 1 and a message", code, errOut.String())
	}
	errOut.Reset()
	pg := filepath.Join(t.TempDir(), "pg.db")
	if code := run(context.Background(), []string{"backup", "--database", "postgres://db.invalid/verihook", pg}, &out, &errOut, noEnv); code != 1 || !strings.Contains(errOut.String(), "pg_dump") {
		t.Errorf("backup of PostgreSQL: exit %d, %q; want 1 and pg_dump", code, errOut.String())
	}
	if _, err := os.Stat(pg); err == nil {
		t.Error("backup of PostgreSQL wrote a file")
	}
}
