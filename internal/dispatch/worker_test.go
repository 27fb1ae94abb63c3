package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/dispatch/smtptest"
	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/store/sqlite"
	"github.com/verihook/verihook/internal/store/sqlite/sqlitetest"
	"github.com/verihook/verihook/internal/testkit"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// The personal data of the test dispatches: none of it may reach a log, an
// error or an event.
const (
	phone   = "+15550100777"
	email   = "jane.doe@example.com"
	otpText = "Your code is 424242"
	link    = "https://widget.example.com/?session_token=secret-token"
)

// env is a real SQLite store on a fake clock, with a log that tests search
// for personal data.
type env struct {
	t      *testing.T
	store  *sqlite.Store
	clock  *testkit.Clock
	log    *testkit.Buffer
	seq    atomic.Int64
	purged []string
	mu     sync.Mutex
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s := sqlitetest.Open(t)
	clock := testkit.NewClock(t0)
	s.Now = clock.Now
	e := &env{t: t, store: s, clock: clock, log: &testkit.Buffer{}}
	t.Cleanup(func() {
		for _, secret := range []string{phone, strings.TrimPrefix(phone, "+"), email, "424242", "secret-token"} {
			if strings.Contains(e.log.String(), secret) {
				t.Errorf("the log holds personal data %q:\n%s", secret, e.log.String())
			}
		}
	})
	return e
}

// request stores a message with one event of typ asking to send to
// recipient by channel, and its dispatch, as the ingest path does.
func (e *env) request(typ, channel, recipient string, ttl time.Duration) hub.Dispatch {
	e.t.Helper()
	now := e.clock.Now()
	m := hub.Message{ID: hub.NewID("msg", now), SourceID: "identomat-main", Provider: "identomat",
		ReceivedAt: now, Status: hub.MessageAccepted, HTTPStatus: 200, DedupKey: fmt.Sprintf("dedup-%d", e.seq.Add(1))}
	var data []byte
	if typ == hub.EventSessionLinkRequested {
		data, _ = json.Marshal(hub.SessionLinkRequested{Channel: channel, Recipient: recipient, Text: "Hello, finish here:", Link: link, SessionRef: "sess-1"})
	} else {
		data, _ = json.Marshal(hub.OTPRequested{Channel: channel, Recipient: recipient, Text: otpText, SessionRef: "sess-1"})
	}
	ev := hub.Event{ID: hub.NewID("evt", now), Type: typ, CreatedAt: now, Source: m.SourceID, Provider: m.Provider, Data: data}
	d, ok := hub.DispatchFor(ev, ttl)
	if !ok {
		e.t.Fatal("DispatchFor = false")
	}
	if _, err := e.store.Ingest(context.Background(), hub.Ingest{Message: m, Events: []hub.Event{ev}, Dispatches: []hub.Dispatch{d}}); err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) get(id string) hub.Dispatch {
	e.t.Helper()
	d, err := e.store.Dispatch(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// worker returns a worker for one source configured by cfg, reaching the
// loopback test servers.
func (e *env) worker(cfg Config) *Worker {
	e.t.Helper()
	if err := cfg.Validate(); err != nil {
		e.t.Fatalf("Validate: %v", err)
	}
	dialer := &net.Dialer{}
	src, err := NewSource(cfg, Network{Dial: dialer.DialContext, DialLocal: dialer.DialContext, Client: &http.Client{}}, e.clock.Now)
	if err != nil {
		e.t.Fatalf("NewSource: %v", err)
	}
	return &Worker{
		Store: e.store, Sources: map[string]*Source{"identomat-main": src}, Now: e.clock.Now,
		Logger: slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Purge: func(_ context.Context, ids []string) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.purged = append(e.purged, ids...)
			return nil
		},
	}
}

func (e *env) wasPurged(eventID string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range e.purged {
		if id == eventID {
			return true
		}
	}
	return false
}

// caFile writes a test CA's certificate and returns its path and the
// server's TLS configuration.
func caFile(t *testing.T) (string, *smtptest.Server, func(opts smtptest.Options) *smtptest.Server) {
	t.Helper()
	caPEM, serverTLS, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	start := func(opts smtptest.Options) *smtptest.Server {
		if opts.TLS == nil {
			opts.TLS = serverTLS
		}
		s, err := smtptest.Start(opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	return path, nil, start
}

func emailConfig(port int, tlsMode, ca, auth string) Config {
	return Config{Email: &EmailConfig{
		SMTP: SMTPConfig{Host: "127.0.0.1", Port: port, TLS: tlsMode, CAFile: ca, Username: "kyc", Password: "pw", Auth: auth, Timeout: 2 * time.Second},
		From: "KYC <kyc@example.com>",
	}}
}

// body decodes the quoted-printable body of a received message.
func body(t *testing.T, m smtptest.Message) (headers, text string) {
	t.Helper()
	h, b, ok := strings.Cut(m.Data, "\r\n\r\n")
	if !ok {
		t.Fatalf("message without a header/body break: %q", m.Data)
	}
	dec, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	return h, string(dec)
}

func TestEmailSTARTTLSAndAuth(t *testing.T) {
	for _, auth := range []string{"plain", "login"} {
		t.Run(auth, func(t *testing.T) {
			e := newEnv(t)
			ca, _, start := caFile(t)
			srv := start(smtptest.Options{Users: map[string]string{"kyc": "pw"}})
			cfg := emailConfig(srv.Port(), "starttls", ca, auth)
			cfg.Email.Templates = map[string]Template{hub.DispatchOTP: {Subject: "Code {{.Code}}", Body: "Use {{.Code}} within 5 minutes.\n{{.Text}}"}}
			w := e.worker(cfg)
			d := e.request(hub.EventOTPRequested, hub.ChannelEmail, email, 5*time.Minute)
			w.drain(context.Background())

			msgs := srv.Messages()
			if len(msgs) != 1 {
				t.Fatalf("the server accepted %d messages, want 1", len(msgs))
			}
			m := msgs[0]
			if !m.TLS || m.User != "kyc" || m.From != "kyc@example.com" || len(m.To) != 1 || m.To[0] != email {
				t.Errorf("message: tls %v, user %q, from %q, to %v", m.TLS, m.User, m.From, m.To)
			}
			h, text := body(t, m)
			for _, want := range []string{"Subject: Code 424242\r\n", "To: <" + email + ">\r\n", "Message-ID: <" + d.ID + "@verihook>\r\n",
				"From: \"KYC\" <kyc@example.com>\r\n", "Content-Type: text/plain; charset=utf-8\r\n"} {
				if !strings.Contains(h+"\r\n", want) {
					t.Errorf("headers lack %q:\n%s", want, h)
				}
			}
			if text != "Use 424242 within 5 minutes.\r\n"+otpText+"\r\n" {
				t.Errorf("body = %q", text)
			}
			got := e.get(d.ID)
			if got.Status != hub.DispatchSent || got.Attempts != 1 || !got.SentAt.Equal(t0) {
				t.Errorf("dispatch = %+v, want sent after 1 attempt", got)
			}
			if !e.wasPurged(d.EventID) {
				t.Error("the event that asked for the dispatch was not purged once it was sent")
			}
		})
	}
}

func TestEmailImplicitTLSAndDefaults(t *testing.T) {
	e := newEnv(t)
	ca, _, start := caFile(t)
	srv := start(smtptest.Options{Implicit: true, Users: map[string]string{"kyc": "pw"}})
	w := e.worker(emailConfig(srv.Port(), "tls", ca, ""))
	e.request(hub.EventSessionLinkRequested, hub.ChannelEmail, email, 5*time.Minute)
	w.drain(context.Background())
	msgs := srv.Messages()
	if len(msgs) != 1 || !msgs[0].TLS {
		t.Fatalf("messages = %+v, want 1 over TLS", msgs)
	}
	h, text := body(t, msgs[0])
	// The defaults: the provider's text, then the link; a stock subject.
	if !strings.Contains(h, "Subject: Your verification link") || text != "Hello, finish here:\r\n"+link+"\r\n" {
		t.Errorf("headers %q, body %q", h, text)
	}
}

func TestEmailFailures(t *testing.T) {
	for _, tc := range []struct {
		name     string
		tls      string
		opts     smtptest.Options
		untrusty string // non-empty: the client trusts another CA
		want     hub.DispatchStatus
		wantErr  string
	}{
		{"rcpt 550 is permanent", "starttls", smtptest.Options{Reply: replyAt("rcpt", "550 5.1.1 <"+email+">: no such user")},
			"", hub.DispatchFailed, "smtp rcpt to: 550 5.1.1 <[redacted]>: no such user"},
		{"data 451 is retried", "starttls", smtptest.Options{Reply: replyAt("end", "451 4.3.0 try again later")},
			"", hub.DispatchPending, "smtp data: 451 4.3.0 try again later"},
		{"mail 421 is retried", "starttls", smtptest.Options{Reply: replyAt("mail", "421 4.7.0 too busy")},
			"", hub.DispatchPending, "smtp mail from: 421 4.7.0 too busy"},
		{"auth refused is permanent", "starttls", smtptest.Options{Users: map[string]string{"kyc": "other"}},
			"", hub.DispatchFailed, "smtp auth: 535 5.7.8 authentication failed"},
		{"a connection dropped mid-DATA is retried", "starttls", smtptest.Options{Reply: replyAt("end", "drop")},
			"", hub.DispatchPending, "smtp data: "},
		{"a server that never answers times out", "starttls", smtptest.Options{Reply: replyAt("connect", "hang")},
			"", hub.DispatchPending, "smtp greeting: timeout"},
		{"an untrusted certificate is retried, never sent in clear", "starttls", smtptest.Options{},
			"yes", hub.DispatchPending, "smtp starttls: tls: failed to verify certificate"},
		{"no STARTTLS offered: never sent in clear", "starttls-missing", smtptest.Options{},
			"", hub.DispatchPending, "smtp: the server does not offer STARTTLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ca, _, start := caFile(t)
			if tc.opts.Users == nil {
				tc.opts.Users = map[string]string{"kyc": "pw"}
			}
			var srv *smtptest.Server
			if tc.tls == "starttls-missing" {
				s, err := smtptest.Start(tc.opts)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(s.Close)
				srv = s
			} else {
				srv = start(tc.opts)
			}
			if tc.untrusty != "" {
				ca, _, _ = caFile(t)
			}
			cfg := emailConfig(srv.Port(), "starttls", ca, "plain")
			cfg.Email.SMTP.Timeout = 300 * time.Millisecond
			w := e.worker(cfg)
			d := e.request(hub.EventOTPRequested, hub.ChannelEmail, email, 5*time.Minute)
			w.drain(context.Background())
			got := e.get(d.ID)
			if got.Status != tc.want || got.Attempts != 1 || !strings.HasPrefix(got.LastError, tc.wantErr) {
				t.Errorf("dispatch = %s after %d attempts, error %q; want %s, error %q…", got.Status, got.Attempts, got.LastError, tc.want, tc.wantErr)
			}
			if tc.want == hub.DispatchPending && !got.NextAttemptAt.Equal(t0.Add(2*time.Second)) {
				t.Errorf("next attempt at %s, want t0+2s", got.NextAttemptAt)
			}
			if n := len(srv.Messages()); n != 0 {
				t.Errorf("the server accepted %d messages", n)
			}
		})
	}
}

// replyAt answers step with reply, and every other step as usual.
func replyAt(step, reply string) func(string) string {
	return func(s string) string {
		if s == step {
			return reply
		}
		return ""
	}
}

func TestEmailRetrySucceeds(t *testing.T) {
	e := newEnv(t)
	ca, _, start := caFile(t)
	var ends atomic.Int32
	srv := start(smtptest.Options{Reply: func(step string) string {
		if step == "end" && ends.Add(1) == 1 {
			return "451 4.3.0 greylisted"
		}
		return ""
	}})
	cfg := emailConfig(srv.Port(), "starttls", ca, "plain")
	cfg.Email.SMTP.Username, cfg.Email.SMTP.Password = "", ""
	w := e.worker(cfg)
	d := e.request(hub.EventOTPRequested, hub.ChannelEmail, email, 5*time.Minute)
	w.drain(context.Background())
	if got := e.get(d.ID); got.Status != hub.DispatchPending {
		t.Fatalf("after a 451: %s", got.Status)
	}
	e.clock.Advance(time.Second)
	w.drain(context.Background())
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("sent before its retry was due: %d messages", n)
	}
	e.clock.Advance(time.Second)
	w.drain(context.Background())
	got := e.get(d.ID)
	if got.Status != hub.DispatchSent || got.Attempts != 2 || len(srv.Messages()) != 1 || got.LastError != "" {
		t.Errorf("dispatch = %+v, %d messages; want sent on the second attempt", got, len(srv.Messages()))
	}
}

// gateway is a test SMS gateway that answers each request with the next
// status of codes (the last one repeated) and keeps what it got.
type gatewayServer struct {
	*httptest.Server
	mu    sync.Mutex
	reqs  []gatewayRequest
	codes []int
}

type gatewayRequest struct {
	Method, Path, User, Password, ContentType, Idempotency string
	Body                                                   string
}

func startGateway(t *testing.T, codes ...int) *gatewayServer {
	g := &gatewayServer{codes: codes}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u, p, _ := r.BasicAuth()
		g.mu.Lock()
		g.reqs = append(g.reqs, gatewayRequest{r.Method, r.URL.Path, u, p, r.Header.Get("Content-Type"), r.Header.Get("Idempotency-Key"), string(b)})
		code := g.codes[min(len(g.reqs), len(g.codes))-1]
		g.mu.Unlock()
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"message":"to %s: status %d"}`, phone, code)
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *gatewayServer) requests() []gatewayRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]gatewayRequest(nil), g.reqs...)
}

func TestSMSTwilio(t *testing.T) {
	e := newEnv(t)
	g := startGateway(t, http.StatusCreated)
	w := e.worker(Config{SMS: &SMSConfig{Preset: "twilio", URL: g.URL + "/2010-04-01/Accounts/AC123/Messages.json",
		AccountSID: "AC123", AuthToken: "tok", From: "+15550000000"}})
	d := e.request(hub.EventOTPRequested, hub.ChannelSMS, phone, 5*time.Minute)
	w.drain(context.Background())
	reqs := g.requests()
	if len(reqs) != 1 {
		t.Fatalf("gateway got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	form, _ := url.ParseQuery(r.Body)
	if r.Method != "POST" || r.Path != "/2010-04-01/Accounts/AC123/Messages.json" || r.User != "AC123" || r.Password != "tok" ||
		r.ContentType != "application/x-www-form-urlencoded" || form.Get("To") != phone || form.Get("From") != "+15550000000" || form.Get("Body") != otpText {
		t.Errorf("request = %+v", r)
	}
	if got := e.get(d.ID); got.Status != hub.DispatchSent {
		t.Errorf("dispatch = %s, want sent", got.Status)
	}
}

func TestSMSGenericEscapes(t *testing.T) {
	tricky := "Code 424242 \"quoted\" & <b>\n{\"x\":1}&to=+1999"
	for _, format := range []string{"json", "form"} {
		t.Run(format, func(t *testing.T) {
			e := newEnv(t)
			g := startGateway(t, http.StatusAccepted)
			tmpl := `{"to": {{.To}}, "from": {{.From}}, "text": {{.Text}}, "ref": {{.ID}}}`
			if format == "form" {
				tmpl = `to={{.To}}&from={{.From}}&text={{.Text}}&ref={{.ID}}`
			}
			w := e.worker(Config{SMS: &SMSConfig{URL: g.URL + "/send", From: "KYC & Co", Body: tmpl, BodyFormat: format,
				Method: "PUT", Headers: map[string]string{"X-Api-Key": "k"}, IdempotencyHeader: "Idempotency-Key",
				Templates: map[string]Template{hub.DispatchOTP: {Body: tricky}}}})
			d := e.request(hub.EventOTPRequested, hub.ChannelSMS, phone, 5*time.Minute)
			w.drain(context.Background())
			reqs := g.requests()
			if len(reqs) != 1 {
				t.Fatalf("gateway got %d requests", len(reqs))
			}
			var got map[string]string
			if format == "json" {
				if err := json.Unmarshal([]byte(reqs[0].Body), &got); err != nil {
					t.Fatalf("body %q is not JSON: %v", reqs[0].Body, err)
				}
			} else {
				v, err := url.ParseQuery(reqs[0].Body)
				if err != nil {
					t.Fatal(err)
				}
				got = map[string]string{"to": v.Get("to"), "from": v.Get("from"), "text": v.Get("text"), "ref": v.Get("ref")}
				if len(v) != 4 {
					t.Errorf("form has %d fields, want 4: %q", len(v), reqs[0].Body)
				}
			}
			want := map[string]string{"to": phone, "from": "KYC & Co", "text": tricky, "ref": d.ID}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("gateway read %v, want %v", got, want)
			}
			if reqs[0].Method != "PUT" || reqs[0].Idempotency != d.ID {
				t.Errorf("method %s, idempotency key %q", reqs[0].Method, reqs[0].Idempotency)
			}
		})
	}
}

func TestSMSStatuses(t *testing.T) {
	for _, tc := range []struct {
		code    int
		want    hub.DispatchStatus
		wantErr string
	}{
		{400, hub.DispatchFailed, `gateway 400: {"message":"to [redacted]: status 400"}`},
		{404, hub.DispatchFailed, "gateway 404"},
		{429, hub.DispatchPending, "gateway 429"},
		{500, hub.DispatchPending, "gateway 500"},
		{503, hub.DispatchPending, "gateway 503"},
		{302, hub.DispatchFailed, "gateway 302"},
	} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			e := newEnv(t)
			g := startGateway(t, tc.code)
			w := e.worker(Config{SMS: &SMSConfig{Preset: "twilio", URL: g.URL, AccountSID: "AC1", AuthToken: "t", From: "+1555"}})
			w.Sources["identomat-main"].channels[hub.ChannelSMS].(*gateway).client = &http.Client{
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			d := e.request(hub.EventOTPRequested, hub.ChannelSMS, phone, 5*time.Minute)
			w.drain(context.Background())
			got := e.get(d.ID)
			if got.Status != tc.want || !strings.HasPrefix(got.LastError, tc.wantErr) || strings.Contains(got.LastError, "5550100777") {
				t.Errorf("dispatch = %s, error %q; want %s, %q…", got.Status, got.LastError, tc.want, tc.wantErr)
			}
		})
	}
}

// TestSMSEchoCutShort: a gateway's answer is kept only in part (256 bytes,
// then 200 characters once white space is collapsed), and a number it
// echoes where that part ends is not kept half written.
func TestSMSEchoCutShort(t *testing.T) {
	for name, pad := range map[string]string{
		"cut at 200 characters": strings.Repeat("x", 190),
		"cut at 256 bytes":      "x" + strings.Repeat(" ", 245),
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, "%s %s is not a valid number", pad, phone)
			}))
			t.Cleanup(srv.Close)
			w := e.worker(Config{SMS: &SMSConfig{Preset: "twilio", URL: srv.URL, AccountSID: "AC1", AuthToken: "t", From: "+1555"}})
			d := e.request(hub.EventOTPRequested, hub.ChannelSMS, phone, 5*time.Minute)
			w.drain(context.Background())
			got := e.get(d.ID)
			if got.Status != hub.DispatchFailed || strings.Contains(got.LastError, phone[:5]) || !strings.HasSuffix(got.LastError, "[redacted]…") {
				t.Errorf("dispatch = %s, error %q; want failed, the number's start redacted where the excerpt ends", got.Status, got.LastError)
			}
		})
	}
}

func TestSMSTimeout(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	w := e.worker(Config{SMS: &SMSConfig{Preset: "twilio", URL: srv.URL, AccountSID: "AC1", AuthToken: "t", From: "+1555", Timeout: 200 * time.Millisecond}})
	d := e.request(hub.EventOTPRequested, hub.ChannelSMS, phone, 5*time.Minute)
	w.drain(context.Background())
	if got := e.get(d.ID); got.Status != hub.DispatchPending || got.LastError != "gateway: timeout" {
		t.Errorf("dispatch = %s, %q; want pending after a timeout", got.Status, got.LastError)
	}
}

// TestDeadline: a gateway that keeps failing is tried on the short
// schedule until the deadline, and the dispatch then expires: never sent
// late, with a dispatch.expired event and the request's data purged.
func TestDeadline(t *testing.T) {
	e := newEnv(t)
	g := startGateway(t, 503)
	cfg := Config{OTPTTL: 30 * time.Second, SMS: &SMSConfig{Preset: "twilio", URL: g.URL, AccountSID: "AC1", AuthToken: "t", From: "+1555"}}
	w := e.worker(cfg)
	var ended atomic.Int32
	w.OnEnded = func() { ended.Add(1) }
	d := e.request(hub.EventOTPRequested, hub.ChannelSMS, phone, cfg.OTPTTL)
	// Attempts at 0, 2, 7, 17 s; the next (17+20 s) would be past the
	// 30 s deadline, so the fourth failure expires it.
	for range 40 {
		w.drain(context.Background())
		e.clock.Advance(time.Second)
	}
	got := e.get(d.ID)
	if got.Status != hub.DispatchExpired || got.Attempts != 4 || len(g.requests()) != 4 {
		t.Errorf("dispatch = %s after %d attempts (%d requests), want expired after 4", got.Status, got.Attempts, len(g.requests()))
	}
	if !got.UpdatedAt.Equal(t0.Add(17 * time.Second)) {
		t.Errorf("expired at %s, want at the fourth attempt (t0+17s)", got.UpdatedAt)
	}
	evs, _, err := e.store.Events(context.Background(), hub.EventFilter{Type: hub.EventDispatchExpired})
	if err != nil || len(evs) != 1 || ended.Load() != 1 || !e.wasPurged(d.EventID) {
		t.Errorf("dispatch.expired events = %d (%v), OnEnded %d, purged %v", len(evs), err, ended.Load(), e.wasPurged(d.EventID))
	}
}

// TestExpiredBeforeClaim: a dispatch nobody sent in time (verihook was
// down) is expired, not sent, when the worker comes back.
func TestExpiredBeforeClaim(t *testing.T) {
	e := newEnv(t)
	g := startGateway(t, 201)
	w := e.worker(Config{SMS: &SMSConfig{Preset: "twilio", URL: g.URL, AccountSID: "AC1", AuthToken: "t", From: "+1555"}})
	d := e.request(hub.EventOTPRequested, hub.ChannelSMS, phone, time.Minute)
	e.clock.Advance(time.Minute)
	w.drain(context.Background())
	if got := e.get(d.ID); got.Status != hub.DispatchExpired || len(g.requests()) != 0 || !e.wasPurged(d.EventID) {
		t.Errorf("dispatch = %s, %d requests; want expired, none sent", got.Status, len(g.requests()))
	}
}

func TestRateLimits(t *testing.T) {
	e := newEnv(t)
	g := startGateway(t, 201)
	w := e.worker(Config{Limits: Limits{PerRecipient: 2, PerRecipientWindow: time.Hour, PerSource: 3, PerSourceWindow: time.Minute},
		SMS: &SMSConfig{Preset: "twilio", URL: g.URL, AccountSID: "AC1", AuthToken: "t", From: "+1555"}})
	var ds []hub.Dispatch
	for range 3 {
		ds = append(ds, e.request(hub.EventOTPRequested, hub.ChannelSMS, phone, 5*time.Minute))
	}
	other := e.request(hub.EventOTPRequested, hub.ChannelSMS, "+15550100999", 5*time.Minute)
	fourth := e.request(hub.EventOTPRequested, hub.ChannelSMS, "+15550100888", 5*time.Minute)
	w.Concurrency = 1 // in order
	w.drain(context.Background())
	var statuses []string
	for _, d := range append(ds, other, fourth) {
		got := e.get(d.ID)
		statuses = append(statuses, string(got.Status))
		if got.Status == hub.DispatchFailed && !strings.HasPrefix(got.LastError, "rate limited") {
			t.Errorf("%s failed with %q", d.ID, got.LastError)
		}
	}
	// Two to the phone, then the third to it refused; the other number
	// fits the source's 3 a minute, and the fifth dispatch does not.
	if got := strings.Join(statuses, ","); got != "sent,sent,failed,sent,failed" {
		t.Errorf("statuses = %s, want sent,sent,failed,sent,failed", got)
	}
	if n := len(g.requests()); n != 3 {
		t.Errorf("gateway got %d requests, want 3", n)
	}
	// A minute later the source may send again; the phone still may not.
	e.clock.Advance(time.Minute)
	again := e.request(hub.EventOTPRequested, hub.ChannelSMS, phone, 5*time.Minute)
	w.drain(context.Background())
	if got := e.get(again.ID); got.Status != hub.DispatchFailed {
		t.Errorf("third to the phone within the hour = %s, want failed", got.Status)
	}
}

func TestNoChannel(t *testing.T) {
	e := newEnv(t)
	g := startGateway(t, 201)
	w := e.worker(Config{SMS: &SMSConfig{Preset: "twilio", URL: g.URL, AccountSID: "AC1", AuthToken: "t", From: "+1555"}})
	d := e.request(hub.EventOTPRequested, hub.ChannelEmail, email, 5*time.Minute)
	bad := e.request(hub.EventOTPRequested, hub.ChannelSMS, "call me maybe", 5*time.Minute)
	w.drain(context.Background())
	if got := e.get(d.ID); got.Status != hub.DispatchFailed || got.LastError != "the source has no email channel configured" || got.Attempts != 0 {
		t.Errorf("dispatch = %+v", got)
	}
	if got := e.get(bad.ID); got.Status != hub.DispatchFailed || got.LastError != "the recipient is not a phone number" {
		t.Errorf("dispatch to a non-number = %+v", got)
	}
}

func TestSubjectCannotAddHeaders(t *testing.T) {
	e := newEnv(t)
	ca, _, start := caFile(t)
	srv := start(smtptest.Options{})
	cfg := emailConfig(srv.Port(), "starttls", ca, "plain")
	cfg.Email.SMTP.Username, cfg.Email.SMTP.Password = "", ""
	cfg.Email.Templates = map[string]Template{hub.DispatchSessionLink: {Subject: "Hi\r\nBcc: victim@example.com\r\n{{.Text}}"}}
	w := e.worker(cfg)
	e.request(hub.EventSessionLinkRequested, hub.ChannelEmail, email, 5*time.Minute)
	evil := e.request(hub.EventSessionLinkRequested, hub.ChannelEmail, email+">\r\nBcc: <victim@example.com", 5*time.Minute)
	w.drain(context.Background())
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("messages = %d, want 1", len(msgs))
	}
	h, _ := body(t, msgs[0])
	if strings.Contains(h, "\r\nBcc:") || !strings.Contains(h, "Subject: Hi Bcc: victim@example.com Hello, finish here:") {
		t.Errorf("headers:\n%s", h)
	}
	if got := e.get(evil.ID); got.Status != hub.DispatchFailed || got.LastError != "the recipient is not an e-mail address" {
		t.Errorf("dispatch to a header-injecting recipient = %+v", got)
	}
}

func TestValidate(t *testing.T) {
	ok := func() Config {
		return Config{
			Email: &EmailConfig{SMTP: SMTPConfig{Host: "smtp.example.com"}, From: "kyc@example.com"},
			SMS:   &SMSConfig{Preset: "twilio", AccountSID: "AC1", AuthToken: "t", From: "+1555"},
		}
	}
	if c := ok(); c.Validate() != nil || c.Email.SMTP.Port != 587 || c.SMS.URL != TwilioURL("AC1") || c.OTPTTL != 5*time.Minute {
		t.Fatalf("defaults: %v %+v", c.Validate(), c)
	}
	for _, tc := range []struct {
		want string
		mod  func(*Config)
	}{
		{"want email, sms or both", func(c *Config) { c.Email, c.SMS = nil, nil }},
		{"otp_ttl 1s", func(c *Config) { c.OTPTTL = time.Second }},
		{"retry_schedule[1] 2h0m0s", func(c *Config) { c.RetrySchedule = []time.Duration{0, 2 * time.Hour} }},
		{"email.smtp.host", func(c *Config) { c.Email.SMTP.Host = "" }},
		{"email.smtp.tls \"ssl\"", func(c *Config) { c.Email.SMTP.TLS = "ssl" }},
		{"email.smtp.tls none: only for a loopback host", func(c *Config) { c.Email.SMTP.TLS = "none" }},
		{"email.smtp.port 70000", func(c *Config) { c.Email.SMTP.Port = 70000 }},
		{"email.smtp.auth \"cram\"", func(c *Config) { c.Email.SMTP.Auth = "cram" }},
		{"email.smtp.ca_file", func(c *Config) { c.Email.SMTP.CAFile = "/nonexistent/ca.pem" }},
		{"email.from", func(c *Config) { c.Email.From = "not an address" }},
		{"email.templates.otp.subject", func(c *Config) { c.Email.Templates = map[string]Template{"otp": {Subject: "{{.Nope}}"}} }},
		{"email.templates.welcome", func(c *Config) { c.Email.Templates = map[string]Template{"welcome": {Body: "x"}} }},
		{"sms.preset \"nexmo\"", func(c *Config) { c.SMS.Preset = "nexmo" }},
		{"sms.account_sid and auth_token", func(c *Config) { c.SMS.AuthToken = "" }},
		{"sms.body_format \"xml\"", func(c *Config) { c.SMS.Preset, c.SMS.URL, c.SMS.BodyFormat = "", "https://sms.example.com", "xml" }},
		{"sms.body: the template does not render JSON", func(c *Config) {
			c.SMS.Preset, c.SMS.URL, c.SMS.BodyFormat, c.SMS.Body = "", "https://sms.example.com", "json", `{"to": "{{.To}}"}`
		}},
		{"sms.url", func(c *Config) { c.SMS.URL = "ftp://x" }},
		{"sms.templates.otp.subject: an SMS has no subject", func(c *Config) { c.SMS.Templates = map[string]Template{"otp": {Subject: "x"}} }},
		{"sms.success_codes: 42", func(c *Config) { c.SMS.SuccessCodes = []int{42} }},
		{"limits.per_recipient -1", func(c *Config) { c.Limits.PerRecipient = -1 }},
	} {
		c := ok()
		tc.mod(&c)
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v", tc.want, err)
		}
	}
	c := ok()
	c.Email.SMTP.Host, c.Email.SMTP.TLS = "127.0.0.1", "none"
	if err := c.Validate(); err != nil || c.Email.SMTP.Port != 25 {
		t.Errorf("tls none on loopback: %v, port %d", err, c.Email.SMTP.Port)
	}
}

// TestScrub: an error message keeps none of a dispatch's recipient, link,
// text or code, however a server or gateway echoes them.
func TestScrub(t *testing.T) {
	t.Parallel()
	mail := hub.DispatchContent{Recipient: "Ana.Doe+kyc@example.com", Link: "https://verify.example.com/s/abc?t=1&u=2",
		Text: "Your code is 482913"}
	sms := hub.DispatchContent{Recipient: "+1 (555) 010-9999", Text: "Code 482913"}
	for _, tc := range []struct {
		name string
		c    hub.DispatchContent
		msg  string
	}{
		{"as sent", mail, "550 <Ana.Doe+kyc@example.com>: no such user"},
		{"other case", mail, "550 <ana.doe+kyc@EXAMPLE.com>: no such user"},
		{"query escaped", mail, "400 bad form: to=Ana.Doe%2Bkyc%40example.com"},
		{"link as JSON", mail, `400 {"link":"https://verify.example.com/s/abc?t=1\u0026u=2"}`},
		{"link as PHP's JSON", mail, `400 {"link":"https:\/\/verify.example.com\/s\/abc?t=1&u=2"}`},
		{"link query escaped", mail, "400 body=" + url.QueryEscape(mail.Link)},
		{"text and code", mail, `400 {"body":"Your code is 482913","code":"482913"}`},
		{"number normalized", sms, `400 {"message":"The 'To' number +15550109999 is not valid"}`},
		{"number without +", sms, "400 to=15550109999"},
		{"number query escaped", sms, "400 To=%2B15550109999&Body=Code+482913"},
		{"link cut short", mail, "400 bad link https://verify.example.com/s/a…"},
		{"address cut short", mail, "550 no such user Ana.Doe+kyc@exam…"},
		{"text on lines collapsed", hub.DispatchContent{Recipient: mail.Recipient, Text: "Dear Ana Doe,\nyour code is 482913"},
			"400 body: Dear Ana Doe, your code is 482913"},
	} {
		got := scrub(tc.msg, tc.c)
		for _, leak := range []string{"Ana", "ana", "example.com", "verify.", "482913", "5550109999"} {
			if strings.Contains(got, leak) {
				t.Errorf("%s: scrub(%q) = %q, which still holds %q", tc.name, tc.msg, got, leak)
			}
		}
		if !strings.Contains(got, "[redacted]") || !strings.HasPrefix(got, tc.msg[:3]) {
			t.Errorf("%s: scrub(%q) = %q, want the message with [redacted] in place", tc.name, tc.msg, got)
		}
	}
}
