package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// runInit writes a first configuration with one source per chosen provider,
// creates an admin token, and tells the operator what to paste where. On a
// terminal it asks for what the flags left out.
func runInit(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "init", "init [--providers identomat,idenfy,kycaid,fractal] [--url https://kyc.example.com] [flags]")
	common := addCommonFlags(fs)
	providers := fs.String("providers", "", "comma-separated providers to connect (default: ask on a terminal, else all)")
	base := fs.String("url", "", "the address providers will call verihook at, e.g. https://kyc.example.com (default: ask on a terminal)")
	listen := fs.String("listen", "127.0.0.1:8080", "address verihook serve listens on")
	force := fs.Bool("force", false, "overwrite an existing config file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	path := *common.config
	if path == "" {
		path = "verihook.yaml"
	}
	if _, err := os.Stat(path); err == nil && !*force {
		return fmt.Errorf("%s exists and is left as it is: pass --force to overwrite it", path)
	}

	reg := registry()
	ask := prompter{e: e, in: bufio.NewReader(e.stdin)}
	if *providers == "" && e.terminal {
		*providers = ask.line(fmt.Sprintf("Providers to connect (%s)", strings.Join(reg.Names(), ", ")), strings.Join(reg.Names(), ","))
	}
	chosen, err := chooseProviders(reg, *providers)
	if err != nil {
		return err
	}
	if *base == "" && e.terminal {
		*base = ask.line("The address providers will call verihook at", "https://kyc.example.com")
	}
	if *base == "" {
		*base = "https://YOUR-HOST"
	}
	u, err := url.Parse(strings.TrimRight(*base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url %q: want http:// or https:// and a host, e.g. https://kyc.example.com", *base)
	}

	cfg := DefaultConfig()
	cfg.Listen = *listen
	if *common.dataDir != "" {
		cfg.DataDir = *common.dataDir
	} else if v := e.getenv("VERIHOOK_DATA_DIR"); v != "" {
		cfg.DataDir = v
	}
	cfg.Database = *common.database
	if cfg.Database == "" {
		cfg.Database = e.getenv("VERIHOOK_DATABASE_URL")
	}
	if err := cfg.validate(e.getenv, reg); err != nil {
		return err
	}

	store, err := openStore(ctx, cfg, e.getenv, newLogger(e.stderr, "warn"))
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer store.Close()
	tok, secret := hub.NewToken(hub.RoleAdmin, "init", 0, time.Now().UTC())
	if err := store.CreateToken(ctx, tok); err != nil {
		return fmt.Errorf("store admin token: %w", err)
	}
	if err := writeFile0600(path, initConfig(cfg, u, chosen), *force); err != nil {
		return err
	}

	w := e.stdout
	fmt.Fprintf(w, "Wrote %s (mode 0600) with %d source(s).\n", path, len(chosen))
	if cfg.Database == "" && e.getenv("VERIHOOK_ENCRYPTION_KEY") == "" {
		fmt.Fprintf(w, "The encryption key is %s: back it up with the database; without it stored payloads cannot be read.\n",
			filepath.Join(cfg.DataDir, keyFile))
	}
	for _, p := range chosen {
		st := p.Setup()
		fmt.Fprintf(w, "\n%s (source %s)\n", st.Title, sourceID(p))
		fmt.Fprintf(w, "  Callback URL:  %s/ingest/%s\n", u, sourceID(p))
		fmt.Fprintf(w, "  Paste it in:   %s\n", st.URL)
		fmt.Fprintf(w, "  Secret:        %s\n", st.Secret)
		fmt.Fprintf(w, "  Then:          export %s='…'\n", secretVar(p))
		if u.Scheme != "https" && st.HTTPSOnly {
			fmt.Fprintf(w, "  Note:          %s accepts only https:// callback URLs (README: Production)\n", st.Title)
		}
	}
	fmt.Fprintf(w, "\nNext:\n  verihook doctor --config %s   # checks the config, the store, the secrets and the clock\n  verihook serve --config %s\n", path, path)
	fmt.Fprintf(w, "\nAn admin token (named init; shown this once, only its hash is stored):\n%s\n", secret)
	return nil
}

// chooseProviders parses a comma-separated list; empty means all of them.
func chooseProviders(reg provider.Registry, list string) ([]provider.Provider, error) {
	names := reg.Names()
	if strings.TrimSpace(list) != "" {
		names = nil
		for n := range strings.SplitSeq(list, ",") {
			if n = strings.ToLower(strings.TrimSpace(n)); n != "" && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	out := make([]provider.Provider, 0, len(names))
	for _, n := range names {
		p, err := reg.Get(n)
		if err != nil {
			return nil, fmt.Errorf("--providers: %s", hub.ErrorMessage(err))
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("--providers: name at least one provider")
	}
	return out, nil
}

// sourceID is the id init gives a provider's source.
func sourceID(p provider.Provider) string { return p.Name() + "-main" }

// secretVar is the environment variable init reads a source's secret from:
// IDENFY_SIGNING_KEY, say.
func secretVar(p provider.Provider) string {
	return strings.ToUpper(p.Name() + "_" + p.Setup().SecretKey)
}

// initConfig renders the config file init writes. Secrets are ${VAR}
// references, so the file holds none and can be kept with the deployment.
func initConfig(cfg Config, base *url.URL, chosen []provider.Provider) []byte {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) } // a JSON string is a YAML scalar
	var b strings.Builder
	fmt.Fprintf(&b, "# verihook configuration, written by verihook init (README.md: Configuration).\n")
	fmt.Fprintf(&b, "# Provider secrets are read from the environment: set each ${VAR} below before\n")
	fmt.Fprintf(&b, "# verihook serve; verihook doctor --config FILE checks them.\n")
	fmt.Fprintf(&b, "listen: %s\n", q(cfg.Listen))
	fmt.Fprintf(&b, "data_dir: %s\n", q(cfg.DataDir))
	domain := "kyc.example.com"
	if h := base.Hostname(); h != "" && net.ParseIP(h) == nil && strings.Contains(h, ".") && h != "YOUR-HOST" {
		domain = h
	}
	fmt.Fprintf(&b, "# HTTPS (iDenfy and Fractal require it): a TLS proxy in front, listed here,\n")
	fmt.Fprintf(&b, "# trusted_proxies: [10.0.0.0/8]\n")
	fmt.Fprintf(&b, "# or verihook itself, with a certificate from Let's Encrypt (README.md: Production):\n")
	fmt.Fprintf(&b, "# listen: 0.0.0.0:443\n# acme_domains: [%s]\n# http_listen: 0.0.0.0:80\n", domain)
	fmt.Fprintf(&b, "sources:\n")
	for _, p := range chosen {
		fmt.Fprintf(&b, "  - id: %s\n    provider: %s\n    secrets: {%s: \"${%s}\"}\n", sourceID(p), p.Name(), p.Setup().SecretKey, secretVar(p))
	}
	return []byte(b.String())
}

// writeFile0600 writes data to path with mode 0600 through a temporary
// file put in place whole, so that a reader never sees half a file. Without
// overwrite it is linked, not renamed, into place: link fails on an
// existing path, even one created a moment ago.
func writeFile0600(path string, data []byte, overwrite bool) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".verihook-*.yaml")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	defer os.Remove(f.Name()) // gone after a rename; a name too many after a link
	if _, err := f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err == nil && overwrite:
		err = os.Rename(f.Name(), path)
	case err == nil:
		if err = os.Link(f.Name(), path); errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists and is left as it is: pass --force to overwrite it", path)
		}
	}
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// prompter asks questions on the terminal.
type prompter struct {
	e  env
	in *bufio.Reader
}

// line asks a question and returns the answer, or def for an empty one.
func (p prompter) line(question, def string) string {
	fmt.Fprintf(p.e.stderr, "%s [%s]: ", question, def)
	ans, _ := p.in.ReadString('\n')
	if ans = strings.TrimSpace(ans); ans != "" {
		return ans
	}
	return def
}
