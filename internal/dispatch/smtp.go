package dispatch

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// mailer sends e-mail through one SMTP server: a connection per message
// (dispatches are few and urgent; a pool would hold connections the server
// may drop), with STARTTLS or implicit TLS, and AUTH PLAIN or LOGIN.
type mailer struct {
	cfg  *SMTPConfig
	from *mail.Address
	tls  *tls.Config
	// dial connects to the server; the SSRF guard lives in it.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// now dates the messages.
	now func() time.Time
}

func newMailer(cfg *EmailConfig, dial func(ctx context.Context, network, addr string) (net.Conn, error), now func() time.Time) (*mailer, error) {
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("from: %w", err)
	}
	tc, err := cfg.SMTP.tlsConfig()
	if err != nil {
		return nil, fmt.Errorf("smtp.ca_file: %w", err)
	}
	return &mailer{cfg: &cfg.SMTP, from: from, tls: tc, dial: dial, now: now}, nil
}

// Send delivers m in one SMTP conversation and returns once the server has
// accepted the DATA (its reply to the final dot), or with a *sendError: a
// 5xx reply is permanent, anything else (4xx, timeouts, a dropped
// connection, a TLS failure) temporary.
func (ml *mailer) Send(ctx context.Context, m message) (err error) {
	to, err := mail.ParseAddress(m.To)
	if err != nil || strings.ContainsAny(m.To, "\r\n") {
		return permanent("the recipient is not an e-mail address")
	}
	raw, err := ml.compose(m, to)
	if err != nil {
		return permanent("%v", err)
	}
	addr := net.JoinHostPort(ml.cfg.Host, strconv.Itoa(ml.cfg.Port))
	conn, err := ml.dial(ctx, "tcp", addr)
	if err != nil {
		return classify("connect", err)
	}
	defer conn.Close()
	// One deadline for the whole conversation: the context's (the
	// dispatch's deadline and the attempt's timeout).
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if ml.cfg.TLS == "tls" {
		tc := tls.Client(conn, ml.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return classify("tls handshake", err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, ml.cfg.Host)
	if err != nil {
		return classify("greeting", err)
	}
	defer c.Close()
	if err := c.Hello(ml.cfg.HELO); err != nil {
		return classify("ehlo", err)
	}
	if ml.cfg.TLS == "starttls" {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			// Never fall back to plain text: the message holds a code.
			return temporary("smtp: the server does not offer STARTTLS")
		}
		if err := c.StartTLS(ml.tls); err != nil {
			return classify("starttls", err)
		}
	}
	if ml.cfg.Username != "" {
		var a smtp.Auth
		if ml.cfg.Auth == "login" {
			a = &loginAuth{username: ml.cfg.Username, password: ml.cfg.Password, host: ml.cfg.Host}
		} else {
			a = smtp.PlainAuth("", ml.cfg.Username, ml.cfg.Password, ml.cfg.Host)
		}
		if err := c.Auth(a); err != nil {
			return classify("auth", err)
		}
	}
	if err := c.Mail(ml.from.Address); err != nil {
		return classify("mail from", err)
	}
	if err := c.Rcpt(to.Address); err != nil {
		return classify("rcpt to", err)
	}
	w, err := c.Data()
	if err != nil {
		return classify("data", err)
	}
	if _, err := w.Write(raw); err != nil {
		return classify("data", err)
	}
	if err := w.Close(); err != nil { // the server's verdict on the message
		return classify("data", err)
	}
	c.Quit() // the message is accepted; a failed goodbye changes nothing
	return nil
}

// compose builds the message: headers (the subject Q-encoded, and refused
// if it would add a header), then the body as quoted-printable UTF-8 text.
func (ml *mailer) compose(m message, to *mail.Address) ([]byte, error) {
	subject := strings.Join(strings.Fields(m.Subject), " ") // no CR or LF can reach the header
	var b bytes.Buffer
	h := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	h("From", ml.from.String())
	h("To", (&mail.Address{Address: to.Address}).String())
	h("Subject", mime.QEncoding.Encode("utf-8", subject))
	h("Date", ml.now().Format(time.RFC1123Z))
	// The dispatch id makes every attempt of one dispatch the same message,
	// which lets mail systems that deduplicate by Message-ID drop a resend.
	h("Message-ID", "<"+m.ID+"@verihook>")
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	body := strings.ReplaceAll(strings.ReplaceAll(m.Body, "\r\n", "\n"), "\n", "\r\n")
	if _, err := qp.Write([]byte(body)); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	b.WriteString("\r\n")
	return b.Bytes(), nil
}

// classify turns an error of one SMTP step into a sendError: a 5xx reply is
// permanent, everything else temporary. The server's text is kept, as it
// says why; the worker removes the recipient from it.
func classify(step string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) {
		if te.Code >= 500 {
			return permanent("smtp %s: %d %s", step, te.Code, te.Msg)
		}
		return temporary("smtp %s: %d %s", step, te.Code, te.Msg)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return temporary("smtp %s: timeout", step)
	}
	return temporary("smtp %s: %v", step, err)
}

// loginAuth is the AUTH LOGIN mechanism, which net/smtp lacks: the username
// and password, each at the server's prompt. Like smtp.PlainAuth it sends
// them only over TLS or to a loopback host.
type loginAuth struct {
	username, password, host string
	step                     int
}

func (a *loginAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS && !isLoopback(server.Name) {
		return "", nil, errors.New("unencrypted connection")
	}
	if server.Name != a.host {
		return "", nil, errors.New("wrong host name")
	}
	a.step = 0
	return "LOGIN", nil, nil
}

func (a *loginAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	a.step++
	switch a.step {
	case 1:
		return []byte(a.username), nil
	case 2:
		return []byte(a.password), nil
	}
	return nil, fmt.Errorf("unexpected server challenge %q", fromServer)
}
