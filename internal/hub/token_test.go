package hub_test

import (
	"strings"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

func TestParseLifetime(t *testing.T) {
	t.Parallel()
	ok := map[string]time.Duration{
		"30m":   30 * time.Minute,
		"12h":   12 * time.Hour,
		"90d":   90 * 24 * time.Hour,
		"2w":    14 * 24 * time.Hour,
		"3650d": hub.MaxTokenLifetime,
		"007d":  7 * 24 * time.Hour,
	}
	for in, want := range ok {
		if got, err := hub.ParseLifetime(in); err != nil || got != want {
			t.Errorf("ParseLifetime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	bad := map[string]string{ // input -> what the message must say
		"":                      "a whole number and a unit",
		"d":                     "a whole number and a unit",
		"90":                    "a whole number and a unit",
		"90x":                   "a whole number and a unit",
		"90D":                   "a whole number and a unit",
		"1.5d":                  "a whole number and a unit",
		"-1d":                   "a whole number and a unit",
		"+1d":                   "a whole number and a unit",
		" 1d":                   "a whole number and a unit",
		"1h30m":                 "a whole number and a unit",
		"90s":                   "a whole number and a unit",
		"0d":                    "above zero",
		"3651d":                 "at most 3650d",
		"522w":                  "at most 3650d",
		"99999999999999999999h": "at most 3650d",
	}
	for in, want := range bad {
		_, err := hub.ParseLifetime(in)
		if hub.ErrorCode(err) != hub.EINVALID || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseLifetime(%q) = %v; want EINVALID saying %q", in, err, want)
		}
	}
}

func TestTokenState(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	tok, secret := hub.NewToken(hub.RoleViewer, "ci", time.Hour, now)
	if tok.Hash != hub.HashToken(secret) || !strings.HasPrefix(secret, hub.TokenPrefix) || !tok.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("NewToken = %+v, %q", tok, secret)
	}
	if never, _ := hub.NewToken(hub.RoleViewer, "", 0, now); !never.ExpiresAt.IsZero() {
		t.Errorf("NewToken with no lifetime expires at %v", never.ExpiresAt)
	}
	revoked := tok
	revoked.RevokedAt = now.Add(time.Minute)
	for _, c := range []struct {
		name string
		tok  hub.Token
		at   time.Time
		want string
	}{
		{"before expiry", tok, now.Add(59 * time.Minute), hub.TokenActive},
		{"at expiry", tok, now.Add(time.Hour), hub.TokenExpired},
		{"after expiry", tok, now.Add(2 * time.Hour), hub.TokenExpired},
		{"revoked", revoked, now.Add(2 * time.Minute), hub.TokenRevoked},
		{"revoked and expired", revoked, now.Add(2 * time.Hour), hub.TokenRevoked},
	} {
		if got := c.tok.State(c.at); got != c.want {
			t.Errorf("%s: State = %s, want %s", c.name, got, c.want)
		}
		err := c.tok.Check(c.at)
		if (c.want == hub.TokenActive) != (err == nil) || (err != nil && hub.ErrorCode(err) != hub.EUNAUTHORIZED) {
			t.Errorf("%s: Check = %v", c.name, err)
		}
		if err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Check = %v; want it to say %s", c.name, err, c.want)
		}
	}
}
