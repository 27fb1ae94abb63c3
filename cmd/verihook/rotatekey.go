package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// Key rotation, in three steps:
//
//  1. `verihook rotate-key` writes a new key at the head of the key file,
//     before the old one (or, with VERIHOOK_ENCRYPTION_KEY, prints a new key
//     and says how to set it, with the old one in
//     VERIHOOK_PREVIOUS_ENCRYPTION_KEYS).
//  2. serve, restarted, seals under the new key, opens with both, and
//     re-seals every old value under the new key in the background
//     (Main.reseal), logging its progress.
//  3. `verihook rotate-key --finish` re-seals what is left, if anything,
//     and drops the previous keys from the key file.

// keyFileHeader starts a key file that holds more than one key.
const keyFileHeader = "# verihook encryption keys: the first encrypts; the others only decrypt, until\n" +
	"# 'verihook rotate-key --finish' has re-encrypted their data and removes them.\n"

func runRotateKey(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "rotate-key", "rotate-key [--finish] [flags]")
	common := addCommonFlags(fs)
	finish := fs.Bool("finish", false, "end a rotation: re-encrypt what is left under the new key and drop the previous keys")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := common.load(fs, e.getenv, registry())
	if err != nil {
		return err
	}
	log := newLogger(e.stderr, cfg.LogLevel)
	keys, err := loadKeys(cfg.DataDir, e.getenv, false, log)
	if err != nil {
		return err
	}
	fromEnv := strings.TrimSpace(e.getenv("VERIHOOK_ENCRYPTION_KEY")) != ""
	path := filepath.Join(cfg.DataDir, keyFile)
	if *finish {
		return finishRotation(ctx, e, cfg, keys, fromEnv, path)
	}
	if len(keys) > 1 {
		return errors.New("a key rotation is under way (there are previous keys): end it first with verihook rotate-key --finish")
	}
	key := make([]byte, hub.KeySize)
	rand.Read(key)
	encoded := base64.StdEncoding.EncodeToString(key)
	if fromEnv {
		fmt.Fprintf(e.stdout, `A new key, fingerprint %s:

  VERIHOOK_ENCRYPTION_KEY=%s
  VERIHOOK_PREVIOUS_ENCRYPTION_KEYS=<the current VERIHOOK_ENCRYPTION_KEY, fingerprint %s>

Set both and restart verihook serve: it encrypts under the new key and re-encrypts the old
data in the background. With several instances on PostgreSQL, first add the new key to
VERIHOOK_PREVIOUS_ENCRYPTION_KEYS on every instance and restart them all, then swap the two.
When serve logs "key rotation done", run verihook rotate-key --finish.
`, hub.KeyFingerprint(key), encoded, hub.KeyFingerprint(keys[0]))
		return nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	if err := replaceKeyFile(path, keyFileHeader+encoded+"\n"+stripComments(string(raw))); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, `The key file %s now holds a new key, fingerprint %s, before the current one (%s).
Restart verihook serve: it encrypts under the new key and re-encrypts the old data in the
background. When it logs "key rotation done", run verihook rotate-key --finish.
`, path, hub.KeyFingerprint(key), hub.KeyFingerprint(keys[0]))
	return nil
}

// finishRotation re-seals what no instance re-sealed yet and drops the
// previous keys, unless a value opens with none of the keys.
func finishRotation(ctx context.Context, e env, cfg Config, keys [][]byte, fromEnv bool, path string) error {
	if len(keys) == 1 {
		fmt.Fprintln(e.stdout, "no key rotation is under way: there is one key,", hub.KeyFingerprint(keys[0]))
		return nil
	}
	store, err := openStore(ctx, cfg, e.getenv, newLogger(e.stderr, cfg.LogLevel))
	if err != nil {
		return err
	}
	defer store.Close()
	total, err := hub.ResealAll(ctx, store, func(column string, total hub.ResealResult) {
		fmt.Fprintf(e.stdout, "%s: %d re-encrypted\n", column, total.Resealed)
	})
	if err != nil {
		return err
	}
	if total.Unreadable > 0 {
		return fmt.Errorf("%d values open with none of the keys: the previous keys are kept", total.Unreadable)
	}
	fmt.Fprintf(e.stdout, "every value is encrypted under %s\n", hub.KeyFingerprint(keys[0]))
	if fromEnv || e.getenv("VERIHOOK_PREVIOUS_ENCRYPTION_KEYS") != "" {
		fmt.Fprintln(e.stdout, "remove VERIHOOK_PREVIOUS_ENCRYPTION_KEYS from every instance's environment")
	}
	if fromEnv {
		return nil
	}
	if err := replaceKeyFile(path, base64.StdEncoding.EncodeToString(keys[0])+"\n"); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "the key file holds the current key alone")
	return nil
}

// stripComments returns the lines of a key file that are not comments.
func stripComments(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// replaceKeyFile replaces the key file at path with content, atomically: a
// temporary file (mode 0600), synced, renamed over it, and the directory
// synced, so that a crash leaves the old keys or the new, never a part.
func replaceKeyFile(path, content string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, keyFile+".new-*")
	if err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("key file: sync data dir: %w", err)
	}
	defer d.Close()
	return d.Sync()
}

// resealLogEvery is how often, at most, the background re-seal logs its
// progress.
const resealLogEvery = 10 * time.Second

// reseal re-seals, in the background, the values that a previous key
// sealed, logging its progress; keys are the cipher's key fingerprints,
// the current one first.
func (m *Main) reseal(ctx context.Context, keys []string) {
	defer close(m.resealed)
	m.Logger.Info("key rotation: re-encrypting old data under the current key in the background", "key", keys[0], "previous", keys[1:])
	var last time.Time
	total, err := hub.ResealAll(ctx, m.Store, func(column string, total hub.ResealResult) {
		if time.Since(last) >= resealLogEvery { // a line per batch would flood a large database's log
			last = time.Now()
			m.Logger.Info("key rotation: progress", "column", column, "reencrypted", total.Resealed, "unreadable", total.Unreadable)
		}
	})
	switch {
	case err != nil && ctx.Err() != nil:
		m.Logger.Info("key rotation: stopped; it resumes at the next start", "reencrypted", total.Resealed)
	case err != nil:
		m.Logger.Error("key rotation: stopped; it resumes at the next start", "err", err, "reencrypted", total.Resealed)
	case total.Unreadable > 0:
		m.Logger.Error("key rotation: some values open with none of the keys; keep the previous keys", "unreadable", total.Unreadable, "reencrypted", total.Resealed)
	default:
		m.Logger.Info("key rotation done: every value is encrypted under the current key; run verihook rotate-key --finish", "key", keys[0], "reencrypted", total.Resealed)
	}
}
