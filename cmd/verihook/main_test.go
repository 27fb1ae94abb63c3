package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/dispatch"
	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
	"github.com/verihook/verihook/internal/testkit"
)

// testSecrets are the secrets of the test sources, by provider.
var testSecrets = map[string]string{
	"identomat": "identomat-callback-key",
	"idenfy":    "idenfy-signing-key",
	"kycaid":    "kycaid-api-token",
	"fractal":   "fractal-webhook-secret",
}

// testConfig declares one source per provider, named <provider>-main.
func testConfig(t *testing.T) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Sources = []SourceConfig{
		{ID: "identomat-main", Provider: "identomat", Secrets: map[string]any{"callback_api_key": testSecrets["identomat"]}},
		{ID: "idenfy-main", Provider: "idenfy", Secrets: map[string]any{"signing_key": testSecrets["idenfy"]}},
		{ID: "kycaid-main", Provider: "kycaid", Secrets: map[string]any{"api_token": testSecrets["kycaid"]}},
		{ID: "fractal-main", Provider: "fractal", Secrets: map[string]any{"webhook_secret": testSecrets["fractal"]}},
	}
	return cfg
}

// startMain runs the program in-process and stops it when the test ends.
func startMain(t *testing.T, cfg Config) *Main {
	t.Helper()
	m := &Main{Config: cfg}
	if err := m.Run(context.Background()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// token creates an API token with role in m's store.
func token(t *testing.T, m *Main, role hub.Role) string {
	t.Helper()
	secret := hub.NewTokenSecret()
	now := time.Now()
	if err := m.Store.CreateToken(context.Background(), hub.Token{ID: hub.NewID("tok", now), Role: role, Hash: hub.HashToken(secret), CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	return secret
}

// signed builds and signs one provider callback.
func signed(t *testing.T, providerName, event string, f provider.Fields) ([]byte, http.Header) {
	t.Helper()
	p, err := registry().Get(providerName)
	if err != nil {
		t.Fatal(err)
	}
	body, h, err := p.Build(event, f)
	if err != nil {
		t.Fatalf("Build %s %s: %v", providerName, event, err)
	}
	if h == nil {
		h = http.Header{}
	}
	body, err = p.Sign(simSecrets(testSecrets[providerName]), h, body)
	if err != nil {
		t.Fatal(err)
	}
	return body, h
}

// postRaw sends body with headers to url and decodes the JSON answer into out.
func postRaw(t *testing.T, url string, h http.Header, body []byte, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("POST %s: answer %q is not JSON: %v", url, raw, err)
		}
	}
	return resp.StatusCode
}

// getJSON GETs url with a bearer token and decodes the answer into out.
func getJSON(t *testing.T, url, tok string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("GET %s: answer %q is not JSON: %v", url, raw, err)
		}
	}
	return resp.StatusCode
}

type ingestAnswer struct {
	Status    string `json:"status"`
	MessageID string `json:"message_id"`
	Duplicate bool   `json:"duplicate"`
	Error     string `json:"error"`
}

type verificationList struct {
	Data       []hub.Verification `json:"data"`
	NextCursor string             `json:"next_cursor"`
}

type messageList struct {
	Data       []hub.Message `json:"data"`
	NextCursor string        `json:"next_cursor"`
}

// verificationOf returns the one verification with provider ref (and level).
func verificationOf(t *testing.T, base, tok, source, ref, level string) hub.Verification {
	t.Helper()
	var l verificationList
	url := fmt.Sprintf("%s/api/v1/verifications?source=%s&provider_ref=%s", base, source, ref)
	if level != "" {
		url += "&level=" + level
	}
	if code := getJSON(t, url, tok, &l); code != http.StatusOK {
		t.Fatalf("GET %s = %d", url, code)
	}
	if len(l.Data) != 1 {
		t.Fatalf("GET %s: %d verifications, want 1", url, len(l.Data))
	}
	var v hub.Verification
	if code := getJSON(t, base+"/api/v1/verifications/"+l.Data[0].ID, tok, &v); code != http.StatusOK {
		t.Fatalf("GET verification = %d", code)
	}
	return v
}

// TestIngestResponses walks the table of SPEC section 3, one row a case.
func TestIngestResponses(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.MaxBodyBytes = 4096
	m := startMain(t, cfg)
	base := "http://" + m.Addr()
	tok := token(t, m, hub.RoleViewer)
	rejected := func(t *testing.T, source string, status int) {
		t.Helper()
		var l messageList
		getJSON(t, base+"/api/v1/messages?status=rejected&source="+source, tok, &l)
		for _, msg := range l.Data {
			if msg.HTTPStatus == status && msg.Reason != "" && msg.Preview == nil && msg.RemoteAddr == "127.0.0.1" {
				return
			}
		}
		t.Errorf("no audit row for a %d at source %q: %+v", status, source, l.Data)
	}

	body, h := signed(t, "idenfy", "IDENTIFICATION_AUTO_FINISHED", provider.Fields{Ref: "scan-table"})
	url := base + "/ingest/idenfy-main"

	var first, dup ingestAnswer
	if code := postRaw(t, url, h, body, &first); code != 200 || first.Status != "accepted" || first.Duplicate || first.MessageID == "" {
		t.Fatalf("authenticated: %d %+v, want 200 accepted", code, first)
	}
	if code := postRaw(t, url, h, body, &dup); code != 200 || !dup.Duplicate || dup.MessageID != first.MessageID {
		t.Fatalf("duplicate: %d %+v, want 200 duplicate of %s", code, dup, first.MessageID)
	}

	qbody, qh := signed(t, "identomat", "session-change", provider.Fields{Ref: "sess-q"})
	qbody = bytes.Replace(qbody, []byte(`"session-change"`), []byte(`"brand-new-event"`), 1)
	var q ingestAnswer
	if code := postRaw(t, base+"/ingest/identomat-main", qh, qbody, &q); code != 200 || q.Status != "quarantined" {
		t.Fatalf("not understood: %d %+v, want 200 quarantined", code, q)
	}
	var qm hub.Message
	getJSON(t, base+"/api/v1/messages/"+q.MessageID, tok, &qm)
	if qm.Status != hub.MessageQuarantined || qm.Reason == "" || qm.EventName != "brand-new-event" {
		t.Errorf("quarantined message reads %+v", qm)
	}
	if bytes.Contains(qm.Preview, []byte(testSecrets["identomat"])) {
		t.Error("the quarantined message's preview holds the callback key")
	}

	tampered := bytes.Replace(body, []byte("scan-table"), []byte("scan-tampr"), 1)
	var bad ingestAnswer
	if code := postRaw(t, url, h, tampered, &bad); code != 401 || bad.Error == "" {
		t.Fatalf("bad signature: %d %+v, want 401 with an error", code, bad)
	}
	rejected(t, "idenfy-main", 401)
	if code := postRaw(t, url, http.Header{}, body, &bad); code != 401 {
		t.Fatalf("missing signature: %d, want 401", code)
	}

	if code := postRaw(t, base+"/ingest/nobody", h, body, &bad); code != 404 || bad.Error == "" {
		t.Fatalf("unknown source: %d %+v, want 404", code, bad)
	}
	rejected(t, "nobody", 404)

	big := append([]byte(`{"pad":"`), bytes.Repeat([]byte("x"), 5000)...)
	if code := postRaw(t, url, h, append(big, `"}`...), &bad); code != 413 {
		t.Fatalf("oversized body: %d, want 413", code)
	}
	rejected(t, "idenfy-main", 413)

	var l messageList
	getJSON(t, base+"/api/v1/messages?source=idenfy-main&status=accepted", tok, &l)
	if len(l.Data) != 1 {
		t.Errorf("%d accepted idenfy messages stored, want 1 (the duplicate and the refused ones store nothing)", len(l.Data))
	}

	// Storage unavailable: the store goes away under a running server.
	m.Store.Close()
	body2, h2 := signed(t, "idenfy", "IDENTIFICATION_AUTO_FINISHED", provider.Fields{Ref: "scan-down"})
	if code := postRaw(t, url, h2, body2, &bad); code != 503 {
		t.Fatalf("storage unavailable: %d %+v, want 503", code, bad)
	}
}

func TestAPIAuthAndPaging(t *testing.T) {
	t.Parallel()
	m := startMain(t, testConfig(t))
	base := "http://" + m.Addr()
	viewer := token(t, m, hub.RoleViewer)
	for i := range 7 {
		body, h := signed(t, "kycaid", "VERIFICATION_STATUS_CHANGED", provider.Fields{Ref: fmt.Sprintf("ver-%d", i), ApplicantRef: "user-7"})
		if code := postRaw(t, base+"/ingest/kycaid-main", h, body, nil); code != 200 {
			t.Fatalf("ingest %d: %d", i, code)
		}
	}
	if code := getJSON(t, base+"/api/v1/verifications", "", nil); code != 401 {
		t.Errorf("no token: %d, want 401", code)
	}
	if code := getJSON(t, base+"/api/v1/verifications", "vh_not-a-token", nil); code != 401 {
		t.Errorf("bad token: %d, want 401", code)
	}
	if code := getJSON(t, base+"/api/v1/verifications?limit=501", viewer, nil); code != 400 {
		t.Errorf("limit 501: %d, want 400", code)
	}
	if code := getJSON(t, base+"/api/v1/verifications?status=done", viewer, nil); code != 400 {
		t.Errorf("bad status filter: %d, want 400", code)
	}
	if code := getJSON(t, base+"/api/v1/verifications/ver_nope", viewer, nil); code != 404 {
		t.Errorf("unknown verification: %d, want 404", code)
	}
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		var l verificationList
		url := base + "/api/v1/verifications?applicant_ref=user-7&limit=3&cursor=" + cursor
		if code := getJSON(t, url, viewer, &l); code != 200 {
			t.Fatalf("GET %s = %d", url, code)
		}
		pages++
		for _, v := range l.Data {
			if seen[v.ID] {
				t.Errorf("verification %s on two pages", v.ID)
			}
			seen[v.ID] = true
		}
		if l.NextCursor == "" {
			break
		}
		cursor = l.NextCursor
	}
	if len(seen) != 7 || pages != 3 {
		t.Errorf("paged %d verifications in %d pages, want 7 in 3", len(seen), pages)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code := getJSON(t, base+path, "", nil); code != 200 {
			t.Errorf("%s = %d", path, code)
		}
	}
}

// TestSimulateRoundTrip sends every event of every provider with the
// simulate command to the real server and reads the result back.
func TestSimulateRoundTrip(t *testing.T) {
	t.Parallel()
	m := startMain(t, testConfig(t))
	base := "http://" + m.Addr()
	tok := token(t, m, hub.RoleViewer)
	reg := registry()
	for _, name := range reg.Names() {
		p := reg[name]
		for i, event := range p.Events() {
			ref := fmt.Sprintf("%s-ref-%d", name, i)
			var out, errOut bytes.Buffer
			args := []string{"simulate", name, event, "--to", base + "/ingest/" + name + "-main", "--secret", testSecrets[name], "--ref", ref}
			if code := run(context.Background(), args, &out, &errOut, func(string) string { return "" }); code != 0 {
				t.Fatalf("simulate %s %s: exit %d: %s %s", name, event, code, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), `"status":"accepted"`) {
				t.Fatalf("simulate %s %s printed %q, want an accepted answer", name, event, out.String())
			}
			var l messageList
			getJSON(t, base+"/api/v1/messages?source="+name+"-main&limit=1", tok, &l)
			if len(l.Data) != 1 || !strings.EqualFold(l.Data[0].EventName, event) || l.Data[0].Status != hub.MessageAccepted {
				t.Fatalf("%s %s: newest message %+v", name, event, l.Data)
			}
			var msg hub.Message
			getJSON(t, base+"/api/v1/messages/"+l.Data[0].ID, tok, &msg)
			if len(msg.Events) == 0 {
				t.Errorf("%s %s produced no event", name, event)
			}
			// The preview is rendered on read, in the list as in the message.
			if !json.Valid(msg.Preview) || !bytes.Equal(msg.Preview, l.Data[0].Preview) {
				t.Errorf("%s %s: preview %s in the message, %s in the list", name, event, msg.Preview, l.Data[0].Preview)
			}
			if name == "idenfy" && !bytes.Contains(msg.Preview, []byte(`"[redacted]"`)) {
				t.Errorf("%s %s: preview %s redacts nothing", name, event, msg.Preview)
			}
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"simulate", "fractal", "--list"}, &out, &errOut, nil); code != 0 || !strings.Contains(out.String(), "verification_approved") {
		t.Errorf("simulate --list: exit %d, %q", code, out.String())
	}
}

func jsonDecode(resp *http.Response, out any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

// TestLogsHoldNoPersonalData runs the server at debug level through OTP,
// verification and refused requests, and checks that the log holds neither
// a secret nor an OTP text nor a recipient.
func TestLogsHoldNoPersonalData(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.LogLevel = "debug"
	// The OTP is dispatched to a gateway that refuses it, echoing the number.
	const otpText, phone = "Your code is 493817", "+995599123456"
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"message":"`+phone+` is not a mobile number"}`, http.StatusBadRequest)
	}))
	t.Cleanup(gw.Close)
	cfg.AllowPrivateEndpoints = true
	cfg.Sources[0].Dispatch = &dispatch.Config{SMS: &dispatch.SMSConfig{Preset: "twilio", URL: gw.URL, AccountSID: "AC1", AuthToken: "t", From: "+1555"}}
	var logs testkit.Buffer
	m := &Main{Config: cfg, LogOutput: &logs}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	base := "http://" + m.Addr()
	body, h := signed(t, "identomat", "one-time-password", provider.Fields{Ref: "s-log", Text: otpText, Recipient: phone})
	if code := postRaw(t, base+"/ingest/identomat-main", h, body, nil); code != 200 {
		t.Fatalf("OTP: %d", code)
	}
	waitFor(t, "the dispatch's failure logged", 30*time.Second, func() bool { return strings.Contains(logs.String(), "dispatch failed") })
	body, h = signed(t, "idenfy", "IDENTIFICATION_MANUAL_FINISHED", provider.Fields{Ref: "scan-log"})
	postRaw(t, base+"/ingest/idenfy-main", h, body, nil)
	h.Set("Idenfy-Signature", "00")
	postRaw(t, base+"/ingest/idenfy-main", h, body, nil)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "message rejected") || !strings.Contains(out, "message received") {
		t.Fatalf("the log does not show the traffic at debug level:\n%s", out)
	}
	leaks := []string{otpText, "493817", phone, "JONAS"}
	for _, s := range testSecrets {
		leaks = append(leaks, s)
	}
	for _, leak := range leaks {
		if strings.Contains(out, leak) {
			t.Errorf("the log holds %q", leak)
		}
	}
}
