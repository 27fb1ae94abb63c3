package identomat

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// Defaults of Build, taken from Identomat's samples where there are any.
const (
	// DefaultRef is the session id of Identomat's OTP sample: 40 lowercase
	// letters and digits, like every session id the samples show.
	DefaultRef = "wwb83rh1se22wd81z0tx8bqlerljq5kgf6rxem1q"
	// DefaultPhone is the samples' phone number.
	DefaultPhone = "+995512345678"
	// DefaultEmail is an email address in the samples' style (no email
	// sample could be read).
	DefaultEmail = "john@example.com"
	// DefaultOTPText is the OTP sample's text.
	DefaultOTPText = "Your code is 6867"
	// DefaultLinkText is the SMS session-link sample's text.
	DefaultLinkText = "Hello John Doe, please complete your verification using the link below."
	// DefaultResult is the session-change result Build sends by default.
	DefaultResult = "APPROVED"
	// DefaultRoomStatus is the video call room status Build sends by default.
	DefaultRoomStatus = "ended"
)

// Build returns the body Identomat would send for event, without its
// callbackApiKey (Sign adds it), and a Content-Type header. The body is a
// function of event and f alone. It reads:
//
//   - Ref: sessionId (default DefaultRef);
//   - Recipient: phoneNumber, or email for the email callbacks (default
//     DefaultPhone or DefaultEmail);
//   - Text: text (default DefaultOTPText or DefaultLinkText);
//   - Link: sessionLink (default a widget URL holding Ref; the format of
//     Identomat's shared links is not known);
//   - Status: the session-change result, one of APPROVED, REJECTED,
//     MANUAL_CHECK and ADDITIONAL_INFORMATION_REQUESTED in any case (default
//     APPROVED), or the video call roomStatus (default "ended", which sends a
//     ready video file; "empty" sends a room that ended with no media);
//   - Kind: kyb adds "sessionType":"KYB" to session-change (the enum is
//     UNCONFIRMED).
//
// Other fields are ignored: Identomat sends no timestamp, applicant id or
// event id. An unknown event, a session-change Status that is not one of the
// four results and a Kind other than kyc or kyb are EINVALID *hub.Errors.
func (p Provider) Build(event string, f provider.Fields) ([]byte, http.Header, error) {
	name, err := provider.MatchEvent(p.Events(), event)
	if err != nil {
		return nil, nil, err
	}
	ref := provider.Or(f.Ref, DefaultRef)
	o := object{{"type", name}, {"sessionId", ref}}
	link := provider.Or(f.Link, "https://widget.identomat.com/?session_token="+url.QueryEscape(ref))
	switch name {
	case EventOTP, EventOTPRequest:
		o = append(o, member{"text", provider.Or(f.Text, DefaultOTPText)},
			member{"phoneNumber", provider.Or(f.Recipient, DefaultPhone)})
	case EventEmailOTP:
		o = append(o, member{"text", provider.Or(f.Text, DefaultOTPText)},
			member{emailFields[0], provider.Or(f.Recipient, DefaultEmail)})
	case EventLinkSMS:
		o = append(o, member{"text", provider.Or(f.Text, DefaultLinkText)},
			member{"phoneNumber", provider.Or(f.Recipient, DefaultPhone)},
			member{"sessionLink", link})
	case EventLinkEmail:
		o = append(o, member{"text", provider.Or(f.Text, DefaultLinkText)},
			member{emailFields[0], provider.Or(f.Recipient, DefaultEmail)},
			member{"sessionLink", link})
	case EventSessionChange:
		res := strings.ToUpper(provider.Or(f.Status, DefaultResult))
		if _, ok := results[res]; !ok {
			return nil, nil, errorf("%s status %q is not one of APPROVED, REJECTED, MANUAL_CHECK, ADDITIONAL_INFORMATION_REQUESTED", name, f.Status)
		}
		o = append(o, member{"result", res})
		switch f.Kind {
		case "", hub.KindKYC:
		case hub.KindKYB:
			o = append(o, member{"sessionType", "KYB"})
		default:
			return nil, nil, errorf("kind %q is not kyc or kyb", f.Kind)
		}
	case EventVideoCall:
		room := provider.Or(f.Status, DefaultRoomStatus)
		o = append(o, member{"roomId", "RM" + token("room", ref, 32)}, member{"roomStatus", room})
		if room == "empty" {
			o = append(o, member{"compositionStatus", nil}, member{"videoFileStatus", nil},
				member{"videoFileId", nil})
		} else {
			o = append(o, member{"compositionStatus", "available"}, member{"videoFileStatus", "available"},
				member{"videoFileId", token("video", ref, 40)})
		}
	}
	body, err := o.marshal()
	if err != nil {
		return nil, nil, err
	}
	return body, http.Header{"Content-Type": {"application/json"}}, nil
}

// Sign returns body with "callbackApiKey":"<key>" inserted as the object's
// first member, the rest of the bytes untouched; h is not used. It returns an
// EINVALID *hub.Error when callback_api_key is not set, body is not a JSON
// object, or body already holds a callbackApiKey.
func (Provider) Sign(secrets map[string]string, _ http.Header, body []byte) ([]byte, error) {
	if err := provider.RequireSecrets(secrets, SecretName); err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return nil, errorf("cannot sign: body is not a JSON object")
	}
	if _, ok := obj[KeyField]; ok {
		return nil, errorf("cannot sign: body already holds %s", KeyField)
	}
	key, err := encodeJSON(secrets[SecretName])
	if err != nil {
		return nil, err
	}
	open := bytes.IndexByte(body, '{') // the first non-space byte of a JSON object
	rest := body[open+1:]
	var out bytes.Buffer
	out.Grow(len(body) + len(KeyField) + len(key) + 4)
	out.Write(body[:open+1])
	out.WriteString(`"` + KeyField + `":`)
	out.Write(key)
	if t := bytes.TrimLeft(rest, " \t\r\n"); len(t) > 0 && t[0] != '}' {
		out.WriteByte(',')
	}
	out.Write(rest)
	return out.Bytes(), nil
}

// member is one member of a JSON object Build writes.
type member struct {
	name  string
	value any
}

// object is a JSON object whose members keep their order, as in Identomat's
// samples.
type object []member

func (o object) marshal() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		name, err := encodeJSON(m.name)
		if err != nil {
			return nil, err
		}
		value, err := encodeJSON(m.value)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(name)
		b.WriteByte(':')
		b.Write(value)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// token derives a deterministic lowercase hex id of n characters (n <= 64)
// from ref, so that simulated ids are stable for a given session.
func token(salt, ref string, n int) string {
	sum := sha256.Sum256([]byte(salt + ":" + ref))
	return hex.EncodeToString(sum[:])[:n]
}
