package idenfy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"unicode"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// Header names iDenfy sends.
const (
	// HeaderSignature holds the hex HMAC-SHA256 of the raw body.
	HeaderSignature = "Idenfy-Signature"
	// HeaderEventType names the webhook (event) type.
	HeaderEventType = "Idenfy-Event-Type"
)

// Secret names a source's configuration holds.
const (
	// SecretSigningKey is the required default signing key.
	SecretSigningKey = "signing_key"
	// SecretSigningKeysPrefix starts the name of an optional per-event signing
	// key: SecretSigningKeysPrefix + "IDENTIFICATION_MANUAL_FINISHED".
	SecretSigningKeysPrefix = "signing_keys."
)

// The event (webhook) types this package understands, as iDenfy's documents
// spell them. EventCanceled and EventCancelled are the same webhook under the
// dashboard's and the API documents' spellings; the dashboard's names ("ID
// VERIFICATION AUTO FINISHED") and the OpenAPI operation names
// ("identificationAutoFinished") are other spellings of these (see
// canonicalEvent).
const (
	EventAutoFinished   = "IDENTIFICATION_AUTO_FINISHED"
	EventManualFinished = "IDENTIFICATION_MANUAL_FINISHED"
	EventResubmitted    = "IDENTIFICATION_RESUBMITTED"
	EventCancelled      = "IDENTIFICATION_CANCELLED"
	EventCanceled       = "IDENTIFICATION_CANCELED"
	EventExpired        = "IDENTIFICATION_EXPIRED"
	// EventIdentification is the legacy webhook that fires for every outcome.
	EventIdentification = "IDENTIFICATION"
	// EventDocumentExpiration warns that a verified applicant's document
	// expires soon, or has expired.
	EventDocumentExpiration = "DOCUMENT_EXPIRATION"
	// EventAgeEstimation reports the end of an age estimation.
	EventAgeEstimation = "AGE_ESTIMATION"
	// EventFacialAuthentication reports the end of a face authentication
	// session.
	EventFacialAuthentication = "FACIAL_AUTHENTICATION"
)

var events = []string{EventAutoFinished, EventManualFinished, EventResubmitted,
	EventCancelled, EventCanceled, EventExpired, EventIdentification, EventDocumentExpiration,
	EventAgeEstimation, EventFacialAuthentication}

// Provider is the iDenfy adapter. The zero value is ready to use.
type Provider struct{}

var _ provider.Provider = Provider{}

// New returns the iDenfy adapter.
func New() Provider { return Provider{} }

// Name returns "idenfy".
// Name is the provider's name in configuration, messages and events.
const Name = "idenfy"

// Name returns Name.
func (Provider) Name() string { return Name }

// PreviewKeys lists the keys of iDenfy's payloads whose values previews
// show: ids, statuses, timestamps (see provider.Provider).
func (Provider) PreviewKeys() []string { return previewKeys }

var previewKeys = []string{
	"scanRef", "clientId", "externalRef", "platform", "startTime", "finishTime", "overall", "fraudTags",
	"mismatchTags", "suspicionReasons", "autoFace", "manualFace", "autoDocument", "manualDocument",
	"additionalSteps", "docType", "clientIpProxyRiskLevel", "serviceName", "serviceGroupType",
	"overallStatus", "expirationThreshold", "outcome", "verdict", "occurredAt", "method", "failReason",
	"riskTags",
}

// Setup says where, in iDenfy's dashboard, the callback URL goes and the
// secret is found.
func (Provider) Setup() provider.Setup {
	return provider.Setup{
		Title:     "iDenfy",
		URL:       "Dashboard → Settings → Notifications (one webhook per event type: the same URL, or /ingest/{source id}/{event type} each)",
		Secret:    "the webhook's Signing key → signing_key (a per-event key: signing_keys.IDENTIFICATION_MANUAL_FINISHED)",
		SecretKey: "signing_key",
		// A valid, not self-signed certificate too (providers.md).
		HTTPSOnly: true,
	}
}

// Events lists the webhook types Build accepts and Parse understands.
func (Provider) Events() []string { return slices.Clone(events) }

// CheckSecrets requires signing_key and checks that every
// signing_keys.<EVENT_TYPE> names an event type, holds a key, and does not
// contradict another entry for the same event type (CANCELED and CANCELLED
// are one type). It returns an EINVALID *hub.Error naming the secret.
func (Provider) CheckSecrets(secrets map[string]string) error {
	if err := provider.RequireSecrets(secrets, SecretSigningKey); err != nil {
		return err
	}
	names := make([]string, 0, len(secrets))
	for name := range secrets {
		if strings.HasPrefix(name, SecretSigningKeysPrefix) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	seen := map[string]string{} // canonical event -> secret name
	for _, name := range names {
		event := canonicalEvent(name[len(SecretSigningKeysPrefix):])
		switch {
		case event == "":
			return hub.Errorf(hub.EINVALID, "secret %q names no event type", name)
		case secrets[name] == "":
			return hub.Errorf(hub.EINVALID, "secret %q is empty", name)
		}
		if prev, ok := seen[event]; ok && secrets[prev] != secrets[name] {
			return hub.Errorf(hub.EINVALID, "secrets %q and %q name the same event type with different keys", prev, name)
		}
		seen[event] = name
	}
	return nil
}

// Verify checks the Idenfy-Signature header against the HMAC-SHA256 of body,
// in constant time, under the key of the request's event type (see the
// package documentation) or, when the request names no event type a document
// gives, under every configured key in turn. It returns an EUNAUTHORIZED
// *hub.Error when the header is missing or wrong or no key is configured.
func (Provider) Verify(secrets map[string]string, h http.Header, body []byte) error {
	sig := h.Get(HeaderSignature)
	if strings.TrimSpace(sig) == "" {
		return provider.Unauthorized("missing %s header", HeaderSignature)
	}
	if event := eventType(h); known(event) {
		key, name := signingKey(secrets, event)
		if key == "" {
			return provider.Unauthorized("secret %q is not configured", name)
		}
		return provider.CheckHexMAC(sha256.New, []byte(key), body, sig)
	}
	return checkAnyKey(secrets, body, sig)
}

// checkAnyKey checks sig under signing_key and every signing_keys.<EVENT>:
// a webhook whose event type is not named may have been signed with any of
// them. Every key costs one HMAC and one constant-time comparison, whether or
// not an earlier one matched.
func checkAnyKey(secrets map[string]string, body []byte, sig string) error {
	got, err := hex.DecodeString(strings.TrimSpace(sig))
	if err != nil {
		return provider.Unauthorized("signature is not hex")
	}
	tried, matched := 0, false
	for name, key := range secrets {
		if key == "" || name != SecretSigningKey && !strings.HasPrefix(name, SecretSigningKeysPrefix) {
			continue
		}
		tried++
		if hmac.Equal(got, provider.HMAC(sha256.New, []byte(key), body)) {
			matched = true
		}
	}
	switch {
	case tried == 0:
		return provider.Unauthorized("secret %q is not configured", SecretSigningKey)
	case !matched:
		return provider.Unauthorized("signature mismatch")
	}
	return nil
}

// Sign sets Idenfy-Signature as iDenfy does, with the key Verify would use
// for h's Idenfy-Event-Type, and returns body unchanged. Without that key it
// returns an EINVALID *hub.Error.
func (Provider) Sign(secrets map[string]string, h http.Header, body []byte) ([]byte, error) {
	key, name := signingKey(secrets, eventType(h))
	if key == "" {
		return nil, hub.Errorf(hub.EINVALID, "secret %q is required", name)
	}
	h.Set(HeaderSignature, hex.EncodeToString(provider.HMAC(sha256.New, []byte(key), body)))
	return body, nil
}

// signingKey returns the key for a request whose Idenfy-Event-Type header is
// eventType, and the name of the secret it came from: the per-event key when
// one is configured (an exact name first, then the alphabetically first name
// that matches case-insensitively or under the other CANCELLED spelling),
// else signing_key.
func signingKey(secrets map[string]string, eventType string) (key, name string) {
	eventType = strings.TrimSpace(eventType)
	if eventType != "" {
		if k := secrets[SecretSigningKeysPrefix+eventType]; k != "" {
			return k, SecretSigningKeysPrefix + eventType
		}
		want := canonicalEvent(eventType)
		for n, k := range secrets {
			if k != "" && strings.HasPrefix(n, SecretSigningKeysPrefix) &&
				canonicalEvent(n[len(SecretSigningKeysPrefix):]) == want && (name == "" || n < name) {
				key, name = k, n
			}
		}
		if key != "" {
			return key, name
		}
	}
	return secrets[SecretSigningKey], SecretSigningKey
}

// eventType returns the request's event type as sent: the one named in the
// ingest URL (provider.HeaderEventType), else Idenfy-Event-Type, else "".
func eventType(h http.Header) string {
	return strings.TrimSpace(provider.Or(strings.TrimSpace(h.Get(provider.HeaderEventType)), h.Get(HeaderEventType)))
}

// known reports whether event is a spelling of an event type this package
// understands.
func known(event string) bool {
	return event != "" && slices.Contains(events, canonicalEvent(event))
}

// canonicalEvent returns an event type in the spelling of iDenfy's API
// documents, for matching only: upper case, words joined by underscores
// (from spaces, hyphens or camelCase), ID VERIFICATION as IDENTIFICATION,
// a trailing FINISH as FINISHED and CANCELED as CANCELLED. So "ID
// VERIFICATION AUTO FINISH", "ID_VERIFICATION_AUTO_FINISHED" and
// "identificationAutoFinished" are all IDENTIFICATION_AUTO_FINISHED.
func canonicalEvent(event string) string {
	if event != EventCanceled && slices.Contains(events, event) {
		return event // a documented spelling, as nearly every webhook names it
	}
	return respell(event)
}

// respell is canonicalEvent for a name that is not a documented spelling.
func respell(event string) string {
	var b strings.Builder
	prevLower := false
	for _, r := range strings.TrimSpace(event) {
		if r == ' ' || r == '-' {
			r = '_'
		}
		if unicode.IsUpper(r) && prevLower {
			b.WriteByte('_')
		}
		prevLower = unicode.IsLower(r)
		b.WriteRune(unicode.ToUpper(r))
	}
	e := strings.Join(strings.FieldsFunc(b.String(), func(r rune) bool { return r == '_' }), "_")
	if rest, ok := strings.CutPrefix(e, "ID_VERIFICATION"); ok && (rest == "" || rest[0] == '_') {
		e = EventIdentification + rest
	}
	if strings.HasSuffix(e, "_FINISH") {
		e += "ED"
	}
	if e == EventCanceled {
		return EventCancelled
	}
	return e
}
