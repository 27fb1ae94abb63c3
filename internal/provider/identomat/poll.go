package identomat

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

// SecretCompanyKey names the source secret holding the company key that
// Identomat's API takes (not the callback API key).
const SecretCompanyKey = "company_key"

// ResultAPI is the result API's path, under https://widget.identomat.com,
// and the event name of what it answers.
const ResultAPI = "/external-api/result/"

const defaultAPI = "https://widget.identomat.com"

var _ provider.Poller = Provider{}

// CheckPollSecrets requires company_key.
func (Provider) CheckPollSecrets(secrets map[string]string) error {
	return provider.RequireSecrets(secrets, SecretCompanyKey)
}

// resultAnswer is the part of the result API's answer that Poll reads (and
// stores): the rest holds the applicant's personal data.
type resultAnswer struct {
	Result       json.RawMessage `json:"result"`
	RejectReason *struct {
		Value string `json:"value"`
	} `json:"reject_reason,omitempty"`
}

// pollResults maps the result API's values. Only "approved" and "rejected"
// (lower case) are seen in public samples. Assumed: the other values are the
// lower-case names of the session-change results, with "in_progress" for a
// session not finished; the numbers of a third-party client's enum
// (0 approved, 1 rejected, 2 manual check, 5 in progress) are accepted too.
// Case, dashes and spaces are ignored.
var pollResults = map[string]result{
	"APPROVED": results["APPROVED"], "0": results["APPROVED"],
	"REJECTED": results["REJECTED"], "1": results["REJECTED"],
	"MANUAL_CHECK": results["MANUAL_CHECK"], "2": results["MANUAL_CHECK"],
	"ADDITIONAL_INFORMATION_REQUESTED": results["ADDITIONAL_INFORMATION_REQUESTED"],
	"IN_PROGRESS":                      {hub.StatusPending, false}, "5": {hub.StatusPending, false},
}

// Poll asks the result API about the session: POST company_key and
// session_token as a form, as Identomat's own curl example does. An answer
// that is a bare JSON string (Identomat answers COMPANY_KEY_INVALID so) is an
// error: EUNAUTHORIZED when it names an invalid key, else EUNRECOGNIZED.
func (Provider) Poll(ctx context.Context, r provider.PollRequest) (hub.Parsed, error) {
	form := url.Values{"company_key": {r.Secrets[SecretCompanyKey]}, "session_token": {r.Verification.ProviderRef}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL(defaultAPI)+ResultAPI, strings.NewReader(form.Encode()))
	if err != nil {
		return hub.Parsed{}, hub.Errorf(hub.EINVALID, "result API request: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	raw, err := provider.Do(r.Client, req)
	if err != nil {
		return hub.Parsed{}, err
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if strings.Contains(strings.ToUpper(s), "INVALID") {
			return hub.Parsed{}, hub.Errorf(hub.EUNAUTHORIZED, "the result API refused the company key (%s)", clip(s))
		}
		return hub.Parsed{}, provider.Unrecognized("the result API answered %q", clip(s))
	}
	var a resultAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return hub.Parsed{}, provider.Unrecognized("the result API's answer is not a JSON object")
	}
	body, _ := json.Marshal(a)
	parsed := hub.Parsed{EventName: ResultAPI, Body: body}
	value := strings.Trim(string(a.Result), `"`)
	key := strings.NewReplacer("-", "_", " ", "_").Replace(strings.ToUpper(strings.TrimSpace(value)))
	res, ok := pollResults[key]
	if !ok {
		return parsed, provider.Unrecognized("the result API answered an unknown result %q", clip(value))
	}
	v := r.Verification
	o := hub.Observation{
		VerificationKey: hub.VerificationKey{ProviderRef: v.ProviderRef, Level: v.Level},
		Provider:        Name,
		Kind:            v.Kind,
		Status:          res.status,
		Final:           res.final,
		// Like session-change, the answer states the current status
		// without a timestamp: it is believed (see hub.Observation).
		Current:       true,
		ProviderEvent: ResultAPI,
	}
	if a.RejectReason != nil && strings.TrimSpace(a.RejectReason.Value) != "" {
		o.Reasons = []string{strings.TrimSpace(a.RejectReason.Value)}
	}
	parsed.Observations = []hub.Observation{o}
	return parsed, nil
}

// answerResult is the result value the emulator answers for a status.
var answerResult = map[hub.Status]string{
	hub.StatusApproved: "approved", hub.StatusRejected: "rejected", hub.StatusReview: "manual_check",
	hub.StatusActionRequired: "additional_information_requested", hub.StatusPending: "in_progress",
}

// EmulateStatus serves POST /external-api/result/ with company_key and
// session_token as a form (or query); a wrong key answers the bare string
// COMPANY_KEY_INVALID, as Identomat's API does for its other calls.
func (Provider) EmulateStatus(secrets map[string]string, lookup func(string) (hub.Observation, bool)) (string, http.Handler) {
	return "POST " + ResultAPI, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.FormValue("company_key")), []byte(secrets[SecretCompanyKey])) != 1 {
			provider.WriteJSON(w, http.StatusOK, []byte(`"COMPANY_KEY_INVALID"`))
			return
		}
		o, ok := lookup(r.FormValue("session_token"))
		if !ok {
			provider.WriteJSON(w, http.StatusNotFound, []byte(`"SESSION_NOT_FOUND"`))
			return
		}
		reason := ""
		if len(o.Reasons) > 0 {
			reason = o.Reasons[0]
		}
		body, _ := json.Marshal(map[string]any{
			"result": answerResult[o.Status], "similarity": 0.93, "live": true, "document_type": "id",
			"reject_reason":  map[string]string{"value": reason, "description": ""},
			"result_comment": "", "face_images": 1, "generalDocuments": []any{},
			"person": map[string]any{"first_name": "SPECIMEN", "last_name": "SPECIMEN", "age": 40},
		})
		provider.WriteJSON(w, http.StatusOK, body)
	})
}

// PollLimits: Identomat names the result API for state recovery and states
// no limit; one poll a second per source, ten per verification.
func (Provider) PollLimits() (time.Duration, int) { return time.Second, 10 }
