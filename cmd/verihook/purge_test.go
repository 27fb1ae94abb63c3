package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// TestPurgeEndToEnd: once otp_retention has passed, an OTP event's code and
// recipient are gone from the API and from a replayed delivery, which sends
// the redacted form; the purge's log line holds counts only.
func TestPurgeEndToEnd(t *testing.T) {
	t.Parallel()
	secret := hub.NewEndpointSecret()
	rc := newReceiver(t, secret, 0)
	cfg := testConfig(t)
	cfg.AllowPrivateEndpoints = true
	cfg.Endpoints = []EndpointConfig{{ID: "sms", URL: rc.srv.URL + "/otp", Secret: secret, EventTypes: []string{hub.EventOTPRequested}}}
	var logs bytes.Buffer
	m := &Main{Config: cfg, LogOutput: &logs}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	base := "http://" + m.Addr()
	admin := token(t, m, hub.RoleAdmin)

	const otpText, phone = "Your code is 774411", "+37069912345"
	body, h := signed(t, "identomat", "one-time-password", provider.Fields{Ref: "s-purge", Text: otpText, Recipient: phone})
	if code := postRaw(t, base+"/ingest/identomat-main", h, body, nil); code != 200 {
		t.Fatalf("OTP: %d", code)
	}
	waitFor(t, "the OTP delivery", 5*time.Second, func() bool { return rc.distinct() == 1 })
	rc.mu.Lock()
	ev := rc.events[0]
	rc.mu.Unlock()
	if !strings.Contains(string(ev.Data), phone) {
		t.Fatalf("delivered before the purge: %s; want the recipient", ev.Data)
	}

	// A purge as the hourly loop runs it, a day and an hour later.
	m.purge(context.Background(), time.Now().Add(cfg.OTPRetention+time.Hour))
	var got hub.Event
	if code := getJSON(t, base+"/api/v1/events/"+ev.ID, admin, &got); code != 200 {
		t.Fatalf("GET event: %d", code)
	}
	var data hub.OTPRequested
	if err := json.Unmarshal(got.Data, &data); err != nil {
		t.Fatal(err)
	}
	if want := (hub.OTPRequested{Channel: "sms", Recipient: hub.Redacted, Text: hub.Redacted, SessionRef: "s-purge"}); data != want {
		t.Errorf("event data after the purge = %+v, want %+v", data, want)
	}

	var replay map[string]int
	if code := apiDo(t, "POST", base+"/api/v1/endpoints/sms/replay", admin, map[string]any{"since": time.Now().Add(-time.Hour)}, &replay); code != 202 || replay["deliveries"] != 1 {
		t.Fatalf("replay: %d %v", code, replay)
	}
	waitFor(t, "the replayed delivery", 5*time.Second, func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		return len(rc.events) == 2
	})
	rc.mu.Lock()
	again := rc.events[1]
	rc.mu.Unlock()
	if again.ID != ev.ID || !sameJSONData(again.Data, got.Data) {
		t.Errorf("replayed %s %s; want %s %s, the redacted form", again.ID, again.Data, ev.ID, got.Data)
	}

	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "purged personal data past retention") || !strings.Contains(out, "events=1") {
		t.Errorf("the log does not tell of the purge:\n%s", out)
	}
	for _, leak := range []string{otpText, "774411", phone} {
		if strings.Contains(out, leak) {
			t.Errorf("the log holds %q", leak)
		}
	}
}

// sameJSONData reports whether a and b hold equal JSON values.
func sameJSONData(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}
