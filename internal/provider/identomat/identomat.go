// Package identomat is verihook's adapter for Identomat callbacks
// (https://docs.identomat.com/developer-tools/callbacks; facts and open
// questions in reference/providers.md section 1).
//
// # Authentication
//
// Identomat sends no signature header. Every callback carries the company's
// "Callback API key" inside the JSON body as callbackApiKey, so Verify must
// decode the body before it can authenticate it: it reads the top-level
// callbackApiKey and compares it with the source's callback_api_key in
// constant time. The scheme has no integrity protection: whoever knows the
// key can send any body, and a body changed anywhere but in its key still
// verifies. Parse removes the key (every top-level member whose name is
// callbackApiKey in any letter case) from what is stored.
//
// # What is stored and how it dedups
//
// The stored body is re-serialized, not the received bytes: the decoded object
// without its key, encoded with members sorted by name, no insignificant
// space, numbers exactly as sent (json.Decoder.UseNumber) and HTML characters
// unescaped. Identomat sends no event id, so the dedup key is the canonical
// hash (hub.CanonicalHashOf) of that same object: a retry dedups whatever key
// or member order it arrives with.
//
// Identomat sends no timestamp either, and may send the same body again on
// purpose, so how long the key holds depends on the callback (hub.Dedup):
//
//   - session-change states the session's current status ("The result field
//     in a session-change callback reflects the current session status",
//     and the callback is sent "whenever a session's status changes"). Its
//     body is a duplicate only while the state it describes is current
//     (hub.Dedup.WhileCurrent): MANUAL_CHECK, ADDITIONAL_INFORMATION_REQUESTED,
//     MANUAL_CHECK is three changes, and a retry of the last while it is
//     still current is answered duplicate:true. Its observation is Current:
//     arrival order decides, and a later status replaces even a final one,
//     so a session that a reviewer reopens after REJECTED or APPROVED is
//     reopened. Assumed: Identomat sends session-change in the order the
//     status changed, and a retry of an old status does not arrive after a
//     newer one (its documents say nothing of retries or order; without a
//     timestamp nothing else could tell).
//   - The OTP and session-link requests are a duplicate only within
//     RetryWindow, 30 seconds, of the stored copy: a second share of a link
//     or a second code request, identical to the first, is a new request
//     with its own event. Identomat documents no retries (timeout, schedule
//     and response code are NOT FOUND in its documents), so the window is
//     assumed: long enough for a client's immediate retry after a lost
//     answer, shorter than a person takes to ask again (an OTP screen makes
//     its user wait before it offers to resend).
//   - video-call-status-update and unrecognized bodies are duplicates for
//     ever: a room's status goes one way.
//
// # Assumptions
//
// Identomat's callbacks page could be read only in part; only the SMS OTP
// sample is complete. What this package assumes beyond it:
//
//   - The SMS OTP type is "one-time-password" (the page's heading) or
//     "one-time-password-request" (its sample); both are accepted.
//   - The email address field of the email callbacks is UNCONFIRMED: the
//     first non-empty of email, emailAddress and recipient is used; Build
//     sends email.
//   - The session link is in sessionLink (confirmed for SMS, value cut off in
//     the sources), with link as a fallback.
//   - session-change carries its result in result (documented) or, failing
//     that, status; values are matched case-insensitively.
//   - Identomat documents no timestamp in any callback, so no ProviderTime is
//     read and the ordering rules fall back to arrival order (see above).
//   - The KYB sessionType enum is UNCONFIRMED: a non-empty sessionType other
//     than "KYC" (any case) means a KYB session; Build sends "KYB".
//   - video-call-status-update fields may be null (read as ""); its ids
//     (roomId, videoFileId) are accepted as strings or numbers.
//   - type values are matched exactly as documented (lower case); anything
//     else is quarantined.
//   - An OTP or link request that cannot be acted on (no recipient, an OTP
//     without text, a link request without a link: the SMS sample's text
//     does not hold the link) is quarantined rather than turned into an
//     event that dispatch could not send.
//   - The link, room id and video file id formats Build uses are made up for
//     simulation; only the session id format is taken from the samples.
package identomat

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// SecretName is the name of the source secret holding the Callback API key.
const SecretName = "callback_api_key"

// KeyField is the body member in which Identomat sends the Callback API key.
const KeyField = "callbackApiKey"

// Event names, spelled as Identomat's documents spell them.
const (
	EventOTP           = "one-time-password"               // SMS OTP, as the docs' heading names it
	EventOTPRequest    = "one-time-password-request"       // SMS OTP, as the docs' sample names it
	EventEmailOTP      = "email-one-time-password-request" // email OTP
	EventLinkSMS       = "share-session-link-via-sms"      // session link to send by SMS
	EventLinkEmail     = "share-session-link-via-email"    // session link to send by email
	EventSessionChange = "session-change"                  // a session's result changed
	EventVideoCall     = "video-call-status-update"        // a video call room changed status
)

// Provider is the Identomat adapter. Its zero value is ready to use, and it
// is safe for concurrent use.
type Provider struct{}

// New returns the Identomat adapter.
func New() Provider { return Provider{} }

var _ provider.Provider = Provider{}

// Name returns "identomat".
// Name is the provider's name in configuration, messages and events.
const Name = "identomat"

// Name returns Name.
func (Provider) Name() string { return Name }

// PreviewKeys lists the keys of Identomat's payloads whose values previews
// show: ids, statuses, timestamps (see provider.Provider).
func (Provider) PreviewKeys() []string { return previewKeys }

var previewKeys = []string{
	"sessionId", "sessionType", "roomId", "roomStatus", "compositionStatus", "videoFileStatus",
	"videoFileId", "result",
}

// Setup says where, in Identomat's dashboard, the callback URL goes and the
// secret is found.
func (Provider) Setup() provider.Setup {
	return provider.Setup{
		Title:     "Identomat",
		URL:       "Company settings → Callback URL",
		Secret:    "Company settings → Callback API key → callback_api_key",
		SecretKey: "callback_api_key",
	}
}

// CheckSecrets requires callback_api_key.
func (Provider) CheckSecrets(secrets map[string]string) error {
	return provider.RequireSecrets(secrets, SecretName)
}

// Events lists the seven callback types Identomat documents.
func (Provider) Events() []string {
	return []string{EventOTP, EventOTPRequest, EventEmailOTP, EventLinkSMS, EventLinkEmail,
		EventSessionChange, EventVideoCall}
}

// Verify decodes body as a JSON object and compares its top-level
// callbackApiKey string with secrets["callback_api_key"] in constant time. It
// returns an EUNAUTHORIZED *hub.Error when no key is configured, the body is
// not a JSON object, the key is missing or not a string, or it does not match.
// Headers are not used.
func (Provider) Verify(secrets map[string]string, _ http.Header, body []byte) error {
	want := secrets[SecretName]
	if want == "" {
		return provider.Unauthorized("no %s is configured", SecretName)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return provider.Unauthorized("body is not a JSON object")
	}
	raw, ok := obj[KeyField]
	if !ok {
		return provider.Unauthorized("body has no %s", KeyField)
	}
	var got string
	if raw = bytes.TrimSpace(raw); len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &got) != nil {
		return provider.Unauthorized("%s is not a string", KeyField)
	}
	if got == "" {
		return provider.Unauthorized("%s is empty", KeyField)
	}
	// Comparing digests rather than the keys keeps even the key's length out
	// of the timing.
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	if subtle.ConstantTimeCompare(g[:], w[:]) != 1 {
		return provider.Unauthorized("%s does not match", KeyField)
	}
	return nil
}

// Parse maps an authenticated callback by its type: the OTP callbacks to
// otp.requested, the link callbacks to session_link.requested,
// video-call-status-update to video_call.updated, and session-change to one
// observation. It returns an EUNRECOGNIZED *hub.Error for an unknown type, a
// missing sessionId, a field of the wrong JSON type, an unknown session
// result, or a dispatch request missing what must be sent (recipient, OTP
// text, link). The Parsed it returns always holds the stored body (see the
// package documentation) and the dedup key, and EventName whenever type is a
// string, errors or not.
//
// A body that is not a JSON object (Verify refuses those) is returned with a
// raw-bytes dedup key and no Body: nothing that might hold a key is stored.
func (Provider) Parse(_ http.Header, body []byte) (hub.Parsed, error) {
	obj, err := decodeObject(body)
	if err != nil {
		return hub.Parsed{DedupKey: hub.RawHash(body)}, provider.Unrecognized("body is not a JSON object")
	}
	for name := range obj {
		if strings.EqualFold(name, KeyField) {
			delete(obj, name)
		}
	}
	stored, err := encodeJSON(obj)
	if err != nil { // cannot happen: obj was just decoded
		return hub.Parsed{DedupKey: hub.RawHash(body)}, provider.Unrecognized("body cannot be re-encoded")
	}
	parsed := hub.Parsed{Body: stored, DedupKey: hub.CanonicalHashOf(obj)}

	m := fields(obj)
	typ, err := m.str("type")
	if err != nil {
		return parsed, err
	}
	parsed.EventName = typ
	if typ == "" {
		return parsed, provider.Unrecognized("body has no type")
	}
	cb, ok := callbacks[typ]
	if !ok {
		return parsed, provider.Unrecognized("unknown type %q", clip(typ))
	}
	ref, err := m.str("sessionId")
	if err != nil {
		return parsed, err
	}
	if ref == "" {
		return parsed, provider.Unrecognized("%s has no sessionId", typ)
	}
	obs, ev, err := cb.parse(m, typ, ref)
	if err != nil {
		return parsed, err
	}
	parsed.Observations, parsed.Events, parsed.Dedup = obs, ev, cb.dedup
	return parsed, nil
}

// parser maps one callback type; typ is the type as received, ref its
// non-empty sessionId.
type parser func(m fields, typ, ref string) ([]hub.Observation, []hub.EventDraft, error)

// RetryWindow is how long after a dispatch request (an OTP, a session link)
// an identical one is taken for a retry of it rather than a new request (see
// the package documentation).
const RetryWindow = 30 * time.Second

// callback is how one callback type is mapped and deduplicated.
type callback struct {
	parse parser
	dedup hub.Dedup
}

var (
	// A session-change states the current status: the same body again is a
	// retry only while that status is still current.
	whileCurrent = hub.Dedup{WhileCurrent: true}
	// The same dispatch request again is a retry only within RetryWindow.
	retryWindow = hub.Dedup{Window: RetryWindow}
)

var callbacks = map[string]callback{
	EventOTP:           {parseOTP("sms"), retryWindow},
	EventOTPRequest:    {parseOTP("sms"), retryWindow},
	EventEmailOTP:      {parseOTP("email"), retryWindow},
	EventLinkSMS:       {parseLink("sms"), retryWindow},
	EventLinkEmail:     {parseLink("email"), retryWindow},
	EventSessionChange: {parseSessionChange, whileCurrent},
	EventVideoCall:     {parseVideoCall, hub.Dedup{}}, // a room's status, which never comes back
}

// emailFields are the candidate names of the email callbacks' address field,
// in order of preference. UNCONFIRMED: Identomat's email samples could not be
// read.
var emailFields = []string{"email", "emailAddress", "recipient"}

// recipient returns the phone number (sms) or email address (email) of a
// dispatch callback, or an EUNRECOGNIZED error when it is missing.
func recipient(m fields, typ, channel string) (string, error) {
	names := []string{"phoneNumber"}
	if channel == "email" {
		names = emailFields
	}
	r, err := m.first(names...)
	if err == nil && r == "" {
		err = provider.Unrecognized("%s has no %s", typ, strings.Join(names, ", "))
	}
	return r, err
}

func parseOTP(channel string) parser {
	return func(m fields, typ, ref string) ([]hub.Observation, []hub.EventDraft, error) {
		to, err := recipient(m, typ, channel)
		if err != nil {
			return nil, nil, err
		}
		// The code is not a field of its own: it is inside the ready-made text.
		text, err := m.str("text")
		if err != nil {
			return nil, nil, err
		}
		if text == "" {
			return nil, nil, provider.Unrecognized("%s has no text", typ)
		}
		return nil, []hub.EventDraft{{Type: hub.EventOTPRequested, Data: hub.OTPRequested{
			Channel: channel, Recipient: to, Text: text, SessionRef: ref,
		}}}, nil
	}
}

func parseLink(channel string) parser {
	return func(m fields, typ, ref string) ([]hub.Observation, []hub.EventDraft, error) {
		to, err := recipient(m, typ, channel)
		if err != nil {
			return nil, nil, err
		}
		text, err := m.str("text")
		if err != nil {
			return nil, nil, err
		}
		// The sample's text does not hold the link ("… using the link
		// below."), so a request without one cannot be acted on.
		link, err := m.first("sessionLink", "link")
		if err != nil {
			return nil, nil, err
		}
		if link == "" {
			return nil, nil, provider.Unrecognized("%s has no sessionLink", typ)
		}
		return nil, []hub.EventDraft{{Type: hub.EventSessionLinkRequested, Data: hub.SessionLinkRequested{
			Channel: channel, Recipient: to, Text: text, Link: link, SessionRef: ref,
		}}}, nil
	}
}

// result is what a session-change result value means.
type result struct {
	status hub.Status
	final  bool
}

// results maps the session-change result values (SPEC section 4), upper case.
var results = map[string]result{
	"APPROVED":                         {hub.StatusApproved, true},
	"REJECTED":                         {hub.StatusRejected, true},
	"MANUAL_CHECK":                     {hub.StatusReview, false},
	"ADDITIONAL_INFORMATION_REQUESTED": {hub.StatusActionRequired, false},
}

func parseSessionChange(m fields, typ, ref string) ([]hub.Observation, []hub.EventDraft, error) {
	value, err := m.first("result", "status")
	if err != nil {
		return nil, nil, err
	}
	if value == "" {
		return nil, nil, provider.Unrecognized("%s has no result", typ)
	}
	r, ok := results[strings.ToUpper(value)]
	if !ok {
		return nil, nil, provider.Unrecognized("unknown %s result %q", typ, clip(value))
	}
	sessionType, err := m.str("sessionType")
	if err != nil {
		return nil, nil, err
	}
	kind := hub.KindKYC
	if sessionType != "" && !strings.EqualFold(sessionType, "KYC") {
		kind = hub.KindKYB
	}
	return []hub.Observation{{
		VerificationKey: hub.VerificationKey{ProviderRef: ref},
		Provider:        Name,
		Kind:            kind,
		Status:          r.status,
		Final:           r.final,
		Current:         true,
		ProviderEvent:   EventSessionChange,
	}}, nil, nil
}

func parseVideoCall(m fields, _, ref string) ([]hub.Observation, []hub.EventDraft, error) {
	d := hub.VideoCallUpdated{SessionRef: ref}
	var err error
	for _, f := range []struct {
		name string
		dst  *string
		get  func(string) (string, error)
	}{
		{"roomId", &d.RoomID, m.id},
		{"roomStatus", &d.RoomStatus, m.str},
		{"compositionStatus", &d.CompositionStatus, m.str},
		{"videoFileStatus", &d.VideoFileStatus, m.str},
		{"videoFileId", &d.VideoFileID, m.id},
	} {
		if *f.dst, err = f.get(f.name); err != nil {
			return nil, nil, err
		}
	}
	return nil, []hub.EventDraft{{Type: hub.EventVideoCallUpdated, Data: d}}, nil
}

// fields is a decoded callback body.
type fields map[string]any

// str returns the string member name: "" when it is absent or null, an
// EUNRECOGNIZED error when it is another JSON type.
func (m fields) str(name string) (string, error) {
	switch v := m[name].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		return "", provider.Unrecognized("%s is not a string", name)
	}
}

// id is str that also takes a number, written as it was sent.
func (m fields) id(name string) (string, error) {
	if n, ok := m[name].(json.Number); ok {
		return n.String(), nil
	}
	return m.str(name)
}

// first returns the first non-empty string of names, checking the type of
// each member it looks at.
func (m fields) first(names ...string) (string, error) {
	for _, n := range names {
		if v, err := m.str(n); err != nil || v != "" {
			return v, err
		}
	}
	return "", nil
}

// decodeObject decodes body as one JSON object, numbers as json.Number.
func decodeObject(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, errors.New("not an object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the object")
	}
	return obj, nil
}

// encodeJSON encodes v without a trailing newline and without escaping
// HTML characters, so that links read as they were sent.
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// clip shortens a provider value quoted in an error message.
func clip(s string) string {
	const limit = 64
	if r := []rune(s); len(r) > limit {
		return string(r[:limit]) + "…"
	}
	return s
}

// errorf returns an EINVALID *hub.Error for Build and Sign.
func errorf(format string, args ...any) error {
	return hub.Errorf(hub.EINVALID, "identomat: %s", fmt.Sprintf(format, args...))
}
