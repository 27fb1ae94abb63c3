package fractal

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
	"github.com/verihook/verihook/internal/provider/providertest"
)

// The official vector of Fractal's "Delivery" page.
const (
	officialSecret = "9d7e80c0f169ab94d34392d64617b7517fb07c40"
	officialBody   = `{"type":"verification_approved","data":{"level":"basic","user_id":"b5c5a2cd-643e-444b-9591-e7b25fec997d","timestamp":"2020-10-09T10:50:32Z"}}`
	officialHeader = "sha1=9e581dd775e5ba87e9839b595d6eb0d784ecfdb6"
)

// secrets is the package's test source: the official secret for every type.
var secrets = map[string]string{"webhook_secret": officialSecret}

func TestOfficialVectors(t *testing.T) {
	t.Parallel()
	// securing-webhooks.md: a bare HMAC, not a JSON body.
	if got := hex.EncodeToString(provider.HMAC(sha1.New, []byte("SUP3RS3CR3T"), []byte("my-payload"))); got != "6a89633e5f131bfb5f0b5826b33b3bab4bf52068" {
		t.Errorf("HMAC-SHA1(SUP3RS3CR3T, my-payload) = %s", got)
	}
	// delivery.md: verified as received …
	h := http.Header{}
	h.Set("X-Fractal-Signature", officialHeader)
	if err := New().Verify(secrets, h, []byte(officialBody)); err != nil {
		t.Errorf("Verify(official vector) = %v", err)
	}
	// … and built and signed byte for byte by the simulator.
	body, h, err := New().Build("verification_approved", provider.Fields{
		Ref:  "b5c5a2cd-643e-444b-9591-e7b25fec997d",
		Time: time.Date(2020, 10, 9, 10, 50, 32, 0, time.UTC),
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != officialBody {
		t.Errorf("Build = %s\nwant    %s", body, officialBody)
	}
	if _, err := New().Sign(secrets, h, body); err != nil {
		t.Fatal(err)
	}
	if got := h.Get("X-Fractal-Signature"); got != officialHeader {
		t.Errorf("Sign: X-Fractal-Signature = %q, want %q", got, officialHeader)
	}
}

// sign returns a legacy header for body under secret.
func sign(secret, body string) http.Header {
	h := http.Header{}
	h.Set("X-Fractal-Signature", "sha1="+hex.EncodeToString(provider.HMAC(sha1.New, []byte(secret), []byte(body))))
	return h
}

func TestVerify(t *testing.T) {
	t.Parallel()
	approved := officialBody
	rejected := strings.Replace(officialBody, "verification_approved", "verification_rejected", 1)
	revoked := `{"type":"application_access_revoked","data":{"user_id":"b5c5a2cd-643e-444b-9591-e7b25fec997d"}}`
	kraken := `{"id":"b5c5a2cd-643e-444b-9591-e7b25fec997d","status":"rejected","note":"Document expired"}`
	krakenHeader := func(secret, body string) http.Header {
		h := http.Header{}
		h.Set("X-Fractal-Signature", hex.EncodeToString(provider.HMAC(sha256.New, []byte(secret), []byte(body))))
		return h
	}
	header := func(v string) http.Header {
		h := http.Header{}
		h.Set("X-Fractal-Signature", v)
		return h
	}
	approvedOnly := map[string]string{"webhook_secrets.verification_approved": "approved-secret"}
	both := map[string]string{
		"webhook_secret":                        "general-secret",
		"webhook_secrets.verification_approved": "approved-secret",
	}
	perType := map[string]string{
		"webhook_secrets.verification_approved": "approved-secret",
		"webhook_secrets.verification_rejected": "rejected-secret",
		"webhook_secrets.kraken":                "kraken-secret",
	}
	tests := []struct {
		name    string
		secrets map[string]string
		h       http.Header
		body    string
		want    string // "" for success, else the reason
	}{
		{"official vector", secrets, header(officialHeader), officialBody, ""},
		{"upper-case hex and prefix", secrets, header(strings.ToUpper(officialHeader)), officialBody, ""},
		{"surrounding space", secrets, header("  " + officialHeader + " "), officialBody, ""},
		{"one byte added", secrets, header(officialHeader), officialBody + " ", "signature mismatch"},
		{"missing header", secrets, http.Header{}, officialBody, "missing X-Fractal-Signature header"},
		{"empty header", secrets, header("  "), officialBody, "missing X-Fractal-Signature header"},
		{"sha256= prefix", secrets, header("sha256=" + strings.Repeat("a", 64)), officialBody, "X-Fractal-Signature is neither sha1=<hex> nor 64 hex digits"},
		{"bare sha1 hex", secrets, header(strings.TrimPrefix(officialHeader, "sha1=")), officialBody, "X-Fractal-Signature is neither sha1=<hex> nor 64 hex digits"},
		{"not hex", secrets, header("sha1=zz"), officialBody, "signature is not hex"},
		{"truncated mac", secrets, header(officialHeader[:21]), officialBody, "signature mismatch"},
		{"no secrets", map[string]string{}, header(officialHeader), officialBody, "no secret configured for sha1 signatures"},

		{"per-type secret, its type", approvedOnly, sign("approved-secret", approved), approved, ""},
		{"per-type secret, other type", approvedOnly, sign("approved-secret", rejected), rejected,
			`no secret for event type "verification_rejected": set webhook_secrets.verification_rejected`},
		{"per-type secret, no type", approvedOnly, sign("approved-secret", `{"data":{}}`), `{"data":{}}`, `secret not valid for event type ""`},
		{"per-type secret, not JSON", approvedOnly, sign("approved-secret", "x"), "x", `secret not valid for event type ""`},
		{"per-type secrets, rejected", perType, sign("rejected-secret", rejected), rejected, ""},
		{"per-type secrets, rejected under approved's", perType, sign("approved-secret", rejected), rejected, `secret not valid for event type "verification_rejected"`},
		{"per-type secrets, unknown secret", perType, sign("other", rejected), rejected, "signature mismatch"},
		{"per-type secrets, a type without one", perType, sign("revoked-secret", revoked), revoked,
			`no secret for event type "application_access_revoked": set webhook_secrets.application_access_revoked`},
		{"per-type secrets, an undocumented type without one", perType, sign("x", `{"type":"new_type"}`), `{"type":"new_type"}`,
			`no secret for event type "new_type": set webhook_secrets.new_type`},
		{"both, approved under general", both, sign("general-secret", approved), approved, ""},
		{"both, approved under per-type", both, sign("approved-secret", approved), approved, ""},
		{"both, rejected under general", both, sign("general-secret", rejected), rejected, ""},
		{"both, rejected under approved's", both, sign("approved-secret", rejected), rejected, `secret not valid for event type "verification_rejected"`},
		{"same value for two types", map[string]string{
			"webhook_secrets.verification_approved": "shared",
			"webhook_secrets.verification_rejected": "shared",
		}, sign("shared", rejected), rejected, ""},
		{"empty per-type secret ignored", map[string]string{
			"webhook_secrets.verification_approved": "",
			"webhook_secret":                        "general-secret",
		}, sign("", approved), approved, "signature mismatch"},

		{"kraken under general", secrets, krakenHeader(officialSecret, kraken), kraken, ""},
		{"kraken upper-case hex", secrets, header(strings.ToUpper(krakenHeader(officialSecret, kraken).Get("X-Fractal-Signature"))), kraken, ""},
		{"kraken under kraken key", perType, krakenHeader("kraken-secret", kraken), kraken, ""},
		{"kraken key wins over general", map[string]string{
			"webhook_secret":         "general-secret",
			"webhook_secrets.kraken": "kraken-secret",
		}, krakenHeader("general-secret", kraken), kraken, "signature mismatch"},
		{"kraken tampered", secrets, krakenHeader(officialSecret, kraken), strings.Replace(kraken, "rejected", "approved", 1), "signature mismatch"},
		{"kraken with per-type legacy secrets only", approvedOnly, krakenHeader("approved-secret", kraken), kraken, "no secret configured for Kraken signatures (webhook_secret or webhook_secrets.kraken)"},
		{"kraken key does not sign sha1", perType, sign("kraken-secret", `{"type":"kraken"}`), `{"type":"kraken"}`, "signature mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := New().Verify(tt.secrets, tt.h, []byte(tt.body))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			if hub.ErrorCode(err) != hub.EUNAUTHORIZED || hub.ErrorMessage(err) != tt.want {
				t.Fatalf("Verify = %v, want unauthorized: %s", err, tt.want)
			}
		})
	}
}

// TestMissingSecret: the error names the type, and says whether a document
// names it (only those may label a metric), so that an attacker's made-up
// types cannot grow a metric; EventsWithoutSecret lists the documented types
// a source cannot verify.
func TestMissingSecret(t *testing.T) {
	t.Parallel()
	perType := map[string]string{"webhook_secrets.verification_approved": "a", "webhook_secrets.verification_rejected": "r"}
	for body, documented := range map[string]bool{
		`{"type":"application_access_revoked","data":{}}`: true,
		`{"type":"made_up_type","data":{}}`:               false,
	} {
		h := http.Header{"X-Fractal-Signature": {"sha1=" + hex.EncodeToString(provider.HMAC(sha1.New, []byte("other"), []byte(body)))}}
		var missing *provider.MissingSecretError
		if err := New().Verify(perType, h, []byte(body)); !errors.As(err, &missing) || missing.Documented != documented {
			t.Errorf("Verify(%s) = %#v, want a MissingSecretError with Documented %v", body, err, documented)
		}
	}
	want := []string{"verification_contacted", "credential_shared", "email_changed", "application_access_revoked", "authorization_revoked"}
	if got := New().EventsWithoutSecret(perType); !slices.Equal(got, want) {
		t.Errorf("EventsWithoutSecret = %q, want %q", got, want)
	}
	if got := New().EventsWithoutSecret(map[string]string{"webhook_secret": "all"}); got != nil {
		t.Errorf("EventsWithoutSecret(webhook_secret) = %q, want none", got)
	}
}

func TestCheckSecrets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		secrets map[string]string
		want    string // "" for valid, else the message
	}{
		{"general", map[string]string{"webhook_secret": "s"}, ""},
		{"per-type", map[string]string{"webhook_secrets.verification_approved": "s"}, ""},
		{"kraken only", map[string]string{"webhook_secrets.kraken": "s"}, ""},
		{"both, general empty", map[string]string{"webhook_secret": "", "webhook_secrets.email_changed": "s"}, ""},
		{"none", nil, `secret "webhook_secret" (or webhook_secrets.<event_type>) is required`},
		{"all empty", map[string]string{"webhook_secret": "", "webhook_secrets.verification_approved": ""}, `secret "webhook_secret" (or webhook_secrets.<event_type>) is required`},
		{"misspelt", map[string]string{"webhook_secret": "s", "webhook_secret.verification_approved": "t"}, `unknown secret "webhook_secret.verification_approved" (want webhook_secret or webhook_secrets.<event_type>)`},
		{"no event type", map[string]string{"webhook_secrets.": "s"}, `unknown secret "webhook_secrets." (want webhook_secret or webhook_secrets.<event_type>)`},
		{"client secret", map[string]string{"client_secret": "s"}, `unknown secret "client_secret" (want webhook_secret or webhook_secrets.<event_type>)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := New().CheckSecrets(tt.secrets)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckSecrets = %v, want nil", err)
				}
				return
			}
			if hub.ErrorCode(err) != hub.EINVALID || hub.ErrorMessage(err) != tt.want {
				t.Fatalf("CheckSecrets = %v, want invalid: %s", err, tt.want)
			}
		})
	}
}

func TestBuild(t *testing.T) {
	t.Parallel()
	at := time.Date(2021, 3, 4, 5, 6, 7, 890, time.FixedZone("CET", 3600))
	tests := []struct {
		event string
		f     provider.Fields
		want  string
	}{
		{"verification_approved", provider.Fields{}, `{"type":"verification_approved","data":{"level":"basic","user_id":"14ec6af0-12f8-4bce-a6ab-01ce87fa1812","timestamp":"2020-04-02T13:35:35Z"}}`},
		{"VERIFICATION_REJECTED", provider.Fields{}, `{"type":"verification_rejected","data":{"level":"basic","user_id":"14ec6af0-12f8-4bce-a6ab-01ce87fa1812","timestamp":"2020-04-02T13:35:35Z"}}`},
		{"verification_contacted", provider.Fields{Ref: "u-1", Level: "liveness", Time: at}, `{"type":"verification_contacted","data":{"level":"liveness","user_id":"u-1","timestamp":"2021-03-04T04:06:07Z"}}`},
		{"credential_shared", provider.Fields{Ref: "h-1"}, `{"type":"credential_shared","data":{"idos_human_id":"h-1","credential_id":"9c2e4a71-0b3d-4f68-8e15-7d4a6b2c9f03","shared_at":"2020-04-02T13:35:35Z"}}`},
		{"email_changed", provider.Fields{}, `{"type":"email_changed","data":{"user_id":"14ec6af0-12f8-4bce-a6ab-01ce87fa1812","email":"john.snow@fractal.id"}}`},
		{"email_changed", provider.Fields{Ref: "u-1", Recipient: "a&b@example.com"}, `{"type":"email_changed","data":{"user_id":"u-1","email":"a&b@example.com"}}`},
		{"kraken", provider.Fields{}, `{"id":"14ec6af0-12f8-4bce-a6ab-01ce87fa1812","status":"approved","note":""}`},
		{"Kraken", provider.Fields{Ref: "u-1", Status: "REJECTED", Reasons: []string{"Document expired", "ignored"}}, `{"id":"u-1","status":"rejected","note":"Document expired"}`},
		{"kraken", provider.Fields{Status: "pending"}, `{"id":"14ec6af0-12f8-4bce-a6ab-01ce87fa1812","status":"pending","note":""}`},
	}
	for _, tt := range tests {
		t.Run(tt.event, func(t *testing.T) {
			t.Parallel()
			body, h, err := New().Build(tt.event, tt.f)
			if err != nil {
				t.Fatalf("Build = %v", err)
			}
			if string(body) != tt.want {
				t.Errorf("Build = %s\nwant    %s", body, tt.want)
			}
			if h.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type = %q", h.Get("Content-Type"))
			}
		})
	}
	for _, bad := range []struct {
		event string
		f     provider.Fields
	}{
		{"kraken", provider.Fields{Status: "on_hold"}},
		{"verification.updated", provider.Fields{}},
	} {
		if _, _, err := New().Build(bad.event, bad.f); hub.ErrorCode(err) != hub.EINVALID {
			t.Errorf("Build(%s, %+v) = %v, want invalid", bad.event, bad.f, err)
		}
	}
}

func TestSign(t *testing.T) {
	t.Parallel()
	perType := map[string]string{
		"webhook_secret":                        "general-secret",
		"webhook_secrets.verification_rejected": "rejected-secret",
		"webhook_secrets.kraken":                "kraken-secret",
	}
	approved := []byte(officialBody)
	rejected := []byte(strings.Replace(officialBody, "verification_approved", "verification_rejected", 1))
	kraken := []byte(`{"id":"u-1","status":"approved","note":""}`)
	tests := []struct {
		name    string
		secrets map[string]string
		body    []byte
		want    string // header value; "" when Sign must fail
	}{
		{"general", perType, approved, "sha1=" + hex.EncodeToString(provider.HMAC(sha1.New, []byte("general-secret"), approved))},
		{"per-type first", perType, rejected, "sha1=" + hex.EncodeToString(provider.HMAC(sha1.New, []byte("rejected-secret"), rejected))},
		{"kraken key", perType, kraken, hex.EncodeToString(provider.HMAC(sha256.New, []byte("kraken-secret"), kraken))},
		{"kraken general", secrets, kraken, hex.EncodeToString(provider.HMAC(sha256.New, []byte(officialSecret), kraken))},
		{"not JSON under general", secrets, []byte("x"), "sha1=" + hex.EncodeToString(provider.HMAC(sha1.New, []byte(officialSecret), []byte("x")))},
		{"no secret for the type", map[string]string{"webhook_secrets.verification_rejected": "s"}, approved, ""},
		{"no kraken secret", map[string]string{"webhook_secrets.verification_rejected": "s"}, kraken, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			body, err := New().Sign(tt.secrets, h, tt.body)
			if tt.want == "" {
				if hub.ErrorCode(err) != hub.EINVALID {
					t.Fatalf("Sign = %v, want invalid", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Sign = %v", err)
			}
			if string(body) != string(tt.body) {
				t.Errorf("Sign changed the body to %s", body)
			}
			if got := h.Get("X-Fractal-Signature"); got != tt.want {
				t.Errorf("X-Fractal-Signature = %q, want %q", got, tt.want)
			}
			if err := New().Verify(tt.secrets, h, body); err != nil {
				t.Errorf("Verify(signed) = %v", err)
			}
		})
	}
}

func TestDedupKey(t *testing.T) {
	t.Parallel()
	key := func(body string) string {
		t.Helper()
		p, err := New().Parse(nil, []byte(body))
		if err != nil {
			t.Fatalf("Parse(%s) = %v", body, err)
		}
		return p.DedupKey
	}
	compact := key(`{"type":"verification_approved","data":{"level":"basic","user_id":"u-1","timestamp":"2020-04-02T13:35:35Z"}}`)
	pretty := key("{\n  \"data\": {\"timestamp\": \"2020-04-02T13:35:35Z\", \"user_id\": \"u-1\", \"level\": \"basic\"},\n  \"type\": \"verification_approved\"\n}\n")
	liveness := key(`{"type":"verification_approved","data":{"level":"liveness","user_id":"u-1","timestamp":"2020-04-02T13:35:35Z"}}`)
	if compact != pretty {
		t.Errorf("the same content in another layout dedups as %s, want %s", pretty, compact)
	}
	if compact == liveness {
		t.Error("another level dedups alike")
	}
	if !strings.HasPrefix(compact, "sha256:") {
		t.Errorf("DedupKey = %q, want a sha256: hash", compact)
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	t.Run("general secret", func(t *testing.T) {
		t.Parallel()
		providertest.RoundTrip(t, New(), secrets, map[string]string{"webhook_secret": "not-the-secret"})
	})
	t.Run("per-type secrets", func(t *testing.T) {
		t.Parallel()
		perType := map[string]string{}
		for _, e := range New().Events() {
			perType["webhook_secrets."+e] = "secret-for-" + e
		}
		providertest.RoundTrip(t, New(), perType, map[string]string{"webhook_secret": "not-the-secret"})
	})
}

func TestGolden(t *testing.T) {
	t.Parallel()
	providertest.Golden(t, New(), secrets, "testdata")
}

func FuzzVerifyParse(f *testing.F) {
	f.Add([]byte(officialBody))
	f.Add([]byte(`{"id":"u-1","status":"rejected","note":"n"}`))
	f.Add([]byte(`{"type":"verification_approved","data":{"user_id":1e400}}`))
	providertest.Fuzz(f, New(), secrets)
}

func BenchmarkVerifyParse(b *testing.B) {
	p := New()
	body := []byte(officialBody)
	h := http.Header{}
	h.Set("X-Fractal-Signature", officialHeader)
	perType := map[string]string{"webhook_secret": "general"}
	for _, e := range p.Events() {
		perType["webhook_secrets."+e] = "secret-for-" + e
	}
	perType["webhook_secrets.verification_approved"] = officialSecret
	for _, bc := range []struct {
		name    string
		secrets map[string]string
	}{{"one secret", secrets}, {"seven secrets", perType}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Verify(bc.secrets, h, body); err != nil {
					b.Fatal(err)
				}
				if _, err := p.Parse(h, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 40)
	tests := []struct {
		name      string
		body      string
		wantName  string
		wantErr   string // "" for success, else the unrecognized message
		wantRef   string
		wantState hub.Status
	}{
		{"number user_id", `{"type":"verification_rejected","data":{"level":"basic","user_id":12345,"timestamp":1585834535}}`, "verification_rejected", "", "12345", hub.StatusRejected},
		{"no level", `{"type":"verification_approved","data":{"user_id":"u-1"}}`, "verification_approved", "", "u-1", hub.StatusApproved},
		{"kraken upper-case status", `{"id":"u-1","status":"APPROVED"}`, "kraken", "", "u-1", hub.StatusApproved},
		{"array", `[1,2]`, "", "body is not a JSON object", "", ""},
		{"null", `null`, "", "body is not a JSON object", "", ""},
		{"no type", `{"data":{"user_id":"u-1"}}`, "", "body has no type", "", ""},
		{"type not a string", `{"type":7,"data":{"user_id":"u-1"}}`, "", "type is not a string", "", ""},
		{"no data", `{"type":"verification_approved"}`, "verification_approved", "verification_approved without data.user_id", "", ""},
		{"blank user_id", `{"type":"verification_contacted","data":{"user_id":"  "}}`, "verification_contacted", "verification_contacted without data.user_id", "", ""},
		{"user_id an object", `{"type":"verification_approved","data":{"user_id":{}}}`, "verification_approved", "user_id is not a string", "", ""},
		{"level a bool", `{"type":"verification_approved","data":{"user_id":"u-1","level":true}}`, "verification_approved", "level is not a string", "", ""},
		{"credential without id", `{"type":"credential_shared","data":{"idos_human_id":"h-1"}}`, "credential_shared", "credential_shared without data.idos_human_id or data.credential_id", "", ""},
		{"credential id an array", `{"type":"credential_shared","data":{"idos_human_id":"h-1","credential_id":[]}}`, "credential_shared", "credential_id is not a string", "", ""},
		{"email_changed without email", `{"type":"email_changed","data":{"user_id":"u-1"}}`, "email_changed", "email_changed without data.user_id or data.email", "", ""},
		{"email an object", `{"type":"email_changed","data":{"user_id":"u-1","email":{}}}`, "email_changed", "email is not a string", "", ""},
		{"kraken without id", `{"status":"approved","note":""}`, "kraken", "kraken message without id", "", ""},
		{"kraken note an object", `{"id":"u-1","status":"rejected","note":{}}`, "kraken", "note is not a string", "", ""},
		{"long unknown type", `{"type":"` + long + `"}`, long, `unknown event type "` + strings.Repeat("é", 32) + `…"`, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := New().Parse(nil, []byte(tt.body))
			if p.EventName != tt.wantName || p.DedupKey == "" || string(p.Body) != tt.body {
				t.Errorf("Parse: EventName %q, DedupKey %q, Body %s; want EventName %q, a dedup key and the raw body", p.EventName, p.DedupKey, p.Body, tt.wantName)
			}
			if tt.wantErr != "" {
				if hub.ErrorCode(err) != hub.EUNRECOGNIZED || hub.ErrorMessage(err) != tt.wantErr {
					t.Fatalf("Parse = %v, want unrecognized: %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			if len(p.Observations) != 1 || p.Observations[0].ProviderRef != tt.wantRef || p.Observations[0].Status != tt.wantState {
				t.Fatalf("Observations = %+v, want one for %s, %s", p.Observations, tt.wantRef, tt.wantState)
			}
		})
	}
	if p, _ := New().Parse(nil, []byte(`{"type":"verification_rejected","data":{"user_id":"u","timestamp":1585834535}}`)); !p.Observations[0].ProviderTime.Equal(time.Unix(1585834535, 0)) {
		t.Errorf("Unix-seconds timestamp read as %v", p.Observations[0].ProviderTime)
	}
	if New().Name() != "fractal" {
		t.Errorf("Name = %q", New().Name())
	}
}
