package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/verihook/verihook/internal/dispatch/smtptest"
	"github.com/verihook/verihook/internal/provider"
	"github.com/verihook/verihook/internal/provider/identomat"
)

// cmdDispatch measures SPEC section 7's latency: from the start of
// Identomat's email-one-time-password-request callback to the SMTP server's
// acceptance of the e-mail (its reply to the final dot of DATA), at a fixed
// rate. The SMTP server is smtptest, in this process, with STARTTLS under a
// throwaway CA and AUTH PLAIN, as a real relay would be; verihook is a
// child `verihook serve` on a fresh SQLite data dir.
func cmdDispatch(ctx context.Context, args []string) error {
	fs := newFlagSet("dispatch")
	bin := fs.String("bin", "", "verihook binary to start (default: go build ./cmd/verihook into a temp dir)")
	rate := fs.Float64("rate", 50, "callbacks per second")
	duration := fs.Duration("duration", 20*time.Second, "how long to send")
	drain := fs.Duration("drain", 30*time.Second, "how long to wait for the last e-mails")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rate <= 0 {
		return errors.New("--rate must be positive")
	}
	dir, err := os.MkdirTemp("", "verihook-bench-dispatch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if *bin == "" {
		if *bin, err = buildVerihook(dir); err != nil {
			return err
		}
	}
	caPEM, serverTLS, err := smtptest.NewCA()
	if err != nil {
		return err
	}
	ca := filepath.Join(dir, "smtp-ca.pem")
	if err := os.WriteFile(ca, caPEM, 0o600); err != nil {
		return err
	}
	smtp, err := smtptest.Start(smtptest.Options{TLS: serverTLS, Users: map[string]string{"bench": "bench-pw"}})
	if err != nil {
		return err
	}
	defer smtp.Close()
	n := int(*rate * duration.Seconds())
	t, err := startVerihook(ctx, serverOpts{bin: *bin, dataDir: filepath.Join(dir, "data"), dispatch: fmt.Sprintf(
		"{limits: {per_source: %d}, email: {smtp: {host: 127.0.0.1, port: %d, tls: starttls, ca_file: %q, username: bench, password: bench-pw}, from: kyc@bench.example}}",
		n+1, smtp.Port(), ca)})
	if err != nil {
		return err
	}
	defer t.close()

	src := benchSources[0] // identomat
	runID := newRunID()
	var (
		mu      sync.Mutex
		started = map[string]time.Time{} // by recipient
		acks    []time.Duration
		failed  = map[string]int{}
		wg      sync.WaitGroup
	)
	client := newClient(64)
	fmt.Printf("dispatch: %d OTP e-mails at %.0f/s for %s, SMTP with STARTTLS and AUTH on %s\n", n, *rate, *duration, smtp.Addr)
	tick := time.NewTicker(time.Duration(float64(time.Second) / *rate))
	defer tick.Stop()
	for i := range n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		to := fmt.Sprintf("applicant-%s-%06d@bench.example", runID, i)
		body, h, err := src.Provider.Build(identomat.EventEmailOTP, provider.Fields{Ref: fmt.Sprintf("bench-%s-%06d", runID, i), Recipient: to, Text: "Your code is 246810"})
		if err == nil {
			body, err = src.Provider.Sign(src.Secrets, h, body)
		}
		if err != nil {
			return err
		}
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, t.url+"/ingest/"+src.ID, bytes.NewReader(body))
			req.Header = h
			begin := time.Now()
			mu.Lock()
			started[to] = begin
			mu.Unlock()
			resp, err := client.Do(req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed[errKind(err)]++
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				failed[fmt.Sprintf("http %d", resp.StatusCode)]++
				return
			}
			acks = append(acks, time.Since(begin))
		})
	}
	wg.Wait()
	wctx, cancel := context.WithTimeout(ctx, *drain)
	defer cancel()
	smtp.Wait(wctx, func(s *smtptest.Server) bool { return len(s.Messages()) >= len(acks) })

	var e2e []time.Duration
	for _, m := range smtp.Messages() {
		if begin, ok := started[m.To[0]]; ok {
			e2e = append(e2e, m.At.Sub(begin))
		}
	}
	fmt.Printf("acknowledged  %s\n", summarize(acks))
	fmt.Printf("callback -> SMTP DATA accepted  %s\n", summarize(e2e))
	fmt.Printf("e-mails accepted %d of %d acknowledged callbacks; errors: %s\n", len(e2e), len(acks), errorsString(failed))
	if len(e2e) != len(acks) {
		return fmt.Errorf("%d acknowledged callbacks sent no e-mail within %s", len(acks)-len(e2e), *drain)
	}
	return nil
}
