package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/verihook/verihook/internal/hub"
)

// examplesDir holds the scenarios and the configuration they play against.
const examplesDir = "../../examples"

// startExamples runs verihook with examples/verihook.yaml, on a free port
// and a temporary data dir, with one endpoint that takes every event.
func startExamples(t *testing.T) (*Main, *endpointReceiver) {
	t.Helper()
	cfg, rc := examplesConfig(t)
	return startMain(t, cfg), rc
}

// examplesConfig is startExamples' configuration and endpoint.
func examplesConfig(t *testing.T) (Config, *endpointReceiver) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(examplesDir, "verihook.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("examples/verihook.yaml: %v", err)
	}
	cfg.Listen, cfg.MetricsListen, cfg.DataDir, cfg.AllowPrivateEndpoints = "127.0.0.1:0", "127.0.0.1:0", t.TempDir(), true
	secret := hub.NewEndpointSecret()
	rc := newReceiver(t, secret, 0)
	cfg.Endpoints = []EndpointConfig{{ID: "all", URL: rc.srv.URL, Secret: secret}}
	return cfg, rc
}

// playExample plays one scenario of examples/ against base (the file's own
// host and port are replaced, its path kept) and fails the test if any step
// is not answered as the file expects.
func playExample(t *testing.T, name, base string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(examplesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var sc map[string]any
	if err := yaml.Unmarshal(raw, &sc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	to, err := url.Parse(sc["to"].(string))
	if err != nil {
		t.Fatalf("%s: to: %v", name, err)
	}
	sc["to"] = base + to.Path
	out, _ := yaml.Marshal(sc)
	playScenario(t, string(out), 0)
}

// TestExamples plays every scenario under examples/ against the real server
// configured by examples/verihook.yaml.
func TestExamples(t *testing.T) {
	t.Parallel()
	m, _ := startExamples(t)
	base := "http://" + m.Addr()
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	played := 0
	for _, f := range files {
		if name := filepath.Base(f); name != "verihook.yaml" {
			playExample(t, name, base)
			played++
		}
	}
	if played == 0 {
		t.Fatal("no scenario under examples/")
	}
}

// TestProviderCases plays the provider cases of issue 11 and follows each
// through status, events and delivery.
func TestProviderCases(t *testing.T) {
	t.Parallel()
	m, rc := startExamples(t)
	base := "http://" + m.Addr()
	tok := token(t, m, hub.RoleViewer)
	for _, f := range []string{"idenfy-event-type-spellings.yaml", "idenfy-event-type-in-url.yaml", "idenfy-per-event-key-no-header.yaml",
		"idenfy-resubmitted.yaml", "idenfy-applicant-events.yaml", "fractal-missing-secret.yaml", "fractal-access-revoked.yaml"} {
		playExample(t, f, base)
	}

	for _, c := range []struct {
		source, ref string
		status      hub.Status
		final       bool
		version     int
		event       string
	}{
		{"idenfy-main", "spell-1", hub.StatusApproved, true, 2, "ID_VERIFICATION_MANUAL_FINISHED"},
		{"idenfy-main", "spell-2", hub.StatusRejected, true, 1, "IDENTIFICATION_SOMETHING_NEW"},
		{"idenfy-main", "spell-3", hub.StatusSuspected, true, 1, "IDENTIFICATION"},
		{"idenfy-keys", "url-1", hub.StatusRejected, true, 1, "IDENTIFICATION_MANUAL_FINISHED"},
		{"idenfy-keys", "url-2", hub.StatusApproved, true, 1, "IDENTIFICATION_MANUAL_FINISHED"},
		{"idenfy-keys", "keys-1", hub.StatusApproved, true, 1, "IDENTIFICATION"},
		{"idenfy-keys", "keys-2", hub.StatusRejected, true, 1, "SOMETHING_NEW"},
		// review (preliminary denial), review with other reasons, approved
		{"idenfy-main", "resub-1", hub.StatusApproved, true, 3, "IDENTIFICATION_RESUBMITTED"},
	} {
		v := verificationOf(t, base, tok, c.source, c.ref, "")
		last := v.Timeline[len(v.Timeline)-1]
		if v.Status != c.status || v.Final != c.final || v.Version != c.version || last.ProviderEvent != c.event {
			t.Errorf("%s %s: %s final %v version %d, last event %s; want %s final %v version %d, %s",
				c.source, c.ref, v.Status, v.Final, v.Version, last.ProviderEvent, c.status, c.final, c.version, c.event)
		}
	}

	// Every event reached the endpoint: 11 verification changes (spell-1
	// twice, resub-1 three times), two document expirations, an age
	// estimation, a face authentication, the approval and the revocation of
	// user-10, the revocation of user-11 and fractal-per-type's approval.
	waitFor(t, "the deliveries", 10*time.Second, func() bool { return rc.distinct() == 19 })
	rc.mu.Lock()
	byType := map[string]string{} // event type -> the data of its deliveries, in any order
	for _, e := range rc.events {
		byType[e.Type] += string(e.Data)
	}
	rc.mu.Unlock()
	for typ, want := range map[string][]string{
		hub.EventApplicantAccessRevoked:           {`"applicant_ref":"user-10"`, `"applicant_ref":"user-11"`},
		hub.EventApplicantDocumentExpiration:      {`"threshold":"DOCUMENT_EXPIRES_WITHIN_7_DAYS"`, `"threshold":"DOCUMENT_EXPIRED"`},
		hub.EventApplicantAgeEstimated:            {`"provider_ref":"age-1","applicant_ref":"user-7","status":"COMPLETED","outcome":"UNDERAGE"`},
		hub.EventApplicantFaceAuthenticationEnded: {`"session_ref":"faceauth-1"`, `"succeeded":false,"fail_reason":"Liveness check failed"`},
	} {
		for _, w := range want {
			if strings.Count(byType[typ], w) != 1 {
				t.Errorf("%s deliveries %s: want one with %s", typ, byType[typ], w)
			}
		}
	}

	// The Fractal type without a secret: the audit row, the metric and the
	// sources API name it.
	var rejected messageList
	getJSON(t, base+"/api/v1/messages?source=fractal-per-type&status=rejected", tok, &rejected)
	if len(rejected.Data) != 1 || rejected.Data[0].HTTPStatus != http.StatusUnauthorized ||
		rejected.Data[0].Reason != `no secret for event type "application_access_revoked": set webhook_secrets.application_access_revoked` {
		t.Errorf("audit rows: %+v", rejected.Data)
	}
	resp, err := http.Get("http://" + m.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `verihook_ingest_missing_secret_total{event_type="application_access_revoked",source="fractal-per-type"} 1`; !bytes.Contains(metricsText, []byte(want)) {
		t.Errorf("metrics lack %s", want)
	}
	var sources struct {
		Data []struct {
			ID                  string   `json:"id"`
			EventsWithoutSecret []string `json:"events_without_secret"`
		} `json:"data"`
	}
	getJSON(t, base+"/api/v1/sources", tok, &sources)
	for _, s := range sources.Data {
		want := []string(nil)
		if s.ID == "fractal-per-type" {
			want = []string{"verification_contacted", "credential_shared", "email_changed", "application_access_revoked", "authorization_revoked"}
		}
		if !slices.Equal(s.EventsWithoutSecret, want) {
			t.Errorf("source %s: events_without_secret %q, want %q", s.ID, s.EventsWithoutSecret, want)
		}
	}
}

// TestOrderingCases plays the Identomat and KYCAID cases of issue 11 (items
// 1, 2, 6 and 7) and follows each through status, events and delivery. The
// clock that stamps received messages is a fake one, moved past Identomat's
// 30 s retry window instead of waiting.
func TestOrderingCases(t *testing.T) {
	t.Parallel()
	cfg, rc := examplesConfig(t)
	var clock atomic.Int64 // an hour ago, so that deliveries are due at once
	clock.Store(time.Now().Add(-time.Hour).UnixNano())
	m := &Main{Config: cfg, Now: func() time.Time { return time.Unix(0, clock.Add(int64(time.Millisecond))) }}
	if err := m.Run(context.Background()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	base := "http://" + m.Addr()
	tok := token(t, m, hub.RoleViewer)

	// 1. A state that comes back is a change; a retry of the current one is
	// not; a decided session can be reopened.
	playExample(t, "identomat-state-comes-back.yaml", base)
	v := verificationOf(t, base, tok, "identomat-main", "sess-back-1", "")
	if v.Status != hub.StatusActionRequired || v.Final || v.Version != 5 || len(v.Timeline) != 5 {
		t.Errorf("state comes back: %s final %v v%d with %d timeline entries, want action_required v5 with 5",
			v.Status, v.Final, v.Version, len(v.Timeline))
	}

	// 2. A request sent again at once is a retry (the file expects
	// duplicates); the same again 30 s later is a second request (the file
	// expects them accepted).
	playExample(t, "identomat-second-request.yaml", base)
	clock.Add(int64(30 * time.Second))
	playExample(t, "identomat-second-request.yaml", base)

	// 6. verification_id null, then named: one verification.
	playExample(t, "kycaid-verification-id-null.yaml", base)
	v = verificationOf(t, base, tok, "kycaid-main", "kv-null-1", "")
	if v.Status != hub.StatusApproved || !v.Final || v.Version != 3 || len(v.Timeline) != 3 ||
		!strings.HasPrefix(v.Timeline[0].ProviderRef, "applicant:") {
		t.Errorf("verification_id null: %+v", v)
	}
	var l verificationList
	getJSON(t, base+"/api/v1/verifications?source=kycaid-main&applicant_ref=user-null-1", tok, &l)
	if len(l.Data) != 1 {
		t.Errorf("applicant user-null-1 has %d verifications, want 1", len(l.Data))
	}

	// 7. A rejection with attempts left is not final; the last one is.
	playExample(t, "kycaid-attempts.yaml", base)
	v = verificationOf(t, base, tok, "kycaid-main", "kv-attempts-1", "")
	if v.Status != hub.StatusRejected || !v.Final || v.Version != 4 || v.AttemptsLeft == nil || *v.AttemptsLeft != 0 ||
		len(v.Timeline) != 5 || v.Timeline[1].Final || v.Timeline[2].Outcome != hub.OutcomeApplied ||
		v.Timeline[4].Outcome != hub.OutcomeSuperseded {
		t.Errorf("attempts: %+v", v)
	}

	// Every event reached the endpoint: 5 + 2 + 2 + 3 + 4.
	waitFor(t, "16 deliveries", 10*time.Second, func() bool { return rc.distinct() == 16 })
	rc.mu.Lock()
	defer rc.mu.Unlock()
	byType := map[string]int{}
	for _, e := range rc.events {
		byType[e.Type]++
	}
	if byType[hub.EventOTPRequested] != 2 || byType[hub.EventSessionLinkRequested] != 2 ||
		byType[hub.EventVerificationUpdated] != 12 {
		t.Errorf("delivered %v, want 2 otp.requested, 2 session_link.requested, 12 verification.updated", byType)
	}
}
