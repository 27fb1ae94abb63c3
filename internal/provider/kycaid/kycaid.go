package kycaid

import (
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// SecretAPIToken names the source secret that holds the KYCAID API token,
// the key of the x-data-integrity HMAC.
const SecretAPIToken = "api_token"

// HeaderDataIntegrity is the header that carries the callback's signature.
const HeaderDataIntegrity = "X-Data-Integrity"

// The callback types KYCAID documents, spelled as its documents spell them.
const (
	EventVerificationStatusChanged = "VERIFICATION_STATUS_CHANGED"
	EventVerificationCompleted     = "VERIFICATION_COMPLETED"
)

// Provider is the KYCAID adapter. The zero value is ready to use; it is
// stateless and safe for concurrent use.
type Provider struct{}

// New returns the KYCAID adapter.
func New() Provider { return Provider{} }

var _ provider.Provider = Provider{}

// Name returns "kycaid".
func (Provider) Name() string { return hub.ProviderKYCAID }

// Setup says where, in KYCAID's dashboard, the callback URL goes and the
// secret is found.
func (Provider) Setup() provider.Setup {
	return provider.Setup{
		Title:     "KYCAID",
		URL:       "the callback_url of your forms or verifications; enable \"Verification status changed\" per form",
		Secret:    "your API token (app.kycaid.com → API keys) → api_token",
		SecretKey: "api_token",
	}
}

// CheckSecrets returns an EINVALID *hub.Error unless secrets hold a non-empty
// api_token.
func (Provider) CheckSecrets(secrets map[string]string) error {
	return provider.RequireSecrets(secrets, SecretAPIToken)
}

// Verify checks the x-data-integrity header against the lowercase hex
// HMAC-SHA512, keyed with the api_token secret, of the base64 encoding of
// body, in constant time. A missing header or secret, a header that is not
// hex, and a mismatch are EUNAUTHORIZED *hub.Errors.
func (Provider) Verify(secrets map[string]string, h http.Header, body []byte) error {
	token := secrets[SecretAPIToken]
	if token == "" {
		return provider.Unauthorized("source has no %s secret to check x-data-integrity with", SecretAPIToken)
	}
	got := strings.TrimSpace(h.Get(HeaderDataIntegrity))
	if got == "" {
		return provider.Unauthorized("missing x-data-integrity header")
	}
	if err := provider.CheckHexMAC(sha512.New, []byte(token), integrityMessage(body), got); err != nil {
		return provider.Unauthorized("x-data-integrity header: %s", hub.ErrorMessage(err))
	}
	return nil
}

// integrityMessage returns what KYCAID's HMAC covers: the standard, padded
// base64 encoding of the raw body.
func integrityMessage(body []byte) []byte {
	return base64.StdEncoding.AppendEncode(make([]byte, 0, base64.StdEncoding.EncodedLen(len(body))), body)
}

// Parse maps an authenticated callback to one observation of the
// verification named by verification_id, or by the applicant while it is
// null (see the package documentation for the mapping). It returns an
// EUNRECOGNIZED *hub.Error, with EventName and DedupKey filled where it could
// find them, for a body that is not a JSON object, an unknown type, neither
// a verification_id nor an applicant_id, or a status it cannot map. Body is
// always the raw body unchanged.
func (Provider) Parse(_ http.Header, body []byte) (hub.Parsed, error) {
	parsed := hub.Parsed{Body: body}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		parsed.DedupKey = hub.RawHash(body)
		return parsed, provider.Unrecognized("body is not valid JSON")
	}
	m, ok := v.(map[string]any)
	if !ok {
		parsed.DedupKey = hub.CanonicalHashOf(v)
		return parsed, provider.Unrecognized("body is not a JSON object")
	}

	typ, _ := m["type"].(string)
	parsed.EventName = typ
	if rid, _ := m["request_id"].(string); strings.TrimSpace(rid) != "" {
		parsed.DedupKey = "request_id:" + rid
	} else {
		parsed.DedupKey = hub.CanonicalHashOf(v)
	}

	switch typ {
	case EventVerificationStatusChanged, EventVerificationCompleted:
	case "":
		return parsed, provider.Unrecognized("type is missing or not a string")
	default:
		return parsed, provider.Unrecognized("unknown type %.64q", typ)
	}

	applicant, _ := m["applicant"].(map[string]any)
	ref, former, err := refs(m, applicant)
	if err != nil {
		return parsed, provider.Unrecognized("%s %s", typ, hub.ErrorMessage(err))
	}
	obs := hub.Observation{
		VerificationKey: hub.VerificationKey{ProviderRef: ref},
		FormerRef:       former,
		Provider:        hub.ProviderKYCAID,
		Kind:            hub.KindKYC,
		ApplicantRef:    applicantRef(m, applicant),
		Reasons:         reasons(m, applicant),
		AttemptsLeft:    attemptsLeft(m["verification_attempts_left"]),
		ProviderEvent:   typ,
	}
	if t, _ := applicant["type"].(string); strings.EqualFold(strings.TrimSpace(t), "COMPANY") {
		obs.Kind = hub.KindKYB
	}

	switch typ {
	case EventVerificationStatusChanged:
		s, _ := m["verification_status"].(string)
		switch s {
		case "unused", "pending", "completed":
			obs.Status, obs.Final = hub.StatusPending, false
		default:
			return parsed, provider.Unrecognized("%s with unknown verification_status %.64q", typ, s)
		}
	case EventVerificationCompleted:
		verified, ok := verifiedOf(m["verified"])
		switch {
		case !ok:
			return parsed, provider.Unrecognized("%s with verified %s: want true, false or null", typ, jsonExcerpt(m["verified"]))
		case verified == nil:
			obs.Status, obs.Final = hub.StatusPending, false
		case *verified:
			obs.Status, obs.Final = hub.StatusApproved, true
		default:
			// Final only once no attempt is left (see hub.Apply): while
			// one is, the applicant may try again.
			obs.Status, obs.FinalIfNoAttempts = hub.StatusRejected, true
		}
	}
	parsed.Observations = []hub.Observation{obs}
	return parsed, nil
}

// ApplicantRefPrefix begins the provider reference of a verification that
// KYCAID has not named yet: its verification_id is null, so it is known by
// its applicant_id until one appears.
const ApplicantRefPrefix = "applicant:"

// refs returns the observation's ProviderRef and FormerRef: the
// verification_id, and the applicant's reference under which the
// verification may be stored while its id was null; or, while it is null,
// the applicant's reference alone. Without either it returns an error that
// says so.
func refs(m, applicant map[string]any) (ref, former string, err error) {
	id, _ := m["applicant_id"].(string)
	if strings.TrimSpace(id) == "" {
		id, _ = applicant["applicant_id"].(string)
	}
	if strings.TrimSpace(id) != "" {
		former = ApplicantRefPrefix + id
	}
	switch ref, _ = m["verification_id"].(string); {
	case strings.TrimSpace(ref) != "":
		return ref, former, nil
	case former != "":
		return former, "", nil
	}
	return "", "", provider.Unrecognized("without a verification_id or an applicant_id")
}

// applicantRef returns the company's own user id: the top-level
// external_applicant_id, else the applicant's.
func applicantRef(m, applicant map[string]any) string {
	if s, _ := m["external_applicant_id"].(string); s != "" {
		return s
	}
	s, _ := applicant["external_applicant_id"].(string)
	return s
}

// attemptsLeft reads verification_attempts_left: a non-negative integer, or
// a string holding one. Anything else, null included ("not limited"), is
// nil.
func attemptsLeft(v any) *int {
	var n float64
	switch v := v.(type) {
	case float64:
		n = v
	case string:
		i, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return nil
		}
		n = float64(i)
	default:
		return nil
	}
	if n < 0 || n > math.MaxInt32 || n != math.Trunc(n) {
		return nil
	}
	i := int(n)
	return &i
}

// verifiedOf reads VERIFICATION_COMPLETED's verified: a JSON boolean, the
// strings "true" or "false" in any case, or null (absent alike). ok is false
// for anything else.
func verifiedOf(v any) (verified *bool, ok bool) {
	switch v := v.(type) {
	case nil:
		return nil, true
	case bool:
		return &v, true
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true":
			b := true
			return &b, true
		case "false":
			b := false
			return &b, true
		}
	}
	return nil, false
}

// reasons collects the decline_reasons of every part under verifications, in
// part-name order, then the applicant's, de-duplicated in first-seen order.
func reasons(m, applicant map[string]any) []string {
	var out []string
	seen := map[string]bool{}
	add := func(list any) {
		items, ok := list.([]any)
		if !ok {
			items = []any{list} // a lone reason instead of a list
		}
		for _, item := range items {
			r := reasonText(item)
			if strings.TrimSpace(r) == "" || seen[r] {
				continue
			}
			seen[r] = true
			out = append(out, r)
		}
	}
	if parts, ok := m["verifications"].(map[string]any); ok {
		names := make([]string, 0, len(parts))
		for name := range parts {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if part, ok := parts[name].(map[string]any); ok {
				add(part["decline_reasons"])
			}
		}
	}
	add(applicant["decline_reasons"])
	return out
}

// reasonFields are the fields of a decline reason sent as an object that may
// hold its text, most telling first. KYCAID documents none of them.
var reasonFields = []string{"name", "code", "reason", "title", "description", "text", "message"}

// reasonText renders one decline reason: a string as sent; an object by its
// first non-empty string field of reasonFields, else its compact JSON; null
// as nothing; anything else as its JSON.
func reasonText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case map[string]any:
		for _, f := range reasonFields {
			if s, _ := v[f].(string); strings.TrimSpace(s) != "" {
				return s
			}
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// jsonExcerpt renders a decoded value for an error message, shortened to
// 64 characters.
func jsonExcerpt(v any) string {
	b, _ := json.Marshal(v)
	return fmt.Sprintf("%.64s", b)
}
