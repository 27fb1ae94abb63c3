package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/delivery"
	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// endpointReceiver is an endpoint that records what verihook delivers.
type endpointReceiver struct {
	secret string
	mu     sync.Mutex
	events []hub.Event
	ids    map[string]int // webhook-id -> times received
	srv    *httptest.Server
	// fail, when set, decides to answer 500 to a delivery.
	fail func(id string) bool
}

// newReceiver starts a receiver that answers after a random delay of up to
// maxDelay.
func newReceiver(t *testing.T, secret string, maxDelay time.Duration) *endpointReceiver {
	t.Helper()
	rc := &endpointReceiver{secret: secret, ids: map[string]int{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if maxDelay > 0 {
			time.Sleep(rand.N(maxDelay))
		}
		body, _ := io.ReadAll(r.Body)
		if err := delivery.Verify(rc.secret, r.Header, body, time.Now(), delivery.DefaultTolerance); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		id := r.Header.Get(delivery.HeaderID)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if rc.fail != nil && rc.fail(id) {
			http.Error(w, "flaky", http.StatusInternalServerError)
			return
		}
		var ev hub.Event
		if err := json.Unmarshal(body, &ev); err != nil || ev.ID != id {
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		rc.ids[id]++
		rc.events = append(rc.events, ev)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *endpointReceiver) distinct() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.ids)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// apiDo sends a JSON request with a bearer token and decodes the answer.
func apiDo(t *testing.T, method, url, tok string, in, out any) int {
	t.Helper()
	resp, raw := apiSend(t, method, url, tok, nil, in)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %q is not JSON", method, url, raw)
		}
	}
	return resp.StatusCode
}

// apiSend sends a request with a bearer token, the headers in header and a
// JSON body in (none when nil), and returns the answer and its body.
func apiSend(t *testing.T, method, url, tok string, header http.Header, in any) (*http.Response, []byte) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, body)
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, raw
}

func TestDeliveryEndToEnd(t *testing.T) {
	t.Parallel()
	secret := hub.NewEndpointSecret()
	rc := newReceiver(t, secret, 0)
	cfg := testConfig(t)
	cfg.AllowPrivateEndpoints = true
	cfg.Endpoints = []EndpointConfig{{ID: "backoffice", URL: rc.srv.URL + "/hooks", Secret: secret, EventTypes: []string{"verification.*"}}}
	m := startMain(t, cfg)
	base := "http://" + m.Addr()
	admin, viewer := token(t, m, hub.RoleAdmin), token(t, m, hub.RoleViewer)

	body, h := signed(t, "idenfy", "IDENTIFICATION_MANUAL_FINISHED", provider.Fields{Ref: "scan-d1", ApplicantRef: "user-d1"})
	if code := postRaw(t, base+"/ingest/idenfy-main", h, body, nil); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	otp, oh := signed(t, "identomat", "one-time-password", provider.Fields{Ref: "s-d1"})
	postRaw(t, base+"/ingest/identomat-main", oh, otp, nil)
	waitFor(t, "the verification.updated delivery", 5*time.Second, func() bool { return rc.distinct() == 1 })
	rc.mu.Lock()
	ev := rc.events[0]
	rc.mu.Unlock()
	var data hub.VerificationUpdated
	if err := json.Unmarshal(ev.Data, &data); err != nil || ev.Type != hub.EventVerificationUpdated ||
		data.Verification.ProviderRef != "scan-d1" || data.Verification.Status != hub.StatusApproved || data.ProviderEvent != "IDENTIFICATION_MANUAL_FINISHED" {
		t.Fatalf("delivered %+v / %+v", ev, data)
	}

	var dl struct{ Data []hub.Delivery }
	if code := getJSON(t, base+"/api/v1/deliveries?endpoint=backoffice", viewer, &dl); code != 200 || len(dl.Data) != 1 {
		t.Fatalf("deliveries: %d %+v (the OTP event is filtered out by verification.*)", code, dl.Data)
	}
	var one struct {
		hub.Delivery
		Preview json.RawMessage `json:"preview"`
	}
	// The attempt is recorded just after the receiver answers.
	waitFor(t, "the attempt recorded", 5*time.Second, func() bool {
		getJSON(t, base+"/api/v1/deliveries/"+dl.Data[0].ID, viewer, &one)
		return one.Status != hub.DeliveryPending
	})
	if one.Status != hub.DeliverySucceeded || len(one.AttemptLog) != 1 || one.AttemptLog[0].StatusCode != 204 || !bytes.Contains(one.Preview, []byte("scan-d1")) {
		t.Errorf("delivery %+v preview %s", one.Delivery, one.Preview)
	}

	// Roles: a viewer reads but may not configure.
	newEP := map[string]any{"id": "second", "url": rc.srv.URL + "/second", "event_types": []string{"otp.requested"}}
	if code := apiDo(t, "POST", base+"/api/v1/endpoints", viewer, newEP, nil); code != 403 {
		t.Errorf("viewer POST endpoint: %d, want 403", code)
	}
	if code := apiDo(t, "POST", base+"/api/v1/deliveries/"+dl.Data[0].ID+"/retry", viewer, nil, nil); code != 403 {
		t.Errorf("viewer retry: %d, want 403", code)
	}
	var created struct {
		hub.Endpoint
		Secret string `json:"secret"`
	}
	if code := apiDo(t, "POST", base+"/api/v1/endpoints", admin, newEP, &created); code != 201 || !strings.HasPrefix(created.Secret, "whsec_") {
		t.Fatalf("admin POST endpoint: %d %+v", code, created)
	}
	if code := apiDo(t, "POST", base+"/api/v1/endpoints", admin, map[string]any{"url": "ftp://x"}, nil); code != 400 {
		t.Errorf("bad url: %d, want 400", code)
	}
	if code := apiDo(t, "POST", base+"/api/v1/endpoints", admin, map[string]any{"url": rc.srv.URL, "event_types": []string{"nope"}}, nil); code != 400 {
		t.Errorf("bad event type: %d, want 400", code)
	}

	// Replay the first endpoint since the start: the same webhook-id again.
	var replay map[string]int
	if code := apiDo(t, "POST", base+"/api/v1/endpoints/backoffice/replay", admin, map[string]any{"since": time.Now().Add(-time.Hour)}, &replay); code != 202 || replay["deliveries"] != 1 {
		t.Fatalf("replay: %d %v", code, replay)
	}
	waitFor(t, "the replayed delivery", 5*time.Second, func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		return rc.ids[ev.ID] == 2
	})
	if code := apiDo(t, "POST", base+"/api/v1/deliveries/"+dl.Data[0].ID+"/retry", admin, nil, nil); code != 202 {
		t.Fatalf("retry: %d", code)
	}
	waitFor(t, "the retried delivery", 5*time.Second, func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		return rc.ids[ev.ID] == 3
	})
	if code := apiDo(t, "DELETE", base+"/api/v1/endpoints/second", admin, nil, nil); code != 204 {
		t.Errorf("delete: %d", code)
	}

	// Metrics, on their own listener, tell what happened (the third attempt
	// is counted just after the receiver answered it).
	var metricsText []byte
	waitFor(t, "three attempts counted", 5*time.Second, func() bool {
		resp, err := http.Get("http://" + m.MetricsAddr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metricsText, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		return bytes.Contains(metricsText, []byte(`outcome="succeeded"} 3`))
	})
	for _, want := range []string{`verihook_messages_received_total{outcome="accepted",source="idenfy-main"} 1`,
		`verihook_delivery_attempts_total{endpoint="backoffice",outcome="succeeded"} 3`, "verihook_delivery_queue_depth", "verihook_ingest_duration_seconds_count"} {
		if !bytes.Contains(metricsText, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Rotation: the new secret is shown once, and for 24 h deliveries carry a
	// signature under each, so a receiver still holding the old one verifies.
	var shown map[string]string
	if code := apiDo(t, "GET", base+"/api/v1/endpoints/backoffice/secret", viewer, nil, nil); code != 403 {
		t.Errorf("viewer reading the secret: %d, want 403", code)
	}
	if code := apiDo(t, "GET", base+"/api/v1/endpoints/backoffice/secret", admin, nil, &shown); code != 200 || shown["secret"] != secret {
		t.Errorf("admin reading the secret: %d", code)
	}
	var rotated struct {
		hub.Endpoint
		Secret string `json:"secret"`
	}
	if code := apiDo(t, "POST", base+"/api/v1/endpoints/backoffice/rotate-secret", admin, map[string]any{}, &rotated); code != 200 ||
		rotated.Secret == secret || !hub.ValidEndpointSecret(rotated.Secret) || rotated.PreviousSecretExpiresAt.Before(time.Now().Add(23*time.Hour)) {
		t.Fatalf("rotate: %d %+v", code, rotated.Endpoint)
	}
	body2, h2 := signed(t, "idenfy", "IDENTIFICATION_MANUAL_FINISHED", provider.Fields{Ref: "scan-d2"})
	postRaw(t, base+"/ingest/idenfy-main", h2, body2, nil) // the receiver still verifies with the old secret
	waitFor(t, "a delivery signed with the old and the new secret", 5*time.Second, func() bool { return rc.distinct() == 2 })

	// An endpoint verihook disabled comes back with PATCH {"enabled": true}.
	var patched hub.Endpoint
	if code := apiDo(t, "PATCH", base+"/api/v1/endpoints/backoffice", admin, map[string]any{"enabled": false}, &patched); code != 200 || patched.Enabled {
		t.Fatalf("disable: %d %+v", code, patched)
	}
	if code := apiDo(t, "PATCH", base+"/api/v1/endpoints/backoffice", admin, map[string]any{"enabled": true, "rate_limit": 10}, &patched); code != 200 || !patched.Enabled || patched.RateLimit != 10 {
		t.Fatalf("enable: %d %+v", code, patched)
	}
	if code := apiDo(t, "PATCH", base+"/api/v1/endpoints/backoffice", admin, map[string]any{"secret": secret}, nil); code != 400 {
		t.Errorf("PATCH of the secret: %d, want 400 (rotate instead)", code)
	}
}

func TestPrivateEndpointsRefused(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Endpoints = []EndpointConfig{{ID: "local", URL: "http://127.0.0.1:9/hooks"}}
	m := &Main{Config: cfg}
	err := m.Run(context.Background())
	if err == nil {
		m.Close()
		t.Fatal("serve started with an endpoint on loopback and allow_private_endpoints off")
	}
	if !strings.Contains(err.Error(), "endpoints[0].url") {
		t.Errorf("error %q does not name the field", err)
	}
}

func TestListenVerifiesAndPrints(t *testing.T) {
	t.Parallel()
	secret := hub.NewEndpointSecret()
	var out bytes.Buffer
	srv := httptest.NewServer(listenHandler(secret, &out, time.Now))
	defer srv.Close()
	ev := hub.Event{ID: "evt_1", Type: hub.EventOTPRequested, Source: "identomat-main", Data: json.RawMessage(`{"channel":"sms"}`)}
	body, _ := json.Marshal(ev)
	send := func(sec string) int {
		sig, _ := delivery.Sign([]string{sec}, ev.ID, time.Now(), body)
		req, _ := http.NewRequest("POST", srv.URL, bytes.NewReader(body))
		req.Header.Set(delivery.HeaderID, ev.ID)
		req.Header.Set(delivery.HeaderTimestamp, strconv.FormatInt(time.Now().Unix(), 10))
		req.Header.Set(delivery.HeaderSignature, sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send(secret); code != 204 || !strings.Contains(out.String(), "✓") || !strings.Contains(out.String(), "otp.requested") {
		t.Errorf("good delivery: %d, printed %q", code, out.String())
	}
	if code := send(hub.NewEndpointSecret()); code != 401 || !strings.Contains(out.String(), "✗") {
		t.Errorf("forged delivery: %d, printed %q", code, out.String())
	}
}
