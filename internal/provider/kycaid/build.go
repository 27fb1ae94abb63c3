package kycaid

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// Events returns the two documented callback types.
func (Provider) Events() []string {
	return []string{EventVerificationStatusChanged, EventVerificationCompleted}
}

// defaultDeclineReason is what a simulated declined verification gives when
// no reasons are asked for. KYCAID documents no list of decline reasons.
const defaultDeclineReason = "The document has expired"

// Build returns a callback shaped like KYCAID's documented samples, compact
// JSON, with a Content-Type header. It reads:
//
//   - Ref: verification_id (default: an id derived from ApplicantRef);
//     "null" sends null, as KYCAID does before the verification exists;
//   - ApplicantRef: external_applicant_id (default: "" in
//     VERIFICATION_STATUS_CHANGED, as in KYCAID's sample; null in the
//     applicant of VERIFICATION_COMPLETED); applicant_id is derived from it
//     (else from Ref), so that one applicant keeps one id;
//   - AttemptsLeft: VERIFICATION_STATUS_CHANGED's verification_attempts_left
//     (default null, "not limited");
//   - EventID: request_id (default: derived from the event, the
//     verification_id and the status, so the same build dedups alike);
//   - Status: for VERIFICATION_STATUS_CHANGED the verification_status,
//     unused, pending (default) or completed; for VERIFICATION_COMPLETED the
//     verified value, true (default), false or null, with approved and
//     declined (the values of KYCAID's set-status API) as aliases of true and
//     false. Case is ignored; any other value is an EINVALID *hub.Error;
//   - Reasons: VERIFICATION_COMPLETED's document decline_reasons (default for
//     verified false: one realistic reason);
//   - Kind: kyb makes VERIFICATION_COMPLETED's applicant a COMPANY.
//
// Other fields, Time included, are not read: KYCAID sends no event time. All
// 36-character ids are lowercase hex, as KYCAID's are, derived from the
// fields by hashing, so a build is deterministic.
func (p Provider) Build(event string, f provider.Fields) ([]byte, http.Header, error) {
	event, err := provider.MatchEvent(p.Events(), event)
	if err != nil {
		return nil, nil, err
	}
	ref := provider.Or(f.Ref, hexID("verification", f.ApplicantRef))
	var body any
	switch event {
	case EventVerificationStatusChanged:
		status := strings.ToLower(strings.TrimSpace(provider.Or(f.Status, "pending")))
		switch status {
		case "unused", "pending", "completed":
		default:
			return nil, nil, hub.Errorf(hub.EINVALID, "%s status %q: want unused, pending or completed", event, f.Status)
		}
		body = statusChanged{
			Type:                     event,
			VerificationStatus:       status,
			ApplicantID:              applicantID(ref, f),
			ExternalApplicantID:      f.ApplicantRef,
			FormID:                   hexID("form"),
			FormToken:                hexID("form_token", ref),
			VerificationID:           verificationID(ref),
			VerificationAttemptsLeft: f.AttemptsLeft,
			RequestID:                provider.Or(f.EventID, hexID("request", event, ref, status)),
		}
	case EventVerificationCompleted:
		verified, name, err := buildVerified(f.Status)
		if err != nil {
			return nil, nil, err
		}
		body = completedBody(event, ref, name, verified, f)
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, nil, err
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return raw, h, nil
}

// Sign sets x-data-integrity on h as KYCAID does and returns body unchanged.
// It returns an EINVALID *hub.Error when secrets hold no api_token.
func (p Provider) Sign(secrets map[string]string, h http.Header, body []byte) ([]byte, error) {
	if err := p.CheckSecrets(secrets); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, hub.Errorf(hub.EINVALID, "sign: nil header")
	}
	mac := provider.HMAC(sha512.New, []byte(secrets[SecretAPIToken]), integrityMessage(body))
	h.Set(HeaderDataIntegrity, hex.EncodeToString(mac))
	return body, nil
}

// verificationID returns the verification_id Build sends for ref: nil for
// "null".
func verificationID(ref string) *string {
	if strings.EqualFold(ref, "null") {
		return nil
	}
	return &ref
}

// applicantID returns the applicant_id Build sends: derived from the
// company's user id when there is one, so that it stays the same once the
// verification_id appears.
func applicantID(ref string, f provider.Fields) string {
	return hexID("applicant", provider.Or(f.ApplicantRef, ref))
}

// hexID returns a 36-character lowercase hex id derived from parts, shaped
// like KYCAID's ids (which are not RFC 4122 UUIDs).
func hexID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:])[:36]
}

// buildVerified reads Fields.Status for VERIFICATION_COMPLETED: the verified
// value and its canonical name (true, false or null).
func buildVerified(status string) (*bool, string, error) {
	t, f := true, false
	switch strings.ToLower(strings.TrimSpace(provider.Or(status, "true"))) {
	case "true", "approved":
		return &t, "true", nil
	case "false", "declined":
		return &f, "false", nil
	case "null":
		return nil, "null", nil
	}
	return nil, "", hub.Errorf(hub.EINVALID, "%s status %q: want true, false or null (or approved, declined)",
		EventVerificationCompleted, status)
}

// statusChanged is VERIFICATION_STATUS_CHANGED, fields in the order of
// KYCAID's sample.
type statusChanged struct {
	Type                     string  `json:"type"`
	VerificationStatus       string  `json:"verification_status"`
	ApplicantID              string  `json:"applicant_id"`
	ExternalApplicantID      string  `json:"external_applicant_id"`
	FormID                   string  `json:"form_id"`
	FormToken                string  `json:"form_token"`
	VerificationID           *string `json:"verification_id"`
	VerificationAttemptsLeft *int    `json:"verification_attempts_left"`
	RequestID                string  `json:"request_id"`
}

// completed is VERIFICATION_COMPLETED, fields in the order of KYCAID's
// sample.
type completed struct {
	Type           string        `json:"type"`
	RequestID      string        `json:"request_id"`
	VerificationID *string       `json:"verification_id"`
	ApplicantID    string        `json:"applicant_id"`
	FormID         string        `json:"form_id"`
	FormToken      string        `json:"form_token"`
	Status         string        `json:"status"`
	Verified       *bool         `json:"verified"`
	Verifications  verifications `json:"verifications"`
	Applicant      any           `json:"applicant"`
}

// verifications holds the two confirmed parts, profile first as in the
// sample.
type verifications struct {
	Profile  part `json:"profile"`
	Document part `json:"document"`
}

// part is one entry of verifications.
type part struct {
	Verified       *bool    `json:"verified"`
	Comment        string   `json:"comment"`
	DeclineReasons []string `json:"decline_reasons"`
}

// person is a PERSON applicant with fake personal data, fields in the order
// of KYCAID's sample.
type person struct {
	ApplicantID         string     `json:"applicant_id"`
	ExternalApplicantID *string    `json:"external_applicant_id"`
	Type                string     `json:"type"`
	CreatedAt           string     `json:"created_at"`
	ProfileStatus       string     `json:"profile_status"`
	ProfileComment      *string    `json:"profile_comment"`
	FirstName           string     `json:"first_name"`
	OriginFirstName     string     `json:"origin_first_name"`
	MiddleName          *string    `json:"middle_name"`
	OriginMiddleName    *string    `json:"origin_middle_name"`
	LastName            string     `json:"last_name"`
	OriginLastName      string     `json:"origin_last_name"`
	ResidenceCountry    string     `json:"residence_country"`
	Nationality         *string    `json:"nationality"`
	DOB                 string     `json:"dob"`
	Gender              string     `json:"gender"`
	Email               *string    `json:"email"`
	Phone               *string    `json:"phone"`
	PhoneStatus         *string    `json:"phone_status"`
	WalletAddress       *string    `json:"wallet_address"`
	TelegramUsername    *string    `json:"telegram_username"`
	PEP                 *bool      `json:"pep"`
	CustomField1        *string    `json:"custom_field_1"`
	CustomField2        *string    `json:"custom_field_2"`
	CustomField3        *string    `json:"custom_field_3"`
	CustomField4        *string    `json:"custom_field_4"`
	CustomField5        *string    `json:"custom_field_5"`
	DeclineReasonsIDs   []int      `json:"decline_reasons_ids"`
	DeclineReasons      []string   `json:"decline_reasons"`
	Addresses           []struct{} `json:"addresses"`
	Documents           []document `json:"documents"`
}

// company is a COMPANY applicant. KYCAID documents none of its fields beyond
// those shared with a person; company_name and registration_country are
// guesses.
type company struct {
	ApplicantID         string     `json:"applicant_id"`
	ExternalApplicantID *string    `json:"external_applicant_id"`
	Type                string     `json:"type"`
	CreatedAt           string     `json:"created_at"`
	ProfileStatus       string     `json:"profile_status"`
	ProfileComment      *string    `json:"profile_comment"`
	CompanyName         string     `json:"company_name"`
	RegistrationCountry string     `json:"registration_country"`
	Email               *string    `json:"email"`
	Phone               *string    `json:"phone"`
	DeclineReasonsIDs   []int      `json:"decline_reasons_ids"`
	DeclineReasons      []string   `json:"decline_reasons"`
	Addresses           []struct{} `json:"addresses"`
	Documents           []document `json:"documents"`
}

// document is one of the applicant's documents, as far as KYCAID's sample
// shows them.
type document struct {
	DocumentID       string  `json:"document_id"`
	Type             string  `json:"type"`
	Provider         string  `json:"provider"`
	Status           string  `json:"status"`
	Comment          *string `json:"comment"`
	DocumentNumber   string  `json:"document_number"`
	AdditionalNumber *string `json:"additional_number"`
	IssueDate        string  `json:"issue_date"`
	ExpiryDate       string  `json:"expiry_date"`
}

// completedBody builds VERIFICATION_COMPLETED for verification ref with the
// given verified value (name is its canonical spelling).
func completedBody(event, ref, name string, verified *bool, f provider.Fields) completed {
	appID := applicantID(ref, f)
	var external *string
	if f.ApplicantRef != "" {
		external = &f.ApplicantRef
	}

	profileVerified := verified
	if verified != nil {
		t := true
		profileVerified = &t // declines are shown on the document
	}
	doc := part{Verified: verified, DeclineReasons: append([]string{}, f.Reasons...)}
	docStatus, docComment, issued, expires := "valid", (*string)(nil), "2021-05-18", "2031-05-18"
	if verified != nil && !*verified {
		issued, expires = "2015-05-18", "2025-05-18" // expired, like the default reason
		if len(doc.DeclineReasons) == 0 {
			doc.DeclineReasons = []string{defaultDeclineReason}
		}
		doc.Comment = "Please upload a valid document"
		docStatus, docComment = "invalid", &doc.Comment
	}
	if verified == nil {
		docStatus = "pending"
	}

	const createdAt = "2025-03-03 09:41:27"
	var applicant any
	if f.Kind == hub.KindKYB {
		email := "compliance@northwind-trading.example"
		applicant = company{
			ApplicantID:         appID,
			ExternalApplicantID: external,
			Type:                "COMPANY",
			CreatedAt:           createdAt,
			ProfileStatus:       "valid",
			CompanyName:         "Northwind Trading Ltd",
			RegistrationCountry: "GB",
			Email:               &email,
			DeclineReasons:      []string{},
			Addresses:           []struct{}{},
			Documents:           []document{},
		}
	} else {
		email := "olena.marchenko@example.com"
		applicant = person{
			ApplicantID:         appID,
			ExternalApplicantID: external,
			Type:                "PERSON",
			CreatedAt:           createdAt,
			ProfileStatus:       "valid",
			FirstName:           "Olena",
			OriginFirstName:     "Олена",
			LastName:            "Marchenko",
			OriginLastName:      "Марченко",
			ResidenceCountry:    "PL",
			DOB:                 "1988-07-09",
			Gender:              "F",
			Email:               &email,
			DeclineReasons:      []string{},
			Addresses:           []struct{}{},
			Documents: []document{{
				DocumentID:     hexID("document", ref),
				Type:           "PASSPORT",
				Provider:       "MANUAL",
				Status:         docStatus,
				Comment:        docComment,
				DocumentNumber: "FE417293",
				IssueDate:      issued,
				ExpiryDate:     expires,
			}},
		}
	}
	return completed{
		Type:           event,
		RequestID:      provider.Or(f.EventID, hexID("request", event, ref, name)),
		VerificationID: verificationID(ref),
		ApplicantID:    appID,
		FormID:         hexID("form"),
		FormToken:      hexID("form_token", ref),
		Status:         "completed",
		Verified:       verified,
		Verifications: verifications{
			Profile:  part{Verified: profileVerified, DeclineReasons: []string{}},
			Document: doc,
		},
		Applicant: applicant,
	}
}
