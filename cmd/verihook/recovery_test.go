package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
	"github.com/verihook/verihook/internal/provider/kycaid"
)

const emuSecret = "emulated-provider-secret"

// startEmulator runs `verihook simulate serve`'s handler on loopback.
func startEmulator(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(newEmulator(registry(), emuSecret).handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// emulate asks the emulator for a callback of provider's event.
func emulate(t *testing.T, emu, prov, event string, req map[string]any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(req)
	resp, err := http.Post(emu+"/callbacks/"+prov+"/"+event, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("emulator %s %s = %d %v", prov, event, resp.StatusCode, out)
	}
	return out
}

// recoveryConfig declares a KYCAID and an iDenfy source whose status APIs
// are the emulator's.
func recoveryConfig(t *testing.T, emu string) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen, cfg.MetricsListen, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	rc := &ReconcileConfig{APIURL: emu}
	cfg.Sources = []SourceConfig{
		{ID: "kycaid-main", Provider: "kycaid", Secrets: map[string]any{"api_token": emuSecret}, Reconcile: rc},
		{ID: "idenfy-main", Provider: "idenfy", Reconcile: rc,
			Secrets: map[string]any{"signing_key": emuSecret, "api_key": emuSecret, "api_secret": emuSecret}},
	}
	return cfg
}

// A callback the emulator drops is recovered by a refresh through the API,
// with the same event a callback makes; a second refresh changes nothing.
func TestRefreshRecoversDroppedCallback(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	m := startMain(t, recoveryConfig(t, emu))
	base := "http://" + m.Addr()
	admin, viewer := token(t, m, hub.RoleAdmin), token(t, m, hub.RoleViewer)

	sent := emulate(t, emu, "kycaid", "VERIFICATION_STATUS_CHANGED", map[string]any{
		"ref": "ver-1", "applicant": "user-1", "to": base + "/ingest/kycaid-main"})
	if sent["status"] != float64(200) {
		t.Fatalf("callback answered %v", sent)
	}
	emulate(t, emu, "kycaid", "VERIFICATION_COMPLETED", map[string]any{"ref": "ver-1", "status": "true", "drop": true})
	v := verificationOf(t, base, viewer, "kycaid-main", "ver-1", "")
	if v.Status != hub.StatusPending {
		t.Fatalf("before the refresh: %s", v.Status)
	}

	url := base + "/api/v1/verifications/" + v.ID + "/refresh"
	if code := apiDo(t, http.MethodPost, url, viewer, nil, nil); code != http.StatusForbidden {
		t.Errorf("refresh by a viewer = %d, want 403", code)
	}
	var got struct {
		Result       hub.PollResult   `json:"result"`
		Verification hub.Verification `json:"verification"`
	}
	if code := apiDo(t, http.MethodPost, url, admin, nil, &got); code != http.StatusOK {
		t.Fatalf("refresh = %d", code)
	}
	if !got.Result.Changed || got.Verification.Status != hub.StatusApproved || !got.Verification.Final {
		t.Fatalf("refresh = %+v, %s final=%v; want a change to approved, final", got.Result, got.Verification.Status, got.Verification.Final)
	}
	tl := got.Verification.Timeline
	if last := tl[len(tl)-1]; last.Origin != hub.OriginPoll || last.ProviderEvent != kycaid.VerificationAPI {
		t.Errorf("last timeline entry = %s %s, want a poll", last.Origin, last.ProviderEvent)
	}
	var events struct{ Data []hub.Event }
	getJSON(t, base+"/api/v1/events?verification="+v.ID, admin, &events)
	if len(events.Data) != 2 || !strings.Contains(string(events.Data[0].Data), `"previous_status":"pending"`) ||
		!strings.Contains(string(events.Data[0].Data), `"status":"approved"`) {
		t.Errorf("events = %d, newest %s; want a verification.updated from pending to approved", len(events.Data), events.Data[0].Data)
	}
	// The refresh is rate limited per source: at once again, 503.
	if code := apiDo(t, http.MethodPost, url, admin, nil, nil); code != http.StatusOK && code != http.StatusServiceUnavailable {
		t.Errorf("second refresh = %d", code)
	}
	if v2 := verificationOf(t, base, viewer, "kycaid-main", "ver-1", ""); v2.Version != got.Verification.Version {
		t.Errorf("a second refresh changed the verification: v%d, want v%d", v2.Version, got.Verification.Version)
	}
}

// verihook reconcile --source asks about every open verification of a
// source and reports what changed.
func TestReconcileCommand(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	cfg := recoveryConfig(t, emu)
	m := startMain(t, cfg)
	base := "http://" + m.Addr()
	emulate(t, emu, "idenfy", "IDENTIFICATION_AUTO_FINISHED", map[string]any{"ref": "scan-1", "final": "false", "to": base + "/ingest/idenfy-main"})
	emulate(t, emu, "idenfy", "IDENTIFICATION_MANUAL_FINISHED", map[string]any{"ref": "scan-1", "status": "APPROVED", "drop": true})
	m.Close()

	dir := t.TempDir()
	config := filepath.Join(dir, "verihook.yaml")
	yaml := fmt.Sprintf(`data_dir: %s
sources:
  - {id: idenfy-main, provider: idenfy, secrets: {signing_key: "${S}", api_key: "${S}", api_secret: "${S}"}, reconcile: {api_url: %q}}
`, cfg.DataDir, emu)
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		if k == "S" {
			return emuSecret
		}
		return ""
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"reconcile", "--source", "idenfy-main", "--all", "--config", config}, &out, &errOut, getenv); code != 0 {
		t.Fatalf("reconcile exited %d: %s %s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "polled 1, changed 1, failed 0") {
		t.Errorf("reconcile printed %q", out.String())
	}
	out.Reset()
	run(context.Background(), []string{"reconcile", "--source", "idenfy-main", "--all", "--config", config}, &out, &errOut, getenv)
	if !strings.Contains(out.String(), "polled 0") {
		t.Errorf("a second reconcile printed %q; the verification is final now", out.String())
	}
	if code := run(context.Background(), []string{"reconcile", "--source", "nope", "--config", config}, &out, &errOut, getenv); code == 0 {
		t.Errorf("reconcile of an unknown source succeeded")
	}
}

// oldKYCAID is KYCAID's adapter as an older build that did not know
// VERIFICATION_COMPLETED.
type oldKYCAID struct{ kycaid.Provider }

func (o oldKYCAID) Parse(h http.Header, body []byte) (hub.Parsed, error) {
	p, err := o.Provider.Parse(h, body)
	if p.EventName == kycaid.EventVerificationCompleted {
		return hub.Parsed{EventName: p.EventName, DedupKey: p.DedupKey, Body: p.Body}, provider.Unrecognized("unknown type %q", p.EventName)
	}
	return p, err
}

// Messages quarantined by an older adapter are applied once an upgrade
// understands them, in their original order; running it twice changes
// nothing the second time.
func TestReprocessAfterUpgrade(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	old := registry()
	old["kycaid"] = oldKYCAID{}
	m := &Main{Config: cfg, Registry: old}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	base := "http://" + m.Addr()
	send := func(event string, f provider.Fields, want string) {
		body, h := signed(t, "kycaid", event, f)
		var a ingestAnswer
		postRaw(t, base+"/ingest/kycaid-main", h, body, &a)
		if a.Status != want {
			t.Fatalf("%s answered %+v, want %s", event, a, want)
		}
	}
	send("VERIFICATION_STATUS_CHANGED", provider.Fields{Ref: "ver-1"}, "accepted")
	send("VERIFICATION_COMPLETED", provider.Fields{Ref: "ver-1", Status: "true", EventID: "r1"}, "quarantined")
	send("VERIFICATION_COMPLETED", provider.Fields{Ref: "ver-2", Status: "false", EventID: "r2"}, "quarantined")
	m.Close()

	m = startMain(t, cfg) // the upgrade
	base = "http://" + m.Addr()
	admin, viewer := token(t, m, hub.RoleAdmin), token(t, m, hub.RoleViewer)
	var stuck messageList
	getJSON(t, base+"/api/v1/messages?status=quarantined", viewer, &stuck)
	if len(stuck.Data) != 2 {
		t.Fatalf("%d quarantined messages, want 2", len(stuck.Data))
	}
	quarantined := `verihook_messages_quarantined{source="kycaid-main"} `
	if text := metricsText(t, m); !strings.Contains(text, quarantined+"2") || !strings.Contains(text, `verihook_verifications_stuck{source="kycaid-main"} 0`) {
		t.Errorf("metrics before reprocessing lack %q2 and no stuck verification", quarantined)
	}
	if code := apiDo(t, http.MethodPost, base+"/api/v1/messages/reprocess", viewer, nil, nil); code != http.StatusForbidden {
		t.Errorf("reprocess by a viewer = %d", code)
	}
	var res struct{ Data []hub.Reprocessed }
	if code := apiDo(t, http.MethodPost, base+"/api/v1/messages/reprocess", admin, map[string]string{"source": "kycaid-main"}, &res); code != http.StatusOK {
		t.Fatalf("reprocess = %d", code)
	}
	if len(res.Data) != 2 || res.Data[0].MessageID != stuck.Data[1].ID || res.Data[0].Status != hub.MessageAccepted || res.Data[0].Events != 1 {
		t.Fatalf("reprocess = %+v; want both accepted, oldest first", res.Data)
	}
	v := verificationOf(t, base, viewer, "kycaid-main", "ver-1", "")
	if v.Status != hub.StatusApproved || v.Version != 2 || v.Timeline[1].Origin != hub.OriginReprocess {
		t.Errorf("ver-1 = %s v%d, %+v; want approved v2 by a reprocessed entry", v.Status, v.Version, v.Timeline)
	}
	if text := metricsText(t, m); !strings.Contains(text, quarantined+"0") {
		t.Errorf("metrics after reprocessing lack %q0", quarantined)
	}
	var again struct{ Data []hub.Reprocessed }
	apiDo(t, http.MethodPost, base+"/api/v1/messages/reprocess", admin, nil, &again)
	if len(again.Data) != 0 {
		t.Errorf("a second reprocess did %+v, want nothing", again.Data)
	}
	if code := apiDo(t, http.MethodPost, base+"/api/v1/messages/"+stuck.Data[0].ID+"/reprocess", admin, nil, nil); code != http.StatusConflict {
		t.Errorf("reprocess of an accepted message = %d, want 409", code)
	}
	if v2 := verificationOf(t, base, viewer, "kycaid-main", "ver-1", ""); v2.Version != 2 {
		t.Errorf("after a second reprocess ver-1 is v%d", v2.Version)
	}
	var l verificationList
	getJSON(t, base+"/api/v1/verifications?stuck=true", viewer, &l)
	if len(l.Data) != 0 {
		t.Errorf("stuck = %d verifications, want none (all are final or fresh)", len(l.Data))
	}
	if code := getJSON(t, base+"/api/v1/verifications?stuck=maybe", viewer, nil); code != http.StatusBadRequest {
		t.Errorf("stuck=maybe = %d, want 400", code)
	}
}

// metricsText returns what m's /metrics answers.
func metricsText(t *testing.T, m *Main) string {
	t.Helper()
	resp, err := http.Get("http://" + m.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
