package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/verihook/verihook/internal/delivery"
	"github.com/verihook/verihook/internal/hub"
)

// runListen runs a local endpoint that verifies and prints what verihook
// delivers, for developers (like `stripe listen`).
func runListen(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "listen", "listen --secret whsec_… [--port 9000]")
	secret := fs.String("secret", "", "the endpoint's secret (whsec_…; GET /api/v1/endpoints/{id}/secret shows it)")
	port := fs.Int("port", 9000, "port to listen on, on 127.0.0.1")
	if err := parse(fs, args); err != nil {
		return err
	}
	if !hub.ValidEndpointSecret(*secret) {
		return errors.New("--secret: want the endpoint's whsec_… secret")
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "Listening on http://%s/ — point an endpoint there (allow_private_endpoints: true). Ctrl-C stops.\n", ln.Addr())
	srv := &http.Server{Handler: listenHandler(*secret, e.stdout, time.Now), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// listenHandler verifies each delivery's signature, prints the event and
// answers 204; a delivery that does not verify is printed and refused with 401.
func listenHandler(secret string, out io.Writer, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		if err := delivery.Verify(secret, r.Header, body, now(), delivery.DefaultTolerance); err != nil {
			fmt.Fprintf(out, "✗ %s %s: signature refused: %v\n", r.Method, r.URL.Path, err)
			http.Error(w, "signature refused", http.StatusUnauthorized)
			return
		}
		var ev hub.Event
		json.Unmarshal(body, &ev)
		var pretty bytes.Buffer
		if json.Indent(&pretty, body, "  ", "  ") != nil {
			pretty.Write(body)
		}
		fmt.Fprintf(out, "✓ %s %s (webhook-id %s, source %s)\n  %s\n", now().UTC().Format(time.RFC3339), ev.Type,
			r.Header.Get(delivery.HeaderID), ev.Source, pretty.String())
		w.WriteHeader(http.StatusNoContent)
	})
}
