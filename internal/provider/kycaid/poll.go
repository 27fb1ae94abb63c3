package kycaid

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// VerificationAPI is the event name of what GET /verifications/{id} answers.
const VerificationAPI = "GET /verifications"

const defaultAPI = "https://api.kycaid.com"

var _ provider.Poller = Provider{}

// CheckPollSecrets requires api_token, the same token that signs callbacks.
func (Provider) CheckPollSecrets(secrets map[string]string) error {
	return provider.RequireSecrets(secrets, SecretAPIToken)
}

// verificationAnswer is the part of GET /verifications/{id}'s answer that
// Poll reads (and stores). KYCAID does not document the answer; assumed, from
// its Ruby client and the VERIFICATION_COMPLETED callback, that it carries
// the callback's fields: verification_id, status (unused, pending,
// completed), verified (true, false or null, also as a string),
// verifications.<part>.decline_reasons and verification_attempts_left.
type verificationAnswer struct {
	VerificationID string         `json:"verification_id,omitempty"`
	Status         string         `json:"status,omitempty"`
	Verified       any            `json:"verified"`
	Verifications  map[string]any `json:"verifications,omitempty"`
	AttemptsLeft   any            `json:"verification_attempts_left,omitempty"`
}

// Poll asks GET /verifications/{id} with "Authorization: Token <api_token>".
// A verified true or false is decided, as VERIFICATION_COMPLETED (a rejection
// is final only when no attempt is left); a verified null is pending,
// whatever status says.
func (Provider) Poll(ctx context.Context, r provider.PollRequest) (hub.Parsed, error) {
	v := r.Verification
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		r.URL(defaultAPI)+"/verifications/"+url.PathEscape(v.ProviderRef), nil)
	if err != nil {
		return hub.Parsed{}, hub.Errorf(hub.EINVALID, "verification API request: %v", err)
	}
	req.Header.Set("Authorization", "Token "+r.Secrets[SecretAPIToken])
	raw, err := provider.Do(r.Client, req)
	if err != nil {
		return hub.Parsed{}, err
	}
	var a verificationAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return hub.Parsed{}, provider.Unrecognized("the verification API's answer is not a JSON object")
	}
	body, _ := json.Marshal(a)
	parsed := hub.Parsed{EventName: VerificationAPI, Body: body}
	ans, _ := hub.ReadJSON(body, hub.NumbersAsFloat64) // just encoded: read as a callback is
	verified, ok := verifiedOf(ans.Field("verified"))
	if !ok {
		return parsed, provider.Unrecognized("the verification API answered verified %s", jsonExcerpt(ans.Field("verified")))
	}
	o := hub.Observation{
		VerificationKey: hub.VerificationKey{ProviderRef: v.ProviderRef, Level: v.Level},
		Provider:        Name,
		Kind:            v.Kind,
		Reasons:         reasons(ans, hub.JSON{}),
		AttemptsLeft:    attemptsLeft(ans.Field("verification_attempts_left")),
		ProviderEvent:   VerificationAPI,
	}
	switch {
	case verified == nil:
		o.Status = hub.StatusPending
	case *verified:
		o.Status, o.Final = hub.StatusApproved, true
	default:
		// As VERIFICATION_COMPLETED: final only once no attempt is left.
		o.Status, o.FinalIfNoAttempts = hub.StatusRejected, true
	}
	parsed.Observations = []hub.Observation{o}
	return parsed, nil
}

// EmulateStatus serves GET /verifications/{id} with "Authorization: Token
// <api_token>".
func (Provider) EmulateStatus(secrets map[string]string, lookup func(string) (hub.Observation, bool)) (string, http.Handler) {
	return "GET /verifications/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Token ")
		if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(secrets[SecretAPIToken])) != 1 {
			provider.WriteJSON(w, http.StatusUnauthorized, []byte(`{"type":"unauthorized","errors":[{"message":"Unauthorized"}]}`))
			return
		}
		id := r.PathValue("id")
		o, ok := lookup(id)
		if !ok {
			provider.WriteJSON(w, http.StatusNotFound, []byte(`{"type":"not_found","errors":[{"message":"Not found"}]}`))
			return
		}
		a := verificationAnswer{VerificationID: id, Status: "pending", AttemptsLeft: o.AttemptsLeft}
		if o.Status == hub.StatusApproved || o.Status == hub.StatusRejected {
			a.Status, a.Verified = "completed", o.Status == hub.StatusApproved
			a.Verifications = map[string]any{"document": map[string]any{
				"verified": a.Verified, "comment": "", "decline_reasons": append([]string{}, o.Reasons...)}}
		}
		body, _ := json.Marshal(a)
		provider.WriteJSON(w, http.StatusOK, body)
	})
}

// PollLimits: KYCAID states no limit for its API; one poll a second per
// source, ten per verification.
func (Provider) PollLimits() (time.Duration, int) { return time.Second, 10 }
