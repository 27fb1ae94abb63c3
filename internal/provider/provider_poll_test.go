package provider_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
	"github.com/verihook/verihook/internal/provider/idenfy"
	"github.com/verihook/verihook/internal/provider/identomat"
	"github.com/verihook/verihook/internal/provider/kycaid"
)

// Each status API client decodes its provider's answers leniently, maps
// refusals to error codes, and stores only the fields it read.
func TestPollAnswers(t *testing.T) {
	t.Parallel()
	type want struct {
		status hub.Status
		final  bool
		code   string // error code, "" for none
		reason string
	}
	tests := []struct {
		name   string
		p      provider.Poller
		status int
		header map[string]string
		answer string
		want   want
	}{
		{"identomat approved", identomat.New(), 200, nil, `{"result":"approved","person":{"first_name":"JANE"}}`, want{status: hub.StatusApproved, final: true}},
		{"identomat rejected with reason", identomat.New(), 200, nil, `{"result":"REJECTED","reject_reason":{"value":"face_mismatch","description":""}}`, want{status: hub.StatusRejected, final: true, reason: "face_mismatch"}},
		{"identomat manual check spelled with a dash", identomat.New(), 200, nil, `{"result":"manual-check"}`, want{status: hub.StatusReview}},
		{"identomat numeric in progress", identomat.New(), 200, nil, `{"result":5}`, want{status: hub.StatusPending}},
		{"identomat invalid key as a bare string", identomat.New(), 200, nil, `"COMPANY_KEY_INVALID"`, want{code: hub.EUNAUTHORIZED}},
		{"identomat unknown result", identomat.New(), 200, nil, `{"result":"exploded"}`, want{code: hub.EUNRECOGNIZED}},
		{"idenfy approved with tags", idenfy.New(), 200, nil, `{"scanRef":"s","clientId":"u","status":"APPROVED","fraudTags":["DUPLICATE_FACE"],"mismatchTags":[],"autoFace":"FACE_MATCH","autoDocument":"DOC_VALIDATED"}`, want{status: hub.StatusApproved, final: true, reason: "DUPLICATE_FACE"}},
		{"idenfy reviewing", idenfy.New(), 200, nil, `{"scanRef":"s","status":"REVIEWING"}`, want{status: hub.StatusReview}},
		{"idenfy expired-deleted", idenfy.New(), 200, nil, `{"status":"EXPIRED-DELETED"}`, want{status: hub.StatusExpired, final: true}},
		{"idenfy deleted says nothing", idenfy.New(), 200, nil, `{"status":"DELETED"}`, want{code: hub.EUNRECOGNIZED}},
		{"idenfy rate limit", idenfy.New(), 429, map[string]string{"Retry-After": "30"}, `{}`, want{code: hub.EUNAVAILABLE}},
		{"idenfy bad credentials", idenfy.New(), 401, nil, `{}`, want{code: hub.EUNAUTHORIZED}},
		{"kycaid verified string", kycaid.New(), 200, nil, `{"verification_id":"v","status":"completed","verified":"true"}`, want{status: hub.StatusApproved, final: true}},
		{"kycaid pending", kycaid.New(), 200, nil, `{"verification_id":"v","status":"pending","verified":null}`, want{status: hub.StatusPending}},
		{"kycaid declined, no attempts left", kycaid.New(), 200, nil, `{"verified":false,"verification_attempts_left":0,"verifications":{"document":{"verified":false,"decline_reasons":["Expired"]}}}`, want{status: hub.StatusRejected, reason: "Expired"}},
		{"kycaid unknown reference", kycaid.New(), 404, nil, `{}`, want{code: hub.ENOTFOUND}},
		{"kycaid server error", kycaid.New(), 502, nil, `<html>`, want{code: hub.EUNAVAILABLE}},
		{"kycaid not JSON", kycaid.New(), 200, nil, `<html>`, want{code: hub.EUNRECOGNIZED}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.answer))
			}))
			defer srv.Close()
			parsed, err := tc.p.Poll(context.Background(), provider.PollRequest{Client: srv.Client(), BaseURL: srv.URL,
				Secrets:      map[string]string{"company_key": "k", "api_key": "k", "api_secret": "s", "api_token": "t"},
				Verification: hub.Verification{ProviderRef: "ref-1", Kind: hub.KindKYC}})
			if got := hub.ErrorCode(err); got != tc.want.code {
				t.Fatalf("Poll error = %v (code %q), want code %q", err, got, tc.want.code)
			}
			if tc.want.code != "" {
				return
			}
			if len(parsed.Observations) != 1 {
				t.Fatalf("%d observations, want 1", len(parsed.Observations))
			}
			o := parsed.Observations[0]
			if o.Status != tc.want.status || o.Final != tc.want.final || o.ProviderRef != "ref-1" {
				t.Errorf("observation = %s final=%v ref %q; want %s final=%v ref-1", o.Status, o.Final, o.ProviderRef, tc.want.status, tc.want.final)
			}
			if tc.want.reason != "" && (len(o.Reasons) == 0 || o.Reasons[0] != tc.want.reason) {
				t.Errorf("reasons = %v, want %s first", o.Reasons, tc.want.reason)
			}
			if string(parsed.Body) == "" || strings.Contains(string(parsed.Body), "JANE") || strings.Contains(string(parsed.Body), "person") {
				t.Errorf("stored body %s: want only the fields read", parsed.Body)
			}
		})
	}
}
