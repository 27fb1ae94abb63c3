// Package smtptest runs a small SMTP server in process, for tests and the
// load harness: the conversation verihook has with a real server (EHLO,
// STARTTLS or implicit TLS, AUTH PLAIN and LOGIN, MAIL, RCPT, DATA, QUIT),
// with replies and failures a test can choose. It is not a mail server: it
// keeps what it accepts in memory.
package smtptest

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"time"
)

// Message is one message the server accepted.
type Message struct {
	From string
	To   []string
	Data string // as received, dot-unstuffed, CRLF line ends
	// TLS says whether the conversation was encrypted when the DATA came.
	TLS bool
	// User is the authenticated user; empty without AUTH.
	User string
	// At is when the server accepted it (its reply to the final dot).
	At time.Time
}

// Options configure a Server.
type Options struct {
	// TLS, when set, offers STARTTLS (or, with Implicit, speaks TLS from
	// the first byte) with this configuration.
	TLS      *tls.Config
	Implicit bool
	// Users, when set, offers AUTH PLAIN and LOGIN and requires it before
	// MAIL (user name to password).
	Users map[string]string
	// Reply, when set, is asked for the reply to each step: "connect",
	// "mail", "rcpt", "data" (before the message) and "end" (after the
	// final dot). A non-empty answer ("451 try later") replaces the
	// server's own; "drop" closes the connection instead (for "end": in
	// the middle of the DATA); "hang" answers nothing until the client
	// gives up.
	Reply func(step string) string
}

// Server is a running test SMTP server.
type Server struct {
	// Addr is its host:port on 127.0.0.1.
	Addr string
	opts Options
	ln   net.Listener

	mu       sync.Mutex
	msgs     []Message
	conns    int
	changed  chan struct{} // closed and replaced when msgs or conns change
	closed   chan struct{}
	wg       sync.WaitGroup
	liveConn map[net.Conn]bool
}

// Start starts a server on a free port of 127.0.0.1.
func Start(opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: ln.Addr().String(), opts: opts, ln: ln, changed: make(chan struct{}),
		closed: make(chan struct{}), liveConn: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Port is the port the server listens on.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Close stops the server and closes its connections.
func (s *Server) Close() {
	close(s.closed)
	s.ln.Close()
	s.mu.Lock()
	for c := range s.liveConn {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Messages returns the messages accepted so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Connections returns how many connections the server has accepted.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Wait waits until cond holds for the server's state (checked after every
// accepted connection and message) or ctx ends.
func (s *Server) Wait(ctx context.Context, cond func(s *Server) bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond(s) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Server) notify() { // with s.mu held
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns++
		s.liveConn[c] = true
		s.notify()
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.liveConn, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.converse(c)
		}()
	}
}

var errDrop = errors.New("drop")

// reply answers a step with the test's answer if any, else def, and
// returns what it answered; errDrop when the connection must end instead.
func (s *Server) reply(tp *textproto.Conn, step, def string) (string, error) {
	r := def
	if s.opts.Reply != nil {
		r = cmp.Or(s.opts.Reply(step), def)
	}
	switch r {
	case "drop":
		return "", errDrop
	case "hang":
		<-s.closed
		return "", errDrop
	}
	return r, tp.PrintfLine("%s", r)
}

// converse speaks SMTP on one connection until QUIT or an error.
func (s *Server) converse(c net.Conn) {
	isTLS := false
	if s.opts.TLS != nil && s.opts.Implicit {
		c = tls.Server(c, s.opts.TLS)
		isTLS = true
	}
	tp := textproto.NewConn(c)
	if _, err := s.reply(tp, "connect", "220 smtptest ESMTP"); err != nil {
		return
	}
	var (
		user string
		from string
		to   []string
	)
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			ext := []string{"250-smtptest", "250-8BITMIME"}
			if s.opts.TLS != nil && !isTLS {
				ext = append(ext, "250-STARTTLS")
			}
			if s.opts.Users != nil {
				ext = append(ext, "250-AUTH PLAIN LOGIN")
			}
			ext = append(ext, "250 SIZE 10240000")
			tp.PrintfLine("%s", strings.Join(ext, "\r\n"))
		case "STARTTLS":
			if s.opts.TLS == nil || isTLS {
				tp.PrintfLine("502 not now")
				continue
			}
			tp.PrintfLine("220 go ahead")
			tc := tls.Server(c, s.opts.TLS)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, isTLS, user, from, to = tc, true, "", "", nil
			tp = textproto.NewConn(c)
		case "AUTH":
			u, ok := s.auth(tp, arg)
			if !ok {
				tp.PrintfLine("535 5.7.8 authentication failed")
				continue
			}
			user = u
			tp.PrintfLine("235 2.7.0 authenticated")
		case "MAIL":
			if s.opts.Users != nil && user == "" {
				tp.PrintfLine("530 5.7.0 authentication required")
				continue
			}
			from, to = pathOf(arg), nil
			if _, err := s.reply(tp, "mail", "250 2.1.0 ok"); err != nil {
				return
			}
		case "RCPT":
			if r, err := s.reply(tp, "rcpt", "250 2.1.5 ok"); err != nil {
				return
			} else if strings.HasPrefix(r, "2") {
				to = append(to, pathOf(arg))
			}
		case "DATA":
			if from == "" || len(to) == 0 {
				tp.PrintfLine("503 5.5.1 need MAIL and RCPT first")
				continue
			}
			if r, err := s.reply(tp, "data", "354 go ahead"); err != nil {
				return
			} else if !strings.HasPrefix(r, "354") {
				continue // the test refused the DATA
			}
			end := ""
			if s.opts.Reply != nil {
				end = s.opts.Reply("end")
			}
			if end == "drop" {
				// Read a little of the message, then hang up mid-DATA.
				io.ReadFull(tp.R, make([]byte, 16))
				return
			}
			data, err := io.ReadAll(tp.DotReader())
			if err != nil {
				return
			}
			switch {
			case end == "hang":
				<-s.closed
				return
			case end == "" || strings.HasPrefix(end, "2"):
				s.mu.Lock()
				s.msgs = append(s.msgs, Message{From: from, To: to, Data: strings.ReplaceAll(string(data), "\n", "\r\n"),
					TLS: isTLS, User: user, At: time.Now()})
				s.notify()
				s.mu.Unlock()
				tp.PrintfLine("%s", cmp.Or(end, "250 2.0.0 queued"))
			default:
				tp.PrintfLine("%s", end)
			}
			from, to = "", nil
		case "RSET":
			from, to = "", nil
			tp.PrintfLine("250 ok")
		case "NOOP":
			tp.PrintfLine("250 ok")
		case "QUIT":
			tp.PrintfLine("221 bye")
			return
		default:
			tp.PrintfLine("500 unknown command")
		}
	}
}

// auth runs AUTH PLAIN or LOGIN and returns the user when the password is
// right.
func (s *Server) auth(tp *textproto.Conn, arg string) (string, bool) {
	if s.opts.Users == nil {
		return "", false
	}
	mech, initial, _ := strings.Cut(arg, " ")
	switch strings.ToUpper(mech) {
	case "PLAIN":
		if initial == "" {
			tp.PrintfLine("334 ")
			l, err := tp.ReadLine()
			if err != nil {
				return "", false
			}
			initial = l
		}
		b, err := base64.StdEncoding.DecodeString(initial)
		if err != nil {
			return "", false
		}
		parts := strings.Split(string(b), "\x00")
		if len(parts) != 3 {
			return "", false
		}
		pw, ok := s.opts.Users[parts[1]]
		return parts[1], ok && pw == parts[2]
	case "LOGIN":
		ask := func(prompt string) (string, bool) {
			tp.PrintfLine("334 %s", base64.StdEncoding.EncodeToString([]byte(prompt)))
			l, err := tp.ReadLine()
			if err != nil {
				return "", false
			}
			b, err := base64.StdEncoding.DecodeString(l)
			return string(b), err == nil
		}
		u, ok := ask("Username:")
		if !ok {
			return "", false
		}
		p, ok := ask("Password:")
		pw, known := s.opts.Users[u]
		return u, ok && known && pw == p
	}
	return "", false
}

// NewCA returns a throwaway certificate authority (its certificate as PEM)
// and a server TLS configuration with a certificate it signed for
// 127.0.0.1 and localhost.
func NewCA() (caPEM []byte, server *tls.Config, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smtptest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return caPEM, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// String describes the server.
func (s *Server) String() string { return fmt.Sprintf("smtptest on %s", s.Addr) }

// pathOf returns the address of a MAIL FROM:<a> or RCPT TO:<a> argument.
func pathOf(arg string) string {
	_, p, _ := strings.Cut(arg, ":")
	if f := strings.Fields(p); len(f) > 0 {
		return strings.Trim(f[0], "<>")
	}
	return ""
}
