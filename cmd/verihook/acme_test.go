package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
)

// TestACMEWithPebble obtains a certificate from Pebble, Let's Encrypt's ACME
// test server, run in-process: Pebble validates the challenge against the
// running verihook, which then serves the certificate it issued. A second
// instance on the same store serves that certificate while Pebble is down:
// it came from the store, sealed there.
func TestACMEWithPebble(t *testing.T) {
	t.Setenv("PEBBLE_VA_NOSLEEP", "1") // Pebble's random validation delays
	quiet := log.New(io.Discard, "", 0)
	var acmeServer atomic.Pointer[http.Handler] // set once verihook's ports are known
	down := http.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "ACME server down", http.StatusServiceUnavailable)
	}))
	acmeServer.Store(&down)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*acmeServer.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	cfg := testConfig(t)
	cfg.TLS = TLSConfig{ACMEDomains: []string{"kyc.verihook.test"}, ACMEDirectory: srv.URL + wfe.DirectoryPath, HTTPListen: "127.0.0.1:0"}
	start := func() *Main {
		m := &Main{Config: cfg, ACMEClient: srv.Client()}
		if err := m.Run(t.Context()); err != nil {
			t.Fatalf("Run: %v", err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	m := start()

	port := func(addr string) int {
		_, p, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(p)
		return n
	}
	store := db.NewMemoryStore()
	authority := ca.New(quiet, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {}})
	validator := va.New(quiet, port(m.HTTPAddr()), port(m.Addr()), false, loopbackDNS(t), store)
	front := wfe.New(quiet, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	up := front.Handler()
	acmeServer.Store(&up)

	roots := x509.NewCertPool()
	roots.AddCert(authority.GetRootCert(0).Cert)
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "kyc.verihook.test"}, DisableKeepAlives: true},
		Timeout: 30 * time.Second} // a failing test fails fast, not after autocert's 5 minutes
	get := func(m *Main) *x509.Certificate {
		t.Helper()
		resp, err := client.Get("https://" + m.Addr() + "/healthz")
		if err != nil {
			t.Fatalf("GET /healthz over TLS: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /healthz = %d", resp.StatusCode)
		}
		return resp.TLS.PeerCertificates[0]
	}
	issued := get(m)
	if issued.DNSNames[0] != "kyc.verihook.test" {
		t.Fatalf("served a certificate for %v", issued.DNSNames)
	}
	m.Close()

	acmeServer.Store(&down)
	other := start()
	if got := get(other); !got.Equal(issued) {
		t.Errorf("the second instance served certificate %s, want the one the first obtained, %s", got.SerialNumber, issued.SerialNumber)
	}

	raw, err := sql.Open("sqlite", filepath.Join(cfg.DataDir, "verihook.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rows, err := raw.Query(`SELECT id, data FROM cert_cache`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var key string
		var data []byte
		if err := rows.Scan(&key, &data); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte("PRIVATE KEY")) || bytes.Contains(data, issued.Raw[:64]) {
			t.Errorf("cert_cache %q holds a key or certificate in clear", key)
		}
		n++
	}
	if n == 0 {
		t.Error("cert_cache is empty; want the certificate and the account key")
	}
}

// loopbackDNS serves DNS over TCP, answering every A question with
// 127.0.0.1, so that Pebble validates its challenges against this machine;
// it returns the server's address.
func loopbackDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		ans := new(dns.Msg)
		ans.SetReply(q)
		for _, qq := range q.Question {
			if qq.Qtype == dns.TypeA {
				ans.Answer = append(ans.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(127, 0, 0, 1)})
			}
		}
		w.WriteMsg(ans)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}
