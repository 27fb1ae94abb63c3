package dispatch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"text/template"

	"github.com/verihook/verihook/internal/hub"
)

// Content is what a template sees of one dispatch.
type Content struct {
	Kind       string // otp or session_link
	Channel    string // email or sms
	Recipient  string
	Text       string // the provider's text
	Link       string // session_link only
	Code       string // the first run of 4 to 10 digits of Text; empty when none
	SessionRef string
}

// sampleContent is what templates are tried with at start-up.
var sampleContent = Content{Kind: hub.DispatchOTP, Channel: hub.ChannelSMS, Recipient: "+15555550100",
	Text: "Your code is 6867", Link: "https://example.com/s", Code: "6867", SessionRef: "s"}

var codePattern = regexp.MustCompile(`\b[0-9]{4,10}\b`)

// contentOf returns what the templates of d see.
func contentOf(d hub.Dispatch) Content {
	return Content{Kind: d.Kind, Channel: d.Channel, Recipient: d.Content.Recipient, Text: d.Content.Text,
		Link: d.Content.Link, Code: codePattern.FindString(d.Content.Text), SessionRef: d.SessionRef}
}

// DefaultSubject is the subject of an e-mail whose template has none.
var DefaultSubject = map[string]string{
	hub.DispatchOTP:         "Your verification code",
	hub.DispatchSessionLink: "Your verification link",
}

// templates are the parsed templates of one channel, by kind.
type templates map[string]parsedTemplate

type parsedTemplate struct{ subject, body *template.Template }

func parseTemplates(ts map[string]Template) (templates, error) {
	out := templates{}
	for kind, t := range ts {
		var p parsedTemplate
		var err error
		if t.Subject != "" {
			if p.subject, err = template.New("subject").Option("missingkey=error").Parse(t.Subject); err != nil {
				return nil, fmt.Errorf("templates.%s.subject: %w", kind, err)
			}
		}
		if t.Body != "" {
			if p.body, err = template.New("body").Option("missingkey=error").Parse(t.Body); err != nil {
				return nil, fmt.Errorf("templates.%s.body: %w", kind, err)
			}
		}
		out[kind] = p
	}
	return out, nil
}

// render returns the subject and body of c: the templates' output, or by
// default DefaultSubject and the provider's text, followed by the link when
// the text does not hold it already.
func (ts templates) render(c Content) (subject, body string, err error) {
	t := ts[c.Kind]
	subject, body = DefaultSubject[c.Kind], c.Text
	if c.Link != "" && !strings.Contains(body, c.Link) {
		body = strings.TrimSpace(body + "\n" + c.Link)
	}
	if t.subject != nil {
		if subject, err = execute(t.subject, c); err != nil {
			return "", "", fmt.Errorf("subject template: %w", err)
		}
	}
	if t.body != nil {
		if body, err = execute(t.body, c); err != nil {
			return "", "", fmt.Errorf("body template: %w", err)
		}
	}
	return subject, body, nil
}

func execute(t *template.Template, data any) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

// gatewayFields is what a generic gateway's body template sees: each value
// escaped for the body's format, so that no content can break out of it.
type gatewayFields struct {
	To, From, Text, ID string
}

// escapeFor returns f with its values escaped for format: json makes each a
// JSON string literal, quotes included; form URL-encodes each.
func (f gatewayFields) escapeFor(format string) gatewayFields {
	esc := func(s string) string {
		if format == "json" {
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			enc.Encode(s)
			return strings.TrimSuffix(b.String(), "\n")
		}
		return url.QueryEscape(s)
	}
	return gatewayFields{To: esc(f.To), From: esc(f.From), Text: esc(f.Text), ID: esc(f.ID)}
}
