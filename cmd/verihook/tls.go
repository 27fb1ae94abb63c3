package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/verihook/verihook/internal/httpapi"
	"github.com/verihook/verihook/internal/hub"
)

// TLSConfig is how verihook serves HTTPS itself, on the listen address:
// with certificate files, or with certificates obtained over ACME.
type TLSConfig struct {
	// CertFile and KeyFile are PEM files, read again when they change (a
	// renewal by certbot or cert-manager needs no restart).
	CertFile string `yaml:"tls_cert_file"`
	KeyFile  string `yaml:"tls_key_file"`
	// ACMEDomains are the names to obtain certificates for (Let's
	// Encrypt by default); the certificates and the account key are kept
	// in the store, so every instance serves what one obtained.
	ACMEDomains []string `yaml:"acme_domains"`
	// ACMEEmail is given to the ACME server for expiry notices.
	ACMEEmail string `yaml:"acme_email"`
	// ACMEDirectory is the ACME server's directory URL; empty: Let's
	// Encrypt's production server.
	ACMEDirectory string `yaml:"acme_directory"`
	// HTTPListen, when set, is a plain-HTTP listener beside the HTTPS one:
	// it answers ACME HTTP-01 challenges, serves /ingest as it is (a
	// provider takes a redirect for a failure) and redirects the rest to
	// HTTPS.
	HTTPListen string `yaml:"http_listen"`
}

// enabled reports whether verihook serves HTTPS.
func (c TLSConfig) enabled() bool { return c.CertFile != "" || len(c.ACMEDomains) > 0 }

func (c TLSConfig) validate(listen string) error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("config: tls_cert_file and tls_key_file: set both or neither")
	}
	if c.CertFile != "" && len(c.ACMEDomains) > 0 {
		return errors.New("config: acme_domains: leave it out when tls_cert_file is set (one source of certificates)")
	}
	for _, d := range c.ACMEDomains {
		if d == "" || strings.ContainsAny(d, "/:* ") || net.ParseIP(d) != nil {
			return fmt.Errorf("config: acme_domains: %q is not a DNS name", d)
		}
	}
	if c.ACMEDirectory != "" && !strings.HasPrefix(c.ACMEDirectory, "https://") {
		return fmt.Errorf("config: acme_directory %q: want an https:// URL", c.ACMEDirectory)
	}
	if c.HTTPListen != "" {
		if !c.enabled() {
			return errors.New("config: http_listen: only with tls_cert_file or acme_domains (it redirects to HTTPS)")
		}
		if _, _, err := net.SplitHostPort(c.HTTPListen); err != nil {
			return fmt.Errorf("config: http_listen %q: want host:port, e.g. :80", c.HTTPListen)
		}
		if _, port, _ := net.SplitHostPort(listen); c.HTTPListen == listen && port != "0" {
			return fmt.Errorf("config: http_listen %q: want an address other than listen", c.HTTPListen)
		}
	}
	return nil
}

// serverTLS returns the TLS configuration of the HTTPS listener and the
// handler of the plain-HTTP one (HTTPListen) around api. client, when set,
// is the HTTP client that speaks to the ACME server.
func (c TLSConfig) serverTLS(store hub.Store, api http.Handler, httpsPort string, client *http.Client, log *slog.Logger) (*tls.Config, http.Handler, error) {
	plain := httpapi.RedirectHTTPS(api, httpsPort)
	if c.CertFile != "" {
		files := &certFiles{cert: c.CertFile, key: c.KeyFile, log: log}
		if _, err := files.certificate(nil); err != nil {
			return nil, nil, err
		}
		return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: files.certificate}, plain, nil
	}
	mgr := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      certCache{store},
		HostPolicy: autocert.HostWhitelist(c.ACMEDomains...),
		Email:      c.ACMEEmail,
		Client:     &acme.Client{DirectoryURL: c.ACMEDirectory, HTTPClient: client},
	}
	cfg := mgr.TLSConfig() // answers TLS-ALPN-01 challenges too
	// Go's default cipher suites are the modern ones; TLS 1.0 and 1.1 are
	// refused, as every provider's client speaks 1.2 at least.
	cfg.MinVersion = tls.VersionTLS12
	return cfg, mgr.HTTPHandler(plain), nil
}

// certFiles serves the certificate in a pair of PEM files, loading them
// again when either file's modification time or size changes, so renewed
// files are served without a restart. A pair that fails to load (caught
// mid-renewal, say) leaves the last good certificate in service.
type certFiles struct {
	cert, key string
	log       *slog.Logger

	mu      sync.Mutex
	stamp   string // the files' mtimes and sizes when last loaded
	current *tls.Certificate
}

func (f *certFiles) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	stamp, err := fileStamp(f.cert, f.key)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil && stamp == f.stamp {
		return f.current, nil
	}
	if err == nil {
		var c tls.Certificate
		if c, err = tls.LoadX509KeyPair(f.cert, f.key); err == nil {
			f.current, f.stamp = &c, stamp
			return f.current, nil
		}
	}
	if f.current == nil {
		return nil, fmt.Errorf("tls certificate: %w", err)
	}
	if f.log != nil {
		f.log.Error("tls certificate files could not be loaded; serving the previous certificate", "err", err)
	}
	return f.current, nil
}

func fileStamp(paths ...string) (string, error) {
	var b strings.Builder
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return b.String(), nil
}

// certCache keeps autocert's certificates and account key in the store.
type certCache struct{ store hub.Store }

func (c certCache) Get(ctx context.Context, key string) ([]byte, error) {
	data, err := c.store.CertCache(ctx, key)
	if hub.ErrorCode(err) == hub.ENOTFOUND {
		return nil, autocert.ErrCacheMiss
	}
	return data, err
}

func (c certCache) Put(ctx context.Context, key string, data []byte) error {
	return c.store.PutCertCache(ctx, key, data)
}

func (c certCache) Delete(ctx context.Context, key string) error {
	return c.store.DeleteCertCache(ctx, key)
}

// startTLS puts TLS on the ingest listener when the configuration asks
// for it, and opens the plain-HTTP listener beside it (http_listen).
func (m *Main) startTLS(api http.Handler) error {
	if !m.Config.TLS.enabled() {
		return nil
	}
	ingest := m.servers[0]
	_, port, _ := net.SplitHostPort(ingest.ln.Addr().String())
	cfg, plain, err := m.Config.TLS.serverTLS(m.Store, api, port, m.ACMEClient, m.Logger)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	ingest.ln = tls.NewListener(ingest.ln, cfg)
	if m.Config.TLS.HTTPListen == "" {
		return nil
	}
	return m.listen("http_listen", m.Config.TLS.HTTPListen, plain)
}

// HTTPAddr is the address of the plain-HTTP listener beside the HTTPS one,
// "" when there is none.
func (m *Main) HTTPAddr() string { return m.addrOf("http_listen") }
