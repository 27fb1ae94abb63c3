// Package provider defines what a KYC provider adapter does: authenticate a
// raw callback, parse it into hub terms, and, for simulation, build and sign
// callbacks exactly as the provider would. Each provider lives in its own
// subpackage; cmd/verihook puts them in a Registry.
package provider

import (
	"crypto/hmac"
	"encoding/hex"
	"hash"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// Provider is one provider's adapter. Implementations are stateless and safe
// for concurrent use.
type Provider interface {
	// Name returns the provider's name as used in configuration, messages and
	// events (each provider package's Name).
	Name() string
	// Setup tells an operator how to connect an account of the provider.
	Setup() Setup
	// CheckSecrets reports, as an EINVALID *hub.Error naming the secret,
	// whether secrets hold what Verify needs. Secret names are the config
	// file's; nested maps are flattened with dots ("webhook_secrets.verification_approved").
	CheckSecrets(secrets map[string]string) error
	// Verify authenticates a request over its raw bytes, in constant time,
	// before anything in it is trusted. It returns an EUNAUTHORIZED *hub.Error
	// whose message says why (safe to log: it never holds a secret).
	Verify(secrets map[string]string, h http.Header, body []byte) error
	// Parse turns an authenticated request into hub terms. It returns an
	// EUNRECOGNIZED *hub.Error for a message it cannot map (unknown type, bad
	// shape); the Parsed returned with it still holds Body (with any in-body
	// secret removed) and whatever EventName and DedupKey it could find, so
	// that the message is quarantined rather than dropped.
	Parse(h http.Header, body []byte) (hub.Parsed, error)
	// PreviewKeys lists the JSON keys of the provider's payloads whose
	// values previews show (ids, statuses, timestamps; never personal
	// data), besides the keys of verihook's own events. Registering the
	// provider registers them with hub (hub.RegisterPreviewKeys).
	PreviewKeys() []string

	// Events lists the event names Build accepts, spelled as the provider's
	// documents spell them.
	Events() []string
	// Build returns the body and headers (other than authentication) the
	// provider would send for event, filled from f. Event names are matched
	// case-insensitively; an unknown one is an EINVALID *hub.Error.
	Build(event string, f Fields) (body []byte, h http.Header, err error)
	// Sign authenticates a built request as the provider does: it sets
	// headers on h and returns the body to send (Identomat puts its key in
	// the body; the others return body unchanged).
	Sign(secrets map[string]string, h http.Header, body []byte) ([]byte, error)
}

// Setup is how an operator connects one provider account to verihook, in
// the provider's own words: verihook init prints it, and the README's
// "Connecting each provider" table says the same (a test keeps them equal).
type Setup struct {
	// Title is the provider's name as it writes it.
	Title string
	// URL says where, in the provider's dashboard, the callback URL goes.
	URL string
	// Secret says where the secret verihook needs is found, and under
	// which name it goes in the config.
	Secret string
	// SecretKey is the name of the one secret a new source needs.
	SecretKey string
	// HTTPSOnly is set when the provider calls back only https:// URLs.
	HTTPSOnly bool
	// NoPolling, when set, says why the provider cannot be polled for a
	// verification's status, although it has a status API.
	NoPolling string
}

// Fields are the values a simulated callback is built from. Zero values get
// realistic defaults; each provider documents which fields it reads.
type Fields struct {
	Ref          string    // the provider's reference: sessionId, scanRef, verification_id, user_id
	ApplicantRef string    // the company's own user id where the provider echoes it
	Status       string    // the provider's own status value (APPROVED, DENIED, true, pending …)
	Final        *bool     // iDenfy's final flag
	Level        string    // Fractal level or add-on
	Kind         hub.Kind  // kyb for an Identomat KYB session or a KYCAID company applicant
	Time         time.Time // the provider's timestamp
	Recipient    string    // phone number or email address
	Text         string    // message text
	Link         string    // session link
	EventID      string    // the provider's event id (KYCAID request_id)
	AttemptsLeft *int      // attempts the applicant has left (KYCAID verification_attempts_left); nil: null
	Reasons      []string  // decline reasons, fraud tags …
}

// SecretsCoverer is implemented by providers whose secrets may cover only
// some of their event types (Fractal's per-type secrets).
type SecretsCoverer interface {
	// EventsWithoutSecret lists the documented event types that secrets
	// cannot verify, for an operator to add.
	EventsWithoutSecret(secrets map[string]string) []string
}

// Registry finds providers by name.
type Registry map[string]Provider

// NewRegistry returns a registry of ps, and tells hub which keys previews
// of each one's messages show (Provider.PreviewKeys).
func NewRegistry(ps ...Provider) Registry {
	r := make(Registry, len(ps))
	for _, p := range ps {
		r[p.Name()] = p
		hub.RegisterPreviewKeys(p.Name(), p.PreviewKeys()...)
	}
	return r
}

// Get returns the named provider, or an EINVALID *hub.Error listing the known ones.
func (r Registry) Get(name string) (Provider, error) {
	if p, ok := r[strings.ToLower(name)]; ok {
		return p, nil
	}
	return nil, hub.Errorf(hub.EINVALID, "unknown provider %q (known: %s)", name, strings.Join(r.Names(), ", "))
}

// CheckSecrets asks the named provider whether secrets hold what it needs;
// an unknown provider is EINVALID as in Get.
func (r Registry) CheckSecrets(name string, secrets map[string]string) error {
	p, err := r.Get(name)
	if err != nil {
		return err
	}
	return p.CheckSecrets(secrets)
}

// Names returns the registered names, sorted.
func (r Registry) Names() []string {
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// HeaderEventType names the event type of a request for providers that do
// not put it in the body (iDenfy). The ingest service sets it from the ingest
// URL (POST /ingest/{source_id}/{event_type}); without that segment it is
// whatever the request carried, so a company may also set it as a custom
// header of each webhook at the provider. Like the provider's own headers it
// is not signed: it chooses a key and names an event, it proves nothing.
const HeaderEventType = "Verihook-Event-Type"

// MissingSecretError is the EUNAUTHORIZED error Verify returns when the
// source holds no secret for the event type the request names (a Fractal
// source with only per-type secrets, say), so that the operator can be told
// which secret to add. The event type comes from an unauthenticated request.
type MissingSecretError struct {
	// EventType is the request's event type, clipped; Documented says
	// whether the provider's documents name it (only those are safe to use
	// as a metric label).
	EventType  string
	Documented bool
	// Secret is the name of the secret that would verify it.
	Secret string
}

// Error implements the error interface.
func (e *MissingSecretError) Error() string { return e.Unwrap().Error() }

// Unwrap returns the EUNAUTHORIZED *hub.Error, so that hub.ErrorCode and
// hub.ErrorMessage see it.
func (e *MissingSecretError) Unwrap() error {
	return Unauthorized("no secret for event type %q: set %s", e.EventType, e.Secret)
}

// EventsWithoutSecret returns the documented event types src's secrets cannot
// verify, where its provider can tell (see SecretsCoverer), else nil.
func (r Registry) EventsWithoutSecret(src hub.Source) []string {
	if c, ok := r[src.Provider].(SecretsCoverer); ok {
		return c.EventsWithoutSecret(src.Secrets)
	}
	return nil
}

// Unauthorized returns the EUNAUTHORIZED error providers return from Verify.
func Unauthorized(format string, args ...any) error {
	return hub.Errorf(hub.EUNAUTHORIZED, format, args...)
}

// Unrecognized returns the EUNRECOGNIZED error providers return from Parse.
func Unrecognized(format string, args ...any) error {
	return hub.Errorf(hub.EUNRECOGNIZED, format, args...)
}

// CheckHexMAC compares a hex-encoded MAC received in a header (case-insensitive,
// surrounding space ignored) with the HMAC of msg under key, in constant time.
func CheckHexMAC(newHash func() hash.Hash, key, msg []byte, got string) error {
	gotMAC, err := hex.DecodeString(strings.TrimSpace(got))
	if err != nil {
		return Unauthorized("signature is not hex")
	}
	if !hmac.Equal(gotMAC, HMAC(newHash, key, msg)) {
		return Unauthorized("signature mismatch")
	}
	return nil
}

// HMAC returns the HMAC of msg under key.
func HMAC(newHash func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(newHash, key)
	m.Write(msg)
	return m.Sum(nil)
}

// RequireSecrets returns an EINVALID error naming the first of names missing
// or empty in secrets.
func RequireSecrets(secrets map[string]string, names ...string) error {
	for _, n := range names {
		if secrets[n] == "" {
			return hub.Errorf(hub.EINVALID, "secret %q is required", n)
		}
	}
	return nil
}

// MatchEvent returns the entry of events equal to name ignoring case, or an
// EINVALID error that lists them.
func MatchEvent(events []string, name string) (string, error) {
	i := slices.IndexFunc(events, func(e string) bool { return strings.EqualFold(e, name) })
	if i < 0 {
		return "", hub.Errorf(hub.EINVALID, "unknown event %q (known: %s)", name, strings.Join(events, ", "))
	}
	return events[i], nil
}

// Or returns v, or def when v is empty.
func Or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// ParseTime reads the timestamps providers send: RFC 3339, "2006-01-02
// 15:04:05" (taken as UTC), or Unix seconds as a string, whole or with a
// fraction (older callbacks send floats). It returns the zero time for an
// empty or unreadable value, or one outside 1970–9999, which the ordering
// rules treat as "no timestamp".
func ParseTime(s string) time.Time {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return UnixTime(s)
}

// maxUnix is 9999-12-31T23:59:59Z, the last second RFC 3339 can render.
const maxUnix = 253402300799

// UnixTime reads Unix seconds written as a decimal number ("1585834535",
// "1585834535.25"), to the microsecond. Anything else, and times outside
// 1970–9999, read as the zero time.
func UnixTime(s string) time.Time {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || !(f >= 1 && f <= maxUnix) {
		return time.Time{}
	}
	sec := math.Floor(f)
	return time.Unix(int64(sec), int64(math.Round((f-sec)*1e6))*1e3).UTC()
}
