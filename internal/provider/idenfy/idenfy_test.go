package idenfy

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
	"github.com/verihook/verihook/internal/provider/providertest"
)

// secrets is a source with a default key and its own key for the manual
// webhook; the golden cases are signed with these.
var secrets = map[string]string{
	"signing_key": "idenfy-golden-key",
	"signing_keys.IDENTIFICATION_MANUAL_FINISHED": "idenfy-manual-key",
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	if got := New().Name(); got != "idenfy" {
		t.Errorf("Name() = %q, want idenfy", got)
	}
	providertest.RoundTrip(t, New(), secrets, map[string]string{"signing_key": "not-the-key"})
}

func TestGolden(t *testing.T) {
	t.Parallel()
	providertest.Golden(t, New(), secrets, "testdata")
}

// TestVector checks a signature computed outside this package: iDenfy
// publishes no test vector, so the expected value was computed once with
//
//	printf '%s' "$body" | openssl dgst -sha256 -hmac idenfy-vector-key
//
// and is checked again here with crypto/hmac directly.
func TestVector(t *testing.T) {
	t.Parallel()
	const (
		key  = "idenfy-vector-key"
		body = `{"clientId":"user-1","scanRef":"scan-1","final":true,"status":{"overall":"APPROVED"}}`
		want = "0335eaef92dac6ef29b63a745cea6def9b288991f8c328c74e681c8bd12b71c5"
	)
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(body))
	if got := hex.EncodeToString(m.Sum(nil)); got != want {
		t.Fatalf("crypto/hmac = %s, want %s (openssl)", got, want)
	}
	s := map[string]string{"signing_key": key}
	p := New()

	h := http.Header{}
	signed, err := p.Sign(s, h, []byte(body))
	if err != nil || string(signed) != body {
		t.Fatalf("Sign = %q, %v; want the body unchanged", signed, err)
	}
	if got := h.Get("Idenfy-Signature"); got != want {
		t.Errorf("Sign set Idenfy-Signature %q, want %q", got, want)
	}
	for _, sig := range []string{want, strings.ToUpper(want), " " + want + " "} {
		h := http.Header{"Idenfy-Signature": {sig}}
		if err := p.Verify(s, h, []byte(body)); err != nil {
			t.Errorf("Verify(%q) = %v", sig, err)
		}
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	body := []byte(`{"scanRef":"scan-1","final":true,"status":{"overall":"APPROVED"}}`)
	mac := func(key string) string {
		return hex.EncodeToString(provider.HMAC(sha256.New, []byte(key), body))
	}
	perEvent := map[string]string{
		"signing_key": "default-key",
		"signing_keys.IDENTIFICATION_MANUAL_FINISHED": "manual-key",
		"signing_keys.identification_cancelled":       "cancel-key",
	}
	cases := []struct {
		name    string
		secrets map[string]string
		event   string // Idenfy-Event-Type; "" for none
		sig     string // Idenfy-Signature; "" for none
		wantErr string // "" for success, else the message
	}{
		{"default key", perEvent, "", mac("default-key"), ""},
		{"default key for an event without its own", perEvent, "IDENTIFICATION_AUTO_FINISHED", mac("default-key"), ""},
		{"per-event key", perEvent, "IDENTIFICATION_MANUAL_FINISHED", mac("manual-key"), ""},
		{"per-event key, header in lower case", perEvent, "identification_manual_finished", mac("manual-key"), ""},
		{"per-event key, other spelling of cancelled", perEvent, "IDENTIFICATION_CANCELED", mac("cancel-key"), ""},
		{"default key where a per-event key applies", perEvent, "IDENTIFICATION_MANUAL_FINISHED", mac("default-key"), "signature mismatch"},
		{"per-event key on another event", perEvent, "IDENTIFICATION_AUTO_FINISHED", mac("manual-key"), "signature mismatch"},
		{"missing signature", perEvent, "", "", "missing Idenfy-Signature header"},
		{"blank signature", perEvent, "", "  ", "missing Idenfy-Signature header"},
		{"signature not hex", perEvent, "", "sha256=" + mac("default-key"), "signature is not hex"},
		{"base64 signature", perEvent, "", "3q2+7w==", "signature is not hex"},
		{"truncated signature", perEvent, "", mac("default-key")[:62], "signature mismatch"},
		{"no key configured", map[string]string{}, "", mac(""), `secret "signing_key" is not configured`},
		// Without an event type a document names, every configured key is tried.
		{"no header, per-event key", perEvent, "", mac("manual-key"), ""},
		{"no header, other per-event key", perEvent, "", mac("cancel-key"), ""},
		{"unknown header, per-event key", perEvent, "SOMETHING_NEW", mac("manual-key"), ""},
		{"unknown header, default key", perEvent, "SOMETHING_NEW", mac("default-key"), ""},
		{"no header, a key nobody configured", perEvent, "", mac("other-key"), "signature mismatch"},
		{"no header, only per-event keys", map[string]string{"signing_keys.IDENTIFICATION_EXPIRED": "expired-key"}, "", mac("expired-key"), ""},
		{"dashboard spelling chooses the per-event key", perEvent, "ID VERIFICATION MANUAL FINISHED", mac("manual-key"), ""},
		{"dashboard spelling refuses the default key", perEvent, "ID VERIFICATION MANUAL FINISHED", mac("default-key"), "signature mismatch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			if c.event != "" {
				h.Set("Idenfy-Event-Type", c.event)
			}
			if c.sig != "" {
				h.Set("Idenfy-Signature", c.sig)
			}
			err := New().Verify(c.secrets, h, body)
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("Verify = %v, want nil", err)
			case c.wantErr != "" && (hub.ErrorCode(err) != hub.EUNAUTHORIZED || hub.ErrorMessage(err) != c.wantErr):
				t.Errorf("Verify = %v, want unauthorized: %s", err, c.wantErr)
			}
		})
	}
}

// TestVerifyEventTypeInURL: the event type the ingest URL names (the
// Verihook-Event-Type header the ingest service sets) chooses the key, ahead
// of Idenfy-Event-Type, and names the event.
func TestVerifyEventTypeInURL(t *testing.T) {
	t.Parallel()
	body := []byte(`{"scanRef":"scan-9","final":false,"status":{"overall":"APPROVED"}}`)
	keys := map[string]string{"signing_key": "default-key", "signing_keys.IDENTIFICATION_MANUAL_FINISHED": "manual-key"}
	h := http.Header{provider.HeaderEventType: {"IDENTIFICATION_MANUAL_FINISHED"}, "Idenfy-Event-Type": {"IDENTIFICATION_AUTO_FINISHED"}}
	h.Set("Idenfy-Signature", hex.EncodeToString(provider.HMAC(sha256.New, []byte("manual-key"), body)))
	if err := New().Verify(keys, h, body); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	h.Set("Idenfy-Signature", hex.EncodeToString(provider.HMAC(sha256.New, []byte("default-key"), body)))
	if err := New().Verify(keys, h, body); hub.ErrorCode(err) != hub.EUNAUTHORIZED {
		t.Errorf("Verify(default key, URL names the manual webhook) = %v, want unauthorized", err)
	}
	p, err := New().Parse(h, body)
	if err != nil || p.EventName != EventManualFinished || len(p.Observations) != 1 ||
		p.Observations[0].Status != hub.StatusApproved || !p.Observations[0].Final {
		t.Errorf("Parse = %+v, %v; want the manual webhook's final decision", p, err)
	}
}

func TestSignUsesVerifyKey(t *testing.T) {
	t.Parallel()
	p := New()
	for _, event := range p.Events() {
		body, h := providertest.Built(t, p, event, provider.Fields{})
		if _, err := p.Sign(secrets, h, body); err != nil {
			t.Fatalf("Sign(%s) = %v", event, err)
		}
		wantKey := secrets["signing_key"]
		if event == EventManualFinished {
			wantKey = secrets["signing_keys.IDENTIFICATION_MANUAL_FINISHED"]
		}
		want := hex.EncodeToString(provider.HMAC(sha256.New, []byte(wantKey), body))
		if got := h.Get("Idenfy-Signature"); got != want {
			t.Errorf("%s: signature %s, want %s (key %q)", event, got, want, wantKey)
		}
	}
	if _, err := p.Sign(map[string]string{}, http.Header{}, []byte(`{}`)); hub.ErrorCode(err) != hub.EINVALID {
		t.Errorf("Sign(no key) = %v, want invalid", err)
	}
}

func TestCheckSecrets(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		secrets map[string]string
		wantErr string
	}{
		{"default key only", map[string]string{"signing_key": "k"}, ""},
		{"with per-event keys", map[string]string{"signing_key": "k", "signing_keys.IDENTIFICATION_MANUAL_FINISHED": "m",
			"signing_keys.FACIAL_AUTHENTICATION": "f"}, ""},
		{"both spellings, same key", map[string]string{"signing_key": "k", "signing_keys.IDENTIFICATION_CANCELED": "c",
			"signing_keys.IDENTIFICATION_CANCELLED": "c"}, ""},
		{"no default key", map[string]string{"signing_keys.IDENTIFICATION_MANUAL_FINISHED": "m"}, `secret "signing_key" is required`},
		{"empty default key", map[string]string{"signing_key": ""}, `secret "signing_key" is required`},
		{"empty per-event key", map[string]string{"signing_key": "k", "signing_keys.IDENTIFICATION_EXPIRED": ""},
			`secret "signing_keys.IDENTIFICATION_EXPIRED" is empty`},
		{"no event type", map[string]string{"signing_key": "k", "signing_keys.": "x"}, `secret "signing_keys." names no event type`},
		{"both spellings, different keys", map[string]string{"signing_key": "k", "signing_keys.IDENTIFICATION_CANCELED": "c",
			"signing_keys.IDENTIFICATION_CANCELLED": "d"},
			`secrets "signing_keys.IDENTIFICATION_CANCELED" and "signing_keys.IDENTIFICATION_CANCELLED" name the same event type with different keys`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := New().CheckSecrets(c.secrets)
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("CheckSecrets = %v, want nil", err)
			case c.wantErr != "" && (hub.ErrorCode(err) != hub.EINVALID || hub.ErrorMessage(err) != c.wantErr):
				t.Errorf("CheckSecrets = %v, want invalid: %s", err, c.wantErr)
			}
		})
	}
}

func TestStatusOf(t *testing.T) {
	t.Parallel()
	cases := []struct {
		event, overall string
		final          bool
		want           hub.Status // "" when the callback must be quarantined
		wantFinal      bool
	}{
		{EventAutoFinished, "APPROVED", true, hub.StatusApproved, true},
		{EventAutoFinished, "DENIED", true, hub.StatusRejected, true},
		{EventAutoFinished, "SUSPECTED", true, hub.StatusSuspected, true},
		{EventAutoFinished, "EXPIRED", true, hub.StatusExpired, true},
		{EventAutoFinished, "REVIEWING", true, hub.StatusReview, false}, // a final status is a decision
		{EventAutoFinished, "ACTIVE", true, hub.StatusPending, false},
		{EventAutoFinished, "NOT_REVIEWED", true, hub.StatusReview, false},
		{EventAutoFinished, "", true, "", false},
		{EventAutoFinished, "APPROVED", false, hub.StatusReview, false},
		{EventAutoFinished, "DENIED", false, hub.StatusReview, false},
		{EventAutoFinished, "NONSENSE", false, hub.StatusReview, false},
		{EventManualFinished, "APPROVED", true, hub.StatusApproved, true},
		{EventManualFinished, "DENIED", true, hub.StatusRejected, true},
		{EventManualFinished, "SUSPECTED", true, hub.StatusSuspected, true},
		{EventManualFinished, "DENIED", false, hub.StatusRejected, true},
		{EventManualFinished, "REVIEWING", true, hub.StatusReview, false},
		{EventManualFinished, "DELETED", true, "", false},
		{EventExpired, "EXPIRED", true, hub.StatusExpired, true},
		{EventExpired, "APPROVED", false, hub.StatusExpired, true},
		{EventCancelled, "", false, hub.StatusCanceled, true},
		{EventCancelled, "DENIED", true, hub.StatusCanceled, true},
		{EventResubmitted, "APPROVED", true, hub.StatusApproved, true},
		{EventResubmitted, "DENIED", true, hub.StatusRejected, true},
		{EventResubmitted, "SUSPECTED", true, hub.StatusSuspected, true},
		{EventResubmitted, "REVIEWING", true, hub.StatusReview, false},
		{EventResubmitted, "", true, hub.StatusReview, false},
		{EventResubmitted, "APPROVED", false, hub.StatusReview, false},
		{EventIdentification, "APPROVED", false, hub.StatusReview, false},
		{EventIdentification, "APPROVED", true, hub.StatusApproved, true},
		{EventIdentification, "DENIED", true, hub.StatusRejected, true},
		{EventIdentification, "SUSPECTED", true, hub.StatusSuspected, true},
		{EventIdentification, "EXPIRED", true, hub.StatusExpired, true},
		{EventIdentification, "DELETED", true, "", false},
		{"FACIAL_AUTHENTICATION", "APPROVED", true, "", false},
	}
	for _, c := range cases {
		got, final, err := statusOf(c.event, c.overall, c.final)
		if c.want == "" {
			if hub.ErrorCode(err) != hub.EUNRECOGNIZED {
				t.Errorf("statusOf(%s, %q, %v) = %q, %v, %v; want unrecognized", c.event, c.overall, c.final, got, final, err)
			}
			continue
		}
		if err != nil || got != c.want || final != c.wantFinal {
			t.Errorf("statusOf(%s, %q, %v) = %q, %v, %v; want %q, %v", c.event, c.overall, c.final, got, final, err, c.want, c.wantFinal)
		}
	}
}

// TestParse covers the lenient decoding and the derivations the golden cases
// do not.
func TestParse(t *testing.T) {
	t.Parallel()
	at := func(sec int64) time.Time { return time.Unix(sec, 0).UTC() }
	cases := []struct {
		name       string
		event      string // Idenfy-Event-Type header
		body       string
		wantEvent  string
		wantErr    string // the unrecognized message; "" for success
		wantStatus hub.Status
		wantFinal  bool
		wantTime   time.Time
		wantReason []string
		wantClient string
	}{
		{name: "finishTime as a numeric string", body: `{"scanRef":"s","final":true,"finishTime":"1700000000","status":{"overall":"APPROVED"}}`,
			wantEvent: "IDENTIFICATION", wantStatus: hub.StatusApproved, wantFinal: true, wantTime: at(1700000000)},
		{name: "finishTime as RFC 3339", body: `{"scanRef":"s","final":true,"finishTime":"2026-01-02T03:04:05Z","status":{"overall":"APPROVED"}}`,
			wantEvent: "IDENTIFICATION", wantStatus: hub.StatusApproved, wantFinal: true, wantTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{name: "finishTime as a float", body: `{"scanRef":"s","final":true,"finishTime":1700000000.75,"status":{"overall":"APPROVED"}}`,
			wantEvent: "IDENTIFICATION", wantStatus: hub.StatusApproved, wantFinal: true, wantTime: at(1700000000).Add(750 * time.Millisecond)},
		{name: "startTime and finishTime floats inside status (2019)", body: `{"scanRef":"s","status":{"overall":"DENIED","manualFace":"FACE_MISMATCH","startTime":1554726960.1,"finishTime":1554727002.5}}`,
			wantEvent: "IDENTIFICATION", wantStatus: hub.StatusRejected, wantFinal: true, wantTime: at(1554727002).Add(500 * time.Millisecond), wantReason: []string{"FACE_MISMATCH"}},
		{name: "dashboard spelling", event: "ID VERIFICATION AUTO FINISHED", body: `{"scanRef":"s","final":true,"status":{"overall":"APPROVED"}}`,
			wantEvent: "ID VERIFICATION AUTO FINISHED", wantStatus: hub.StatusApproved, wantFinal: true},
		{name: "requirements spelling of the manual webhook", event: "ID VERIFICATION MANUAL FINISH", body: `{"scanRef":"s","final":false,"status":{"overall":"DENIED"}}`,
			wantEvent: "ID VERIFICATION MANUAL FINISH", wantStatus: hub.StatusRejected, wantFinal: true},
		{name: "ID_VERIFICATION spelling", event: "ID_VERIFICATION_AUTO_FINISHED", body: `{"scanRef":"s","final":false,"status":{"overall":"APPROVED"}}`,
			wantEvent: "ID_VERIFICATION_AUTO_FINISHED", wantStatus: hub.StatusReview, wantFinal: false},
		{name: "OpenAPI operation name", event: "identificationExpired", body: `{"scanRef":"s","final":true,"status":{"overall":"DENIED"}}`,
			wantEvent: "identificationExpired", wantStatus: hub.StatusExpired, wantFinal: true},
		{name: "legacy dashboard name", event: "ID VERIFICATION", body: `{"scanRef":"s","final":true,"status":{"overall":"SUSPECTED"}}`,
			wantEvent: "ID VERIFICATION", wantStatus: hub.StatusSuspected, wantFinal: true},
		{name: "unknown event type decided by the body", event: "IDENTIFICATION_SOMETHING_NEW", body: `{"scanRef":"s","final":true,"status":{"overall":"APPROVED"}}`,
			wantEvent: "IDENTIFICATION_SOMETHING_NEW", wantStatus: hub.StatusApproved, wantFinal: true},
		{name: "unknown event type, preliminary body", event: "NEW", body: `{"scanRef":"s","final":false,"status":{"overall":"DENIED"}}`,
			wantEvent: "NEW", wantStatus: hub.StatusReview, wantFinal: false},
		{name: "unknown event type, old body with a manual result", event: "NEW", body: `{"scanRef":"s","status":{"overall":"DENIED","manualDocument":"DOC_EXPIRED"}}`,
			wantEvent: "NEW", wantStatus: hub.StatusRejected, wantFinal: true, wantReason: []string{"DOC_EXPIRED"}},
		{name: "unknown event type, expired body", event: "NEW", body: `{"scanRef":"s","final":false,"status":{"overall":"EXPIRED"}}`,
			wantEvent: "NEW", wantStatus: hub.StatusExpired, wantFinal: true},
		{name: "resubmitted with a final decision", event: EventResubmitted, body: `{"scanRef":"s","final":true,"status":{"overall":"APPROVED"}}`,
			wantEvent: EventResubmitted, wantStatus: hub.StatusApproved, wantFinal: true},
		{name: "finishTime inside status", body: `{"scanRef":"s","final":true,"status":{"overall":"APPROVED","finishTime":1600000000}}`,
			wantEvent: "IDENTIFICATION", wantStatus: hub.StatusApproved, wantFinal: true, wantTime: at(1600000000)},
		{name: "top-level finishTime wins", body: `{"scanRef":"s","final":true,"finishTime":1700000000,"status":{"overall":"APPROVED","finishTime":1600000000}}`,
			wantEvent: "IDENTIFICATION", wantStatus: hub.StatusApproved, wantFinal: true, wantTime: at(1700000000)},
		{name: "unreadable finishTimes are no timestamp", body: `{"scanRef":"s","final":true,"finishTime":{"x":1},"status":{"overall":"APPROVED","finishTime":99999999999999}}`,
			wantEvent: "IDENTIFICATION", wantStatus: hub.StatusApproved, wantFinal: true},
		{name: "negative and zero finishTime", body: `{"scanRef":"s","final":true,"finishTime":-5,"status":{"overall":"APPROVED","finishTime":"0"}}`,
			wantEvent: "IDENTIFICATION", wantStatus: hub.StatusApproved, wantFinal: true},
		{name: "nulls everywhere", event: EventCancelled, body: `{"clientId":null,"scanRef":"s","final":null,"finishTime":null,"status":null,"data":null,"AML":null}`,
			wantEvent: EventCancelled, wantStatus: hub.StatusCanceled, wantFinal: true},
		{name: "numeric clientId and scanRef", body: `{"clientId":42,"scanRef":1234,"final":true,"status":{"overall":"denied"}}`,
			wantEvent: "IDENTIFICATION", wantStatus: hub.StatusRejected, wantFinal: true, wantClient: "42"},
		{name: "final as a string", event: EventAutoFinished, body: `{"scanRef":"s","final":"TRUE","status":{"overall":"APPROVED"}}`,
			wantEvent: EventAutoFinished, wantStatus: hub.StatusApproved, wantFinal: true},
		{name: "no final flag, no manual result: automatic", body: `{"scanRef":"s","status":{"overall":"APPROVED","autoFace":"FACE_MATCH","manualFace":null}}`,
			wantEvent: "IDENTIFICATION", wantStatus: hub.StatusReview, wantFinal: false},
		{name: "no final flag, manual result: final", body: `{"scanRef":"s","status":{"overall":"APPROVED","manualDocument":"DOC_VALIDATED"}}`,
			wantEvent: "IDENTIFICATION", wantStatus: hub.StatusApproved, wantFinal: true},
		{name: "no final flag on auto finished", event: EventAutoFinished, body: `{"scanRef":"s","status":{"overall":"APPROVED"}}`,
			wantEvent: EventAutoFinished, wantStatus: hub.StatusReview, wantFinal: false},
		{name: "expired derived from the body", body: `{"scanRef":"s","final":false,"status":{"overall":"EXPIRED"}}`,
			wantEvent: EventExpired, wantStatus: hub.StatusExpired, wantFinal: true},
		{name: "header spelling kept", event: "identification_canceled", body: `{"scanRef":"s"}`,
			wantEvent: "identification_canceled", wantStatus: hub.StatusCanceled, wantFinal: true},
		{name: "reasons in order without repeats", event: EventManualFinished,
			body: `{"scanRef":"s","status":{"overall":"DENIED","fraudTags":["DUPLICATE_FACE","VIRTUAL_CAMERA"],"mismatchTags":["NAME","DUPLICATE_FACE"],
				"suspicionReasons":"FACE_SUSPECTED","autoFace":"FACE_MISMATCH","manualFace":"FACE_MISMATCH","autoDocument":"DOC_VALIDATED","manualDocument":"DOC_EXPIRED"}}`,
			wantEvent: EventManualFinished, wantStatus: hub.StatusRejected, wantFinal: true,
			wantReason: []string{"DUPLICATE_FACE", "VIRTUAL_CAMERA", "NAME", "FACE_SUSPECTED", "FACE_MISMATCH", "DOC_EXPIRED"}},
		{name: "names in another case, as encoding/json matches them", event: EventManualFinished,
			body:      `{"ScanRef":"s","FINAL":true,"Status":{"Overall":"DENIED","fraudtags":["X"]}}`,
			wantEvent: EventManualFinished, wantStatus: hub.StatusRejected, wantFinal: true, wantReason: []string{"X"}},
		{name: "odd tag entries skipped", event: EventManualFinished,
			body:      `{"scanRef":"s","status":{"overall":"SUSPECTED","fraudTags":[null,"",{"a":1},true,"DATA_BLACKLISTED",7],"mismatchTags":{"x":1}}}`,
			wantEvent: EventManualFinished, wantStatus: hub.StatusSuspected, wantFinal: true, wantReason: []string{"DATA_BLACKLISTED", "7"}},

		{name: "not JSON", event: EventAutoFinished, body: `scanRef=s`, wantEvent: EventAutoFinished, wantErr: "body is not valid JSON"},
		{name: "trailing garbage", body: `{"scanRef":"s"} x`, wantErr: "body is not valid JSON"},
		{name: "an array", body: `[{"scanRef":"s"}]`, wantErr: "body is an array, not a JSON object"},
		{name: "a number", body: `12`, wantErr: "body is a number, not a JSON object"},
		{name: "status is a string", body: `{"scanRef":"s","status":"APPROVED"}`, wantErr: `field "status" is a string, not of the expected type`},
		{name: "scanRef is an object", body: `{"scanRef":{"id":"s"}}`, wantErr: `field "scanRef" is an object, not of the expected type`},
		{name: "final is a number", body: `{"scanRef":"s","final":1}`, wantErr: `field "final" is a number, not of the expected type`},
		{name: "status.overall is an array", body: `{"scanRef":"s","status":{"overall":[]}}`, wantErr: `field "status.overall" is an array, not of the expected type`},
		{name: "null body", body: `null`, wantEvent: "IDENTIFICATION", wantErr: "scanRef is missing"},
		{name: "blank scanRef", event: EventExpired, body: `{"scanRef":"  "}`, wantEvent: EventExpired, wantErr: "scanRef is missing"},
		{name: "unknown overall on a final result", event: EventManualFinished, body: `{"scanRef":"s","status":{"overall":"ARCHIVED"}}`,
			wantEvent: EventManualFinished, wantErr: `unknown status.overall "ARCHIVED" for IDENTIFICATION_MANUAL_FINISHED`},
		{name: "unknown event type, nothing to decide from", event: "COMPANY_REVIEW", body: `{"scanRef":"s","final":true}`, wantEvent: "COMPANY_REVIEW",
			wantErr: `unsupported event type "COMPANY_REVIEW" and no status.overall to decide from`},
		{name: "unknown event type of another shape", event: "COMPANY_REVIEW", body: `{"scanRef":"s","status":"COMPLETED"}`, wantEvent: "COMPANY_REVIEW",
			wantErr: `unsupported event type "COMPANY_REVIEW": field "status" is a string, not of the expected type`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			if c.event != "" {
				h.Set("Idenfy-Event-Type", c.event)
			}
			p, err := New().Parse(h, []byte(c.body))
			if p.EventName != c.wantEvent {
				t.Errorf("EventName = %q, want %q", p.EventName, c.wantEvent)
			}
			if p.DedupKey == "" || !bytes.Equal(p.Body, []byte(c.body)) {
				t.Errorf("DedupKey %q, Body %q: want a key and the body unchanged", p.DedupKey, p.Body)
			}
			if c.wantErr != "" {
				if hub.ErrorCode(err) != hub.EUNRECOGNIZED || hub.ErrorMessage(err) != c.wantErr {
					t.Errorf("Parse = %v, want unrecognized: %s", err, c.wantErr)
				}
				if len(p.Observations) != 0 {
					t.Errorf("observations %+v with an error", p.Observations)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			if len(p.Observations) != 1 {
				t.Fatalf("%d observations, want 1", len(p.Observations))
			}
			o := p.Observations[0]
			if o.Status != c.wantStatus || o.Final != c.wantFinal || !o.ProviderTime.Equal(c.wantTime) ||
				!slices.Equal(o.Reasons, c.wantReason) || o.ApplicantRef != c.wantClient || o.ProviderEvent != c.wantEvent ||
				o.Kind != hub.KindKYC || o.Provider != Name || o.ProviderRef == "" {
				t.Errorf("observation %+v\nwant status %s final %v time %v reasons %q applicant %q event %s",
					o, c.wantStatus, c.wantFinal, c.wantTime, c.wantReason, c.wantClient, c.wantEvent)
			}
		})
	}
}

func TestDedupKey(t *testing.T) {
	t.Parallel()
	p := New()
	key := func(event, body string) string {
		t.Helper()
		h := http.Header{}
		if event != "" {
			h.Set("Idenfy-Event-Type", event)
		}
		parsed, err := p.Parse(h, []byte(body))
		if err != nil {
			t.Fatalf("Parse(%s) = %v", body, err)
		}
		return parsed.DedupKey
	}
	prelim := `{"scanRef":"s","final":false,"status":{"overall":"APPROVED"}}`
	final := `{"scanRef":"s","final":true,"status":{"overall":"APPROVED"}}`
	respaced := "{ \"status\": {\"overall\": \"APPROVED\"},\n  \"final\": false, \"scanRef\": \"s\" }"

	if key(EventAutoFinished, prelim) == key(EventManualFinished, final) {
		t.Error("preliminary and final webhook of one scanRef share a dedup key")
	}
	if key(EventAutoFinished, prelim) == key(EventAutoFinished, final) {
		t.Error("final:false and final:true bodies share a dedup key")
	}
	if key(EventAutoFinished, final) == key(EventManualFinished, final) {
		t.Error("the same body under two event types shares a dedup key")
	}
	if key(EventAutoFinished, prelim) != key(EventAutoFinished, prelim) {
		t.Error("a byte-identical retry has another dedup key")
	}
	if key(EventAutoFinished, prelim) != key(EventAutoFinished, respaced) {
		t.Error("a retry differing only in key order and spacing has another dedup key")
	}
	big1 := `{"scanRef":"s","final":true,"n":9007199254740993,"status":{"overall":"APPROVED"}}`
	big2 := `{"scanRef":"s","final":true,"n":9007199254740992,"status":{"overall":"APPROVED"}}`
	if key("", big1) == key("", big2) {
		t.Error("numbers beyond float precision collide")
	}
}

func TestBuild(t *testing.T) {
	t.Parallel()
	p := New()
	no := false
	for _, event := range p.Events() {
		body, h := providertest.Built(t, p, event, provider.Fields{})
		again, _ := providertest.Built(t, p, event, provider.Fields{})
		if !bytes.Equal(body, again) {
			t.Errorf("%s: two builds differ", event)
		}
		if !json.Valid(body) || bytes.HasSuffix(body, []byte("\n")) {
			t.Errorf("%s: body is not compact valid JSON", event)
		}
		if bytes.Contains(body, []byte(`\u0026`)) {
			t.Errorf("%s: & escaped in URLs", event)
		}
		wantHeader := event
		if event == EventIdentification {
			wantHeader = ""
		}
		if got := h.Get("Idenfy-Event-Type"); got != wantHeader || len(h.Values("Idenfy-Event-Type")) > 1 {
			t.Errorf("%s: Idenfy-Event-Type %q, want %q", event, got, wantHeader)
		}
		if h.Get("Content-Type") != "application/json" {
			t.Errorf("%s: Content-Type %q", event, h.Get("Content-Type"))
		}
	}

	body, _ := providertest.Built(t, p, "identification_auto_finished", provider.Fields{})
	if n := len(body); n < 2000 || n > 3200 {
		t.Errorf("default body is %d bytes, want about 2-3 KB", n)
	}

	cases := []struct {
		name   string
		event  string
		f      provider.Fields
		status hub.Status
		final  bool
		time   time.Time
		reason []string
	}{
		{"defaults", EventAutoFinished, provider.Fields{}, hub.StatusApproved, true, defaultFinish, nil},
		{"preliminary", EventAutoFinished, provider.Fields{Final: &no}, hub.StatusReview, false, defaultFinish, nil},
		{"denied", EventManualFinished, provider.Fields{Status: "denied"}, hub.StatusRejected, true, defaultFinish, []string{"FACE_MISMATCH"}},
		{"suspected default tags", EventManualFinished, provider.Fields{Status: "SUSPECTED"}, hub.StatusSuspected, true, defaultFinish,
			[]string{"DUPLICATE_FACE", "NAME"}},
		{"reasons are fraud tags", EventAutoFinished, provider.Fields{Status: "SUSPECTED", Reasons: []string{"VIRTUAL_CAMERA"}},
			hub.StatusSuspected, true, defaultFinish, []string{"VIRTUAL_CAMERA"}},
		{"time", EventIdentification, provider.Fields{Time: time.Date(2025, 3, 1, 9, 30, 0, 0, time.FixedZone("x", 3600))},
			hub.StatusApproved, true, time.Date(2025, 3, 1, 8, 30, 0, 0, time.UTC), nil},
		{"expired", EventExpired, provider.Fields{}, hub.StatusExpired, true, defaultFinish, nil},
		{"cancelled", EventCanceled, provider.Fields{}, hub.StatusCanceled, true, defaultFinish, nil},
		{"resubmitted pending review", EventResubmitted, provider.Fields{Final: &no}, hub.StatusReview, false, defaultFinish, nil},
		{"legacy expired derives its event", EventIdentification, provider.Fields{Status: "EXPIRED"}, hub.StatusExpired, true, defaultFinish, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := c.f
			f.Ref, f.ApplicantRef = "scan-77", "client-9"
			body, h := providertest.Built(t, p, c.event, f)
			parsed, err := p.Parse(h, body)
			if err != nil || len(parsed.Observations) != 1 {
				t.Fatalf("Parse = %+v, %v", parsed, err)
			}
			o := parsed.Observations[0]
			if o.ProviderRef != "scan-77" || o.ApplicantRef != "client-9" || o.Status != c.status || o.Final != c.final ||
				!o.ProviderTime.Equal(c.time) || !slices.Equal(o.Reasons, c.reason) {
				t.Errorf("observation %+v\nwant status %s final %v time %v reasons %q", o, c.status, c.final, c.time, c.reason)
			}
		})
	}

	if _, _, err := p.Build(EventAutoFinished, provider.Fields{Status: "ARCHIVED"}); hub.ErrorCode(err) != hub.EINVALID {
		t.Errorf("Build(status ARCHIVED) = %v, want invalid", err)
	}
	if _, _, err := p.Build("COMPANY_REVIEW", provider.Fields{}); hub.ErrorCode(err) != hub.EINVALID {
		t.Errorf("Build(COMPANY_REVIEW) = %v, want invalid", err)
	}
}

func FuzzVerifyParse(f *testing.F) {
	providertest.Fuzz(f, New(), secrets)
}

func BenchmarkVerifyParse(b *testing.B) {
	p := New()
	body, h := providertest.Signed(b, p, secrets, EventManualFinished, provider.Fields{Status: "SUSPECTED"})
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

// TestDocumentedSpellingsAreCanonical: canonicalEvent returns a documented
// spelling as it is without respelling it, which must give the same.
func TestDocumentedSpellingsAreCanonical(t *testing.T) {
	t.Parallel()
	for _, e := range events {
		want := respell(e)
		if got := canonicalEvent(e); got != want {
			t.Errorf("canonicalEvent(%q) = %q, respelled %q", e, got, want)
		}
	}
}
