package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/verihook/verihook/internal/delivery"
	"github.com/verihook/verihook/internal/hub"
)

// clockSkew is the largest difference between this machine's clock and the
// database server's that doctor lets pass: instances stamp what they write
// with their own clocks, and Standard Webhooks receivers refuse timestamps
// five minutes off.
const clockSkew = 2 * time.Second

// runDoctor checks what verihook serve needs, one line per check, and fails
// when any check fails. It changes nothing, but opening the store applies
// pending migrations as serve would.
func runDoctor(ctx context.Context, e env, args []string) error {
	fset := newFlagSet(e, "doctor", "doctor [flags]")
	common := addCommonFlags(fset)
	fset.Bool("allow-private-endpoints", false, "as for serve: let endpoints point at loopback and private addresses")
	if err := parse(fset, args); err != nil {
		return err
	}
	d := doctor{w: e.stdout}
	cfg, err := common.read(fset, e.getenv)
	where := *common.config
	if where == "" {
		where = e.getenv("VERIHOOK_CONFIG")
	}
	if where == "" {
		where = "no config file (defaults and environment)"
	}
	if !d.check("config", err, "%s", where) {
		return d.result()
	}
	// Sources are checked one by one below, so that one bad secret does
	// not hide the others.
	sources := cfg.Sources
	cfg.Sources = nil
	reg := registry()
	if !d.check("config", cfg.validate(e.getenv, reg), "valid: listen %s, data_dir %s", cfg.Listen, cfg.DataDir) {
		return d.result()
	}
	if len(sources) == 0 {
		d.fail("sources", "none configured, so every callback gets 404: run verihook init")
	}
	for _, sc := range sources {
		d.check("source "+sc.ID, checkSource(sc, e.getenv), "%s: secrets present and expanded", sc.Provider)
	}

	if _, err := loadCipher(cfg.DataDir, e.getenv, false, newLogger(io.Discard, "error")); err != nil {
		d.fail("key", "%v", err)
		return d.result()
	} else if v := e.getenv("VERIHOOK_ENCRYPTION_KEY"); strings.TrimSpace(v) != "" {
		d.ok("key", "from VERIHOOK_ENCRYPTION_KEY")
	} else {
		path := filepath.Join(cfg.DataDir, keyFile)
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			d.fail("key", "%s is mode %04o: readable beyond its owner (chmod 600 it)", path, fi.Mode().Perm())
		} else {
			d.ok("key", "%s (mode 0600)", path)
		}
	}
	if cfg.Database == "" {
		db := filepath.Join(cfg.DataDir, "verihook.db")
		if _, err := os.Stat(db); errors.Is(err, fs.ErrNotExist) {
			d.fail("store", "no database at %s yet: run verihook init, or verihook serve creates it", db)
			return d.result()
		}
	}
	store, err := openStore(ctx, cfg, e.getenv, newLogger(e.stderr, "error"))
	if !d.check("store", err, "%s opened; migrations applied; the key opens its data", storeName(cfg)) {
		return d.result()
	}
	defer store.Close()
	d.check("store", store.Ping(ctx), "commits a write")
	if hint := rebuildHint(store); hint != "" {
		d.ok("store", "%s", hint)
	}

	d.clock(ctx, store)
	d.endpoints(ctx, cfg, store, e.getenv)
	return d.result()
}

// checkSource checks a source's secrets: each present, expanded from the
// environment when written ${VAR}, and what its provider needs.
func checkSource(sc SourceConfig, getenv func(string) string) error {
	p, err := registry().Get(sc.Provider)
	if err != nil {
		return errors.New(hub.ErrorMessage(err))
	}
	secrets, err := flattenSecrets(sc.Secrets, getenv)
	if err != nil {
		return fmt.Errorf("secrets.%w", err)
	}
	for name, v := range secrets {
		if strings.Contains(v, "${") {
			return fmt.Errorf("secrets.%s: holds ${ but is not a ${VAR} alone, so it is not read from the environment", name)
		}
	}
	if err := p.CheckSecrets(secrets); err != nil {
		return errors.New(hub.ErrorMessage(err))
	}
	return nil
}

func storeName(cfg Config) string {
	if cfg.Database != "" {
		return "PostgreSQL"
	}
	return "SQLite " + filepath.Join(cfg.DataDir, "verihook.db")
}

// clock compares this machine's clock with the database server's
// (PostgreSQL), and with the newest message stored, which a clock set back
// would be behind.
func (d *doctor) clock(ctx context.Context, store hub.Store) {
	now := time.Now().UTC()
	detail := "this machine's clock reads " + now.Format(time.RFC3339)
	if s, ok := store.(interface {
		ServerTime(context.Context) (time.Time, error)
	}); ok {
		before := time.Now()
		server, err := s.ServerTime(ctx)
		if err != nil {
			d.fail("clock", "read the database server's clock: %v", err)
			return
		}
		// The server read its clock somewhere within the round trip.
		rtt := time.Since(before)
		skew := server.Sub(before.Add(rtt / 2))
		if skew.Abs() > clockSkew+rtt/2 {
			d.fail("clock", "%s away from the database server's: set up time synchronisation (NTP)", skew.Round(time.Millisecond))
			return
		}
		detail = fmt.Sprintf("within %s of the database server's", (skew.Abs() + rtt/2).Round(time.Millisecond))
	} else {
		detail += " (SQLite: no other clock to compare with; keep NTP on)"
	}
	msgs, _, err := store.Messages(ctx, hub.MessageFilter{Page: hub.Page{Limit: 1}})
	if err != nil {
		d.fail("clock", "read the newest message: %v", err)
		return
	}
	if len(msgs) == 1 && msgs[0].ReceivedAt.After(now.Add(time.Minute)) {
		d.fail("clock", "behind the newest stored message (received %s): was the clock set back?", msgs[0].ReceivedAt.Format(time.RFC3339))
		return
	}
	d.ok("clock", "%s", detail)
}

// endpoints checks that every endpoint, stored or configured, passes the
// SSRF guard and answers an HTTP request through it (any status will do:
// HEAD is not a delivery).
func (d *doctor) endpoints(ctx context.Context, cfg Config, store hub.Store, getenv func(string) string) {
	stored, err := store.Endpoints(ctx)
	if err != nil {
		d.fail("endpoints", "list: %v", err)
		return
	}
	urls := map[string]string{}
	var ids []string
	for _, ep := range stored {
		urls[ep.ID] = ep.URL
		ids = append(ids, ep.ID)
	}
	for _, ec := range cfg.Endpoints {
		if _, ok := urls[ec.ID]; !ok {
			urls[ec.ID] = ec.URL
			ids = append(ids, ec.ID)
		}
	}
	client := delivery.NewClient(cfg.AllowPrivateEndpoints, 5*time.Second)
	for _, id := range ids {
		u := urls[id]
		shown := hub.RedactURL(u)
		if err := delivery.CheckURL(ctx, u, cfg.AllowPrivateEndpoints, net.DefaultResolver); err != nil {
			d.fail("endpoint "+id, "%s: %s", shown, hub.ErrorMessage(err))
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
		if err != nil {
			d.fail("endpoint "+id, "%s: %v", shown, err)
			continue
		}
		resp, err := client.Do(req)
		if err != nil {
			d.fail("endpoint "+id, "%s: not reachable: %v", shown, errors.Unwrap(err))
			continue
		}
		resp.Body.Close()
		d.ok("endpoint "+id, "%s answers (HTTP %d to HEAD)", shown, resp.StatusCode)
	}
}

// doctor prints one line per check and counts the failures.
type doctor struct {
	w      io.Writer
	failed int
}

func (d *doctor) ok(what, format string, args ...any) {
	fmt.Fprintf(d.w, "ok    %s: %s\n", what, fmt.Sprintf(format, args...))
}

func (d *doctor) fail(what, format string, args ...any) {
	d.failed++
	fmt.Fprintf(d.w, "FAIL  %s: %s\n", what, fmt.Sprintf(format, args...))
}

// check reports err as a failure, or the success detail; it returns err == nil.
func (d *doctor) check(what string, err error, format string, args ...any) bool {
	if err != nil {
		d.fail(what, "%v", err)
		return false
	}
	d.ok(what, format, args...)
	return true
}

func (d *doctor) result() error {
	if d.failed > 0 {
		return fmt.Errorf("%d check(s) failed", d.failed)
	}
	return nil
}
