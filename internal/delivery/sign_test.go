package delivery

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSignStandardWebhooksVector checks Sign against the example of the
// Standard Webhooks specification.
func TestSignStandardWebhooksVector(t *testing.T) {
	t.Parallel()
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	ts := time.Unix(1614265330, 0)
	got, err := Sign([]string{secret}, "msg_p5jXN8AQM9LWM0D4loKWxJek", ts, []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	oldSecret, newSecret := "whsec_"+strings.Repeat("QUJD", 8), "whsec_"+strings.Repeat("WFla", 8)
	body := []byte(`{"id":"evt_1"}`)
	both, _ := Sign([]string{newSecret, oldSecret}, "evt_1", now, body)
	header := func(id string, ts time.Time, sig string) http.Header {
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
		h.Set(HeaderSignature, sig)
		return h
	}
	tests := []struct {
		name   string
		secret string
		h      http.Header
		body   []byte
		ok     bool
	}{
		{"new secret", newSecret, header("evt_1", now, both), body, true},
		{"old secret during rotation", oldSecret, header("evt_1", now, both), body, true},
		{"other secret", "whsec_" + strings.Repeat("ZZZZ", 8), header("evt_1", now, both), body, false},
		{"tampered body", newSecret, header("evt_1", now, both), []byte(`{"id":"evt_2"}`), false},
		{"other id", newSecret, header("evt_2", now, both), body, false},
		{"stale timestamp", newSecret, header("evt_1", now.Add(-10*time.Minute), both), body, false},
		{"missing signature", newSecret, header("evt_1", now, ""), body, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Verify(tt.secret, tt.h, tt.body, now, DefaultTolerance)
			if (err == nil) != tt.ok {
				t.Errorf("Verify = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
