package kycaid

import (
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
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
// Name is the provider's name in configuration, messages and events.
const Name = "kycaid"

// Name returns Name.
func (Provider) Name() string { return Name }

// PreviewKeys lists the keys of KYCAID's payloads whose values previews
// show: ids, statuses, timestamps (see provider.Provider).
func (Provider) PreviewKeys() []string { return previewKeys }

var previewKeys = []string{
	"request_id", "applicant_id", "external_applicant_id", "verification_id", "form_id",
	"verification_status", "verification_attempts_left", "verified", "decline_reasons", "profile_status",
	"document_id",
}

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
	// Numbers as float64, as the dedup keys already stored were hashed.
	m, err := hub.ReadJSON(body, hub.NumbersAsFloat64)
	if err != nil {
		parsed.DedupKey = hub.RawHash(body)
		return parsed, provider.Unrecognized("body is not valid JSON")
	}
	if m.Kind() != hub.JSONObject {
		parsed.DedupKey = hub.CanonicalHashOf(m)
		return parsed, provider.Unrecognized("body is not a JSON object")
	}

	typ, _ := m.Field("type").Str()
	parsed.EventName = typ
	if rid, _ := m.Field("request_id").Str(); strings.TrimSpace(rid) != "" {
		parsed.DedupKey = "request_id:" + rid
	} else {
		parsed.DedupKey = hub.CanonicalHashOf(m)
	}

	switch typ {
	case EventVerificationStatusChanged, EventVerificationCompleted:
	case "":
		return parsed, provider.Unrecognized("type is missing or not a string")
	default:
		return parsed, provider.Unrecognized("unknown type %.64q", typ)
	}

	applicant := m.Field("applicant") // read only when an object: Field finds nothing in anything else
	ref, former, err := refs(m, applicant)
	if err != nil {
		return parsed, provider.Unrecognized("%s %s", typ, hub.ErrorMessage(err))
	}
	obs := hub.Observation{
		VerificationKey: hub.VerificationKey{ProviderRef: ref},
		FormerRef:       former,
		Provider:        Name,
		Kind:            hub.KindKYC,
		ApplicantRef:    applicantRef(m, applicant),
		Reasons:         reasons(m, applicant),
		AttemptsLeft:    attemptsLeft(m.Field("verification_attempts_left")),
		ProviderEvent:   typ,
	}
	if t, _ := applicant.Field("type").Str(); strings.EqualFold(strings.TrimSpace(t), "COMPANY") {
		obs.Kind = hub.KindKYB
	}

	switch typ {
	case EventVerificationStatusChanged:
		s, _ := m.Field("verification_status").Str()
		switch s {
		case "unused", "pending", "completed":
			obs.Status, obs.Final = hub.StatusPending, false
		default:
			return parsed, provider.Unrecognized("%s with unknown verification_status %.64q", typ, s)
		}
	case EventVerificationCompleted:
		verified, ok := verifiedOf(m.Field("verified"))
		switch {
		case !ok:
			return parsed, provider.Unrecognized("%s with verified %s: want true, false or null", typ, jsonExcerpt(m.Field("verified")))
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
func refs(m, applicant hub.JSON) (ref, former string, err error) {
	id, _ := m.Field("applicant_id").Str()
	if strings.TrimSpace(id) == "" {
		id, _ = applicant.Field("applicant_id").Str()
	}
	if strings.TrimSpace(id) != "" {
		former = ApplicantRefPrefix + id
	}
	switch ref, _ = m.Field("verification_id").Str(); {
	case strings.TrimSpace(ref) != "":
		return ref, former, nil
	case former != "":
		return former, "", nil
	}
	return "", "", provider.Unrecognized("without a verification_id or an applicant_id")
}

// applicantRef returns the company's own user id: the top-level
// external_applicant_id, else the applicant's.
func applicantRef(m, applicant hub.JSON) string {
	if s, _ := m.Field("external_applicant_id").Str(); s != "" {
		return s
	}
	s, _ := applicant.Field("external_applicant_id").Str()
	return s
}

// attemptsLeft reads verification_attempts_left: a non-negative integer, or
// a string holding one. Anything else, null included ("not limited"), is
// nil.
func attemptsLeft(v hub.JSON) *int {
	var n float64
	switch v.Kind() {
	case hub.JSONNumber:
		n = v.Any().(float64)
	case hub.JSONString:
		s, _ := v.Str()
		i, err := strconv.Atoi(strings.TrimSpace(s))
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
func verifiedOf(v hub.JSON) (verified *bool, ok bool) {
	switch v.Kind() {
	case hub.JSONAbsent, hub.JSONNull:
		return nil, true
	case hub.JSONBool:
		b, _ := v.Bool()
		return &b, true
	case hub.JSONString:
		s, _ := v.Str()
		switch strings.ToLower(strings.TrimSpace(s)) {
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
func reasons(m, applicant hub.JSON) []string {
	var out []string
	seen := map[string]bool{}
	addOne := func(item hub.JSON) {
		if r := reasonText(item); strings.TrimSpace(r) != "" && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	add := func(list hub.JSON) {
		if list.Kind() != hub.JSONArray {
			addOne(list) // a lone reason instead of a list
		}
		for item := range list.Elems {
			addOne(item)
		}
	}
	parts := m.Field("verifications")
	for _, name := range parts.Names() {
		if part := parts.Field(name); part.Kind() == hub.JSONObject {
			add(part.Field("decline_reasons"))
		}
	}
	add(applicant.Field("decline_reasons"))
	return out
}

// reasonFields are the fields of a decline reason sent as an object that may
// hold its text, most telling first. KYCAID documents none of them.
var reasonFields = []string{"name", "code", "reason", "title", "description", "text", "message"}

// reasonText renders one decline reason: a string as sent; an object by its
// first non-empty string field of reasonFields, else its compact JSON; null
// as nothing; anything else as its JSON.
func reasonText(v hub.JSON) string {
	switch v.Kind() {
	case hub.JSONAbsent, hub.JSONNull:
		return ""
	case hub.JSONString:
		s, _ := v.Str()
		return s
	case hub.JSONObject:
		for _, f := range reasonFields {
			if s, _ := v.Field(f).Str(); strings.TrimSpace(s) != "" {
				return s
			}
		}
	}
	b, _ := json.Marshal(v.Any())
	return string(b)
}

// jsonExcerpt renders a value for an error message, shortened to 64
// characters.
func jsonExcerpt(v hub.JSON) string {
	b, _ := json.Marshal(v.Any())
	return fmt.Sprintf("%.64s", b)
}
