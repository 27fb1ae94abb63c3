package idenfy

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"

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
// dashboard's and the API documents' spellings.
const (
	EventAutoFinished   = "IDENTIFICATION_AUTO_FINISHED"
	EventManualFinished = "IDENTIFICATION_MANUAL_FINISHED"
	EventResubmitted    = "IDENTIFICATION_RESUBMITTED"
	EventCancelled      = "IDENTIFICATION_CANCELLED"
	EventCanceled       = "IDENTIFICATION_CANCELED"
	EventExpired        = "IDENTIFICATION_EXPIRED"
	// EventIdentification is the legacy webhook that fires for every outcome.
	EventIdentification = "IDENTIFICATION"
)

var events = []string{EventAutoFinished, EventManualFinished, EventResubmitted,
	EventCancelled, EventCanceled, EventExpired, EventIdentification}

// Provider is the iDenfy adapter. The zero value is ready to use.
type Provider struct{}

var _ provider.Provider = Provider{}

// New returns the iDenfy adapter.
func New() Provider { return Provider{} }

// Name returns "idenfy".
func (Provider) Name() string { return hub.ProviderIdenfy }

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

// Verify checks the Idenfy-Signature header against the HMAC-SHA256 of body
// under the key for the request's Idenfy-Event-Type (see the package
// documentation), in constant time. It returns an EUNAUTHORIZED *hub.Error
// when the header is missing or wrong or no key is configured.
func (Provider) Verify(secrets map[string]string, h http.Header, body []byte) error {
	sig := h.Get(HeaderSignature)
	if strings.TrimSpace(sig) == "" {
		return provider.Unauthorized("missing %s header", HeaderSignature)
	}
	key, name := signingKey(secrets, h.Get(HeaderEventType))
	if key == "" {
		return provider.Unauthorized("secret %q is not configured", name)
	}
	return provider.CheckHexMAC(sha256.New, []byte(key), body, sig)
}

// Sign sets Idenfy-Signature as iDenfy does, with the key Verify would use
// for h's Idenfy-Event-Type, and returns body unchanged. Without that key it
// returns an EINVALID *hub.Error.
func (Provider) Sign(secrets map[string]string, h http.Header, body []byte) ([]byte, error) {
	key, name := signingKey(secrets, h.Get(HeaderEventType))
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

// canonicalEvent returns an event type upper-cased and trimmed, with the
// CANCELED spelling turned into CANCELLED, for matching only.
func canonicalEvent(event string) string {
	event = strings.ToUpper(strings.TrimSpace(event))
	if event == EventCanceled {
		return EventCancelled
	}
	return event
}
