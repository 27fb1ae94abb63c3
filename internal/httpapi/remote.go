package httpapi

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ParseTrustedProxies parses CIDRs (10.0.0.0/8) and bare addresses
// (192.0.2.1) into prefixes, naming the first bad one.
func ParseTrustedProxies(cidrs []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, s := range cidrs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, &net.ParseError{Type: "CIDR or IP address", Text: s}
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// remoteAddr is the address of the client that made the request: the peer,
// unless the peer is one of TrustedProxies, in which case it is the rightmost
// address of X-Forwarded-For that is not a trusted proxy (or X-Real-IP when
// there is no X-Forwarded-For). Addresses left of that one were written by
// the client itself and prove nothing, so a forged header never reaches an
// audit row; a peer that is not a trusted proxy has its headers ignored.
func (s *Server) remoteAddr(r *http.Request) string {
	peer := r.RemoteAddr
	if host, _, err := net.SplitHostPort(peer); err == nil {
		peer = host
	}
	addr, err := netip.ParseAddr(peer)
	if err != nil || !s.trusted(addr) {
		return peer
	}
	hops := r.Header.Values("X-Forwarded-For")
	if len(hops) == 0 {
		if real, err := netip.ParseAddr(strings.TrimSpace(r.Header.Get("X-Real-IP"))); err == nil {
			return real.Unmap().String()
		}
		return peer
	}
	// Walk from the nearest hop outwards: each trusted proxy vouches for the
	// address it appended, the first untrusted one is the client.
	for i := len(hops) - 1; i >= 0; i-- {
		list := strings.Split(hops[i], ",")
		for j := len(list) - 1; j >= 0; j-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(list[j]))
			if err != nil {
				return addr.String() // garbage: the last address vouched for
			}
			addr = hop.Unmap()
			if !s.trusted(addr) {
				return addr.String()
			}
		}
	}
	return addr.String()
}

func (s *Server) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
