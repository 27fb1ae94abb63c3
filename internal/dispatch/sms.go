package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"text/template"
)

// message is one rendered dispatch, ready for its channel.
type message struct {
	ID      string // the dispatch id: Message-ID, idempotency key
	To      string
	Subject string // email only
	Body    string
}

// channel sends messages. Send returns nil once the server or gateway
// accepted the message, a *sendError otherwise.
type channel interface {
	Send(ctx context.Context, m message) error
}

// sendError is a failed send: permanent when retrying cannot help (an SMTP
// 5xx reply, a gateway 4xx), temporary otherwise (4xx SMTP, 5xx or 429
// gateway, timeouts, network errors).
type sendError struct {
	msg       string
	permanent bool
}

func (e *sendError) Error() string { return e.msg }

func temporary(format string, args ...any) error {
	return &sendError{msg: fmt.Sprintf(format, args...)}
}

func permanent(format string, args ...any) error {
	return &sendError{msg: fmt.Sprintf(format, args...), permanent: true}
}

// isPermanent reports whether err is a permanent sendError.
func isPermanent(err error) bool {
	var se *sendError
	return errors.As(err, &se) && se.permanent
}

// phonePattern is what an SMS recipient must be once spaces, dashes, dots
// and parentheses are removed: an E.164-like number.
var phonePattern = regexp.MustCompile(`^\+?[0-9]{6,15}$`)

// phoneNumber returns the recipient as a number, or false.
func phoneNumber(s string) (string, bool) {
	n := strings.Map(func(r rune) rune {
		if strings.ContainsRune(" -.()", r) {
			return -1
		}
		return r
	}, s)
	return n, phonePattern.MatchString(n)
}

// gateway sends SMS through an HTTP gateway: Twilio's Messages API (the
// twilio preset) or a generic request.
type gateway struct {
	cfg    *SMSConfig
	body   *template.Template // generic only
	client *http.Client
}

// newGateway parses the generic body template and checks that it renders
// the format it claims on sample content.
func newGateway(cfg *SMSConfig, client *http.Client) (*gateway, error) {
	g := &gateway{cfg: cfg, client: client}
	if cfg.Preset != "" {
		return g, nil
	}
	var err error
	if g.body, err = template.New("body").Option("missingkey=error").Parse(cfg.Body); err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	sample, err := g.render(message{ID: "dsp_sample", To: "+15555550100", Body: "a \"quoted\" & text\n"})
	if err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	switch cfg.BodyFormat {
	case "json":
		if !json.Valid([]byte(sample)) {
			return nil, fmt.Errorf("body: the template does not render JSON (fields are JSON strings with their quotes: {\"to\": {{.To}}}): %s", sample)
		}
	case "form":
		if _, err := url.ParseQuery(sample); err != nil {
			return nil, fmt.Errorf("body: the template does not render a form: %w", err)
		}
	}
	return g, nil
}

// render returns the generic request's body for m.
func (g *gateway) render(m message) (string, error) {
	f := gatewayFields{To: m.To, From: g.cfg.From, Text: m.Body, ID: m.ID}.escapeFor(g.cfg.BodyFormat)
	return execute(g.body, f)
}

// Send makes one request to the gateway.
func (g *gateway) Send(ctx context.Context, m message) error {
	to, ok := phoneNumber(m.To)
	if !ok {
		return permanent("the recipient is not a phone number")
	}
	m.To = to
	var (
		body        string
		contentType string
	)
	if g.cfg.Preset == "twilio" {
		body = url.Values{"To": {m.To}, "From": {g.cfg.From}, "Body": {m.Body}}.Encode()
		contentType = "application/x-www-form-urlencoded"
	} else {
		var err error
		if body, err = g.render(m); err != nil {
			return permanent("body template: %v", err)
		}
		contentType = map[string]string{"json": "application/json", "form": "application/x-www-form-urlencoded"}[g.cfg.BodyFormat]
	}
	req, err := http.NewRequestWithContext(ctx, g.cfg.Method, g.cfg.URL, strings.NewReader(body))
	if err != nil {
		return permanent("the gateway url is invalid")
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "verihook")
	for k, v := range g.cfg.Headers {
		req.Header.Set(k, v)
	}
	if g.cfg.Preset == "twilio" {
		req.SetBasicAuth(g.cfg.AccountSID, g.cfg.AuthToken)
	}
	if g.cfg.IdempotencyHeader != "" {
		req.Header.Set(g.cfg.IdempotencyHeader, m.ID)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
			return temporary("gateway: timeout")
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			if ue.Timeout() {
				return temporary("gateway: timeout")
			}
			err = ue.Err // without the URL, which may hold credentials
		}
		return temporary("gateway: %v", err)
	}
	defer resp.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	rest, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	code := resp.StatusCode
	switch {
	case g.success(code):
		return nil
	case code == http.StatusTooManyRequests || code >= 500:
		return temporary("gateway %d: %s", code, oneLine(excerpt, rest > 0))
	default:
		return permanent("gateway %d: %s", code, oneLine(excerpt, rest > 0))
	}
}

func (g *gateway) success(code int) bool {
	if len(g.cfg.SuccessCodes) > 0 {
		return slices.Contains(g.cfg.SuccessCodes, code)
	}
	return code >= 200 && code <= 299
}

// oneLine returns the start of a response as one line of valid text,
// ending in "…" when it is cut short (cut: b is only the response's start),
// so that scrub knows a value may end it half written.
func oneLine(b []byte, cut bool) string {
	s := strings.ToValidUTF8(string(b), "")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s, cut = strings.ToValidUTF8(s[:200], ""), true
	}
	if cut {
		s += "…"
	}
	return s
}
