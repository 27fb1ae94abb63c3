package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "verihook test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue writes a certificate for 127.0.0.1 and localhost, with serial, and
// its key as PEM files.
func (ca *testCA) issue(t *testing.T, certFile, keyFile string, serial int64) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(path, typ string, b []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		// A renewal always moves the mtime on; make sure it does here even
		// on a file system with coarse timestamps.
		when := time.Now().Add(time.Duration(serial) * time.Second)
		os.Chtimes(path, when, when)
	}
	write(keyFile, "EC PRIVATE KEY", keyDER)
	write(certFile, "CERTIFICATE", der)
}

// tlsClient trusts pool only and opens a new connection for every request,
// so each request shows the certificate served at that moment.
func tlsClient(pool *x509.CertPool) *http.Client {
	return &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// servedSerial GETs /healthz and returns the serial of the certificate served.
func servedSerial(t *testing.T, c *http.Client, base string) int64 {
	t.Helper()
	resp, err := c.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz over TLS = %d", resp.StatusCode)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber.Int64()
}

// TestTLSCertFiles: verihook serves HTTPS with the configured files, serves
// renewed files without a restart, refuses TLS 1.1, and its plain-HTTP
// listener redirects people but never /ingest.
func TestTLSCertFiles(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.issue(t, certFile, keyFile, 2)

	cfg := testConfig(t)
	cfg.TLS = TLSConfig{CertFile: certFile, KeyFile: keyFile, HTTPListen: "127.0.0.1:0"}
	m := startMain(t, cfg)
	base := "https://" + m.Addr()
	c := tlsClient(ca.pool)
	if got := servedSerial(t, c, base); got != 2 {
		t.Fatalf("served certificate %d, want 2", got)
	}

	ca.issue(t, certFile, keyFile, 3)
	if got := servedSerial(t, c, base); got != 3 {
		t.Errorf("after renewal: served certificate %d, want 3 (the renewed file)", got)
	}
	if err := os.WriteFile(certFile, []byte("half-written"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, c, base); got != 3 {
		t.Errorf("with a broken file: served certificate %d, want the last good one, 3", got)
	}

	old := tlsClient(ca.pool)
	old.Transport.(*http.Transport).TLSClientConfig.MaxVersion = tls.VersionTLS11
	if _, err := old.Get(base + "/healthz"); err == nil {
		t.Error("a TLS 1.1 client was served; want TLS 1.2 at least")
	}

	plain := "http://" + m.HTTPAddr()
	_, port, _ := net.SplitHostPort(m.Addr())
	resp, err := c.Get(plain + "/api/v1/sources?limit=5")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://127.0.0.1:" + port + "/api/v1/sources?limit=5"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("plain GET /api/v1/sources = %d to %q; want 308 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	body, h := signed(t, "idenfy", "IDENTIFICATION_AUTO_FINISHED", provider.Fields{Ref: "scan-tls"})
	var ans ingestAnswer
	if code := postRaw(t, plain+"/ingest/idenfy-main", h, body, &ans); code != http.StatusOK || ans.Status != "accepted" {
		t.Errorf("plain POST /ingest = %d %+v; want 200 accepted, never a redirect", code, ans)
	}
}

// TestTLSConfigErrors: half a pair, both sources of certificates, and an
// unreadable file stop start-up with a message naming the field.
func TestTLSConfigErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		tls  TLSConfig
		want string
	}{
		{"cert without key", TLSConfig{CertFile: "a.crt"}, "set both or neither"},
		{"files and acme", TLSConfig{CertFile: "a.crt", KeyFile: "a.key", ACMEDomains: []string{"kyc.example.com"}}, "acme_domains"},
		{"acme for an address", TLSConfig{ACMEDomains: []string{"192.0.2.1"}}, "not a DNS name"},
		{"redirect without tls", TLSConfig{HTTPListen: ":80"}, "http_listen"},
		{"missing files", TLSConfig{CertFile: "/nonexistent.crt", KeyFile: "/nonexistent.key"}, "tls certificate"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.TLS = c.tls
			m := &Main{Config: cfg}
			err := m.Run(t.Context())
			if err == nil {
				m.Close()
				t.Fatal("Run succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("Run = %v; want it to mention %q", err, c.want)
			}
		})
	}
}

// TestForwardedFor: an audit row shows the address a trusted proxy vouches
// for, and never the one a client forges in X-Forwarded-For.
func TestForwardedFor(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		proxies []string
		want    string
	}{
		{"untrusted peer", nil, "127.0.0.1"},
		{"trusted proxy", []string{"127.0.0.0/8"}, "198.51.100.7"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.TrustedProxies = c.proxies
			m := startMain(t, cfg)
			base := "http://" + m.Addr()
			h := http.Header{"X-Forwarded-For": {"198.51.100.7"}}
			if code := postRaw(t, base+"/ingest/idenfy-main", h, []byte(`{}`), nil); code != http.StatusUnauthorized {
				t.Fatalf("unsigned POST = %d, want 401", code)
			}
			var l messageList
			getJSON(t, base+"/api/v1/messages?status=rejected", token(t, m, hub.RoleViewer), &l)
			if len(l.Data) != 1 || l.Data[0].RemoteAddr != c.want {
				t.Fatalf("rejections = %+v; want one from %s", l.Data, c.want)
			}
		})
	}
}
