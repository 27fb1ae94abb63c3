package kycaid_test

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
	"github.com/verihook/verihook/internal/provider/kycaid"
	"github.com/verihook/verihook/internal/provider/providertest"
)

// KYCAID's official x-data-integrity test vector
// (https://docs.kycaid.com/callbacks/callback-integrity-verification).
const (
	vectorBody   = `{"request_id":"61a7dbcc012d9042e909cf006e7b412d6ba5","type":"VERIFICATION_STATUS_CHANGED","applicant_id":"4141cc1b18dba048470b2961cb4592f480fe","verification_id":"2cf795e713be1040e50b202164ee17bfdfbe","form_id":"58bed87600dd9944f02ba0c9cd8b32d6bd4c","verification_status":"pending"}`
	vectorKey    = "28c6f7cc0345a04eee0b535039b1c5a62547"
	vectorHeader = "f7681b097b77928fc031d614709976796057c306cf77fdd449bb414937bd87678d908d7efaa65e9b1dd65b9eeea2121ea75bd9007f44fe8fcd7c9ac6cdeeef0e"
)

// secrets is the package's test source: the official vector's key, so that
// the golden official vector verifies alongside the cases the harness signs.
var secrets = map[string]string{kycaid.SecretAPIToken: vectorKey}

func header(v string) http.Header {
	h := http.Header{}
	h.Set("x-data-integrity", v)
	return h
}

func TestName(t *testing.T) {
	t.Parallel()
	if got := kycaid.New().Name(); got != "kycaid" {
		t.Errorf("Name() = %q, want kycaid", got)
	}
}

func TestOfficialVector(t *testing.T) {
	t.Parallel()
	p := kycaid.New()
	h := http.Header{}
	body, err := p.Sign(secrets, h, []byte(vectorBody))
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != vectorBody {
		t.Errorf("Sign changed the body: %s", body)
	}
	if got := h.Get("x-data-integrity"); got != vectorHeader {
		t.Errorf("x-data-integrity = %s, want %s", got, vectorHeader)
	}
	if err := p.Verify(secrets, header(vectorHeader), []byte(vectorBody)); err != nil {
		t.Errorf("Verify(official vector) = %v", err)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		secrets map[string]string
		h       http.Header
		body    string
		wantErr string // substring of the message; "" for success
	}{
		{name: "official vector", secrets: secrets, h: header(vectorHeader), body: vectorBody},
		{name: "uppercase hex", secrets: secrets, h: header(strings.ToUpper(vectorHeader)), body: vectorBody},
		{name: "surrounding space", secrets: secrets, h: header(" " + vectorHeader + " "), body: vectorBody},
		{name: "missing header", secrets: secrets, h: http.Header{}, body: vectorBody, wantErr: "missing x-data-integrity header"},
		{name: "empty header", secrets: secrets, h: header(""), body: vectorBody, wantErr: "missing x-data-integrity header"},
		{name: "no api token", secrets: map[string]string{}, h: header(vectorHeader), body: vectorBody, wantErr: "no api_token secret"},
		{name: "wrong key", secrets: map[string]string{"api_token": "other"}, h: header(vectorHeader), body: vectorBody, wantErr: "signature mismatch"},
		{name: "tampered body", secrets: secrets, h: header(vectorHeader), body: strings.Replace(vectorBody, "pending", "unused", 1), wantErr: "signature mismatch"},
		{name: "trailing newline", secrets: secrets, h: header(vectorHeader), body: vectorBody + "\n", wantErr: "signature mismatch"},
		{name: "truncated", secrets: secrets, h: header(vectorHeader[:64]), body: vectorBody, wantErr: "signature mismatch"},
		{name: "not hex", secrets: secrets, h: header("sha512=" + vectorHeader), body: vectorBody, wantErr: "not hex"},
		{name: "hmac of raw body, not base64", secrets: secrets, h: header(rawBodyMAC()), body: vectorBody, wantErr: "signature mismatch"},
	}
	p := kycaid.New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := p.Verify(tt.secrets, tt.h, []byte(tt.body))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			if hub.ErrorCode(err) != hub.EUNAUTHORIZED || !strings.Contains(hub.ErrorMessage(err), tt.wantErr) {
				t.Fatalf("Verify = %v, want unauthorized containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), vectorKey) {
				t.Errorf("error %q holds the secret", err)
			}
		})
	}
}

// rawBodyMAC is the header a careless implementation would send: the
// HMAC-SHA512 of the raw body instead of its base64.
func rawBodyMAC() string {
	return hex.EncodeToString(provider.HMAC(sha512.New, []byte(vectorKey), []byte(vectorBody)))
}

func TestParse(t *testing.T) {
	t.Parallel()
	intp := func(i int) *int { return &i }
	const sc = `"type":"VERIFICATION_STATUS_CHANGED","verification_id":"v1","request_id":"r1"`
	const vc = `"type":"VERIFICATION_COMPLETED","verification_id":"v1","request_id":"r1"`
	tests := []struct {
		name    string
		body    string
		want    hub.Observation // ProviderRef v1, Provider and ProviderEvent are filled in below
		wantErr string          // substring of an unrecognized error's message
	}{
		{name: "status changed unused", body: `{` + sc + `,"verification_status":"unused"}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusPending}},
		{name: "status changed pending", body: `{` + sc + `,"verification_status":"pending"}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusPending}},
		{name: "status changed completed is still pending", body: `{` + sc + `,"verification_status":"completed"}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusPending}},
		{name: "status changed unknown status", body: `{` + sc + `,"verification_status":"approved"}`,
			wantErr: `unknown verification_status "approved"`},
		{name: "status changed no status", body: `{` + sc + `}`,
			wantErr: "unknown verification_status"},
		{name: "status changed status case is exact", body: `{` + sc + `,"verification_status":"PENDING"}`,
			wantErr: "unknown verification_status"},

		{name: "completed true", body: `{` + vc + `,"verified":true}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusApproved, Final: true}},
		{name: "completed false", body: `{` + vc + `,"verified":false}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusRejected, FinalIfNoAttempts: true}},
		{name: "completed null", body: `{` + vc + `,"verified":null}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusPending}},
		{name: "completed absent", body: `{` + vc + `}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusPending}},
		{name: "completed string true", body: `{` + vc + `,"verified":"true"}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusApproved, Final: true}},
		{name: "completed string FALSE", body: `{` + vc + `,"verified":"FALSE"}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusRejected, FinalIfNoAttempts: true}},
		{name: "completed maybe", body: `{` + vc + `,"verified":"maybe"}`, wantErr: `verified "maybe"`},
		{name: "completed empty string", body: `{` + vc + `,"verified":""}`, wantErr: "verified"},
		{name: "completed number", body: `{` + vc + `,"verified":1}`, wantErr: "verified 1"},
		{name: "completed object", body: `{` + vc + `,"verified":{}}`, wantErr: "verified {}"},
		{name: "completed long value shortened", body: `{` + vc + `,"verified":"` + strings.Repeat("x", 500) + `"}`,
			wantErr: `verified "` + strings.Repeat("x", 63) + `: want`},

		{name: "company is kyb", body: `{` + vc + `,"verified":true,"applicant":{"type":"COMPANY"}}`,
			want: hub.Observation{Kind: hub.KindKYB, Status: hub.StatusApproved, Final: true}},
		{name: "person is kyc", body: `{` + vc + `,"verified":true,"applicant":{"type":"PERSON"}}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusApproved, Final: true}},
		{name: "applicant not an object", body: `{` + vc + `,"verified":true,"applicant":"COMPANY"}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusApproved, Final: true}},

		{name: "top-level external id", body: `{` + sc + `,"verification_status":"pending","external_applicant_id":"u1","applicant":{"external_applicant_id":"u2"}}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusPending, ApplicantRef: "u1"}},
		{name: "empty top-level external id falls back", body: `{` + vc + `,"external_applicant_id":"","applicant":{"external_applicant_id":"u2"}}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusPending, ApplicantRef: "u2"}},
		{name: "null external ids", body: `{` + vc + `,"external_applicant_id":null,"applicant":{"external_applicant_id":null}}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusPending}},
		{name: "numeric external id ignored", body: `{` + vc + `,"external_applicant_id":42}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusPending}},

		{name: "attempts left", body: `{` + sc + `,"verification_status":"pending","verification_attempts_left":3}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusPending, AttemptsLeft: intp(3)}},
		{name: "attempts left zero", body: `{` + sc + `,"verification_status":"pending","verification_attempts_left":0}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusPending, AttemptsLeft: intp(0)}},
		{name: "attempts left string", body: `{` + sc + `,"verification_status":"pending","verification_attempts_left":"4"}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusPending, AttemptsLeft: intp(4)}},
		{name: "attempts left junk string ignored", body: `{` + sc + `,"verification_status":"pending","verification_attempts_left":"many"}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusPending}},
		{name: "attempts left null is unlimited", body: `{` + sc + `,"verification_status":"pending","verification_attempts_left":null}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusPending}},
		{name: "attempts left negative ignored", body: `{` + sc + `,"verification_status":"pending","verification_attempts_left":-1}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusPending}},
		{name: "attempts left fraction ignored", body: `{` + sc + `,"verification_status":"pending","verification_attempts_left":1.5}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusPending}},
		{name: "attempts left huge ignored", body: `{` + sc + `,"verification_status":"pending","verification_attempts_left":1e300}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusPending}},

		{name: "reasons in part-name order then applicant, deduplicated",
			body: `{` + vc + `,"verified":false,"verifications":{"profile":{"decline_reasons":["b","a"]},"document":{"decline_reasons":["c","b"]},"aml":{"decline_reasons":["z"]}},"applicant":{"decline_reasons":["a","d"]}}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusRejected, FinalIfNoAttempts: true, Reasons: []string{"z", "c", "b", "a", "d"}}},
		{name: "reasons kept as sent, blanks dropped",
			body: `{` + vc + `,"verified":false,"verifications":{"document":{"decline_reasons":[" Expired document ","","  ",null]}}}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusRejected, FinalIfNoAttempts: true, Reasons: []string{" Expired document "}}},
		{name: "reason objects",
			body: `{` + vc + `,"verified":false,"verifications":{"document":{"decline_reasons":[{"id":3,"name":"Blurred"},{"code":"EXPIRED","name":""},{"title":"Glare"},{"id":9},7]}}}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusRejected, FinalIfNoAttempts: true, Reasons: []string{"Blurred", "EXPIRED", "Glare", `{"id":9}`, "7"}}},
		{name: "lone reason string",
			body: `{` + vc + `,"verified":false,"verifications":{"document":{"decline_reasons":"Expired"}}}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusRejected, FinalIfNoAttempts: true, Reasons: []string{"Expired"}}},
		{name: "malformed verifications ignored",
			body: `{` + vc + `,"verified":true,"verifications":[{"decline_reasons":["x"]}],"applicant":{"decline_reasons":null}}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusApproved, Final: true}},
		{name: "part not an object ignored",
			body: `{` + vc + `,"verified":true,"verifications":{"document":true}}`,
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusApproved, Final: true}},

		{name: "no verification id", body: `{"type":"VERIFICATION_COMPLETED","verified":true}`, wantErr: "without a verification_id"},
		{name: "null verification id", body: `{"type":"VERIFICATION_COMPLETED","verification_id":null}`, wantErr: "without a verification_id"},
		{name: "empty verification id", body: `{"type":"VERIFICATION_STATUS_CHANGED","verification_id":"","verification_status":"pending"}`, wantErr: "without a verification_id"},
		{name: "numeric verification id", body: `{"type":"VERIFICATION_STATUS_CHANGED","verification_id":12,"verification_status":"pending"}`, wantErr: "without a verification_id"},
		{name: "unknown type", body: `{"type":"APPLICANT_CREATED","verification_id":"v1"}`, wantErr: `unknown type "APPLICANT_CREATED"`},
		{name: "type in another case", body: `{"type":"verification_completed","verification_id":"v1"}`, wantErr: "unknown type"},
		{name: "no type", body: `{"verification_id":"v1"}`, wantErr: "type is missing"},
		{name: "numeric type", body: `{"type":1,"verification_id":"v1"}`, wantErr: "type is missing"},
		{name: "array", body: `[]`, wantErr: "not a JSON object"},
		{name: "null", body: `null`, wantErr: "not a JSON object"},
		{name: "not json", body: `type=VERIFICATION_COMPLETED`, wantErr: "not valid JSON"},
		{name: "trailing garbage", body: `{"type":"VERIFICATION_COMPLETED"}x`, wantErr: "not valid JSON"},
	}
	p := kycaid.New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			parsed, err := p.Parse(http.Header{}, []byte(tt.body))
			if !bytes.Equal(parsed.Body, []byte(tt.body)) {
				t.Errorf("Body = %s, want the raw body", parsed.Body)
			}
			if parsed.DedupKey == "" {
				t.Error("DedupKey is empty")
			}
			if tt.wantErr != "" {
				if hub.ErrorCode(err) != hub.EUNRECOGNIZED || !strings.Contains(hub.ErrorMessage(err), tt.wantErr) {
					t.Fatalf("Parse = %v, want unrecognized containing %q", err, tt.wantErr)
				}
				if len(parsed.Observations) != 0 {
					t.Errorf("Observations = %+v, want none", parsed.Observations)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			if len(parsed.Observations) != 1 || len(parsed.Events) != 0 {
				t.Fatalf("parsed %d observations and %d events, want 1 and 0", len(parsed.Observations), len(parsed.Events))
			}
			want := tt.want
			want.ProviderRef, want.Provider = "v1", kycaid.Name
			var m struct{ Type string }
			_ = json.Unmarshal([]byte(tt.body), &m)
			want.ProviderEvent = m.Type
			if got := parsed.Observations[0]; !equalObs(got, want) {
				t.Errorf("observation\n got: %s\nwant: %s", render(got), render(want))
			}
			if parsed.EventName != m.Type || parsed.DedupKey != "request_id:r1" {
				t.Errorf("EventName, DedupKey = %q, %q; want %q, request_id:r1", parsed.EventName, parsed.DedupKey, m.Type)
			}
		})
	}
}

func equalObs(a, b hub.Observation) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb) && a.Provider == b.Provider
}

func render(o hub.Observation) string {
	b, _ := json.Marshal(o)
	return string(b)
}

func TestDedupKey(t *testing.T) {
	t.Parallel()
	p := kycaid.New()
	key := func(body string) string {
		t.Helper()
		parsed, _ := p.Parse(http.Header{}, []byte(body))
		return parsed.DedupKey
	}
	a := key(`{"type":"VERIFICATION_STATUS_CHANGED","verification_id":"v1","verification_status":"pending"}`)
	b := key("{\n  \"verification_status\": \"pending\",\n  \"verification_id\": \"v1\",\n  \"type\": \"VERIFICATION_STATUS_CHANGED\"\n}")
	c := key(`{"type":"VERIFICATION_STATUS_CHANGED","verification_id":"v2","verification_status":"pending"}`)
	if !strings.HasPrefix(a, "sha256:") || a != b {
		t.Errorf("without request_id: keys %q and %q, want one sha256 key for both key orders", a, b)
	}
	if c == a {
		t.Errorf("another verification has the same key %q", c)
	}
	if got := key(`{"request_id":"r9","type":"X"}`); got != "request_id:r9" {
		t.Errorf("unknown type: DedupKey = %q, want request_id:r9", got)
	}
	if got := key(`{"request_id":"","type":"VERIFICATION_COMPLETED"}`); !strings.HasPrefix(got, "sha256:") {
		t.Errorf("empty request_id: DedupKey = %q, want a hash", got)
	}
	if got := key(`{"request_id":7,"type":"VERIFICATION_COMPLETED"}`); !strings.HasPrefix(got, "sha256:") {
		t.Errorf("numeric request_id: DedupKey = %q, want a hash", got)
	}
	if got := key(`not json`); got != hub.RawHash([]byte("not json")) {
		t.Errorf("not JSON: DedupKey = %q, want the raw hash", got)
	}
}

func TestCheckSecrets(t *testing.T) {
	t.Parallel()
	p := kycaid.New()
	if err := p.CheckSecrets(secrets); err != nil {
		t.Errorf("CheckSecrets(api_token) = %v", err)
	}
	for _, s := range []map[string]string{nil, {}, {"api_token": ""}, {"signing_key": "x"}} {
		if err := p.CheckSecrets(s); hub.ErrorCode(err) != hub.EINVALID || !strings.Contains(err.Error(), "api_token") {
			t.Errorf("CheckSecrets(%v) = %v, want invalid naming api_token", s, err)
		}
	}
	if _, err := p.Sign(map[string]string{}, http.Header{}, []byte(`{}`)); hub.ErrorCode(err) != hub.EINVALID {
		t.Errorf("Sign(no secrets) = %v, want invalid", err)
	}
	if _, err := p.Sign(secrets, nil, []byte(`{}`)); hub.ErrorCode(err) != hub.EINVALID {
		t.Errorf("Sign(nil header) = %v, want invalid", err)
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	providertest.RoundTrip(t, kycaid.New(), secrets, map[string]string{kycaid.SecretAPIToken: "wrong-token"})
}

func TestGolden(t *testing.T) {
	t.Parallel()
	providertest.Golden(t, kycaid.New(), secrets, "testdata")
}

var hexID36 = regexp.MustCompile(`^[0-9a-f]{36}$`)

func TestBuild(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		event  string
		f      provider.Fields
		want   hub.Observation // ProviderEvent is filled in below
		wantVS string          // VERIFICATION_STATUS_CHANGED's verification_status
	}{
		{name: "status changed defaults", event: "VERIFICATION_STATUS_CHANGED",
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusPending}, wantVS: "pending"},
		{name: "status changed unused, lowercase event", event: "verification_status_changed",
			f:    provider.Fields{Ref: "ref", ApplicantRef: "user-1", Status: "UNUSED"},
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusPending, ApplicantRef: "user-1"}, wantVS: "unused"},
		{name: "status changed completed", event: "VERIFICATION_STATUS_CHANGED", f: provider.Fields{Status: "completed"},
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusPending}, wantVS: "completed"},
		{name: "completed defaults to verified true", event: "VERIFICATION_COMPLETED",
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusApproved, Final: true}},
		{name: "completed approved alias", event: "VERIFICATION_COMPLETED", f: provider.Fields{Status: "Approved", ApplicantRef: "user-2"},
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusApproved, Final: true, ApplicantRef: "user-2"}},
		{name: "completed false gets a default reason", event: "VERIFICATION_COMPLETED", f: provider.Fields{Status: "false"},
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusRejected, FinalIfNoAttempts: true, Reasons: []string{"The document has expired"}}},
		{name: "completed declined with reasons", event: "VERIFICATION_COMPLETED",
			f:    provider.Fields{Status: "declined", Reasons: []string{"Selfie does not match", "Blurred photo"}},
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusRejected, FinalIfNoAttempts: true, Reasons: []string{"Selfie does not match", "Blurred photo"}}},
		{name: "completed null", event: "VERIFICATION_COMPLETED", f: provider.Fields{Status: "null"},
			want: hub.Observation{Kind: hub.KindKYC, Status: hub.StatusPending}},
		{name: "completed company", event: "VERIFICATION_COMPLETED", f: provider.Fields{Kind: hub.KindKYB, ApplicantRef: "acme"},
			want: hub.Observation{Kind: hub.KindKYB, Status: hub.StatusApproved, Final: true, ApplicantRef: "acme"}},
	}
	p := kycaid.New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body, h := providertest.Signed(t, p, secrets, tt.event, tt.f)
			if h.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type = %q", h.Get("Content-Type"))
			}
			again, _ := providertest.Built(t, p, tt.event, tt.f)
			if !bytes.Equal(body, again) {
				t.Errorf("Build is not deterministic:\n%s\n%s", body, again)
			}
			if err := p.Verify(secrets, h, body); err != nil {
				t.Fatalf("Verify = %v", err)
			}
			parsed, err := p.Parse(h, body)
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"request_id", "verification_id", "applicant_id", "form_id", "form_token"} {
				if s, _ := m[k].(string); !hexID36.MatchString(s) && !(k == "verification_id" && s == tt.f.Ref) {
					t.Errorf("%s = %v, want a 36-character lowercase hex id", k, m[k])
				}
			}
			if tt.wantVS != "" && m["verification_status"] != tt.wantVS {
				t.Errorf("verification_status = %v, want %s", m["verification_status"], tt.wantVS)
			}
			if tt.f.Ref != "" && m["verification_id"] != tt.f.Ref {
				t.Errorf("verification_id = %v, want %s", m["verification_id"], tt.f.Ref)
			}
			want := tt.want
			want.Provider = kycaid.Name
			want.ProviderRef = m["verification_id"].(string)
			want.FormerRef = kycaid.ApplicantRefPrefix + m["applicant_id"].(string)
			want.ProviderEvent = strings.ToUpper(tt.event)
			if len(parsed.Observations) != 1 || !equalObs(parsed.Observations[0], want) {
				t.Errorf("observations %+v, want %s", parsed.Observations, render(want))
			}
			if parsed.EventName != strings.ToUpper(tt.event) {
				t.Errorf("EventName = %q", parsed.EventName)
			}
		})
	}
}

func TestBuildFields(t *testing.T) {
	t.Parallel()
	p := kycaid.New()
	body, _, err := p.Build("VERIFICATION_COMPLETED", provider.Fields{Ref: "v-1", EventID: "evt-1"})
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := p.Parse(nil, body)
	if err != nil || parsed.DedupKey != "request_id:evt-1" {
		t.Errorf("EventID: DedupKey = %q (err %v), want request_id:evt-1", parsed.DedupKey, err)
	}

	// The default request_id differs by status, so that a status change of
	// the same verification is not taken for a duplicate.
	keys := map[string]string{}
	for _, s := range []string{"true", "false", "null"} {
		body, _, err := p.Build("VERIFICATION_COMPLETED", provider.Fields{Ref: "v-1", Status: s})
		if err != nil {
			t.Fatal(err)
		}
		parsed, _ := p.Parse(nil, body)
		if prev, ok := keys[parsed.DedupKey]; ok {
			t.Errorf("statuses %s and %s share dedup key %s", prev, s, parsed.DedupKey)
		}
		keys[parsed.DedupKey] = s
	}

	// One verification, as both events describe it, names the same applicant.
	sc, _, _ := p.Build("VERIFICATION_STATUS_CHANGED", provider.Fields{Ref: "v-1"})
	vc, _, _ := p.Build("VERIFICATION_COMPLETED", provider.Fields{Ref: "v-1"})
	var a, b struct{ ApplicantID, FormToken string }
	_ = json.Unmarshal(sc, &a)
	_ = json.Unmarshal(vc, &b)
	if a != b {
		t.Errorf("the two events disagree on applicant and form: %+v, %+v", a, b)
	}
	// Different verification_ids by default: derived from ApplicantRef.
	d1, _, _ := p.Build("VERIFICATION_STATUS_CHANGED", provider.Fields{ApplicantRef: "u1"})
	d2, _, _ := p.Build("VERIFICATION_STATUS_CHANGED", provider.Fields{ApplicantRef: "u2"})
	p1, _ := p.Parse(nil, d1)
	p2, _ := p.Parse(nil, d2)
	if p1.Observations[0].ProviderRef == p2.Observations[0].ProviderRef {
		t.Error("two applicants got the same default verification_id")
	}
}

func TestBuildInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, event string
		f           provider.Fields
	}{
		{"unknown event", "APPLICANT_CREATED", provider.Fields{}},
		{"status changed approved", "VERIFICATION_STATUS_CHANGED", provider.Fields{Status: "approved"}},
		{"completed maybe", "VERIFICATION_COMPLETED", provider.Fields{Status: "maybe"}},
		{"completed pending", "VERIFICATION_COMPLETED", provider.Fields{Status: "pending"}},
	}
	p := kycaid.New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, _, err := p.Build(tt.event, tt.f); hub.ErrorCode(err) != hub.EINVALID {
				t.Errorf("Build = %v, want invalid", err)
			}
		})
	}
}

func TestEvents(t *testing.T) {
	t.Parallel()
	want := []string{"VERIFICATION_STATUS_CHANGED", "VERIFICATION_COMPLETED"}
	if got := kycaid.New().Events(); !slices.Equal(got, want) {
		t.Errorf("Events() = %v, want %v", got, want)
	}
}

func FuzzVerifyParse(f *testing.F) {
	providertest.Fuzz(f, kycaid.New(), secrets)
}

func BenchmarkVerifyParse(b *testing.B) {
	p := kycaid.New()
	body, h := providertest.Signed(b, p, secrets, "VERIFICATION_COMPLETED", provider.Fields{Ref: "bench", Status: "false"})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Verify(secrets, h, body); err != nil {
			b.Fatal(err)
		}
		if _, err := p.Parse(h, body); err != nil {
			b.Fatal(err)
		}
	}
}

func TestParseRefs(t *testing.T) {
	t.Parallel()
	const sc = `"type":"VERIFICATION_STATUS_CHANGED","verification_status":"unused","request_id":"r1"`
	tests := []struct {
		name, body      string
		wantRef, former string
	}{
		{"verification and applicant", `{` + sc + `,"verification_id":"v1","applicant_id":"a1"}`, "v1", "applicant:a1"},
		{"applicant inside", `{"type":"VERIFICATION_COMPLETED","verified":true,"verification_id":"v1","applicant":{"applicant_id":"a2"}}`,
			"v1", "applicant:a2"},
		{"verification alone", `{` + sc + `,"verification_id":"v1"}`, "v1", ""},
		{"verification_id null: the applicant", `{` + sc + `,"verification_id":null,"applicant_id":"a1"}`, "applicant:a1", ""},
		{"verification_id absent", `{` + sc + `,"applicant_id":"a1"}`, "applicant:a1", ""},
		{"verification_id blank", `{` + sc + `,"verification_id":" ","applicant_id":"a1"}`, "applicant:a1", ""},
	}
	for _, tt := range tests {
		parsed, err := kycaid.New().Parse(http.Header{}, []byte(tt.body))
		if err != nil || len(parsed.Observations) != 1 {
			t.Errorf("%s: Parse = %v with %d observations", tt.name, err, len(parsed.Observations))
			continue
		}
		if o := parsed.Observations[0]; o.ProviderRef != tt.wantRef || o.FormerRef != tt.former {
			t.Errorf("%s: ProviderRef %q, FormerRef %q; want %q, %q", tt.name, o.ProviderRef, o.FormerRef, tt.wantRef, tt.former)
		}
	}
}

func TestBuildNullVerificationAndAttempts(t *testing.T) {
	t.Parallel()
	p := kycaid.New()
	left := 2
	null, _, err := p.Build("VERIFICATION_STATUS_CHANGED", provider.Fields{Ref: "null", ApplicantRef: "u1", AttemptsLeft: &left})
	if err != nil {
		t.Fatal(err)
	}
	named, _, _ := p.Build("VERIFICATION_COMPLETED", provider.Fields{Ref: "v1", ApplicantRef: "u1"})
	var a, b struct {
		VerificationID *string `json:"verification_id"`
		ApplicantID    string  `json:"applicant_id"`
		Attempts       *int    `json:"verification_attempts_left"`
	}
	_ = json.Unmarshal(null, &a)
	_ = json.Unmarshal(named, &b)
	if a.VerificationID != nil || a.Attempts == nil || *a.Attempts != 2 || a.ApplicantID != b.ApplicantID {
		t.Errorf("built %s and %s: want verification_id null, attempts 2, one applicant_id", null, named)
	}
	pa, _ := p.Parse(nil, null)
	pb, _ := p.Parse(nil, named)
	if pa.Observations[0].ProviderRef != pb.Observations[0].FormerRef {
		t.Errorf("the named verification's FormerRef %q is not the unnamed one's ref %q",
			pb.Observations[0].FormerRef, pa.Observations[0].ProviderRef)
	}
}
