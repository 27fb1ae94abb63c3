// Package fractal is verihook's adapter for Fractal ID webhooks, on both of
// Fractal's platforms.
//
// # Legacy (OAuth) platform
//
// The body is {"type": …, "data": {…}} and the header X-Fractal-Signature
// holds "sha1=" and the lowercase hex HMAC-SHA1 of the raw body. Fractal
// issues one secret token per webhook type, so a source configures
// webhook_secrets.<type> per type, or one webhook_secret for every type, or
// both. Verify computes the HMAC under every configured secret (comparing each
// in constant time) and, when one matches, reads only the body's type to check
// that the matching secret may speak for it: webhook_secret speaks for every
// type, webhook_secrets.verification_approved only for verification_approved.
//
// # New platform ("Kraken")
//
// Fractal's migration document, marked work in progress, describes a body
// {"id": USER_ID, "status": "approved|rejected", "note": "Rejection reason"}
// signed with HMAC-SHA256 under one "Webhook Secret Key", sent as bare hex (64
// digits, no prefix) in the same X-Fractal-Signature header. The header tells
// the formats apart: "sha1=…" is legacy, 64 hex digits is Kraken, anything
// else is refused.
//
// # Assumptions and unknowns
//
//   - Kraken signatures are checked with webhook_secrets.kraken when it is set,
//     else with webhook_secret; per-type legacy secrets never verify Kraken
//     signatures, and webhook_secrets.kraken never verifies legacy ones.
//   - Kraken sends no event name; verihook calls these messages "kraken"
//     (Parsed.EventName, the observations' provider_event, and the event name
//     "verihook simulate fractal kraken" builds).
//   - Kraken statuses approved and rejected are final; "pending" (the value of
//     Kraken's polling API, not shown for webhooks) is accepted as a non-final
//     pending; any other status is quarantined. Kraken observations have an
//     empty level: the document shows no per-level notifications. A non-empty
//     note becomes the observation's only reason.
//   - Which shape a body has is decided by the body, not the header: an object
//     with a type field is legacy; one without type but with status is Kraken.
//   - Fractal sends no event id, and retries carry the same body, so the dedup
//     key is the canonical hash of the body (hub.CanonicalHash).
//   - The legacy format has no timestamp header: there is no replay protection
//     beyond deduplication. Both formats sign the raw bytes; the body is never
//     re-serialized before verification.
//   - application_access_revoked and authorization_revoked (its name from
//     June to August 2019, when it was removed from the documents) become
//     applicant.access_revoked; any other unknown type is quarantined for an
//     operator, as are messages without data.user_id.
//   - A source with per-type secrets only cannot verify a type it has no
//     secret for: such a request is refused (401, so Fractal keeps retrying
//     until the secret is added) with a provider.MissingSecretError naming
//     the type, and EventsWithoutSecret lists the documented types a
//     source's secrets leave out.
//   - Timestamps sent as Unix seconds with a fraction keep the fraction.
//   - Rejection reasons are not disclosed by legacy webhooks, so legacy
//     observations carry no reasons. data.level is free-form ("basic",
//     "liveness", "v1" …) and each level is its own verification.
//   - Identifiers and timestamps are read as JSON strings; a JSON number is
//     taken as its decimal text (Unix seconds for a timestamp).
package fractal

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// Secret names and the signature header.
const (
	secretAll     = "webhook_secret"   // one secret for every event type
	secretsPrefix = "webhook_secrets." // + event type: a secret for that type only
	header        = "X-Fractal-Signature"
	legacyPrefix  = "sha1="
)

// Fractal's event names, as its documents spell them, and verihook's name for
// Kraken messages.
const (
	eventApproved         = "verification_approved"
	eventRejected         = "verification_rejected"
	eventContacted        = "verification_contacted"
	eventCredentialShared = "credential_shared"
	eventEmailChanged     = "email_changed"
	eventAccessRevoked    = "application_access_revoked" // June 2019, then renamed:
	eventAuthRevoked      = "authorization_revoked"      // June–August 2019, then removed
	eventKraken           = "kraken"
)

// documentedTypes are the legacy event types Fractal's documents have named,
// then or now.
var documentedTypes = []string{eventApproved, eventRejected, eventContacted, eventCredentialShared,
	eventEmailChanged, eventAccessRevoked, eventAuthRevoked}

// Defaults for Build: the values of Fractal's own samples.
const (
	defaultUserID       = "14ec6af0-12f8-4bce-a6ab-01ce87fa1812"
	defaultIdosHumanID  = "3f8b6d2e-5c1a-4e7b-9d0f-2a6c8e4b1d57"
	defaultCredentialID = "9c2e4a71-0b3d-4f68-8e15-7d4a6b2c9f03"
	defaultLevel        = "basic"
	defaultEmail        = "john.snow@fractal.id"
	defaultTimestamp    = "2020-04-02T13:35:35Z"
)

// verificationStatuses maps legacy verification events to normalized statuses.
var verificationStatuses = map[string]struct {
	status hub.Status
	final  bool
}{
	eventApproved:  {hub.StatusApproved, true},
	eventRejected:  {hub.StatusRejected, true},
	eventContacted: {hub.StatusActionRequired, false},
}

// krakenStatuses maps Kraken statuses to normalized statuses.
var krakenStatuses = map[string]struct {
	status hub.Status
	final  bool
}{
	"approved": {hub.StatusApproved, true},
	"rejected": {hub.StatusRejected, true},
	"pending":  {hub.StatusPending, false},
}

// Provider is the Fractal ID adapter. The zero value is ready to use and safe
// for concurrent use.
type Provider struct{}

// New returns the Fractal ID adapter.
func New() Provider { return Provider{} }

var _ provider.Provider = Provider{}

// Name returns "fractal".
// Name is the provider's name in configuration, messages and events.
const Name = "fractal"

// Name returns Name.
func (Provider) Name() string { return Name }

// PreviewKeys lists the keys of Fractal's payloads whose values previews
// show: ids, statuses, timestamps (see provider.Provider).
func (Provider) PreviewKeys() []string { return previewKeys }

var previewKeys = []string{
	"user_id", "idos_human_id", "credential_id", "shared_at", "timestamp",
}

// Setup says where, in Fractal ID's dashboard, the callback URL goes and the
// secret is found.
func (Provider) Setup() provider.Setup {
	return provider.Setup{
		Title:     "Fractal ID",
		URL:       "the webhook's Callback URL (HTTPS only)",
		Secret:    "each webhook type's secret token → webhook_secrets.<type>, or one webhook_secret",
		SecretKey: "webhook_secret",
		HTTPSOnly: true,
		NoPolling: "Fractal cannot be polled: its API answers only with each user's own OAuth token",
	}
}

// CheckSecrets accepts webhook_secret and webhook_secrets.<event_type> (the
// latter for a legacy event type, or "kraken" for the new platform's key) and
// requires at least one of them to be non-empty. Any other name is refused, so
// that a misspelt key is caught at configuration time rather than as 401s.
func (Provider) CheckSecrets(secrets map[string]string) error {
	names := make([]string, 0, len(secrets))
	for name := range secrets {
		names = append(names, name)
	}
	slices.Sort(names)
	set := 0
	for _, name := range names {
		if name != secretAll && !(strings.HasPrefix(name, secretsPrefix) && len(name) > len(secretsPrefix)) {
			return hub.Errorf(hub.EINVALID, "unknown secret %q (want %s or %s<event_type>)", name, secretAll, secretsPrefix)
		}
		if secrets[name] != "" {
			set++
		}
	}
	if set == 0 {
		return hub.Errorf(hub.EINVALID, "secret %q (or %s<event_type>) is required", secretAll, secretsPrefix)
	}
	return nil
}

// Verify authenticates a Fractal callback over its raw bytes. It returns an
// EUNAUTHORIZED *hub.Error when the X-Fractal-Signature header is missing or
// of neither format, when no configured secret's MAC matches, or when the only
// matching secret belongs to another event type than the body's; when the
// source has per-type secrets only and none for the body's type, that error
// is a *provider.MissingSecretError naming the type.
func (Provider) Verify(secrets map[string]string, h http.Header, body []byte) error {
	sig := strings.TrimSpace(h.Get(header))
	switch {
	case sig == "":
		return provider.Unauthorized("missing %s header", header)
	case len(sig) >= len(legacyPrefix) && strings.EqualFold(sig[:len(legacyPrefix)], legacyPrefix):
		return verifyLegacy(secrets, sig[len(legacyPrefix):], body)
	case isHex(sig, 2*sha256.Size):
		return verifyKraken(secrets, sig, body)
	default:
		return provider.Unauthorized("%s is neither sha1=<hex> nor 64 hex digits", header)
	}
}

// verifyLegacy checks an HMAC-SHA1 signature against every legacy secret,
// then checks that a matching secret may speak for the body's type.
func verifyLegacy(secrets map[string]string, sig string, body []byte) error {
	got, err := hex.DecodeString(strings.TrimSpace(sig))
	if err != nil {
		return provider.Unauthorized("signature is not hex")
	}
	var matched []string
	tried := 0
	for name, secret := range secrets {
		if secret == "" || !isLegacySecret(name) {
			continue
		}
		tried++
		// No early exit: every candidate costs the same whether or not an
		// earlier one matched.
		if hmac.Equal(got, provider.HMAC(sha1.New, []byte(secret), body)) {
			matched = append(matched, name)
		}
	}
	switch {
	case tried == 0:
		return provider.Unauthorized("no secret configured for sha1 signatures")
	case slices.Contains(matched, secretAll):
		return nil
	}
	// Only now is the body read, for its type: to check that a matching
	// per-type secret may speak for it, or to name the type that has no
	// secret (the type is unauthenticated: it names a secret, it grants
	// nothing).
	typ := eventType(body)
	if typ != "" && slices.Contains(matched, secretsPrefix+typ) {
		return nil
	}
	if secrets[secretAll] == "" && typ != "" && isLegacySecret(secretsPrefix+typ) && secrets[secretsPrefix+typ] == "" {
		return &provider.MissingSecretError{
			EventType: clip(typ), Documented: slices.Contains(documentedTypes, typ), Secret: secretsPrefix + clip(typ),
		}
	}
	if len(matched) == 0 {
		return provider.Unauthorized("signature mismatch")
	}
	return provider.Unauthorized("secret not valid for event type %q", clip(typ))
}

// verifyKraken checks a bare-hex HMAC-SHA256 signature with the Kraken key.
func verifyKraken(secrets map[string]string, sig string, body []byte) error {
	secret := krakenSecret(secrets)
	if secret == "" {
		return provider.Unauthorized("no secret configured for Kraken signatures (%s or %s%s)", secretAll, secretsPrefix, eventKraken)
	}
	return provider.CheckHexMAC(sha256.New, []byte(secret), body, sig)
}

// isLegacySecret reports whether the secret named name may verify a legacy
// (sha1) signature.
func isLegacySecret(name string) bool {
	if name == secretAll {
		return true
	}
	typ, ok := strings.CutPrefix(name, secretsPrefix)
	return ok && typ != "" && typ != eventKraken
}

// legacySecret returns the secret Fractal signs a legacy event of type typ
// with: webhook_secrets.<typ> when set, else webhook_secret.
func legacySecret(secrets map[string]string, typ string) string {
	if typ != "" && isLegacySecret(secretsPrefix+typ) && secrets[secretsPrefix+typ] != "" {
		return secrets[secretsPrefix+typ]
	}
	return secrets[secretAll]
}

// krakenSecret returns the Kraken key: webhook_secrets.kraken when set, else
// webhook_secret.
func krakenSecret(secrets map[string]string) string {
	return provider.Or(secrets[secretsPrefix+eventKraken], secrets[secretAll])
}

// isHex reports whether s is n hex digits.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// decodeObject decodes body as a JSON value and returns it, with the object
// it is (nil when it is not one).
func decodeObject(body []byte) (any, map[string]any, error) {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, nil, err
	}
	m, _ := v.(map[string]any)
	return v, m, nil
}

// eventType returns the body's legacy type, or "" when it has none.
func eventType(body []byte) string {
	v, _ := hub.ReadJSON(body, hub.NumbersAsFloat64) // refusing what decodeObject refuses
	typ, _ := v.Field("type").Str()
	return typ
}

// isKrakenBody reports whether m has the Kraken shape: no type, a status.
func isKrakenBody(m map[string]any) bool {
	if m == nil {
		return false
	}
	_, hasType := m["type"]
	_, hasStatus := m["status"]
	return !hasType && hasStatus
}

// Parse turns an authenticated Fractal callback into hub terms. It returns an
// EUNRECOGNIZED *hub.Error, with EventName and DedupKey filled in where the
// body allows, for a body that is not a JSON object, an unknown or retired
// type, a Kraken status other than approved, rejected or pending, or a
// message that lacks the applicant's id.
func (Provider) Parse(_ http.Header, body []byte) (hub.Parsed, error) {
	p := hub.Parsed{Body: body}
	v, m, err := decodeObject(body)
	if err != nil {
		p.DedupKey = hub.RawHash(body)
		return p, provider.Unrecognized("body is not JSON")
	}
	p.DedupKey = hub.CanonicalHashOf(v)
	if m == nil {
		return p, provider.Unrecognized("body is not a JSON object")
	}
	if isKrakenBody(m) {
		p.EventName = eventKraken
		return parseKraken(p, m)
	}
	rawType, ok := m["type"]
	if !ok {
		return p, provider.Unrecognized("body has no type")
	}
	typ, ok := rawType.(string)
	if !ok {
		return p, provider.Unrecognized("type is not a string")
	}
	p.EventName = typ
	data, ok := m["data"].(map[string]any)
	if !ok && m["data"] != nil {
		return p, provider.Unrecognized("data is not an object")
	}
	switch typ {
	case eventApproved, eventRejected, eventContacted:
		return parseVerification(p, typ, data)
	case eventCredentialShared:
		return parseCredentialShared(p, data)
	case eventEmailChanged:
		return parseEmailChanged(p, data)
	case eventAccessRevoked, eventAuthRevoked:
		return parseAccessRevoked(p, typ, data)
	default:
		return p, provider.Unrecognized("unknown event type %q", clip(typ))
	}
}

// parseVerification maps verification_approved, _rejected and _contacted.
func parseVerification(p hub.Parsed, typ string, data map[string]any) (hub.Parsed, error) {
	userID, level, ts, err := texts(data, "user_id", "level", "timestamp")
	if err != nil {
		return p, err
	}
	if blank(userID) {
		return p, provider.Unrecognized("%s without data.user_id", typ)
	}
	st := verificationStatuses[typ]
	p.Observations = []hub.Observation{{
		VerificationKey: hub.VerificationKey{ProviderRef: userID, Level: level},
		Provider:        Name,
		Kind:            hub.KindKYC,
		Status:          st.status,
		Final:           st.final,
		ProviderTime:    provider.ParseTime(ts),
		ProviderEvent:   typ,
	}}
	return p, nil
}

// parseCredentialShared maps credential_shared (idOS).
func parseCredentialShared(p hub.Parsed, data map[string]any) (hub.Parsed, error) {
	human, credential, sharedAt, err := texts(data, "idos_human_id", "credential_id", "shared_at")
	if err != nil {
		return p, err
	}
	if blank(human) || blank(credential) {
		return p, provider.Unrecognized("%s without data.idos_human_id or data.credential_id", eventCredentialShared)
	}
	p.Events = []hub.EventDraft{{
		Type: hub.EventCredentialShared,
		Data: hub.CredentialShared{IdosHumanID: human, CredentialID: credential, SharedAt: sharedAt},
	}}
	return p, nil
}

// parseEmailChanged maps email_changed.
func parseEmailChanged(p hub.Parsed, data map[string]any) (hub.Parsed, error) {
	userID, email, _, err := texts(data, "user_id", "email", "")
	if err != nil {
		return p, err
	}
	if blank(userID) || blank(email) {
		return p, provider.Unrecognized("%s without data.user_id or data.email", eventEmailChanged)
	}
	p.Events = []hub.EventDraft{{
		Type: hub.EventApplicantEmailChanged,
		Data: hub.ApplicantEmailChanged{ApplicantRef: userID, Email: email},
	}}
	return p, nil
}

// parseAccessRevoked maps application_access_revoked and
// authorization_revoked (2019): the user revoked every access grant and token
// of the application.
func parseAccessRevoked(p hub.Parsed, typ string, data map[string]any) (hub.Parsed, error) {
	userID, _, _, err := texts(data, "user_id", "", "")
	if err != nil {
		return p, err
	}
	if blank(userID) {
		return p, provider.Unrecognized("%s without data.user_id", typ)
	}
	p.Events = []hub.EventDraft{{Type: hub.EventApplicantAccessRevoked, Data: hub.ApplicantAccessRevoked{ApplicantRef: userID}}}
	return p, nil
}

// parseKraken maps a new-platform {id, status, note} body.
func parseKraken(p hub.Parsed, m map[string]any) (hub.Parsed, error) {
	id, status, note, err := texts(m, "id", "status", "note")
	if err != nil {
		return p, err
	}
	if blank(id) {
		return p, provider.Unrecognized("%s message without id", eventKraken)
	}
	st, ok := krakenStatuses[strings.ToLower(status)]
	if !ok {
		return p, provider.Unrecognized("unknown %s status %q", eventKraken, clip(status))
	}
	o := hub.Observation{
		VerificationKey: hub.VerificationKey{ProviderRef: id},
		Provider:        Name,
		Kind:            hub.KindKYC,
		Status:          st.status,
		Final:           st.final,
		ProviderEvent:   eventKraken,
	}
	if note != "" {
		o.Reasons = []string{note}
	}
	p.Observations = []hub.Observation{o}
	return p, nil
}

// texts reads up to three text fields of m ("" names are skipped). A missing
// or null field is ""; a number is its decimal text; anything else is an
// EUNRECOGNIZED error naming the field.
func texts(m map[string]any, a, b, c string) (string, string, string, error) {
	var out [3]string
	for i, key := range [3]string{a, b, c} {
		if key == "" {
			continue
		}
		switch x := m[key].(type) {
		case nil:
		case string:
			out[i] = x
		case float64:
			out[i] = strconv.FormatFloat(x, 'f', -1, 64)
		default:
			return "", "", "", provider.Unrecognized("%s is not a string", key)
		}
	}
	return out[0], out[1], out[2], nil
}

// blank reports whether a required value is missing.
func blank(s string) bool { return strings.TrimSpace(s) == "" }

// clip shortens a value from a body for an error message.
func clip(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	return strings.ToValidUTF8(s[:limit], "") + "…"
}

// Events lists the event names Build accepts: Fractal's legacy types, the
// retired one included, and "kraken" for the new platform's single message
// shape.
func (Provider) Events() []string {
	return append(slices.Clone(documentedTypes), eventKraken)
}

// EventsWithoutSecret lists the documented legacy event types that secrets
// cannot verify: every type without webhook_secrets.<type> when
// webhook_secret is not set.
func (Provider) EventsWithoutSecret(secrets map[string]string) []string {
	if secrets[secretAll] != "" {
		return nil
	}
	var out []string
	for _, typ := range documentedTypes {
		if secrets[secretsPrefix+typ] == "" {
			out = append(out, typ)
		}
	}
	return out
}

// Bodies as Fractal sends them: compact JSON, keys in the documents' order.
type (
	legacyBody[T any] struct {
		Type string `json:"type"`
		Data T      `json:"data"`
	}
	verificationData struct {
		Level     string `json:"level"`
		UserID    string `json:"user_id"`
		Timestamp string `json:"timestamp"`
	}
	credentialData struct {
		IdosHumanID  string `json:"idos_human_id"`
		CredentialID string `json:"credential_id"`
		SharedAt     string `json:"shared_at"`
	}
	emailData struct {
		UserID string `json:"user_id"`
		Email  string `json:"email"`
	}
	userData struct {
		UserID string `json:"user_id"`
	}
	krakenBody struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Note   string `json:"note"`
	}
)

// Build returns the body Fractal would send for event, with a Content-Type
// header, deterministically from f. It reads f.Ref (user_id; idos_human_id
// for credential_shared; id for kraken), f.Level (default "basic"), f.Time
// (timestamp, shared_at; default 2020-04-02T13:35:35Z), f.Recipient (the new
// email of email_changed), and for kraken f.Status (approved, the default,
// rejected or pending) and f.Reasons[0] (note). An unknown event or Kraken
// status is an EINVALID *hub.Error.
func (p Provider) Build(event string, f provider.Fields) ([]byte, http.Header, error) {
	event, err := provider.MatchEvent(p.Events(), event)
	if err != nil {
		return nil, nil, err
	}
	ts := defaultTimestamp
	if !f.Time.IsZero() {
		ts = f.Time.UTC().Format(time.RFC3339)
	}
	var v any
	switch event {
	case eventApproved, eventRejected, eventContacted:
		v = legacyBody[verificationData]{event, verificationData{
			Level:     provider.Or(f.Level, defaultLevel),
			UserID:    provider.Or(f.Ref, defaultUserID),
			Timestamp: ts,
		}}
	case eventCredentialShared:
		v = legacyBody[credentialData]{event, credentialData{
			IdosHumanID:  provider.Or(f.Ref, defaultIdosHumanID),
			CredentialID: defaultCredentialID,
			SharedAt:     ts,
		}}
	case eventEmailChanged:
		v = legacyBody[emailData]{event, emailData{
			UserID: provider.Or(f.Ref, defaultUserID),
			Email:  provider.Or(f.Recipient, defaultEmail),
		}}
	case eventAccessRevoked, eventAuthRevoked:
		v = legacyBody[userData]{event, userData{UserID: provider.Or(f.Ref, defaultUserID)}}
	case eventKraken:
		status := strings.ToLower(provider.Or(f.Status, "approved"))
		if _, ok := krakenStatuses[status]; !ok {
			return nil, nil, hub.Errorf(hub.EINVALID, "unknown %s status %q (want approved, rejected or pending)", eventKraken, f.Status)
		}
		kb := krakenBody{ID: provider.Or(f.Ref, defaultUserID), Status: status}
		if len(f.Reasons) > 0 {
			kb.Note = f.Reasons[0]
		}
		v = kb
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, nil, hub.Errorf(hub.EINVALID, "build %s: %v", event, err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), h, nil
}

// Sign sets X-Fractal-Signature as Fractal does and returns body unchanged: a
// Kraken-shaped body gets the bare hex HMAC-SHA256 under the Kraken key; any
// other body gets "sha1=" and the hex HMAC-SHA1 under webhook_secrets.<type>,
// or webhook_secret when that is not set. It returns an EINVALID *hub.Error
// when secrets hold no key for the body.
func (Provider) Sign(secrets map[string]string, h http.Header, body []byte) ([]byte, error) {
	_, m, _ := decodeObject(body)
	if isKrakenBody(m) {
		secret := krakenSecret(secrets)
		if secret == "" {
			return nil, hub.Errorf(hub.EINVALID, "no secret for %s messages: set %s or %s%s", eventKraken, secretAll, secretsPrefix, eventKraken)
		}
		h.Set(header, hex.EncodeToString(provider.HMAC(sha256.New, []byte(secret), body)))
		return body, nil
	}
	typ, _ := m["type"].(string)
	secret := legacySecret(secrets, typ)
	if secret == "" {
		return nil, hub.Errorf(hub.EINVALID, "no secret for event type %q: set %s or %s%s", clip(typ), secretAll, secretsPrefix, clip(typ))
	}
	h.Set(header, legacyPrefix+hex.EncodeToString(provider.HMAC(sha1.New, []byte(secret), body)))
	return body, nil
}
