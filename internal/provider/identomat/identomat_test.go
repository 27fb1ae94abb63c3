package identomat

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
	"github.com/verihook/verihook/internal/provider/providertest"
)

var (
	// goldenSecrets holds the key of Identomat's OTP sample, so that the
	// sample in testdata/ok-otp-sms verifies byte for byte as published.
	goldenSecrets = map[string]string{SecretName: "callback-api-key-123"}

	wrongSecrets = map[string]string{SecretName: "some-other-callback-key"}
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	providertest.RoundTrip(t, New(), goldenSecrets, wrongSecrets, providertest.KeyInBody())
}

func TestGolden(t *testing.T) {
	t.Parallel()
	providertest.Golden(t, New(), goldenSecrets, "testdata")
}

func FuzzVerifyParse(f *testing.F) {
	providertest.Fuzz(f, New(), goldenSecrets)
}

func BenchmarkVerifyParse(b *testing.B) {
	p := New()
	body, h := providertest.Signed(b, p, goldenSecrets, EventSessionChange, provider.Fields{Status: "MANUAL_CHECK"})
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := p.Verify(goldenSecrets, h, body); err != nil {
			b.Fatal(err)
		}
		if _, err := p.Parse(h, body); err != nil {
			b.Fatal(err)
		}
	}
}

func TestNameEventsSecrets(t *testing.T) {
	t.Parallel()
	p := New()
	if got := p.Name(); got != "identomat" {
		t.Errorf("Name() = %q, want identomat", got)
	}
	want := []string{"one-time-password", "one-time-password-request", "email-one-time-password-request",
		"share-session-link-via-sms", "share-session-link-via-email", "session-change", "video-call-status-update"}
	if got := p.Events(); !slices.Equal(got, want) {
		t.Errorf("Events() = %q, want %q", got, want)
	}
	p.Events()[0] = "changed"
	if p.Events()[0] != EventOTP {
		t.Error("Events() returns a shared slice")
	}
	for _, tc := range []struct {
		name    string
		secrets map[string]string
		want    string
	}{
		{"set", map[string]string{"callback_api_key": "k"}, ""},
		{"nil", nil, hub.EINVALID},
		{"empty", map[string]string{"callback_api_key": ""}, hub.EINVALID},
		{"other name", map[string]string{"callbackApiKey": "k"}, hub.EINVALID},
	} {
		if err := p.CheckSecrets(tc.secrets); hub.ErrorCode(err) != tc.want {
			t.Errorf("CheckSecrets(%s) = %v, want code %q", tc.name, err, tc.want)
		} else if err != nil && !strings.Contains(err.Error(), "callback_api_key") {
			t.Errorf("CheckSecrets(%s) = %v, want it to name callback_api_key", tc.name, err)
		}
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	const key = "callback-api-key-123"
	good := map[string]string{SecretName: key}
	for _, tc := range []struct {
		name    string
		secrets map[string]string
		body    string
		want    string // error message; "" for success
	}{
		{"match", good, `{"callbackApiKey":"callback-api-key-123","type":"session-change"}`, ""},
		{"match last member, spaced", good, "\n {\n \"type\" : \"x\" ,\n \"callbackApiKey\" : \"callback-api-key-123\" \n} \n", ""},
		{"match escaped", good, `{"callbackApiKey":"callback-api-key-\u0031\u00323"}`, ""},
		{"only the key", good, `{"callbackApiKey":"callback-api-key-123"}`, ""},
		{"wrong", good, `{"callbackApiKey":"callback-api-key-124"}`, "callbackApiKey does not match"},
		{"prefix", good, `{"callbackApiKey":"callback-api-key-12"}`, "callbackApiKey does not match"},
		{"longer", good, `{"callbackApiKey":"callback-api-key-1234"}`, "callbackApiKey does not match"},
		{"other case", good, `{"callbackApiKey":"CALLBACK-API-KEY-123"}`, "callbackApiKey does not match"},
		{"duplicate, last wrong", good, `{"callbackApiKey":"callback-api-key-123","callbackApiKey":"x"}`, "callbackApiKey does not match"},
		{"empty", good, `{"callbackApiKey":""}`, "callbackApiKey is empty"},
		{"missing", good, `{"type":"session-change","sessionId":"s"}`, "body has no callbackApiKey"},
		{"name in other case", good, `{"CallbackApiKey":"callback-api-key-123"}`, "body has no callbackApiKey"},
		{"nested", good, `{"data":{"callbackApiKey":"callback-api-key-123"}}`, "body has no callbackApiKey"},
		{"number", good, `{"callbackApiKey":123}`, "callbackApiKey is not a string"},
		{"null", good, `{"callbackApiKey":null}`, "callbackApiKey is not a string"},
		{"array", good, `{"callbackApiKey":["callback-api-key-123"]}`, "callbackApiKey is not a string"},
		{"object", good, `{"callbackApiKey":{"key":"callback-api-key-123"}}`, "callbackApiKey is not a string"},
		{"not json", good, `callbackApiKey=callback-api-key-123`, "body is not a JSON object"},
		{"empty body", good, ``, "body is not a JSON object"},
		{"json null", good, `null`, "body is not a JSON object"},
		{"json array", good, `[{"callbackApiKey":"callback-api-key-123"}]`, "body is not a JSON object"},
		{"json string", good, `"callback-api-key-123"`, "body is not a JSON object"},
		{"trailing data", good, `{"callbackApiKey":"callback-api-key-123"} x`, "body is not a JSON object"},
		{"two objects", good, `{"callbackApiKey":"callback-api-key-123"}{}`, "body is not a JSON object"},
		{"truncated", good, `{"callbackApiKey":"callback-api-key-123"`, "body is not a JSON object"},
		{"no secret configured, empty key", map[string]string{}, `{"callbackApiKey":""}`, "no callback_api_key is configured"},
		{"no secret configured", nil, `{"callbackApiKey":"callback-api-key-123"}`, "no callback_api_key is configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := New().Verify(tc.secrets, http.Header{}, []byte(tc.body))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			if hub.ErrorCode(err) != hub.EUNAUTHORIZED || hub.ErrorMessage(err) != tc.want {
				t.Fatalf("Verify = %v, want unauthorized %q", err, tc.want)
			}
			for _, secret := range []string{key, "callback-api-key-12"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q holds a key", err)
				}
			}
		})
	}
}

// TestVerifyNoIntegrity pins a property of Identomat's scheme, not a wish:
// the key authenticates the sender, not the content, so a body changed
// anywhere but in its key still verifies.
func TestVerifyNoIntegrity(t *testing.T) {
	t.Parallel()
	p := New()
	body, h := providertest.Signed(t, p, goldenSecrets, EventSessionChange, provider.Fields{Ref: "ref-1", Status: "REJECTED"})
	changed := bytes.Replace(body, []byte("REJECTED"), []byte("APPROVED"), 1)
	if bytes.Equal(changed, body) {
		t.Fatal("test body did not change")
	}
	if err := p.Verify(goldenSecrets, h, changed); err != nil {
		t.Errorf("Verify(changed content, same key) = %v; if Identomat added a signature, update this test and the package doc", err)
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	const ref = "wwb83rh1se22wd81z0tx8bqlerljq5kgf6rxem1q"
	otp := func(channel, to, text string) []hub.EventDraft {
		return []hub.EventDraft{{Type: hub.EventOTPRequested, Data: hub.OTPRequested{Channel: channel, Recipient: to, Text: text, SessionRef: ref}}}
	}
	link := func(channel, to, text, link string) []hub.EventDraft {
		return []hub.EventDraft{{Type: hub.EventSessionLinkRequested, Data: hub.SessionLinkRequested{Channel: channel, Recipient: to, Text: text, Link: link, SessionRef: ref}}}
	}
	obs := func(kind hub.Kind, status hub.Status, final bool) []hub.Observation {
		return []hub.Observation{{VerificationKey: hub.VerificationKey{ProviderRef: ref}, Provider: "identomat",
			Kind: kind, Status: status, Final: final, Current: true, ProviderEvent: "session-change"}}
	}
	video := func(d hub.VideoCallUpdated) []hub.EventDraft {
		d.SessionRef = ref
		return []hub.EventDraft{{Type: hub.EventVideoCallUpdated, Data: d}}
	}
	for _, tc := range []struct {
		name      string
		body      string // members after "sessionId"; the key and sessionId are added unless noPrefix
		noPrefix  bool
		eventName string
		obs       []hub.Observation
		events    []hub.EventDraft
		err       string // EUNRECOGNIZED message; "" for success
	}{
		{name: "otp sms sample name", body: `"type":"one-time-password-request","text":"Your code is 6867","phoneNumber":"+995512345678"`,
			eventName: "one-time-password-request", events: otp("sms", "+995512345678", "Your code is 6867")},
		{name: "otp sms heading name", body: `"type":"one-time-password","text":"Your code is 1","phoneNumber":"+1"`,
			eventName: "one-time-password", events: otp("sms", "+1", "Your code is 1")},
		{name: "otp email", body: `"type":"email-one-time-password-request","text":"t","email":"a@example.com"`,
			eventName: "email-one-time-password-request", events: otp("email", "a@example.com", "t")},
		{name: "otp email emailAddress", body: `"type":"email-one-time-password-request","text":"t","emailAddress":"b@example.com","recipient":"c@example.com"`,
			eventName: "email-one-time-password-request", events: otp("email", "b@example.com", "t")},
		{name: "otp email recipient after empty and null", body: `"type":"email-one-time-password-request","text":"t","email":"","emailAddress":null,"recipient":"c@example.com"`,
			eventName: "email-one-time-password-request", events: otp("email", "c@example.com", "t")},
		{name: "otp email ignores phoneNumber", body: `"type":"email-one-time-password-request","text":"t","phoneNumber":"+1"`,
			eventName: "email-one-time-password-request", err: "email-one-time-password-request has no email, emailAddress, recipient"},
		{name: "otp sms no phone", body: `"type":"one-time-password-request","text":"t","email":"a@example.com"`,
			eventName: "one-time-password-request", err: "one-time-password-request has no phoneNumber"},
		{name: "otp no text", body: `"type":"one-time-password","phoneNumber":"+1"`,
			eventName: "one-time-password", err: "one-time-password has no text"},
		{name: "otp text not string", body: `"type":"one-time-password","phoneNumber":"+1","text":6867`,
			eventName: "one-time-password", err: "text is not a string"},
		{name: "otp phone not string", body: `"type":"one-time-password","phoneNumber":995512345678,"text":"t"`,
			eventName: "one-time-password", err: "phoneNumber is not a string"},
		{name: "link sms", body: `"type":"share-session-link-via-sms","text":"Hi","phoneNumber":"+1","sessionLink":"https://x.test/?a=1&b=2"`,
			eventName: "share-session-link-via-sms", events: link("sms", "+1", "Hi", "https://x.test/?a=1&b=2")},
		{name: "link sms fallback link", body: `"type":"share-session-link-via-sms","text":"Hi","phoneNumber":"+1","sessionLink":"","link":"https://x.test/l"`,
			eventName: "share-session-link-via-sms", events: link("sms", "+1", "Hi", "https://x.test/l")},
		{name: "link email no text", body: `"type":"share-session-link-via-email","email":"a@example.com","sessionLink":"https://x.test/l"`,
			eventName: "share-session-link-via-email", events: link("email", "a@example.com", "", "https://x.test/l")},
		{name: "link without link", body: `"type":"share-session-link-via-email","email":"a@example.com","text":"Hi"`,
			eventName: "share-session-link-via-email", err: "share-session-link-via-email has no sessionLink"},
		{name: "link not string", body: `"type":"share-session-link-via-sms","phoneNumber":"+1","sessionLink":{"url":"x"}`,
			eventName: "share-session-link-via-sms", err: "sessionLink is not a string"},
		{name: "approved", body: `"type":"session-change","result":"APPROVED"`,
			eventName: "session-change", obs: obs(hub.KindKYC, hub.StatusApproved, true)},
		{name: "rejected", body: `"type":"session-change","result":"REJECTED"`,
			eventName: "session-change", obs: obs(hub.KindKYC, hub.StatusRejected, true)},
		{name: "manual check", body: `"type":"session-change","result":"MANUAL_CHECK"`,
			eventName: "session-change", obs: obs(hub.KindKYC, hub.StatusReview, false)},
		{name: "additional information", body: `"type":"session-change","result":"ADDITIONAL_INFORMATION_REQUESTED"`,
			eventName: "session-change", obs: obs(hub.KindKYC, hub.StatusActionRequired, false)},
		{name: "lower case", body: `"type":"session-change","result":"approved"`,
			eventName: "session-change", obs: obs(hub.KindKYC, hub.StatusApproved, true)},
		{name: "status fallback", body: `"type":"session-change","status":"Rejected"`,
			eventName: "session-change", obs: obs(hub.KindKYC, hub.StatusRejected, true)},
		{name: "result wins over status", body: `"type":"session-change","result":"MANUAL_CHECK","status":"APPROVED"`,
			eventName: "session-change", obs: obs(hub.KindKYC, hub.StatusReview, false)},
		{name: "kyb", body: `"type":"session-change","result":"APPROVED","sessionType":"KYB"`,
			eventName: "session-change", obs: obs(hub.KindKYB, hub.StatusApproved, true)},
		{name: "kyb other value", body: `"type":"session-change","result":"REJECTED","sessionType":"BUSINESS"`,
			eventName: "session-change", obs: obs(hub.KindKYB, hub.StatusRejected, true)},
		{name: "sessionType KYC", body: `"type":"session-change","result":"APPROVED","sessionType":"kyc"`,
			eventName: "session-change", obs: obs(hub.KindKYC, hub.StatusApproved, true)},
		{name: "sessionType empty or null", body: `"type":"session-change","result":"APPROVED","sessionType":null`,
			eventName: "session-change", obs: obs(hub.KindKYC, hub.StatusApproved, true)},
		{name: "sessionType not string", body: `"type":"session-change","result":"APPROVED","sessionType":1`,
			eventName: "session-change", err: "sessionType is not a string"},
		{name: "unknown result", body: `"type":"session-change","result":"IN_PROGRESS"`,
			eventName: "session-change", err: `unknown session-change result "IN_PROGRESS"`},
		{name: "no result", body: `"type":"session-change"`,
			eventName: "session-change", err: "session-change has no result"},
		{name: "result not string", body: `"type":"session-change","result":true`,
			eventName: "session-change", err: "result is not a string"},
		{name: "video empty room", body: `"type":"video-call-status-update","roomId":"RM1","roomStatus":"empty","compositionStatus":null,"videoFileStatus":null,"videoFileId":null`,
			eventName: "video-call-status-update", events: video(hub.VideoCallUpdated{RoomID: "RM1", RoomStatus: "empty"})},
		{name: "video file available", body: `"type":"video-call-status-update","roomId":"RM1","roomStatus":"ended","compositionStatus":"available","videoFileStatus":"available","videoFileId":"f1"`,
			eventName: "video-call-status-update", events: video(hub.VideoCallUpdated{RoomID: "RM1", RoomStatus: "ended", CompositionStatus: "available", VideoFileStatus: "available", VideoFileID: "f1"})},
		{name: "video numeric ids", body: `"type":"video-call-status-update","roomId":12,"videoFileId":12345678901234567890`,
			eventName: "video-call-status-update", events: video(hub.VideoCallUpdated{RoomID: "12", VideoFileID: "12345678901234567890"})},
		{name: "video status not string", body: `"type":"video-call-status-update","roomStatus":1`,
			eventName: "video-call-status-update", err: "roomStatus is not a string"},
		{name: "video id bool", body: `"type":"video-call-status-update","videoFileId":true`,
			eventName: "video-call-status-update", err: "videoFileId is not a string"},
		{name: "unknown type", body: `"type":"session-deleted"`,
			eventName: "session-deleted", err: `unknown type "session-deleted"`},
		{name: "type in other case", body: `"type":"Session-Change","result":"APPROVED"`,
			eventName: "Session-Change", err: `unknown type "Session-Change"`},
		{name: "long unknown type is clipped", body: `"type":"` + strings.Repeat("a", 70) + `"`,
			eventName: strings.Repeat("a", 70), err: `unknown type "` + strings.Repeat("a", 64) + `…"`},
		{name: "no type", body: `"result":"APPROVED"`, err: "body has no type"},
		{name: "type not string", body: `"type":["session-change"]`, err: "type is not a string"},
		{name: "no sessionId", noPrefix: true, body: `{"callbackApiKey":"k","type":"session-change","result":"APPROVED"}`,
			eventName: "session-change", err: "session-change has no sessionId"},
		{name: "empty sessionId", noPrefix: true, body: `{"callbackApiKey":"k","type":"one-time-password","sessionId":""}`,
			eventName: "one-time-password", err: "one-time-password has no sessionId"},
		{name: "sessionId not string", noPrefix: true, body: `{"callbackApiKey":"k","type":"session-change","sessionId":7,"result":"APPROVED"}`,
			eventName: "session-change", err: "sessionId is not a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := tc.body
			if !tc.noPrefix {
				body = `{"callbackApiKey":"k","sessionId":"` + ref + `",` + body + `}`
			}
			parsed, err := New().Parse(http.Header{}, []byte(body))
			if tc.err == "" && err != nil {
				t.Fatalf("Parse = %v, want nil", err)
			}
			if tc.err != "" && (hub.ErrorCode(err) != hub.EUNRECOGNIZED || hub.ErrorMessage(err) != tc.err) {
				t.Fatalf("Parse = %v, want unrecognized %q", err, tc.err)
			}
			if parsed.EventName != tc.eventName {
				t.Errorf("EventName = %q, want %q", parsed.EventName, tc.eventName)
			}
			if !reflect.DeepEqual(parsed.Observations, tc.obs) {
				t.Errorf("Observations = %+v, want %+v", parsed.Observations, tc.obs)
			}
			if !reflect.DeepEqual(parsed.Events, tc.events) {
				t.Errorf("Events = %+v, want %+v", parsed.Events, tc.events)
			}
			checkStored(t, parsed)
		})
	}
}

// checkStored checks what every Parse of a JSON object must return, error or
// not: a stored body with no top-level key member in any letter case, and a
// dedup key that is its canonical hash.
func checkStored(t *testing.T, parsed hub.Parsed) {
	t.Helper()
	// Numbers stay json.Number: hub.CanonicalHash would read them as float64
	// and hash 2.50 like 2.5.
	dec := json.NewDecoder(bytes.NewReader(parsed.Body))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil || v == nil {
		t.Fatalf("stored body %q is not a JSON object (%v)", parsed.Body, err)
	}
	for name := range v {
		if strings.EqualFold(name, KeyField) {
			t.Errorf("stored body %s holds %s", parsed.Body, name)
		}
	}
	if want := hub.CanonicalHashOf(v); parsed.DedupKey != want {
		t.Errorf("DedupKey = %q, want the stored body's canonical hash %q", parsed.DedupKey, want)
	}
}

func TestParseStoredBody(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body, want string
	}{
		{"key removed, members sorted, space dropped",
			"{\n  \"callbackApiKey\": \"k\",\n  \"type\": \"session-change\",\n  \"sessionId\": \"s\",\n  \"result\": \"APPROVED\"\n}\n",
			`{"result":"APPROVED","sessionId":"s","type":"session-change"}`},
		{"every letter case and duplicate of the key removed",
			`{"callbackApiKey":"k","CallbackApiKey":"k","CALLBACKAPIKEY":"k","callbackApiKey":"k2","type":"x","callbackApiKeys":"kept"}`,
			`{"callbackApiKeys":"kept","type":"x"}`},
		{"nested key kept",
			`{"callbackApiKey":"k","type":"x","data":{"callbackApiKey":"nested"}}`,
			`{"data":{"callbackApiKey":"nested"},"type":"x"}`},
		{"numbers as sent",
			`{"callbackApiKey":"k","type":"x","a":0.90272835304042490,"b":12345678901234567890,"c":1e400,"d":-0,"e":[2.50]}`,
			`{"a":0.90272835304042490,"b":12345678901234567890,"c":1e400,"d":-0,"e":[2.50],"type":"x"}`},
		{"HTML characters not escaped",
			`{"callbackApiKey":"k","link":"https://x.test/?a=1&b=<2>"}`,
			`{"link":"https://x.test/?a=1&b=<2>"}`},
		{"escapes normalized",
			`{"callbackApiKey":"k","text":"\u0041\/\u00e9"}`,
			`{"text":"A/é"}`},
		{"only the key", `{"callbackApiKey":"k"}`, `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parsed, _ := New().Parse(http.Header{}, []byte(tc.body))
			if string(parsed.Body) != tc.want {
				t.Errorf("stored body = %s, want %s", parsed.Body, tc.want)
			}
			if parsed.DedupKey == "" {
				t.Error("DedupKey is empty")
			}
		})
	}
}

func TestParseNotAnObject(t *testing.T) {
	t.Parallel()
	for _, body := range []string{``, `null`, `[]`, `"s"`, `{"a":1}{}`, `{`} {
		parsed, err := New().Parse(http.Header{}, []byte(body))
		if hub.ErrorCode(err) != hub.EUNRECOGNIZED {
			t.Errorf("Parse(%q) = %v, want unrecognized", body, err)
		}
		if parsed.Body != nil || parsed.DedupKey != hub.RawHash([]byte(body)) {
			t.Errorf("Parse(%q) = body %q, dedup key %q; want no body and the raw hash", body, parsed.Body, parsed.DedupKey)
		}
	}
}

func TestDedupKey(t *testing.T) {
	t.Parallel()
	key := func(body string) string {
		t.Helper()
		parsed, err := New().Parse(http.Header{}, []byte(body))
		if err != nil {
			t.Fatalf("Parse(%s) = %v", body, err)
		}
		return parsed.DedupKey
	}
	base := key(`{"callbackApiKey":"k","type":"session-change","sessionId":"s","result":"APPROVED"}`)
	for _, same := range []string{
		`{"type":"session-change","sessionId":"s","result":"APPROVED","callbackApiKey":"k"}`,
		`{"callbackApiKey":"another key","type":"session-change","sessionId":"s","result":"APPROVED"}`,
		"{ \"result\" : \"APPROVED\",\n\"sessionId\":\"s\", \"type\":\"session-change\" }",
		`{"callbackApiKey":"k","type":"session-change","sessionId":"\u0073","result":"APPROVED"}`,
	} {
		if got := key(same); got != base {
			t.Errorf("DedupKey(%s) = %s, want %s as for the same content", same, got, base)
		}
	}
	for _, other := range []string{
		`{"callbackApiKey":"k","type":"session-change","sessionId":"s2","result":"APPROVED"}`,
		`{"callbackApiKey":"k","type":"session-change","sessionId":"s","result":"REJECTED"}`,
		`{"callbackApiKey":"k","type":"session-change","sessionId":"s","result":"APPROVED","sessionType":"KYB"}`,
	} {
		if got := key(other); got == base {
			t.Errorf("DedupKey(%s) = %s, the same as for other content", other, got)
		}
	}
	if !strings.HasPrefix(base, "sha256:") || len(base) != len("sha256:")+64 {
		t.Errorf("DedupKey = %q, want sha256: and 64 hex digits", base)
	}
}

func TestBuild(t *testing.T) {
	t.Parallel()
	const (
		ref  = "abcdefghij0123456789abcdefghij0123456789"
		dRef = "wwb83rh1se22wd81z0tx8bqlerljq5kgf6rxem1q"
		link = "https://widget.identomat.com/?session_token=" + dRef
	)
	roomDefault, fileDefault := "RM"+token("room", dRef, 32), token("video", dRef, 40)
	for _, tc := range []struct {
		event string
		f     provider.Fields
		want  string
	}{
		{"one-time-password", provider.Fields{},
			`{"type":"one-time-password","sessionId":"` + dRef + `","text":"Your code is 6867","phoneNumber":"+995512345678"}`},
		{"ONE-TIME-PASSWORD-REQUEST", provider.Fields{Ref: ref, Recipient: "+15550100", Text: "Code: 1234"},
			`{"type":"one-time-password-request","sessionId":"` + ref + `","text":"Code: 1234","phoneNumber":"+15550100"}`},
		{"email-one-time-password-request", provider.Fields{},
			`{"type":"email-one-time-password-request","sessionId":"` + dRef + `","text":"Your code is 6867","email":"john@example.com"}`},
		{"share-session-link-via-sms", provider.Fields{},
			`{"type":"share-session-link-via-sms","sessionId":"` + dRef + `","text":"Hello John Doe, please complete your verification using the link below.","phoneNumber":"+995512345678","sessionLink":"` + link + `"}`},
		{"share-session-link-via-email", provider.Fields{Recipient: "a@example.com", Text: "Hi", Link: "https://x.test/?a=1&b=2"},
			`{"type":"share-session-link-via-email","sessionId":"` + dRef + `","text":"Hi","email":"a@example.com","sessionLink":"https://x.test/?a=1&b=2"}`},
		{"session-change", provider.Fields{},
			`{"type":"session-change","sessionId":"` + dRef + `","result":"APPROVED"}`},
		{"Session-Change", provider.Fields{Ref: ref, Status: "additional_information_requested", Kind: hub.KindKYB},
			`{"type":"session-change","sessionId":"` + ref + `","result":"ADDITIONAL_INFORMATION_REQUESTED","sessionType":"KYB"}`},
		{"session-change", provider.Fields{Status: "MANUAL_CHECK", Kind: hub.KindKYC},
			`{"type":"session-change","sessionId":"` + dRef + `","result":"MANUAL_CHECK"}`},
		{"video-call-status-update", provider.Fields{},
			`{"type":"video-call-status-update","sessionId":"` + dRef + `","roomId":"` + roomDefault + `","roomStatus":"ended","compositionStatus":"available","videoFileStatus":"available","videoFileId":"` + fileDefault + `"}`},
		{"video-call-status-update", provider.Fields{Status: "empty"},
			`{"type":"video-call-status-update","sessionId":"` + dRef + `","roomId":"` + roomDefault + `","roomStatus":"empty","compositionStatus":null,"videoFileStatus":null,"videoFileId":null}`},
	} {
		t.Run(tc.event, func(t *testing.T) {
			t.Parallel()
			body, h, err := New().Build(tc.event, tc.f)
			if err != nil {
				t.Fatalf("Build = %v", err)
			}
			if string(body) != tc.want {
				t.Errorf("Build =\n %s\nwant\n %s", body, tc.want)
			}
			if got := h.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			again, _, _ := New().Build(tc.event, tc.f)
			if !bytes.Equal(again, body) {
				t.Errorf("Build is not deterministic:\n %s\n %s", body, again)
			}
			// What Build makes, Parse understands.
			if _, err := New().Parse(h, body); err != nil {
				t.Errorf("Parse(Build) = %v", err)
			}
		})
	}
	for _, tc := range []struct {
		name  string
		event string
		f     provider.Fields
		want  string
	}{
		{"unknown event", "session-deleted", provider.Fields{}, "unknown event"},
		{"unknown result", "session-change", provider.Fields{Status: "IN_PROGRESS"}, `status "IN_PROGRESS" is not one of`},
		{"normalized status", "session-change", provider.Fields{Status: "approved_"}, "is not one of"},
		{"unknown kind", "session-change", provider.Fields{Kind: "kyx"}, `kind "kyx"`},
	} {
		_, _, err := New().Build(tc.event, tc.f)
		if hub.ErrorCode(err) != hub.EINVALID || !strings.Contains(hub.ErrorMessage(err), tc.want) {
			t.Errorf("Build(%s) = %v, want invalid containing %q", tc.name, err, tc.want)
		}
	}
}

// TestSimulated checks that every field Build reads comes out of Parse where
// SPEC section 4 says it should.
func TestSimulated(t *testing.T) {
	t.Parallel()
	const ref = "0123456789abcdefghij0123456789abcdefghij"
	for _, tc := range []struct {
		event  string
		f      provider.Fields
		obs    []hub.Observation
		events []hub.EventDraft
	}{
		{event: EventOTPRequest, f: provider.Fields{Ref: ref, Recipient: "+1", Text: "Code 1"},
			events: []hub.EventDraft{{Type: hub.EventOTPRequested, Data: hub.OTPRequested{Channel: "sms", Recipient: "+1", Text: "Code 1", SessionRef: ref}}}},
		{event: EventEmailOTP, f: provider.Fields{Ref: ref, Recipient: "a@example.com", Text: "Code 2"},
			events: []hub.EventDraft{{Type: hub.EventOTPRequested, Data: hub.OTPRequested{Channel: "email", Recipient: "a@example.com", Text: "Code 2", SessionRef: ref}}}},
		{event: EventLinkSMS, f: provider.Fields{Ref: ref, Recipient: "+1", Text: "Hi", Link: "https://l.test/1"},
			events: []hub.EventDraft{{Type: hub.EventSessionLinkRequested, Data: hub.SessionLinkRequested{Channel: "sms", Recipient: "+1", Text: "Hi", Link: "https://l.test/1", SessionRef: ref}}}},
		{event: EventLinkEmail, f: provider.Fields{Ref: ref, Recipient: "a@example.com", Text: "Hi", Link: "https://l.test/2"},
			events: []hub.EventDraft{{Type: hub.EventSessionLinkRequested, Data: hub.SessionLinkRequested{Channel: "email", Recipient: "a@example.com", Text: "Hi", Link: "https://l.test/2", SessionRef: ref}}}},
		{event: EventSessionChange, f: provider.Fields{Ref: ref, Status: "REJECTED", Kind: hub.KindKYB},
			obs: []hub.Observation{{VerificationKey: hub.VerificationKey{ProviderRef: ref}, Provider: "identomat", Kind: hub.KindKYB,
				Status: hub.StatusRejected, Final: true, Current: true, ProviderEvent: "session-change"}}},
		{event: EventVideoCall, f: provider.Fields{Ref: ref, Status: "empty"},
			events: []hub.EventDraft{{Type: hub.EventVideoCallUpdated, Data: hub.VideoCallUpdated{SessionRef: ref,
				RoomID: "RM" + token("room", ref, 32), RoomStatus: "empty"}}}},
	} {
		t.Run(tc.event, func(t *testing.T) {
			t.Parallel()
			body, h := providertest.Signed(t, New(), goldenSecrets, tc.event, tc.f)
			if err := New().Verify(goldenSecrets, h, body); err != nil {
				t.Fatalf("Verify = %v", err)
			}
			parsed, err := New().Parse(h, body)
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			if !reflect.DeepEqual(parsed.Observations, tc.obs) || !reflect.DeepEqual(parsed.Events, tc.events) {
				t.Errorf("Parse = %+v / %+v, want %+v / %+v", parsed.Observations, parsed.Events, tc.obs, tc.events)
			}
		})
	}
}

func TestSign(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, key, body, want string
	}{
		{"compact", "k1", `{"type":"x"}`, `{"callbackApiKey":"k1","type":"x"}`},
		{"indented, rest untouched", "k1", "{\n  \"type\": \"x\"\n}\n", "{\"callbackApiKey\":\"k1\",\n  \"type\": \"x\"\n}\n"},
		{"leading space", "k1", "  {\"a\":1}", "  {\"callbackApiKey\":\"k1\",\"a\":1}"},
		{"empty object", "k1", `{}`, `{"callbackApiKey":"k1"}`},
		{"empty object with space", "k1", "{ \n}", "{\"callbackApiKey\":\"k1\" \n}"},
		{"key escaped", `a"b\c<d>&`, `{"a":1}`, `{"callbackApiKey":"a\"b\\c<d>&","a":1}`},
		{"key in other case is not the key", "k1", `{"CallbackApiKey":"x"}`, `{"callbackApiKey":"k1","CallbackApiKey":"x"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			secrets := map[string]string{SecretName: tc.key}
			got, err := New().Sign(secrets, http.Header{}, []byte(tc.body))
			if err != nil {
				t.Fatalf("Sign = %v", err)
			}
			if string(got) != tc.want {
				t.Errorf("Sign = %q, want %q", got, tc.want)
			}
			if err := New().Verify(secrets, http.Header{}, got); err != nil {
				t.Errorf("Verify(Sign) = %v", err)
			}
		})
	}
	for _, tc := range []struct {
		name    string
		secrets map[string]string
		body    string
		want    string
	}{
		{"not json", goldenSecrets, `x`, "body is not a JSON object"},
		{"array", goldenSecrets, `[{}]`, "body is not a JSON object"},
		{"null", goldenSecrets, `null`, "body is not a JSON object"},
		{"trailing data", goldenSecrets, `{} {}`, "body is not a JSON object"},
		{"already signed", goldenSecrets, `{"callbackApiKey":"x"}`, "already holds callbackApiKey"},
		{"no key", map[string]string{}, `{}`, `"callback_api_key" is required`},
	} {
		_, err := New().Sign(tc.secrets, http.Header{}, []byte(tc.body))
		if hub.ErrorCode(err) != hub.EINVALID || !strings.Contains(hub.ErrorMessage(err), tc.want) {
			t.Errorf("Sign(%s) = %v, want invalid containing %q", tc.name, err, tc.want)
		}
	}
}

// FuzzSignThenParse checks what the shared harness does not: that Sign and
// Verify agree on every JSON object, that signing changes nothing but the
// key (the stored body and dedup key are those of the unsigned body), and
// that Verify and Parse agree on what a JSON object is.
func FuzzSignThenParse(f *testing.F) {
	p := New()
	for _, e := range p.Events() {
		body, _, err := p.Build(e, provider.Fields{Ref: "seed"})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	for _, s := range []string{`{}`, `{ }`, ` {"a":[1,2.50,{"b":null}]} `, `{"callbackapikey":"x"}`, `{"a":"\u00e9<&>"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		signed, err := p.Sign(goldenSecrets, http.Header{}, body)
		if err != nil {
			if hub.ErrorCode(err) != hub.EINVALID {
				t.Fatalf("Sign = %v, want nil or invalid", err)
			}
			return
		}
		if err := p.Verify(goldenSecrets, http.Header{}, signed); err != nil {
			t.Fatalf("Verify(Sign(%q)) = %v", body, err)
		}
		unsigned, uerr := p.Parse(http.Header{}, body)
		parsed, err := p.Parse(http.Header{}, signed)
		if (err == nil) != (uerr == nil) || hub.ErrorMessage(err) != hub.ErrorMessage(uerr) {
			t.Fatalf("Parse(signed) = %v, Parse(unsigned) = %v", err, uerr)
		}
		if !bytes.Equal(parsed.Body, unsigned.Body) || parsed.DedupKey != unsigned.DedupKey {
			t.Fatalf("signing changed the stored body %s -> %s or dedup key", unsigned.Body, parsed.Body)
		}
		if parsed.Body == nil {
			t.Fatalf("Parse(Sign(%q)) stored no body", body)
		}
		checkStored(t, parsed)
	})
}
