package dispatch

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// Config is one source's dispatch configuration: the dispatch key of a
// source in the config file (SPEC section 7). A source with a Config gets a
// dispatch for every otp.requested and session_link.requested event.
type Config struct {
	// OTPTTL is how long after its receipt an OTP or link may still be sent
	// (default 5 minutes); past it the dispatch expires.
	OTPTTL time.Duration `yaml:"otp_ttl"`
	// RetrySchedule is the wait before each attempt (default
	// DefaultSchedule), within OTPTTL.
	RetrySchedule []time.Duration `yaml:"retry_schedule"`
	Email         *EmailConfig    `yaml:"email"`
	SMS           *SMSConfig      `yaml:"sms"`
	Limits        Limits          `yaml:"limits"`
}

// EmailConfig sends dispatches of the email channel through an SMTP server.
type EmailConfig struct {
	SMTP SMTPConfig `yaml:"smtp"`
	// From is the sender address, e.g. "KYC <kyc@example.com>".
	From string `yaml:"from"`
	// Templates are the subject and body per kind (otp, session_link).
	Templates map[string]Template `yaml:"templates"`
}

// SMTPConfig is how to reach the SMTP server.
type SMTPConfig struct {
	Host string `yaml:"host"`
	// Port defaults to 587 for starttls, 465 for tls and 25 for none.
	Port int `yaml:"port"`
	// TLS is starttls (the default), tls (implicit TLS) or none (only to a
	// loopback host: a local relay).
	TLS      string `yaml:"tls"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Auth is plain (the default) or login; used when Username is set.
	Auth string `yaml:"auth"`
	// CAFile is a PEM file of the CAs that sign the server's certificate,
	// instead of the system's.
	CAFile string `yaml:"ca_file"`
	// HELO is the name verihook gives in EHLO (default localhost).
	HELO string `yaml:"helo"`
	// Timeout bounds one attempt (default 10 s), and so does the deadline.
	Timeout time.Duration `yaml:"timeout"`
}

// SMSConfig sends dispatches of the sms channel through an HTTP gateway:
// the twilio preset (Twilio's Messages API), or a generic request.
type SMSConfig struct {
	// Preset is twilio, or empty for the generic gateway.
	Preset string `yaml:"preset"`
	// URL is the gateway's URL; for twilio it defaults to the Messages
	// API of AccountSID.
	URL        string `yaml:"url"`
	AccountSID string `yaml:"account_sid"`
	AuthToken  string `yaml:"auth_token"`
	// From is the sender number or name.
	From string `yaml:"from"`
	// Method (default POST), Headers, Body and BodyFormat describe the
	// generic request. Body is a text/template whose fields (.To, .From,
	// .Text, .ID) are escaped for BodyFormat: json (each a JSON string, with
	// its quotes) or form (URL-encoded).
	Method     string            `yaml:"method"`
	Headers    map[string]string `yaml:"headers"`
	Body       string            `yaml:"body"`
	BodyFormat string            `yaml:"body_format"`
	// SuccessCodes are the statuses that mean sent (default any 2xx).
	SuccessCodes []int `yaml:"success_codes"`
	// IdempotencyHeader, when set, carries the dispatch id on every
	// attempt, so that a gateway that honours it sends a retried request
	// once.
	IdempotencyHeader string `yaml:"idempotency_header"`
	// Timeout bounds one attempt (default 10 s).
	Timeout time.Duration `yaml:"timeout"`
	// Templates are the message text per kind (otp, session_link).
	Templates map[string]Template `yaml:"templates"`
}

// Template is the content of one kind of dispatch: Go text/template text
// with the fields of Content. Empty parts take the defaults: the provider's
// text (and the link, if the text lacks it) and DefaultSubject.
type Template struct {
	Subject string `yaml:"subject"` // email only
	Body    string `yaml:"body"`
}

// Limits caps dispatches, per recipient and per source, over sliding
// windows: SMS pumping costs real money. A dispatch over a limit fails
// without being sent. The counts are kept per instance.
type Limits struct {
	PerRecipient       int           `yaml:"per_recipient"`        // default 5
	PerRecipientWindow time.Duration `yaml:"per_recipient_window"` // default 1h
	PerSource          int           `yaml:"per_source"`           // default 600
	PerSourceWindow    time.Duration `yaml:"per_source_window"`    // default 1m
}

// Defaults.
var (
	// DefaultSchedule is the wait before each attempt: at once, then 2, 5,
	// 10, 20 and 30 seconds, then every minute, always within OTPTTL.
	DefaultSchedule = []time.Duration{0, 2 * time.Second, 5 * time.Second, 10 * time.Second,
		20 * time.Second, 30 * time.Second, time.Minute, time.Minute, time.Minute, time.Minute}
)

// Defaults.
const (
	DefaultOTPTTL  = 5 * time.Minute
	DefaultTimeout = 10 * time.Second
)

// TwilioURL is the Messages API URL of a Twilio account.
func TwilioURL(accountSID string) string {
	return "https://api.twilio.com/2010-04-01/Accounts/" + url.PathEscape(accountSID) + "/Messages.json"
}

// Expand replaces every secret written as ${VAR} (usernames, passwords,
// tokens, header values) with what expand returns for it.
func (c *Config) Expand(expand func(string) (string, error)) error {
	type field struct {
		name string
		v    *string
	}
	var fields []field
	if e := c.Email; e != nil {
		fields = append(fields, field{"email.smtp.username", &e.SMTP.Username}, field{"email.smtp.password", &e.SMTP.Password})
	}
	if m := c.SMS; m != nil {
		fields = append(fields, field{"sms.url", &m.URL}, field{"sms.account_sid", &m.AccountSID}, field{"sms.auth_token", &m.AuthToken})
	}
	for _, f := range fields {
		x, err := expand(*f.v)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		*f.v = x
	}
	if c.SMS != nil {
		for k, v := range c.SMS.Headers {
			x, err := expand(v)
			if err != nil {
				return fmt.Errorf("sms.headers.%s: %w", k, err)
			}
			c.SMS.Headers[k] = x
		}
	}
	return nil
}

// Validate fills the defaults and checks every field; the error names the
// first bad one, relative to the dispatch key (email.smtp.port: …).
func (c *Config) Validate() error {
	if c.OTPTTL == 0 {
		c.OTPTTL = DefaultOTPTTL
	}
	if c.OTPTTL < 10*time.Second || c.OTPTTL > 24*time.Hour {
		return fmt.Errorf("otp_ttl %s: want 10s to 24h", c.OTPTTL)
	}
	if c.RetrySchedule == nil {
		c.RetrySchedule = slices.Clone(DefaultSchedule)
	}
	if len(c.RetrySchedule) == 0 || len(c.RetrySchedule) > 100 {
		return errors.New("retry_schedule: want 1 to 100 waits, e.g. [0s, 2s, 5s, 10s, 30s]")
	}
	for i, d := range c.RetrySchedule {
		if d < 0 || d > time.Hour {
			return fmt.Errorf("retry_schedule[%d] %s: want 0 to 1h (a wait past otp_ttl expires the dispatch)", i, d)
		}
	}
	if c.Email == nil && c.SMS == nil {
		return errors.New("want email, sms or both")
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	if c.Email != nil {
		if err := c.Email.validate(); err != nil {
			return fmt.Errorf("email.%w", err)
		}
	}
	if c.SMS != nil {
		if err := c.SMS.validate(); err != nil {
			return fmt.Errorf("sms.%w", err)
		}
	}
	return nil
}

func (l *Limits) validate() error {
	if l.PerRecipient == 0 {
		l.PerRecipient = 5
	}
	if l.PerRecipientWindow == 0 {
		l.PerRecipientWindow = time.Hour
	}
	if l.PerSource == 0 {
		l.PerSource = 600
	}
	if l.PerSourceWindow == 0 {
		l.PerSourceWindow = time.Minute
	}
	switch {
	case l.PerRecipient < 1:
		return fmt.Errorf("limits.per_recipient %d: want 1 or more", l.PerRecipient)
	case l.PerSource < 1:
		return fmt.Errorf("limits.per_source %d: want 1 or more", l.PerSource)
	case l.PerRecipientWindow < time.Second || l.PerRecipientWindow > 7*24*time.Hour:
		return fmt.Errorf("limits.per_recipient_window %s: want 1s to 168h", l.PerRecipientWindow)
	case l.PerSourceWindow < time.Second || l.PerSourceWindow > 7*24*time.Hour:
		return fmt.Errorf("limits.per_source_window %s: want 1s to 168h", l.PerSourceWindow)
	}
	return nil
}

func (e *EmailConfig) validate() error {
	s := &e.SMTP
	if s.TLS == "" {
		s.TLS = "starttls"
	}
	if s.Port == 0 {
		s.Port = map[string]int{"starttls": 587, "tls": 465, "none": 25}[s.TLS]
	}
	if s.Auth == "" {
		s.Auth = "plain"
	}
	if s.HELO == "" {
		s.HELO = "localhost"
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	switch {
	case s.Host == "" || strings.ContainsAny(s.Host, "/:@ \r\n") && net.ParseIP(s.Host) == nil:
		return fmt.Errorf("smtp.host %q: want a host name or IP address", s.Host)
	case s.TLS != "starttls" && s.TLS != "tls" && s.TLS != "none":
		return fmt.Errorf("smtp.tls %q: want starttls, tls or none", s.TLS)
	case s.TLS == "none" && !isLoopback(s.Host):
		return fmt.Errorf("smtp.tls none: only for a loopback host (a local relay), not %s", s.Host)
	case s.Port < 1 || s.Port > 65535:
		return fmt.Errorf("smtp.port %d: want 1 to 65535", s.Port)
	case s.Auth != "plain" && s.Auth != "login":
		return fmt.Errorf("smtp.auth %q: want plain or login", s.Auth)
	case s.Username == "" && s.Password != "":
		return errors.New("smtp.username: a password without a username")
	case s.Timeout < 100*time.Millisecond || s.Timeout > 5*time.Minute:
		return fmt.Errorf("smtp.timeout %s: want 100ms to 5m", s.Timeout)
	case strings.ContainsAny(s.HELO, " \r\n"):
		return fmt.Errorf("smtp.helo %q: want a host name", s.HELO)
	}
	if s.CAFile != "" {
		if _, err := s.tlsConfig(); err != nil {
			return fmt.Errorf("smtp.ca_file: %w", err)
		}
	}
	if _, err := mail.ParseAddress(e.From); err != nil || strings.ContainsAny(e.From, "\r\n") {
		return fmt.Errorf("from %q: want an e-mail address, e.g. KYC <kyc@example.com>", e.From)
	}
	return validateTemplates(e.Templates, true)
}

// tlsConfig returns the TLS configuration for the server: its name, and the
// CAs of CAFile when set.
func (s *SMTPConfig) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{ServerName: s.Host, MinVersion: tls.VersionTLS12}
	if s.CAFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, err
	}
	cfg.RootCAs = x509.NewCertPool()
	if !cfg.RootCAs.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", s.CAFile)
	}
	return cfg, nil
}

func (s *SMSConfig) validate() error {
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	if s.Method == "" {
		s.Method = "POST"
	}
	switch s.Preset {
	case "twilio":
		if s.AccountSID == "" || s.AuthToken == "" {
			return errors.New("account_sid and auth_token: the twilio preset needs both")
		}
		if s.URL == "" {
			s.URL = TwilioURL(s.AccountSID)
		}
		if s.Body != "" || s.BodyFormat != "" {
			return errors.New("body: the twilio preset builds its own body")
		}
	case "":
		switch s.BodyFormat {
		case "json", "form":
		default:
			return fmt.Errorf("body_format %q: want json or form", s.BodyFormat)
		}
		if s.Body == "" {
			return errors.New("body: the generic gateway needs a body template")
		}
		if _, err := newGateway(s, nil); err != nil {
			return err
		}
	default:
		return fmt.Errorf("preset %q: want twilio, or leave it out for a generic gateway", s.Preset)
	}
	if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url %q: want an http:// or https:// URL", s.URL)
	}
	if s.From == "" {
		return errors.New("from: want the sender number or name")
	}
	for _, c := range s.SuccessCodes {
		if c < 100 || c > 599 {
			return fmt.Errorf("success_codes: %d is not an HTTP status", c)
		}
	}
	if s.Timeout < 100*time.Millisecond || s.Timeout > 5*time.Minute {
		return fmt.Errorf("timeout %s: want 100ms to 5m", s.Timeout)
	}
	return validateTemplates(s.Templates, false)
}

// validateTemplates checks that each template parses and runs on sample
// content, and that SMS templates have no subject.
func validateTemplates(ts map[string]Template, email bool) error {
	for kind, t := range ts {
		if kind != hub.DispatchOTP && kind != hub.DispatchSessionLink {
			return fmt.Errorf("templates.%s: want otp or session_link", kind)
		}
		if !email && t.Subject != "" {
			return fmt.Errorf("templates.%s.subject: an SMS has no subject", kind)
		}
		for part, text := range map[string]string{"subject": t.Subject, "body": t.Body} {
			if text == "" {
				continue
			}
			tmpl, err := template.New(part).Option("missingkey=error").Parse(text)
			if err == nil {
				err = tmpl.Execute(discard{}, sampleContent)
			}
			if err != nil {
				return fmt.Errorf("templates.%s.%s: %w", kind, part, err)
			}
		}
	}
	return nil
}

// MaxTimeout is the longest attempt timeout of the configured channels
// (after Validate).
func (c *Config) MaxTimeout() time.Duration {
	var t time.Duration
	if c.Email != nil {
		t = max(t, c.Email.SMTP.Timeout)
	}
	if c.SMS != nil {
		t = max(t, c.SMS.Timeout)
	}
	return t
}

// CheckHosts checks the SMTP host and the gateway URL with check, the SSRF
// guard that endpoint URLs pass (an http(s) URL).
func (c *Config) CheckHosts(check func(rawURL string) error) error {
	if c.Email != nil && c.Email.SMTP.TLS != "none" {
		u := url.URL{Scheme: "https", Host: net.JoinHostPort(c.Email.SMTP.Host, fmt.Sprint(c.Email.SMTP.Port))}
		if err := check(u.String()); err != nil {
			return fmt.Errorf("email.smtp.host: %s", hub.ErrorMessage(err))
		}
	}
	if c.SMS != nil {
		if err := check(c.SMS.URL); err != nil {
			return fmt.Errorf("sms.url: %s", hub.ErrorMessage(err))
		}
	}
	return nil
}

// isLoopback reports whether host is localhost or a loopback address.
func isLoopback(host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	return strings.EqualFold(host, "localhost")
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
