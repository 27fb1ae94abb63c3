package hub

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// TokenPrefix starts every API token, so that a leaked one is recognisable.
const TokenPrefix = "vh_"

// Token is an API token; only the hash of its secret is stored. A revoked
// token keeps its row, so that an audit can still tell who held access, with
// which role, until when, and when it was last used, and so that presenting
// it again is answered "revoked" rather than "unknown".
type Token struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	Hash      string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is when the token stops working; zero: never.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// LastUsedAt is when the token last authenticated a request, recorded
	// at most about once a minute; zero: never.
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	// RevokedAt is when the token was revoked; zero: it was not.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// The states of a token, as Token.State reports them.
const (
	TokenActive  = "active"
	TokenExpired = "expired"
	TokenRevoked = "revoked"
)

// State returns TokenRevoked, TokenExpired or TokenActive: what t is at now.
// Revocation wins over expiry, as it is the act an auditor looks for.
func (t Token) State(now time.Time) string {
	switch {
	case !t.RevokedAt.IsZero():
		return TokenRevoked
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		return TokenExpired
	}
	return TokenActive
}

// Check returns nil when t may authenticate a request at now, and an
// EUNAUTHORIZED error saying why not when it is revoked or expired.
func (t Token) Check(now time.Time) error {
	switch t.State(now) {
	case TokenRevoked:
		return Errorf(EUNAUTHORIZED, "this bearer token was revoked")
	case TokenExpired:
		return Errorf(EUNAUTHORIZED, "this bearer token expired at %s", t.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// MaxTokenLifetime is the longest lifetime ParseLifetime accepts: ten years,
// beyond which "never expires" (no lifetime at all) says it more honestly.
const MaxTokenLifetime = 3650 * 24 * time.Hour

// ParseLifetime parses a token lifetime such as 30m, 12h, 90d or 2w: a whole
// number above zero and one unit, m (minutes), h (hours), d (days of 24
// hours) or w (weeks), up to MaxTokenLifetime. Anything else is EINVALID.
func ParseLifetime(s string) (time.Duration, error) {
	units := map[byte]time.Duration{'m': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}
	bad := Errorf(EINVALID, "invalid lifetime %q: want a whole number and a unit, m, h, d or w (30m, 12h, 90d, 2w)", s)
	if len(s) < 2 {
		return 0, bad
	}
	unit, ok := units[s[len(s)-1]]
	if !ok {
		return 0, bad
	}
	digits := s[:len(s)-1]
	if digits == "" || strings.Trim(digits, "0123456789") != "" { // no sign, space or fraction
		return 0, bad
	}
	n, err := strconv.Atoi(digits) // all digits: an error is an overflow
	switch {
	case err == nil && n == 0:
		return 0, Errorf(EINVALID, "invalid lifetime %q: it must be above zero", s)
	case err != nil || time.Duration(n) > MaxTokenLifetime/unit:
		return 0, Errorf(EINVALID, "invalid lifetime %q: at most %dd", s, MaxTokenLifetime/(24*time.Hour))
	}
	return time.Duration(n) * unit, nil
}

// NewToken returns a new token with role and name, created at now, that
// expires after lifetime (0: never), and its secret, which is shown once and
// never stored. Store.CreateToken validates it.
func NewToken(role Role, name string, lifetime time.Duration, now time.Time) (Token, string) {
	secret := NewTokenSecret()
	t := Token{ID: NewID("tok", now), Name: name, Role: role, Hash: HashToken(secret), CreatedAt: now}
	if lifetime > 0 {
		t.ExpiresAt = now.Add(lifetime)
	}
	return t, secret
}

// NewTokenSecret returns a new random API token: the prefix and 32 random bytes.
func NewTokenSecret() string {
	var b [32]byte
	rand.Read(b[:])
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// HashToken returns the hex SHA-256 of a token: what the store keeps. Tokens
// are long and random, so a fast hash is enough.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
