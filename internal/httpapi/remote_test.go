package httpapi

import (
	"net/http/httptest"
	"testing"
)

func TestRemoteAddr(t *testing.T) {
	t.Parallel()
	proxies, err := ParseTrustedProxies([]string{"10.0.0.0/8", "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{TrustedProxies: proxies}
	cases := []struct {
		name, peer string
		xff        []string
		realIP     string
		want       string
	}{
		{name: "no proxy", peer: "203.0.113.9:1234", want: "203.0.113.9"},
		{name: "forged header from an untrusted peer", peer: "203.0.113.9:1234", xff: []string{"198.51.100.1"}, want: "203.0.113.9"},
		{name: "forged X-Real-IP from an untrusted peer", peer: "203.0.113.9:1234", realIP: "198.51.100.1", want: "203.0.113.9"},
		{name: "trusted proxy", peer: "10.1.2.3:443", xff: []string{"198.51.100.7"}, want: "198.51.100.7"},
		{name: "client forges the left of the header", peer: "10.1.2.3:443", xff: []string{"1.1.1.1, 198.51.100.7"}, want: "198.51.100.7"},
		{name: "chain of trusted proxies", peer: "192.0.2.1:80", xff: []string{"6.6.6.6, 198.51.100.7, 10.9.9.9"}, want: "198.51.100.7"},
		{name: "several header lines", peer: "10.1.2.3:443", xff: []string{"6.6.6.6", "198.51.100.7, 10.0.0.5"}, want: "198.51.100.7"},
		{name: "X-Real-IP from a trusted proxy", peer: "10.1.2.3:443", realIP: "198.51.100.7", want: "198.51.100.7"},
		{name: "garbage stops at the last vouched address", peer: "10.1.2.3:443", xff: []string{"evil, 10.0.0.5"}, want: "10.0.0.5"},
		{name: "only trusted hops", peer: "10.1.2.3:443", xff: []string{"10.0.0.5"}, want: "10.0.0.5"},
		{name: "IPv6 peer", peer: "[2001:db8::1]:443", xff: []string{"198.51.100.7"}, want: "2001:db8::1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/ingest/x", nil)
			r.RemoteAddr = c.peer
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if c.realIP != "" {
				r.Header.Set("X-Real-IP", c.realIP)
			}
			if got := s.remoteAddr(r); got != c.want {
				t.Errorf("remoteAddr = %q, want %q", got, c.want)
			}
		})
	}
	if _, err := ParseTrustedProxies([]string{"10.0.0.0/33"}); err == nil {
		t.Error("ParseTrustedProxies accepted 10.0.0.0/33")
	}
}
