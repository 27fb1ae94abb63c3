package idenfy

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// The API credentials of a source that reconciliation may use: the key and
// secret of iDenfy's API (HTTP Basic auth), not the webhook signing key.
const (
	SecretAPIKey    = "api_key"
	SecretAPISecret = "api_secret"
)

// StatusAPI is the status API's path, under https://ivs.idenfy.com, and the
// event name of what it answers.
const StatusAPI = "/api/v2/status"

const defaultAPI = "https://ivs.idenfy.com"

var _ provider.Poller = Provider{}

// CheckPollSecrets requires api_key and api_secret.
func (Provider) CheckPollSecrets(secrets map[string]string) error {
	return provider.RequireSecrets(secrets, SecretAPIKey, SecretAPISecret)
}

// statusAnswer is what the status API answers, as iDenfy's data-retrieval
// page documents it; only the fields read are kept (and stored).
type statusAnswer struct {
	ScanRef        text `json:"scanRef"`
	ClientID       text `json:"clientId"`
	Status         text `json:"status"`
	FraudTags      tags `json:"fraudTags"`
	MismatchTags   tags `json:"mismatchTags"`
	AutoDocument   text `json:"autoDocument"`
	AutoFace       text `json:"autoFace"`
	ManualDocument text `json:"manualDocument"`
	ManualFace     text `json:"manualFace"`
}

// Poll asks POST /api/v2/status about the verification's scanRef. iDenfy
// forbids regular polling of this API ("may restrict your access"): callers
// poll only stuck verifications, under a strict rate limit.
//
// The answer's status is the identification's overall status: APPROVED,
// DENIED, SUSPECTED and EXPIRED (and EXPIRED-DELETED) are decisions, hence
// final; REVIEWING is review and ACTIVE (a token not used yet) pending, both
// not final. Assumed, as iDenfy does not say: a decided status in this answer
// is final (the manual review, when there is one, has ended), and DELETED
// and ARCHIVED say nothing about the result (an EUNRECOGNIZED error).
func (Provider) Poll(ctx context.Context, r provider.PollRequest) (hub.Parsed, error) {
	q, _ := json.Marshal(map[string]string{"scanRef": r.Verification.ProviderRef})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL(defaultAPI)+StatusAPI, bytes.NewReader(q))
	if err != nil {
		return hub.Parsed{}, hub.Errorf(hub.EINVALID, "status API request: %v", err)
	}
	req.SetBasicAuth(r.Secrets[SecretAPIKey], r.Secrets[SecretAPISecret])
	req.Header.Set("Content-Type", "application/json")
	raw, err := provider.Do(r.Client, req)
	if err != nil {
		return hub.Parsed{}, err
	}
	var a statusAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return hub.Parsed{}, provider.Unrecognized("status API answer: %s", describe(err))
	}
	body, _ := json.Marshal(a)
	parsed := hub.Parsed{EventName: StatusAPI, Body: body}
	overall := strings.ToUpper(strings.TrimSpace(string(a.Status)))
	status, ok := overallStatus[overall]
	if overall == "EXPIRED-DELETED" {
		status, ok = hub.StatusExpired, true
	}
	if !ok {
		return parsed, provider.Unrecognized("status API answered an unknown status %.30q", overall)
	}
	st := statusBlock{FraudTags: a.FraudTags, MismatchTags: a.MismatchTags, AutoFace: a.AutoFace,
		ManualFace: a.ManualFace, AutoDocument: a.AutoDocument, ManualDocument: a.ManualDocument}
	v := r.Verification
	parsed.Observations = []hub.Observation{{
		VerificationKey: hub.VerificationKey{ProviderRef: v.ProviderRef, Level: v.Level},
		Provider:        Name,
		Kind:            v.Kind,
		ApplicantRef:    strings.TrimSpace(string(a.ClientID)),
		Status:          status,
		Final:           status != hub.StatusReview && status != hub.StatusPending,
		Reasons:         st.reasons(),
		ProviderEvent:   StatusAPI,
	}}
	return parsed, nil
}

// answerStatus is the overall status the emulator answers for a status;
// iDenfy's status API has no canceled value, so a canceled verification
// answers EXPIRED.
var answerStatus = map[hub.Status]string{
	hub.StatusApproved: "APPROVED", hub.StatusRejected: "DENIED", hub.StatusSuspected: "SUSPECTED",
	hub.StatusExpired: "EXPIRED", hub.StatusCanceled: "EXPIRED", hub.StatusReview: "REVIEWING",
	hub.StatusActionRequired: "REVIEWING", hub.StatusPending: "ACTIVE",
}

// EmulateStatus serves POST /api/v2/status with Basic auth api_key:api_secret.
func (Provider) EmulateStatus(secrets map[string]string, lookup func(string) (hub.Observation, bool)) (string, http.Handler) {
	return "POST " + StatusAPI, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(secrets[SecretAPIKey])) != 1 ||
			subtle.ConstantTimeCompare([]byte(pass), []byte(secrets[SecretAPISecret])) != 1 {
			provider.WriteJSON(w, http.StatusUnauthorized, []byte(`{"message":"Invalid API key or secret."}`))
			return
		}
		var q struct {
			ScanRef string `json:"scanRef"`
		}
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || q.ScanRef == "" {
			provider.WriteJSON(w, http.StatusBadRequest, []byte(`{"message":"scanRef is required."}`))
			return
		}
		o, ok := lookup(q.ScanRef)
		if !ok {
			provider.WriteJSON(w, http.StatusNotFound, []byte(`{"message":"Not found."}`))
			return
		}
		doc, face := "DOC_VALIDATED", "FACE_MATCH"
		body, _ := json.Marshal(statusAnswer{
			ScanRef: text(q.ScanRef), ClientID: text(o.ApplicantRef), Status: text(answerStatus[o.Status]),
			FraudTags: tags(o.Reasons), MismatchTags: tags{}, AutoDocument: text(doc), AutoFace: text(face),
			ManualDocument: text(doc), ManualFace: text(face),
		})
		provider.WriteJSON(w, http.StatusOK, body)
	})
}

// PollLimits: iDenfy does not support regular polling and may restrict
// access, so at most one poll a minute per source, three per verification.
func (Provider) PollLimits() (time.Duration, int) { return time.Minute, 3 }
