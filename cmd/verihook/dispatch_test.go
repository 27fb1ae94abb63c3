package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/dispatch"
	"github.com/verihook/verihook/internal/dispatch/smtptest"
	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// smsGateway is a test SMS gateway with a JSON API: it refuses (400) the
// number refused and accepts (201) every other, and keeps what it accepted.
type smsGateway struct {
	srv     *httptest.Server
	refused string
	mu      sync.Mutex
	got     []map[string]string
}

func newSMSGateway(t *testing.T, refused string) *smsGateway {
	g := &smsGateway{refused: refused}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]string
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil || r.Header.Get("Authorization") != "Key gw-key" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if m["to"] == g.refused {
			http.Error(w, `{"error":"unroutable number"}`, http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		g.got = append(g.got, m)
		g.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *smsGateway) messages() []map[string]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]map[string]string(nil), g.got...)
}

// startSMTP starts a test SMTP server with STARTTLS under a new CA (written
// to a file in dir) and one user, kyc/pw.
func startSMTP(t *testing.T, dir string, reply func(string) string) (*smtptest.Server, string) {
	t.Helper()
	caPEM, serverTLS, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "smtp-ca.pem")
	if err := os.WriteFile(ca, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := smtptest.Start(smtptest.Options{TLS: serverTLS, Users: map[string]string{"kyc": "pw"}, Reply: reply})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv, ca
}

// waitSMTP waits until the server holds n messages.
func waitSMTP(t *testing.T, srv *smtptest.Server, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Wait(ctx, func(s *smtptest.Server) bool { return len(s.Messages()) >= n }); err != nil {
		t.Fatalf("waiting for %d messages at the SMTP server: %v (it has %d)", n, err, len(srv.Messages()))
	}
}

type dispatchList struct {
	Data []hub.Dispatch `json:"data"`
}

// TestSimulateOTPIsSent: `verihook simulate identomat …` against the real
// server ends in a real e-mail (STARTTLS, AUTH, a test CA) and a real SMS
// gateway request, exactly one per request however often the provider
// retries it; a refused one raises dispatch.failed at the endpoint; the API
// and metrics show them, and no one sees a code or recipient.
func TestSimulateOTPIsSent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	smtp, ca := startSMTP(t, dir, nil)
	gw := newSMSGateway(t, "+15550000400")
	secret := hub.NewEndpointSecret()
	rc := newReceiver(t, secret, 0)

	cfg := testConfig(t)
	cfg.AllowPrivateEndpoints = true
	cfg.Endpoints = []EndpointConfig{{ID: "backoffice", URL: rc.srv.URL, Secret: secret, EventTypes: []string{"dispatch.*"}}}
	cfg.Sources[0].Dispatch = &dispatch.Config{
		Email: &dispatch.EmailConfig{
			SMTP: dispatch.SMTPConfig{Host: "127.0.0.1", Port: smtp.Port(), TLS: "starttls", CAFile: ca, Username: "kyc", Password: "${SMTP_PASSWORD}"},
			From: "kyc@example.com",
		},
		SMS: &dispatch.SMSConfig{URL: gw.srv.URL + "/v1/sms", From: "KYC", BodyFormat: "json",
			Body: `{"to": {{.To}}, "from": {{.From}}, "text": {{.Text}}}`, Headers: map[string]string{"Authorization": "Key gw-key"}},
	}
	m := &Main{Config: cfg, Getenv: func(k string) string { return map[string]string{"SMTP_PASSWORD": "pw"}[k] }}
	if err := m.Run(context.Background()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	base := "http://" + m.Addr()
	simulate := func(event, recipient, text string) {
		t.Helper()
		var out, errOut bytes.Buffer
		args := []string{"simulate", "identomat", event, "--to", base + "/ingest/identomat-main", "--secret", testSecrets["identomat"],
			"--recipient", recipient, "--text", text, "--ref", fmt.Sprintf("sess-%d", len(smtp.Messages())+len(gw.messages()))}
		if code := run(context.Background(), args, &out, &errOut, func(string) string { return "" }); code != 0 || !strings.Contains(out.String(), `"status":"accepted"`) {
			t.Fatalf("simulate %s: exit %d: %s %s", event, code, out.String(), errOut.String())
		}
	}

	simulate("email-one-time-password-request", "jane.doe@example.com", "Your code is 135790")
	waitSMTP(t, smtp, 1)
	msg := smtp.Messages()[0]
	if !msg.TLS || msg.User != "kyc" || msg.To[0] != "jane.doe@example.com" || !strings.Contains(msg.Data, "Your code is 135790") {
		t.Errorf("e-mail: tls %v, user %q, to %v, data %q", msg.TLS, msg.User, msg.To, msg.Data)
	}

	simulate("one-time-password", "+15550100777", "Your code is 246810")
	waitFor(t, "the SMS at the gateway", 30*time.Second, func() bool { return len(gw.messages()) == 1 })
	if got := gw.messages()[0]; got["to"] != "+15550100777" || got["from"] != "KYC" || got["text"] != "Your code is 246810" {
		t.Errorf("gateway got %v", got)
	}

	// The provider retries its callback: a duplicate is not sent again.
	body, h := signed(t, "identomat", "one-time-password", provider.Fields{Ref: "sess-retry", Recipient: "+15550100778", Text: "Your code is 112233"})
	accepted := 0
	for range 3 {
		var a ingestAnswer
		if code := postRaw(t, base+"/ingest/identomat-main", h, body, &a); code != http.StatusOK {
			t.Fatalf("ingest: %d %+v", code, a)
		}
		if !a.Duplicate {
			accepted++
		}
	}
	// And a number the gateway refuses for good.
	simulate("one-time-password", "+15550000400", "Your code is 999000")

	tok := token(t, m, hub.RoleViewer)
	var final dispatchList
	waitFor(t, "every dispatch final", 30*time.Second, func() bool {
		getJSON(t, base+"/api/v1/dispatches", tok, &final)
		for _, d := range final.Data {
			if d.Status == hub.DispatchPending {
				return false
			}
		}
		return len(final.Data) == 3+accepted
	})
	if n := len(gw.messages()); n != 1+accepted {
		t.Errorf("the gateway got %d SMS, want %d: one per accepted request", n, 1+accepted)
	}
	statuses := map[hub.DispatchStatus]int{}
	for _, d := range final.Data {
		statuses[d.Status]++
	}
	if statuses[hub.DispatchSent] != 2+accepted || statuses[hub.DispatchFailed] != 1 {
		t.Errorf("dispatch statuses = %v", statuses)
	}
	waitFor(t, "dispatch.failed at the endpoint", 30*time.Second, func() bool { return rc.distinct() == 1 })
	rc.mu.Lock()
	ev := rc.events[0]
	rc.mu.Unlock()
	var ended hub.DispatchEnded
	json.Unmarshal(ev.Data, &ended)
	if ev.Type != hub.EventDispatchFailed || ended.Channel != "sms" || !strings.HasPrefix(ended.Error, "gateway 400") {
		t.Errorf("the endpoint got %s %s", ev.Type, ev.Data)
	}

	// No code, link or recipient in the API's answers or the events sent.
	for _, path := range []string{"/api/v1/dispatches", "/api/v1/dispatches/" + final.Data[0].ID, "/api/v1/events?type=dispatch.failed"} {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, secret := range []string{"jane.doe", "5550100777", "5550000400", "135790", "246810", "999000"} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("GET %s shows %q: %s", path, secret, raw)
			}
		}
	}
	// Once final, the requests' events keep their redacted form only, even
	// for an admin.
	admin := token(t, m, hub.RoleAdmin)
	// The purge follows the dispatch's final record: wait for it.
	var otps struct{ Data []hub.Event }
	waitFor(t, "the events of the final dispatches redacted", 30*time.Second, func() bool {
		getJSON(t, base+"/api/v1/events?type=otp.requested", admin, &otps)
		if len(otps.Data) != len(final.Data) {
			return false
		}
		for _, ev := range otps.Data {
			var data hub.OTPRequested
			json.Unmarshal(ev.Data, &data)
			if data.Text != "[redacted]" || data.Recipient != "[redacted]" {
				return false
			}
		}
		return true
	})
	// And the messages that asked for them have lost their raw bodies (the
	// code and the recipient), keeping their redacted previews.
	asked := map[string]bool{}
	for _, ev := range otps.Data {
		asked[ev.ID] = true
	}
	msgs, _, err := m.Store.Messages(context.Background(), hub.MessageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, lm := range msgs {
		got, err := m.Store.Message(context.Background(), lm.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(got.Events, func(id string) bool { return asked[id] }) {
			continue
		}
		n++
		waitFor(t, "the body of message "+lm.ID+" purged", 30*time.Second, func() bool {
			got, err = m.Store.Message(context.Background(), lm.ID)
			return err != nil || got.Body == nil
		})
		if err != nil || len(got.Preview) == 0 {
			t.Errorf("message %s of a final dispatch: %v, preview %s", lm.ID, err, got.Preview)
		}
	}
	if n != len(otps.Data) {
		t.Errorf("%d messages asked for the %d dispatches", n, len(otps.Data))
	}
	if code := getJSON(t, base+"/api/v1/dispatches?status=lost", tok, &map[string]any{}); code != http.StatusBadRequest {
		t.Errorf("GET /api/v1/dispatches?status=lost = %d, want 400", code)
	}
	resp, err := http.Get("http://" + m.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`verihook_dispatches_total{channel="email",outcome="sent"} 1`,
		fmt.Sprintf(`verihook_dispatches_total{channel="sms",outcome="sent"} %d`, 1+accepted),
		`verihook_dispatches_total{channel="sms",outcome="failed"} 1`} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestDispatchConfigErrors(t *testing.T) {
	t.Parallel()
	src := "sources: [{id: a, provider: identomat, secrets: {callback_api_key: k}, dispatch: %s}]\n"
	for _, tc := range []struct{ dispatch, want string }{
		{"{}", "sources[0].dispatch.want email, sms or both"},
		{"{email: {smtp: {host: smtp.example.com, tls: none}, from: kyc@example.com}}", "sources[0].dispatch.email.smtp.tls none: only for a loopback host"},
		{"{email: {smtp: {host: smtp.example.com, password: '${NOPE_UNSET}', username: u}, from: kyc@example.com}}", "sources[0].dispatch.email.smtp.password: environment variable NOPE_UNSET is not set"},
		{"{sms: {preset: twilio, from: '+1555'}}", "sources[0].dispatch.sms.account_sid and auth_token"},
		{"{sms: {url: 'https://sms.example.com', from: x, body_format: json, body: '{\"to\": \"{{.To}}\"}'}}", "sources[0].dispatch.sms.body: the template does not render JSON"},
		{"{otp_ttl: 1s, sms: {preset: twilio, account_sid: a, auth_token: b, from: x}}", "sources[0].dispatch.otp_ttl 1s"},
		{"{smtp: {}}", "field smtp not found"},
		{"{sms: {preset: twilio, account_sid: a, auth_token: b, from: x, timeout: 20s}}", "sources[0].dispatch: a timeout of 20s wants a dispatch_lease of at least 40s, not 30s"},
		// The SSRF guard, at start-up: a gateway on a private address.
		{"{sms: {preset: twilio, account_sid: a, auth_token: b, from: x, url: 'http://10.0.0.1/sms'}}", "sources[0].dispatch.sms.url: endpoint host 10.0.0.1 is a private address"},
		{"{email: {smtp: {host: 169.254.169.254}, from: kyc@example.com}}", "sources[0].dispatch.email.smtp.host: endpoint host 169.254.169.254 is a link-local address"},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "verihook.yaml")
		yaml := "data_dir: " + filepath.Join(dir, "data") + "\nlisten: 127.0.0.1:0\n" + fmt.Sprintf(src, tc.dispatch)
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"serve", "--config", path}, &out, &errOut, func(string) string { return "" })
		if code != 1 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want %q", tc.dispatch, code, errOut.String(), tc.want)
		}
	}
}

// TestDispatchCrashBetweenClaimAndSend kills the real binary (SIGKILL) while
// it holds a claimed dispatch whose SMTP conversation has not started (the
// server has not greeted): after a restart the lease ends and the e-mail is
// sent exactly once.
func TestDispatchCrashBetweenClaimAndSend(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	dir := t.TempDir()
	var (
		mu      sync.Mutex
		hanging = true
	)
	smtp, ca := startSMTP(t, dir, func(step string) string {
		mu.Lock()
		defer mu.Unlock()
		if step == "connect" && hanging {
			return "hang"
		}
		return ""
	})
	config := writeConfig(t, dir, "verihook.yaml", fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %s
allow_private_endpoints: true
dispatch_lease: 4s
sources:
  - id: identomat-main
    provider: identomat
    secrets: {callback_api_key: %s}
    dispatch:
      email: {smtp: {host: 127.0.0.1, port: %d, tls: starttls, ca_file: %s, username: kyc, password: pw, timeout: 2s}, from: kyc@example.com}
`, filepath.Join(dir, "data"), testSecrets["identomat"], smtp.Port(), ca))
	proc := startProcess(t, bin, config)
	body, h := signed(t, "identomat", "email-one-time-password-request", provider.Fields{Recipient: "jane.doe@example.com", Text: "Your code is 555111"})
	var a ingestAnswer
	if code := postRaw(t, "http://"+proc.addr+"/ingest/identomat-main", h, body, &a); code != http.StatusOK || a.Duplicate {
		t.Fatalf("ingest: %d %+v", code, a)
	}
	// The worker claimed the dispatch and connected; the server says nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := smtp.Wait(ctx, func(s *smtptest.Server) bool { return s.Connections() == 1 }); err != nil {
		t.Fatal("the worker never connected to the SMTP server")
	}
	proc.cmd.Process.Kill()
	proc.cmd.Wait()
	mu.Lock()
	hanging = false
	mu.Unlock()

	proc = startProcess(t, bin, config)
	waitSMTP(t, smtp, 1)
	tok := binToken(t, bin, config)
	var l dispatchList
	waitFor(t, "the dispatch recorded as sent", 30*time.Second, func() bool {
		getJSON(t, "http://"+proc.addr+"/api/v1/dispatches", tok, &l)
		return len(l.Data) == 1 && l.Data[0].Status == hub.DispatchSent
	})
	if n := len(smtp.Messages()); n != 1 || l.Data[0].Attempts != 1 {
		t.Errorf("the server accepted %d messages, the dispatch records %d attempts; want 1 and 1", n, l.Data[0].Attempts)
	}
	// What was sent is the request's e-mail, code included.
	if !strings.Contains(smtp.Messages()[0].Data, "555111") {
		t.Errorf("the message lacks the code")
	}
}
