package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// TestMetricsOnTheirOwnListener: /metrics is served on metrics_listen
// (loopback by default) and never on the ingest listener; empty turns it
// off.
func TestMetricsOnTheirOwnListener(t *testing.T) {
	t.Parallel()
	if host, _, _ := net.SplitHostPort(DefaultConfig().MetricsListen); !net.ParseIP(host).IsLoopback() {
		t.Errorf("default metrics_listen %q is not loopback", DefaultConfig().MetricsListen)
	}
	m := startMain(t, testConfig(t))
	if code := getJSON(t, "http://"+m.Addr()+"/metrics", "", nil); code != http.StatusNotFound {
		t.Errorf("/metrics on the ingest listener: %d, want 404", code)
	}
	resp, err := http.Get("http://" + m.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(text, []byte("verihook_delivery_queue_depth")) {
		t.Errorf("/metrics on metrics_listen: %d %.200s", resp.StatusCode, text)
	}

	cfg := testConfig(t)
	cfg.MetricsListen = ""
	if m := startMain(t, cfg); m.MetricsAddr() != "" {
		t.Errorf("metrics_listen empty: metrics served on %s", m.MetricsAddr())
	}
}

// TestListenerTakenExitsNonZero: serve exits 1, naming the listener, when
// either of its ports is taken.
func TestListenerTakenExitsNonZero(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	addr := taken.Addr().String()
	for _, tt := range []struct{ name, listen, metrics string }{
		{"listen", addr, "127.0.0.1:0"},
		{"metrics_listen", "127.0.0.1:0", addr},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a serve that starts anyway ends here
			defer cancel()
			var stdout, stderr bytes.Buffer
			code := run(ctx, []string{"serve", "--data-dir", t.TempDir(), "--listen", tt.listen, "--metrics-listen", tt.metrics},
				&stdout, &stderr, func(string) string { return "" })
			want := tt.name + " " + addr + ": listen tcp " + addr + ": bind: address already in use"
			if code != 1 || !strings.Contains(stderr.String(), want) {
				t.Errorf("exit %d, stderr %q; want exit 1 and %q", code, stderr.String(), want)
			}
		})
	}
}

// TestFailedListenerEndsServe: when a listener stops serving, Wait returns
// its error (and serve exits non-zero with it) instead of the program
// carrying on without it.
func TestFailedListenerEndsServe(t *testing.T) {
	t.Parallel()
	for i, name := range []string{"listen", "metrics_listen"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := startMain(t, testConfig(t))
			m.servers[i].ln.Close() // as an accept error the server cannot retry would
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := m.Wait(ctx)
			if err == nil || !strings.HasPrefix(err.Error(), name+" 127.0.0.1:") {
				t.Errorf("Wait after the %s listener failed = %v, want its error", name, err)
			}
		})
	}
}

// TestShutdownIsBounded: Close returns within shutdown_timeout, as a whole,
// even though a request is stuck in flight (its body never comes) and the
// delivery worker is stuck in an attempt (the endpoint never answers, and
// delivery_timeout is long), and says what it cut short.
func TestShutdownIsBounded(t *testing.T) {
	t.Parallel()
	attempting, release := make(chan struct{}, 1), make(chan struct{})
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case attempting <- struct{}{}:
		default:
		}
		<-release
	}))
	t.Cleanup(rc.Close)
	cfg := testConfig(t)
	cfg.AllowPrivateEndpoints = true
	cfg.Endpoints = []EndpointConfig{{ID: "stuck", URL: rc.URL}}
	cfg.DeliveryTimeout, cfg.DeliveryLease = 5*time.Minute, 10*time.Minute
	cfg.ShutdownTimeout = time.Second
	m := startMain(t, cfg)
	t.Cleanup(func() { close(release) }) // runs first: lets the attempt, then rc.Close, return

	body, h := signed(t, "kycaid", "VERIFICATION_COMPLETED", provider.Fields{Ref: "kv-stuck"})
	if code := postRaw(t, "http://"+m.Addr()+"/ingest/kycaid-main", h, body, nil); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	<-attempting

	// A request whose handler is reading a body that never comes: the 100
	// Continue answer shows the handler has started.
	conn, err := net.Dial("tcp", m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /ingest/kycaid-main HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n")
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || !strings.Contains(line, "100 Continue") {
		t.Fatalf("want 100 Continue, got %q, %v", line, err)
	}

	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	select {
	case err := <-closed:
		took := time.Since(start)
		t.Logf("Close took %s: %v", took.Round(time.Millisecond), err)
		if took > cfg.ShutdownTimeout+2*time.Second {
			t.Errorf("Close took %s, want about shutdown_timeout (%s)", took, cfg.ShutdownTimeout)
		}
		for _, want := range []string{"listen: requests in flight cut short", "background work (deliveries, purge) did not stop in time (shutdown_timeout 1s)"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Close = %v, want it to say %q", err, want)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return within 30 s")
	}
	// The store is closed nonetheless.
	if _, err := m.Store.Sources(context.Background()); hub.ErrorCode(err) != hub.EUNAVAILABLE {
		t.Errorf("the store after Close: %v, want EUNAVAILABLE", err)
	}
}
