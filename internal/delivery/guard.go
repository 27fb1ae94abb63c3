package delivery

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// DefaultTimeout is how long one delivery attempt may take, from connecting
// to reading the response (SPEC section 6).
const DefaultTimeout = 15 * time.Second

// Address ranges that an endpoint may not reach unless private endpoints are
// allowed, beyond what netip.Addr's own predicates cover.
var (
	cgnat         = netip.MustParsePrefix("100.64.0.0/10")  // carrier-grade NAT (RFC 6598)
	thisNetwork   = netip.MustParsePrefix("0.0.0.0/8")      // "this network": 0.0.0.0 reaches the host itself
	reservedIPv4  = netip.MustParsePrefix("240.0.0.0/4")    // reserved, with the broadcast address
	siteLocalIPv6 = netip.MustParsePrefix("fec0::/10")      // deprecated site-local, still routed by some stacks
	nat64         = netip.MustParsePrefix("64:ff9b::/96")   // NAT64: the low 32 bits are an IPv4 address
	ipv4Compat    = netip.MustParsePrefix("::/96")          // deprecated IPv4-compatible IPv6
	metadataIPv6  = netip.MustParseAddr("fd00:ec2::254")    // AWS's IPv6 metadata address (in fc00::/7 too)
	privateIPv6   = netip.MustParsePrefix("fc00::/7")       // unique local addresses
	linkLocalIPv4 = netip.MustParsePrefix("169.254.0.0/16") // includes the cloud metadata address 169.254.169.254
)

// forbidden says why an endpoint may not reach ip, or "" when it may: a
// loopback, private, link-local (the cloud metadata service), unspecified,
// multicast, CGNAT or reserved address, also when written as IPv4-mapped,
// IPv4-compatible or NAT64 IPv6.
func forbidden(ip netip.Addr) string {
	ip = ip.WithZone("").Unmap()
	if ip.Is6() && (ipv4Compat.Contains(ip) || nat64.Contains(ip)) && !ip.IsLoopback() && !ip.IsUnspecified() {
		b := ip.As16()
		if why := forbidden(netip.AddrFrom4([4]byte(b[12:]))); why != "" {
			return why
		}
	}
	switch {
	case !ip.IsValid():
		return "not an IP address"
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsUnspecified() || thisNetwork.Contains(ip):
		return "an unspecified address"
	case ip == metadataIPv6 || linkLocalIPv4.Contains(ip) || ip.IsLinkLocalUnicast():
		return "a link-local address (such as the cloud metadata service)"
	case ip.IsPrivate() || privateIPv6.Contains(ip) || siteLocalIPv6.Contains(ip):
		return "a private address"
	case cgnat.Contains(ip):
		return "a carrier-grade NAT address"
	case ip.IsMulticast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast():
		return "a multicast address"
	case reservedIPv4.Contains(ip):
		return "a reserved address"
	}
	return ""
}

// CheckURL checks an endpoint URL before it is stored: http or https, with a
// host, and, unless allowPrivate, a host whose every address (resolved with
// r, or net.DefaultResolver when r is nil) is public, so that verihook cannot
// be pointed at the network it runs in. A host that is an IP literal is
// checked without any lookup; "localhost" and names under ".localhost" are
// refused without one. Errors are *hub.Error with code EINVALID.
//
// The check at creation is advisory: DNS can change. NewClient's dialer
// repeats it against the address actually connected to.
func CheckURL(ctx context.Context, rawURL string, allowPrivate bool, r *net.Resolver) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return hub.Errorf(hub.EINVALID, "endpoint url is not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return hub.Errorf(hub.EINVALID, "endpoint url must be http or https")
	}
	host := u.Hostname()
	if host == "" {
		return hub.Errorf(hub.EINVALID, "endpoint url has no host")
	}
	if allowPrivate {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if why := forbidden(ip); why != "" {
			return hub.Errorf(hub.EINVALID, "endpoint host %s is %s; private endpoints are not allowed", host, why)
		}
		return nil
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return hub.Errorf(hub.EINVALID, "endpoint host %s is a loopback name; private endpoints are not allowed", host)
	}
	if r == nil {
		r = net.DefaultResolver
	}
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return hub.Errorf(hub.EINVALID, "endpoint host %s does not resolve", host)
	}
	for _, ip := range ips {
		if why := forbidden(ip); why != "" {
			return hub.Errorf(hub.EINVALID, "endpoint host %s resolves to %s, %s; private endpoints are not allowed", host, ip.Unmap(), why)
		}
	}
	return nil
}

// guardControl is a net.Dialer Control function that refuses to connect to
// a forbidden address. It runs after DNS resolution, on the address really
// dialled, so a name that resolved to a public address when the endpoint was
// created and to a private one now (DNS rebinding) is still refused.
func guardControl(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return hub.Errorf(hub.EINVALID, "refusing to connect to %q: not an IP address and port", address)
	}
	if why := forbidden(ap.Addr()); why != "" {
		return hub.Errorf(hub.EINVALID, "refusing to connect to %s: %s; private endpoints are not allowed", ap.Addr().Unmap(), why)
	}
	return nil
}

// NewDialer returns the dialer of NewClient: it gives up connecting after
// timeout and, unless allowPrivate, refuses at connect time any address
// that CheckURL would refuse. Other outgoing connections (SMTP) use it too.
func NewDialer(allowPrivate bool, timeout time.Duration) *net.Dialer {
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		dialer.Control = guardControl
	}
	return dialer
}

// NewClient returns the HTTP client that sends deliveries: it follows no
// redirect (a 3xx is the attempt's result, a failure), gives up after timeout
// (DefaultTimeout when timeout <= 0), uses no proxy from the environment
// (a proxy would hide the address really reached), and, unless allowPrivate,
// refuses at connect time any address that CheckURL would refuse.
func NewClient(allowPrivate bool, timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	dialer := NewDialer(allowPrivate, timeout)
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = dialer.DialContext
	t.MaxIdleConnsPerHost = 16 // a worker sends up to Concurrency requests to one endpoint at once
	return &http.Client{
		Transport:     t,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
