package delivery

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// noDNS is a resolver whose every lookup fails the test: the cases below use
// IP literals and localhost, which must be decided without a lookup.
func noDNS(t *testing.T) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		t.Errorf("unexpected DNS lookup via %s %s", network, address)
		return nil, errors.New("no DNS in this test")
	}}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		url          string
		allowPrivate bool
		ok           bool
	}{
		{"public IPv4", "https://93.184.216.34/hooks", false, true},
		{"public IPv4 with port over http", "http://93.184.216.34:8080/hooks?x=1", false, true},
		{"public IPv6", "https://[2606:2800:220:1:248:1893:25c8:1946]/hooks", false, true},
		{"loopback", "http://127.0.0.1/hooks", false, false},
		{"loopback elsewhere in 127/8", "http://127.1.2.3/hooks", false, false},
		{"localhost", "http://localhost:8080/hooks", false, false},
		{"a name under localhost", "http://api.localhost./hooks", false, false},
		{"RFC 1918 10/8", "http://10.1.2.3/hooks", false, false},
		{"RFC 1918 172.16/12", "http://172.20.0.1/hooks", false, false},
		{"RFC 1918 192.168/16", "http://192.168.1.10/hooks", false, false},
		{"cloud metadata", "http://169.254.169.254/latest/meta-data/", false, false},
		{"IPv6 loopback", "http://[::1]:8080/hooks", false, false},
		{"IPv6 unique local", "http://[fd00::1]/hooks", false, false},
		{"IPv6 link-local", "http://[fe80::1]/hooks", false, false},
		{"CGNAT", "http://100.64.0.1/hooks", false, false},
		{"unspecified", "http://0.0.0.0/hooks", false, false},
		{"IPv6 unspecified", "http://[::]/hooks", false, false},
		{"multicast", "http://224.0.0.1/hooks", false, false},
		{"broadcast", "http://255.255.255.255/hooks", false, false},
		{"IPv4-mapped loopback", "http://[::ffff:127.0.0.1]/hooks", false, false},
		{"IPv4-mapped metadata", "http://[::ffff:169.254.169.254]/hooks", false, false},
		{"NAT64 of a private address", "http://[64:ff9b::10.0.0.1]/hooks", false, false},
		{"allowPrivate accepts loopback", "http://127.0.0.1:8080/hooks", true, true},
		{"allowPrivate accepts localhost", "http://localhost:8080/hooks", true, true},
		{"ftp is refused", "ftp://93.184.216.34/hooks", false, false},
		{"ftp is refused even when private is allowed", "ftp://127.0.0.1/hooks", true, false},
		{"no host", "https:///hooks", false, false},
		{"not a URL", "http://[::1", false, false},
		{"relative", "/hooks", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckURL(context.Background(), tt.url, tt.allowPrivate, noDNS(t))
			if tt.ok {
				if err != nil {
					t.Fatalf("CheckURL(%s) = %v, want nil", tt.url, err)
				}
				return
			}
			if hub.ErrorCode(err) != hub.EINVALID {
				t.Fatalf("CheckURL(%s) = %v, want an EINVALID error", tt.url, err)
			}
			if msg := hub.ErrorMessage(err); msg == "" || strings.Contains(msg, "internal") {
				t.Errorf("unclear message %q", msg)
			}
		})
	}
}

// TestCheckURLResolves: a name is refused when any address it resolves to
// is forbidden, and one that does not resolve is refused too.
func TestCheckURLResolves(t *testing.T) {
	t.Parallel()
	r := fakeDNS(map[string][]netip.Addr{
		"public.example.":   {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("2606:2800:220:1:248:1893:25c8:1946")},
		"internal.example.": {netip.MustParseAddr("10.0.0.5")},
		"mixed.example.":    {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("127.0.0.1")},
		"metadata.example.": {netip.MustParseAddr("fd00:ec2::254")},
	})
	for _, tc := range []struct {
		url  string
		want string // "" for accepted, else a part of the message
	}{
		{"https://public.example./hooks", ""},
		{"https://internal.example./hooks", "resolves to 10.0.0.5"},
		{"https://mixed.example./hooks", "resolves to 127.0.0.1"},
		{"https://metadata.example./hooks", "link-local"},
		{"https://missing.example./hooks", "does not resolve"},
	} {
		err := CheckURL(context.Background(), tc.url, false, r)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckURL(%s) = %v, want nil", tc.url, err)
		case tc.want != "" && (hub.ErrorCode(err) != hub.EINVALID || !strings.Contains(hub.ErrorMessage(err), tc.want)):
			t.Errorf("CheckURL(%s) = %v, want EINVALID saying %q", tc.url, err, tc.want)
		}
	}
}

// fakeDNS returns a resolver answering A and AAAA questions from names over
// an in-memory connection (DNS over TCP framing): no network is used.
func fakeDNS(names map[string][]netip.Addr) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		client, server := net.Pipe()
		go func() {
			defer server.Close()
			for {
				var n [2]byte
				if _, err := io.ReadFull(server, n[:]); err != nil {
					return
				}
				q := make([]byte, binary.BigEndian.Uint16(n[:]))
				if _, err := io.ReadFull(server, q); err != nil {
					return
				}
				a := dnsAnswer(q, names)
				server.Write(binary.BigEndian.AppendUint16(nil, uint16(len(a))))
				server.Write(a)
			}
		}()
		return client, nil
	}}
}

// dnsAnswer answers a one-question DNS query (RFC 1035 section 4).
func dnsAnswer(q []byte, names map[string][]netip.Addr) []byte {
	var name strings.Builder
	i := 12
	for q[i] != 0 {
		name.Write(q[i+1 : i+1+int(q[i])])
		name.WriteByte('.')
		i += 1 + int(q[i])
	}
	qtype := binary.BigEndian.Uint16(q[i+1:])
	question := q[12 : i+5]
	addrs, known := names[strings.ToLower(name.String())]
	var answers [][]byte
	for _, a := range addrs {
		if (qtype == 1 && a.Is4()) || (qtype == 28 && a.Is6()) {
			rr := []byte{0xc0, 12} // the question's name
			rr = binary.BigEndian.AppendUint16(rr, qtype)
			rr = binary.BigEndian.AppendUint16(rr, 1)  // class IN
			rr = binary.BigEndian.AppendUint32(rr, 60) // TTL
			rr = binary.BigEndian.AppendUint16(rr, uint16(a.BitLen()/8))
			answers = append(answers, append(rr, a.AsSlice()...))
		}
	}
	flags := uint16(0x8180) // a response, recursion desired and available
	if !known {
		flags |= 3 // NXDOMAIN
	}
	m := append([]byte{}, q[:2]...) // the query's id
	m = binary.BigEndian.AppendUint16(m, flags)
	m = binary.BigEndian.AppendUint16(m, 1)
	m = binary.BigEndian.AppendUint16(m, uint16(len(answers)))
	m = append(m, 0, 0, 0, 0) // no authority or additional records
	m = append(m, question...)
	for _, rr := range answers {
		m = append(m, rr...)
	}
	return m
}

func TestForbidden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ip   string
		want string
	}{
		{"93.184.216.34", ""},
		{"2606:2800:220:1:248:1893:25c8:1946", ""},
		{"8.8.8.8", ""},
		{"127.0.0.1", "loopback"},
		{"169.254.169.254", "link-local"},
		{"fd00:ec2::254", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"10.0.0.1", "private"},
		{"172.31.255.255", "private"},
		{"172.32.0.1", ""},
		{"100.127.255.255", "carrier-grade"},
		{"100.128.0.1", ""},
		{"ff02::1", "multicast"},
		{"::ffff:10.0.0.1", "private"},
		{"::10.0.0.1", "private"},
		{"64:ff9b::7f00:1", "loopback"},
		{"64:ff9b::808:808", ""},
		{"fec0::1", "private"},
		{"240.0.0.1", "reserved"},
	} {
		why := forbidden(netip.MustParseAddr(tc.ip))
		if (why == "") != (tc.want == "") || !strings.Contains(why, tc.want) {
			t.Errorf("forbidden(%s) = %q, want %q", tc.ip, why, tc.want)
		}
	}
}

func TestNewClientRefusesPrivateAtConnect(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)

	_, err := NewClient(false, time.Second).Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err == nil {
		t.Fatal("the guarded client connected to a loopback address")
	}
	var he *hub.Error
	if !errors.As(err, &he) || he.Code != hub.EINVALID || !strings.Contains(he.Message, "loopback") {
		t.Errorf("error %v, want the guard's EINVALID loopback refusal", err)
	}

	resp, err := NewClient(true, time.Second).Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("allowPrivate client: %v", err)
	}
	resp.Body.Close()
	if hits.Load() != 1 {
		t.Errorf("receiver saw %d requests, want 1 (from the allowPrivate client only)", hits.Load())
	}
}

func TestNewClientDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the redirect was followed")
	}))
	t.Cleanup(other.Close)
	srv := httptest.NewServer(http.RedirectHandler(other.URL, http.StatusFound))
	t.Cleanup(srv.Close)

	c := NewClient(true, 0)
	if c.Timeout != DefaultTimeout {
		t.Errorf("timeout %s, want the default %s", c.Timeout, DefaultTimeout)
	}
	if tr := c.Transport.(*http.Transport); tr.Proxy != nil {
		t.Error("the client takes a proxy from the environment")
	}
	resp, err := c.Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Errorf("status %d, want the 302 itself", resp.StatusCode)
	}
}
