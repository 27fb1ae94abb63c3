package httpapi

import (
	"net"
	"net/http"
	"strings"
)

// RedirectHTTPS is the handler of a plain-HTTP listener beside the HTTPS
// one: it redirects people to the same URL over HTTPS on httpsPort, but
// serves /ingest/ (a provider takes any 3xx for a failed delivery and would
// retry, then give up) and the health checks with next, as they are.
func RedirectHTTPS(next http.Handler, httpsPort string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/ingest/") || r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "" {
			http.Error(w, "use https", http.StatusBadRequest)
			return
		}
		if httpsPort != "" && httpsPort != "443" {
			host = net.JoinHostPort(host, httpsPort)
		} else if strings.Contains(host, ":") {
			host = "[" + host + "]" // an IPv6 literal
		}
		target := "https://" + host + r.URL.RequestURI()
		// 308 keeps the method and body, where 301 would turn a POST into a GET.
		http.Redirect(w, r, target, http.StatusPermanentRedirect)
	})
}
